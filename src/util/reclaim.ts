import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * Prompt reclaiming of the buffers that large received frames leave behind.
 *
 * A signalling frame arrives as socket reads of 64 KiB and, when it spans
 * several, one more copy of its whole length (the WebSocket message): about
 * twice its size in Buffers outside the V8 heap, garbage once the frame is
 * handled. Only a GC frees them. V8 11 (Node 20) answers that external
 * memory with scavenges, every ~200 ms under a flood of 1 MB frames; V8 13
 * (Node 24) with incremental mark-compacts that leave the dead young
 * Buffers for later, and the relay's RSS grew 52–75 MB under attack 1 of
 * issue 12 (decode bombs, ~80 MB/s of rejected frames), against 27–44 MB
 * on Node 20. After every {@link RECLAIM_BYTES} of frames of at least
 * {@link LARGE_FRAME_BYTES}, this requests one scavenge (about 1 ms, young
 * generation only, this thread only), at most every {@link RECLAIM_MIN_MS}.
 * Measured on Node 24: RSS +36 MB, peak +36 MB (docs/operator.md, "Targets").
 */
export const LARGE_FRAME_BYTES = 64 << 10;
export const RECLAIM_BYTES = 8 << 20;
export const RECLAIM_MIN_MS = 20;

type GcFn = (options: { type: 'minor'; execution: 'sync' }) => void;

let gcFn: GcFn | null | undefined;
let pending = 0;
let lastMs = Number.NEGATIVE_INFINITY;
let requested = 0;

/** V8's gc(): exposed to contexts made after the flag is set; null where it is not available. */
function gc(): GcFn | null {
  if (gcFn === undefined) {
    try {
      setFlagsFromString('--expose-gc');
      const fn = runInNewContext('gc') as unknown;
      gcFn = typeof fn === 'function' ? (fn as GcFn) : null;
    } catch {
      gcFn = null;
    }
  }
  return gcFn;
}

/** A received frame of `bytes` was handled (its buffers are garbage now). */
export function frameHandled(bytes: number, nowMs: number): void {
  if (bytes < LARGE_FRAME_BYTES) {
    return;
  }
  pending += bytes;
  if (pending < RECLAIM_BYTES || nowMs - lastMs < RECLAIM_MIN_MS) {
    return;
  }
  pending = 0;
  lastMs = nowMs;
  const fn = gc();
  if (fn !== null) {
    requested++;
    fn({ type: 'minor', execution: 'sync' });
  }
}

/** Scavenges requested so far by this thread (tests, metrics). */
export function reclaimsRequested(): number {
  return requested;
}
