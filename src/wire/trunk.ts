/**
 * TrunkFrame: several tagged entries in one datagram.
 *
 * ```text
 * +-------------+-------------+-------------+----------------+-----
 * | count (u16) | tag (u16)   | len (u16)   | len bytes      | tag ...
 * +-------------+-------------+-------------+----------------+-----
 * ```
 * Every declared entry must be present (WIRE_TRUNCATED) and nothing may
 * follow the last one (WIRE_TRAILING_BYTES). A count of 0 (`00 00`) is valid.
 * In the UDP binding the frame is prefixed with the frame-type byte 0x02;
 * this module handles both the bare frame and a prefixed one.
 */
import {
  TRUNK_DEFAULT_MAX_ENTRIES,
  TRUNK_DEFAULT_MTU,
  TRUNK_ENTRY_OVERHEAD,
  TRUNK_HEADER_SIZE,
} from './constants.js';
import { WireError, type WireResult } from './error.js';
import { isUint } from './header.js';

export interface TrunkEntry {
  /** u16 tag (in the relay binding: the sender's participant_tag). */
  tag: number;
  /** The entry bytes (a view when decoded). */
  data: Uint8Array;
}

/** Offsets of one entry, for allocation-free iteration. */
export interface TrunkEntryView {
  tag: number;
  offset: number;
  length: number;
}

/**
 * Non-throwing validation of the trunk occupying `buf[off..end)`.
 * Returns null when every entry is present and nothing trails.
 */
export function checkTrunk(buf: Uint8Array, off: number, end: number): WireResult {
  if (end - off < TRUNK_HEADER_SIZE) {
    return 'WIRE_TRUNCATED';
  }
  const count = ((buf[off] as number) << 8) | (buf[off + 1] as number);
  let pos = off + TRUNK_HEADER_SIZE;
  for (let i = 0; i < count; i++) {
    if (end - pos < TRUNK_ENTRY_OVERHEAD) {
      return 'WIRE_TRUNCATED';
    }
    const len = ((buf[pos + 2] as number) << 8) | (buf[pos + 3] as number);
    pos += TRUNK_ENTRY_OVERHEAD;
    if (end - pos < len) {
      return 'WIRE_TRUNCATED';
    }
    pos += len;
  }
  return pos === end ? null : 'WIRE_TRAILING_BYTES';
}

/**
 * Allocation-free reader over a validated trunk. Usage:
 * `if (r.reset(buf, off, end) === null) while (r.next(view)) { ... }`.
 */
export class TrunkReader {
  private buf: Uint8Array = new Uint8Array(0);
  private pos = 0;
  private remaining = 0;

  /** Validates the trunk and positions on its first entry. */
  reset(buf: Uint8Array, off: number, end: number): WireResult {
    const bad = checkTrunk(buf, off, end);
    if (bad !== null) {
      this.remaining = 0;
      return bad;
    }
    this.buf = buf;
    this.remaining = ((buf[off] as number) << 8) | (buf[off + 1] as number);
    this.pos = off + TRUNK_HEADER_SIZE;
    return null;
  }

  /** Entry count left to read. */
  get left(): number {
    return this.remaining;
  }

  /** Fills `out` with the next entry; false when none is left. */
  next(out: TrunkEntryView): boolean {
    if (this.remaining === 0) {
      return false;
    }
    const b = this.buf;
    const p = this.pos;
    out.tag = ((b[p] as number) << 8) | (b[p + 1] as number);
    out.length = ((b[p + 2] as number) << 8) | (b[p + 3] as number);
    out.offset = p + TRUNK_ENTRY_OVERHEAD;
    this.pos = out.offset + out.length;
    this.remaining -= 1;
    return true;
  }
}

