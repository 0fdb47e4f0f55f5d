/**
 * FEDERATION datagram (frame type 0x03), relay ↔ relay media.
 *
 * ```text
 * +------+-------------+----------- entry × count ---------------------------------------------+
 * | 0x03 | count (u16) | hop u8 | room_hash[8] | origin[8] | sender_tag u16 | len u16 | frame |
 * +------+-------------+------------------------------------------------------------------------+
 * ```
 * count 1..64 (WIRE_BAD_COUNT), hop_limit 1..16 (WIRE_BAD_HOP_LIMIT),
 * sender_tag ≥ 1 (WIRE_BAD_SENDER_TAG); `frame` is a compact FULL frame
 * (0x00 ‖ media packet) and must decode (its own error codes; a MINI or any
 * other first byte is WIRE_UNKNOWN_FRAME_TYPE). Missing bytes are
 * WIRE_TRUNCATED, bytes after the last entry WIRE_TRAILING_BYTES.
 */
import { createHash } from 'node:crypto';
import {
  FEDERATION_ENTRY_OVERHEAD,
  FEDERATION_HEADER_SIZE,
  FEDERATION_MAX_ENTRIES,
  FEDERATION_MAX_HOPS,
  FrameType,
  ORIGIN_ID_SIZE,
  ROOM_HASH_SIZE,
  TRUNK_DEFAULT_MAX_ENTRIES,
  TRUNK_DEFAULT_MTU,
} from './constants.js';
import { WireError, type WireResult } from './error.js';
import { createPacketView, encodeMediaPacket, type MediaPacket, readPacket } from './packet.js';

/** SHA-256(publicKey)[0..8]: the origin relay id carried in every entry. */
export function originId(publicKey: Uint8Array): Buffer {
  return createHash('sha256').update(publicKey).digest().subarray(0, ORIGIN_ID_SIZE);
}

/** Offsets of one entry, for allocation-free iteration. */
export interface FederationEntryView {
  /** Offset of the hop_limit byte (the relay rewrites it in place). */
  entryOffset: number;
  hopLimit: number;
  roomHashOffset: number;
  originOffset: number;
  senderTag: number;
  /** Offset and length of the compact FULL frame. */
  frameOffset: number;
  frameLength: number;
}

export function createFederationEntryView(): FederationEntryView {
  return {
    entryOffset: 0,
    hopLimit: 0,
    roomHashOffset: 0,
    originOffset: 0,
    senderTag: 0,
    frameOffset: 0,
    frameLength: 0,
  };
}

const scratch = createPacketView();

/** Non-throwing validation of the datagram in `buf[off..end)`, entries and inner packets included. */
export function checkFederationFrame(buf: Uint8Array, off: number, end: number): WireResult {
  if (end - off < FEDERATION_HEADER_SIZE) {
    return 'WIRE_TRUNCATED';
  }
  if (buf[off] !== FrameType.Federation) {
    return 'WIRE_UNKNOWN_FRAME_TYPE';
  }
  const count = ((buf[off + 1] as number) << 8) | (buf[off + 2] as number);
  if (count === 0 || count > FEDERATION_MAX_ENTRIES) {
    return 'WIRE_BAD_COUNT';
  }
  let pos = off + FEDERATION_HEADER_SIZE;
  for (let i = 0; i < count; i++) {
    if (end - pos < FEDERATION_ENTRY_OVERHEAD) {
      return 'WIRE_TRUNCATED';
    }
    const hop = buf[pos] as number;
    if (hop === 0 || hop > FEDERATION_MAX_HOPS) {
      return 'WIRE_BAD_HOP_LIMIT';
    }
    const tag = ((buf[pos + 17] as number) << 8) | (buf[pos + 18] as number);
    if (tag === 0) {
      return 'WIRE_BAD_SENDER_TAG';
    }
    const len = ((buf[pos + 19] as number) << 8) | (buf[pos + 20] as number);
    const frame = pos + FEDERATION_ENTRY_OVERHEAD;
    if (end - frame < len) {
      return 'WIRE_TRUNCATED';
    }
    if (len === 0) {
      return 'WIRE_TRUNCATED';
    }
    if (buf[frame] !== FrameType.Full) {
      return 'WIRE_UNKNOWN_FRAME_TYPE';
    }
    const bad = readPacket(buf, frame + 1, frame + len, scratch);
    if (bad !== null) {
      return bad;
    }
    pos = frame + len;
  }
  return pos === end ? null : 'WIRE_TRAILING_BYTES';
}

/**
 * Allocation-free reader over a validated datagram. Usage:
 * `if (r.reset(buf) === null) while (r.next(view)) { ... }`.
 */
export class FederationReader {
  private buf: Uint8Array = new Uint8Array(0);
  private pos = 0;
  private remaining = 0;

  /** Validates the whole datagram and positions on its first entry. */
  reset(buf: Uint8Array, off = 0, end = buf.length): WireResult {
    const bad = checkFederationFrame(buf, off, end);
    if (bad !== null) {
      this.remaining = 0;
      return bad;
    }
    this.buf = buf;
    this.remaining = ((buf[off + 1] as number) << 8) | (buf[off + 2] as number);
    this.pos = off + FEDERATION_HEADER_SIZE;
    return null;
  }

