/**
 * MiniHeader v2 (5 bytes) and the per-flow mini context.
 *
 * ```text
 * +-----------+---------------------------+---------------------------+
 * | seq_delta |   timestamp_delta (u16)   |    payload_len (u16)      |
 * +-----------+---------------------------+---------------------------+
 * ```
 * A MINI frame's header is the previous header of the same flow (the
 * baseline: the last FULL or expanded MINI) with `seq += seq_delta` and
 * `timestamp += timestamp_delta`, both wrapping at 2^32; every other field
 * is inherited. A MINI frame never carries a QualityReport, so the
 * baseline is always stored with the Q flag cleared.
 */
import { FLAG_QUALITY, MINI_HEADER_SIZE } from './constants.js';
import { WireError, type WireResult } from './error.js';
import { copyHeader, createHeader, isUint, type MediaHeader } from './header.js';

export interface MiniHeader {
  /** u8 */
  seqDelta: number;
  /** u16 milliseconds */
  timestampDelta: number;
  /** u16 */
  payloadLength: number;
}

export function createMiniHeader(init?: Partial<MiniHeader>): MiniHeader {
  return {
    seqDelta: init?.seqDelta ?? 0,
    timestampDelta: init?.timestampDelta ?? 0,
    payloadLength: init?.payloadLength ?? 0,
  };
}

/** Reads 5 bytes at `off` (caller checked the length). */
export function readMiniHeader(buf: Uint8Array, off: number, out: MiniHeader): MiniHeader {
  out.seqDelta = buf[off] as number;
  out.timestampDelta = ((buf[off + 1] as number) << 8) | (buf[off + 2] as number);
  out.payloadLength = ((buf[off + 3] as number) << 8) | (buf[off + 4] as number);
  return out;
}

export function writeMiniHeaderUnchecked(m: MiniHeader, buf: Uint8Array, off: number): number {
  buf[off] = m.seqDelta;
  buf[off + 1] = m.timestampDelta >>> 8;
  buf[off + 2] = m.timestampDelta & 0xff;
  buf[off + 3] = m.payloadLength >>> 8;
  buf[off + 4] = m.payloadLength & 0xff;
  return MINI_HEADER_SIZE;
}

/** Decodes exactly 5 bytes. @throws {WireError} */
export function decodeMiniHeader(buf: Uint8Array, off = 0): MiniHeader {
  const left = buf.length - off;
  if (left < MINI_HEADER_SIZE) {
    throw new WireError('WIRE_TRUNCATED', `MiniHeader needs 5 bytes, got ${Math.max(0, left)}`);
  }
  if (left > MINI_HEADER_SIZE) {
    throw new WireError('WIRE_TRAILING_BYTES', `MiniHeader is 5 bytes, got ${left}`);
  }
  return readMiniHeader(buf, off, createMiniHeader());
}

/** Encodes a MiniHeader into 5 new bytes. @throws {WireError} WIRE_FIELD_RANGE */
export function encodeMiniHeader(m: MiniHeader): Buffer {
  if (
    !isUint(m.seqDelta, 0xff) ||
    !isUint(m.timestampDelta, 0xffff) ||
    !isUint(m.payloadLength, 0xffff)
  ) {
    throw new WireError(
      'WIRE_FIELD_RANGE',
      'MiniHeader: seq_delta u8, timestamp_delta u16, payload_len u16',
    );
  }
  const buf = Buffer.allocUnsafe(MINI_HEADER_SIZE);
  writeMiniHeaderUnchecked(m, buf, 0);
  return buf;
}

/**
 * Decoder-side state of one flow (one sender's compact frames): the
 * baseline header MINI frames expand against.
 */
export class MiniContext {
  /** The baseline (Q always cleared). Meaningful only when `hasBaseline`. */
  readonly baseline: MediaHeader = createHeader();
  hasBaseline = false;

  /** Stores `h` (with Q cleared) as the new baseline. */
  setBaseline(h: MediaHeader): void {
    copyHeader(h, this.baseline);
    this.baseline.flags &= ~FLAG_QUALITY;
    this.hasBaseline = true;
  }

  /**
   * Expands `mini` against the baseline into `out` and makes the result the
   * new baseline (chaining). WIRE_NO_BASELINE if no FULL frame was seen.
   */
  expand(mini: MiniHeader, out: MediaHeader): WireResult {
    if (!this.hasBaseline) {
      return 'WIRE_NO_BASELINE';
    }
    const b = this.baseline;
    b.seq = (b.seq + mini.seqDelta) >>> 0;
    b.timestamp = (b.timestamp + mini.timestampDelta) >>> 0;
    copyHeader(b, out);
    return null;
  }

  /** Forgets the baseline (e.g. after a session move). */
  reset(): void {
    this.hasBaseline = false;
  }
}
