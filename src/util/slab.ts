/**
 * A bump allocator for short-lived byte buffers on the hot path.
 *
 * `take(n)` returns a view of the next `n` bytes of a large slab; when the
 * slab cannot hold `n` more bytes a fresh one is allocated (the old one is
 * freed by the garbage collector once no view of it is alive). Memory is
 * never handed out twice, so a view may be kept as long as needed (e.g. by
 * an asynchronous `dgram` send): unlike a reused scratch buffer, nothing
 * overwrites it. Cost per call: one view object, no copy, no new backing
 * store except once per slab.
 */
export class BufferSlab {
  private slab: Buffer;
  private used = 0;
  /** Slabs allocated so far (the first one included). */
  slabs = 1;

  constructor(private readonly size = 256 * 1024) {
    this.slab = Buffer.allocUnsafeSlow(size);
  }

  /** A fresh, writable `n`-byte view (contents undefined). */
  take(n: number): Buffer {
    if (this.used + n > this.slab.length) {
      this.slab = Buffer.allocUnsafeSlow(Math.max(n, this.size));
      this.used = 0;
      this.slabs++;
    }
    const start = this.used;
    // 8-byte alignment keeps views word-aligned for the kernel's copy.
    this.used = (start + n + 7) & ~7;
    return this.slab.subarray(start, start + n);
  }
}