  /** Fills `out` with the next entry; false when none is left. */
  next(out: FederationEntryView): boolean {
    if (this.remaining === 0) {
      return false;
    }
    const b = this.buf;
    const p = this.pos;
    out.entryOffset = p;
    out.hopLimit = b[p] as number;
    out.roomHashOffset = p + 1;
    out.originOffset = p + 1 + ROOM_HASH_SIZE;
    out.senderTag = ((b[p + 17] as number) << 8) | (b[p + 18] as number);
    out.frameLength = ((b[p + 19] as number) << 8) | (b[p + 20] as number);
    out.frameOffset = p + FEDERATION_ENTRY_OVERHEAD;
    this.pos = out.frameOffset + out.frameLength;
    this.remaining -= 1;
    return true;
  }
}

/** Writes `0x03 ‖ count` at `off`; returns the new offset. Unchecked. */
export function writeFederationPrefix(buf: Uint8Array, off: number, count: number): number {
  buf[off] = FrameType.Federation;
  buf[off + 1] = count >>> 8;
  buf[off + 2] = count & 0xff;
  return off + FEDERATION_HEADER_SIZE;
}

/**
 * Writes one entry header (before its frame) at `off`, the origin id read from
 * `origin` at `originOff`; returns the new offset. Unchecked.
 */
export function writeFederationEntryHeader(
  buf: Uint8Array,
  off: number,
  hopLimit: number,
  roomHash: Uint8Array,
  origin: Uint8Array,
  senderTag: number,
  frameLength: number,
  originOff = 0,
): number {
  buf[off] = hopLimit;
  // Byte loops, not subarray + set: no view object per entry on the media path.
  for (let i = 0; i < ROOM_HASH_SIZE; i++) {
    buf[off + 1 + i] = roomHash[i] as number;
  }
  for (let i = 0; i < ORIGIN_ID_SIZE; i++) {
    buf[off + 1 + ROOM_HASH_SIZE + i] = origin[originOff + i] as number;
  }
  buf[off + 17] = senderTag >>> 8;
  buf[off + 18] = senderTag & 0xff;
  buf[off + 19] = frameLength >>> 8;
  buf[off + 20] = frameLength & 0xff;
  return off + FEDERATION_ENTRY_OVERHEAD;
}

export interface FederationEntry {
  hopLimit: number;
  roomHash: Buffer;
  origin: Buffer;
  senderTag: number;
  /** The compact FULL frame (0x00 ‖ packet), a view when decoded. */
  frame: Buffer;
  packet: MediaPacket;
}

export interface FederationEntryInput {
  hopLimit: number;
  roomHash: Uint8Array;
  origin: Uint8Array;
  senderTag: number;
  packet: MediaPacket;
}

/** Decodes a FEDERATION datagram; byte fields are views. @throws {WireError} */
export function decodeFederationFrame(buf: Buffer, off = 0, end = buf.length): FederationEntry[] {
  const reader = new FederationReader();
  const bad = reader.reset(buf, off, end);
  if (bad !== null) {
    throw new WireError(bad, federationErrorMessage(bad));
  }
  const out: FederationEntry[] = [];
  const v = createFederationEntryView();
  while (reader.next(v)) {
    const view = createPacketView();
    readPacket(buf, v.frameOffset + 1, v.frameOffset + v.frameLength, view);
    out.push({
      hopLimit: v.hopLimit,
      roomHash: buf.subarray(v.roomHashOffset, v.roomHashOffset + ROOM_HASH_SIZE),
      origin: buf.subarray(v.originOffset, v.originOffset + ORIGIN_ID_SIZE),
      senderTag: v.senderTag,
      frame: buf.subarray(v.frameOffset, v.frameOffset + v.frameLength),
      packet: {
        header: view.header,
        payload: buf.subarray(view.payloadOffset, view.payloadOffset + view.payloadLength),
        quality: view.hasQuality ? view.quality : null,
      },
    });
  }
  return out;
}

function federationErrorMessage(code: string): string {
  switch (code) {
    case 'WIRE_BAD_COUNT':
      return `FEDERATION datagram must hold 1..${FEDERATION_MAX_ENTRIES} entries`;
    case 'WIRE_BAD_HOP_LIMIT':
      return `FEDERATION entry hop_limit must be 1..${FEDERATION_MAX_HOPS}`;
    case 'WIRE_BAD_SENDER_TAG':
      return 'FEDERATION entry sender_tag must be at least 1';
    case 'WIRE_UNKNOWN_FRAME_TYPE':
      return 'FEDERATION datagram must start with 0x03 and each entry carry a FULL (0x00) frame';
    case 'WIRE_TRAILING_BYTES':
      return 'bytes remain after the last FEDERATION entry';
    case 'WIRE_TRUNCATED':
      return 'FEDERATION datagram ends inside an entry';
    default:
      return `FEDERATION entry holds an invalid media packet (${code})`;
  }
}