/** Decodes a trunk into entries whose data are views. @throws {WireError} */
export function decodeTrunk(buf: Uint8Array, off = 0, end = buf.length): TrunkEntry[] {
  const reader = new TrunkReader();
  const bad = reader.reset(buf, off, end);
  if (bad !== null) {
    throw new WireError(bad, trunkErrorMessage(bad, buf, off, end));
  }
  const entries: TrunkEntry[] = [];
  const view: TrunkEntryView = { tag: 0, offset: 0, length: 0 };
  while (reader.next(view)) {
    entries.push({ tag: view.tag, data: buf.subarray(view.offset, view.offset + view.length) });
  }
  return entries;
}

function trunkErrorMessage(code: string, buf: Uint8Array, off: number, end: number): string {
  if (end - off < TRUNK_HEADER_SIZE) {
    return `TrunkFrame needs at least 2 bytes, got ${Math.max(0, end - off)}`;
  }
  const count = ((buf[off] as number) << 8) | (buf[off + 1] as number);
  return code === 'WIRE_TRAILING_BYTES'
    ? `bytes remain after the ${count} declared trunk entries`
    : `TrunkFrame declares ${count} entries but ends early`;
}

/** Encoded size of a trunk holding entries of these data lengths. */
export function trunkSize(entries: readonly { data: Uint8Array }[]): number {
  let size = TRUNK_HEADER_SIZE;
  for (const e of entries) {
    size += TRUNK_ENTRY_OVERHEAD + e.data.length;
  }
  return size;
}

/** Writes a trunk into `buf` at `off`; returns bytes written. @throws {WireError} */
export function encodeTrunkInto(entries: readonly TrunkEntry[], buf: Uint8Array, off = 0): number {
  if (entries.length > 0xffff) {
    throw new WireError(
      'WIRE_FIELD_RANGE',
      `a trunk holds at most 65535 entries, got ${entries.length}`,
    );
  }
  for (const e of entries) {
    if (!isUint(e.tag, 0xffff) || e.data.length > 0xffff) {
      throw new WireError('WIRE_FIELD_RANGE', 'trunk entry: tag u16, data at most 65535 bytes');
    }
  }
  const size = trunkSize(entries);
  if (buf.length - off < size) {
    throw new WireError(
      'WIRE_BUFFER_TOO_SMALL',
      `trunk needs ${size} bytes, ${buf.length - off} available`,
    );
  }
  buf[off] = entries.length >>> 8;
  buf[off + 1] = entries.length & 0xff;
  let pos = off + TRUNK_HEADER_SIZE;
  for (const e of entries) {
    pos = writeEntry(buf, pos, e.tag, e.data, 0, e.data.length);
  }
  return pos - off;
}

/** Encodes a trunk into a new Buffer. @throws {WireError} */
export function encodeTrunk(entries: readonly TrunkEntry[]): Buffer {
  const buf = Buffer.allocUnsafe(trunkSize(entries));
  encodeTrunkInto(entries, buf, 0);
  return buf;
}

function writeEntry(
  buf: Uint8Array,
  pos: number,
  tag: number,
  src: Uint8Array,
  start: number,
  end: number,
): number {
  const len = end - start;
  buf[pos] = tag >>> 8;
  buf[pos + 1] = tag & 0xff;
  buf[pos + 2] = len >>> 8;
  buf[pos + 3] = len & 0xff;
  buf.set(
    start === 0 && end === src.length ? src : src.subarray(start, end),
    pos + TRUNK_ENTRY_OVERHEAD,
  );
  return pos + TRUNK_ENTRY_OVERHEAD + len;
}

export interface TrunkBatcherOptions {
  /** Most entries per frame (default 10). */
  maxEntries?: number;
  /** Most bytes per datagram, prefix included (default 1200). */
  maxBytes?: number;
  /** Frame-type byte written before the count (the binding uses 0x02); none by default. */
  prefixByte?: number;
  /**
   * Receives each finished datagram. The Buffer is owned by the callee from
   * then on (the batcher never writes to it again).
   */
  onFlush: (frame: Buffer, entries: number) => void;
}