/** Encodes entries into one datagram. @throws {WireError} WIRE_FIELD_RANGE */
export function encodeFederationFrame(entries: readonly FederationEntryInput[]): Buffer {
  if (entries.length === 0 || entries.length > FEDERATION_MAX_ENTRIES) {
    throw new WireError(
      'WIRE_FIELD_RANGE',
      `1..${FEDERATION_MAX_ENTRIES} entries, got ${entries.length}`,
    );
  }
  const frames = entries.map((e) => {
    if (!Number.isInteger(e.hopLimit) || e.hopLimit < 1 || e.hopLimit > FEDERATION_MAX_HOPS) {
      throw new WireError('WIRE_FIELD_RANGE', `hop_limit must be 1..${FEDERATION_MAX_HOPS}`);
    }
    if (!Number.isInteger(e.senderTag) || e.senderTag < 1 || e.senderTag > 0xffff) {
      throw new WireError('WIRE_FIELD_RANGE', 'sender_tag must be 1..65535');
    }
    if (e.roomHash.length !== ROOM_HASH_SIZE || e.origin.length !== ORIGIN_ID_SIZE) {
      throw new WireError('WIRE_FIELD_RANGE', 'room_hash and origin are 8 bytes each');
    }
    const packet = encodeMediaPacket(e.packet);
    if (packet.length + 1 > 0xffff) {
      throw new WireError('WIRE_FIELD_RANGE', 'frame longer than 65535 bytes');
    }
    return packet;
  });
  const size = frames.reduce(
    (n, p) => n + FEDERATION_ENTRY_OVERHEAD + 1 + p.length,
    FEDERATION_HEADER_SIZE,
  );
  const buf = Buffer.allocUnsafe(size);
  let pos = writeFederationPrefix(buf, 0, entries.length);
  entries.forEach((e, i) => {
    const p = frames[i] as Buffer;
    pos = writeFederationEntryHeader(
      buf,
      pos,
      e.hopLimit,
      e.roomHash,
      e.origin,
      e.senderTag,
      p.length + 1,
    );
    buf[pos] = FrameType.Full;
    p.copy(buf, pos + 1);
    pos += 1 + p.length;
  });
  return buf;
}

export interface FederationBatcherOptions {
  maxEntries?: number;
  maxBytes?: number;
  /** Gets a fresh datagram (safe to hand to an asynchronous send) and its entry count. */
  onFlush: (datagram: Buffer, entries: number) => void;
}

/**
 * Batches entries into FEDERATION datagrams of at most `maxEntries` entries
 * and `maxBytes` bytes (an entry larger than that alone goes out alone).
 * Entries are copied into one reused buffer; each flush copies it out once.
 */
export class FederationBatcher {
  readonly maxEntries: number;
  readonly maxBytes: number;
  private readonly onFlush: FederationBatcherOptions['onFlush'];
  private buf: Buffer;
  private pos = FEDERATION_HEADER_SIZE;
  private count = 0;

  constructor(options: FederationBatcherOptions) {
    this.maxEntries = Math.min(
      options.maxEntries ?? TRUNK_DEFAULT_MAX_ENTRIES,
      FEDERATION_MAX_ENTRIES,
    );
    this.maxBytes = options.maxBytes ?? TRUNK_DEFAULT_MTU;
    this.onFlush = options.onFlush;
    this.buf = Buffer.allocUnsafe(Math.max(this.maxBytes, 64));
  }

  get pendingEntries(): number {
    return this.count;
  }

  /** Adds one entry (its frame and ids are copied; the origin id is read at `originOff`). */
  push(
    hopLimit: number,
    roomHash: Uint8Array,
    origin: Uint8Array,
    senderTag: number,
    frame: Uint8Array,
    originOff = 0,
  ): void {
    const entryBytes = FEDERATION_ENTRY_OVERHEAD + frame.length;
    if (
      this.count > 0 &&
      (this.count + 1 > this.maxEntries || this.pos + entryBytes > this.maxBytes)
    ) {
      this.flush();
    }
    if (FEDERATION_HEADER_SIZE + entryBytes > this.buf.length) {
      this.buf = Buffer.allocUnsafe(FEDERATION_HEADER_SIZE + entryBytes);
    }
    this.pos = writeFederationEntryHeader(
      this.buf,
      this.pos,
      hopLimit,
      roomHash,
      origin,
      senderTag,
      frame.length,
      originOff,
    );
    this.buf.set(frame, this.pos);
    this.pos += frame.length;
    this.count++;
  }

  /** Sends what is batched (nothing when empty). */
  flush(): void {
    if (this.count === 0) {
      return;
    }
    writeFederationPrefix(this.buf, 0, this.count);
    const out = Buffer.from(this.buf.subarray(0, this.pos));
    const n = this.count;
    this.count = 0;
    this.pos = FEDERATION_HEADER_SIZE;
    if (this.buf.length > Math.max(this.maxBytes, 64)) {
      this.buf = Buffer.allocUnsafe(Math.max(this.maxBytes, 64));
    }
    this.onFlush(out, n);
  }
}