/**
 * Batches tagged entries into trunk datagrams of at most `maxEntries`
 * entries and `maxBytes` bytes. Pure: deadlines (flush after 5 ms) belong to
 * the caller, which calls {@link TrunkBatcher.flush}.
 *
 * Push rule: if the entry would overflow the current batch, the batch is
 * flushed first; after adding, a batch that reached either limit is flushed.
 * An entry larger than `maxBytes` on its own is still sent alone (the
 * caller decides whether such an oversize datagram is acceptable).
 */
export class TrunkBatcher {
  readonly maxEntries: number;
  readonly maxBytes: number;
  private readonly prefix: number;
  private readonly onFlush: (frame: Buffer, entries: number) => void;
  private buf: Buffer | null = null;
  private pos = 0;
  private count = 0;

  constructor(options: TrunkBatcherOptions) {
    this.maxEntries = options.maxEntries ?? TRUNK_DEFAULT_MAX_ENTRIES;
    this.maxBytes = options.maxBytes ?? TRUNK_DEFAULT_MTU;
    this.prefix = options.prefixByte ?? -1;
    this.onFlush = options.onFlush;
    if (!isUint(this.maxEntries, 0xffff) || this.maxEntries < 1) {
      throw new WireError(
        'WIRE_FIELD_RANGE',
        `maxEntries must be 1..65535, got ${this.maxEntries}`,
      );
    }
    if (this.prefix > 0xff) {
      throw new WireError('WIRE_FIELD_RANGE', `prefixByte must be a byte, got ${this.prefix}`);
    }
  }

  private get headerBytes(): number {
    return (this.prefix >= 0 ? 1 : 0) + TRUNK_HEADER_SIZE;
  }

  /** Entries waiting in the current batch. */
  get pendingEntries(): number {
    return this.count;
  }

  /** Bytes of the current batch so far (0 when empty). */
  get pendingBytes(): number {
    return this.count === 0 ? 0 : this.pos;
  }

  /**
   * Adds the entry `src[start..end)` with `tag`. Returns the number of
   * datagrams this push flushed (0, 1 or 2).
   * @throws {WireError} WIRE_FIELD_RANGE for a tag or length that does not fit u16.
   */
  push(tag: number, src: Uint8Array, start = 0, end = src.length): number {
    const len = end - start;
    if (!isUint(tag, 0xffff) || len < 0 || len > 0xffff) {
      throw new WireError('WIRE_FIELD_RANGE', 'trunk entry: tag u16, data at most 65535 bytes');
    }
    let flushed = 0;
    const entryBytes = TRUNK_ENTRY_OVERHEAD + len;
    if (
      this.count > 0 &&
      (this.count + 1 > this.maxEntries || this.pos + entryBytes > this.maxBytes)
    ) {
      this.flush();
      flushed++;
    }
    if (this.count === 0) {
      this.begin(entryBytes);
    }
    const buf = this.buf as Buffer;
    this.pos = writeEntry(buf, this.pos, tag, src, start, end);
    this.count++;
    if (this.count >= this.maxEntries || this.pos >= this.maxBytes) {
      this.flush();
      flushed++;
    }
    return flushed;
  }

  /** Sends the pending batch, if any. Returns true if a datagram was emitted. */
  flush(): boolean {
    if (this.count === 0 || this.buf === null) {
      return false;
    }
    const buf = this.buf;
    const countOff = this.prefix >= 0 ? 1 : 0;
    buf[countOff] = this.count >>> 8;
    buf[countOff + 1] = this.count & 0xff;
    const frame = buf.subarray(0, this.pos);
    const entries = this.count;
    this.buf = null;
    this.count = 0;
    this.pos = 0;
    this.onFlush(frame, entries);
    return true;
  }

  private begin(firstEntryBytes: number): void {
    const size = Math.max(this.maxBytes, this.headerBytes + firstEntryBytes);
    const buf = Buffer.allocUnsafe(size);
    if (this.prefix >= 0) {
      buf[0] = this.prefix;
    }
    this.buf = buf;
    this.pos = this.headerBytes;
  }
}
