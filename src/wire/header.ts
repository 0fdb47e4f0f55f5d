/**
 * MediaHeader v2: 16 bytes, big-endian, no padding.
 *
 * ```text
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |  version = 2  |T|Q|K|E| rsvd  |  media_type   |   codec_id    |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |   stream_id   |   fec_ratio   |          seq (u32) ...        |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |        ... seq            |       timestamp_ms (u32) ...      |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |   ... timestamp_ms        |          fec_block (u16)          |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * ```
 * T repair 0x80, Q quality trailer 0x40, K keyframe 0x20, E frame end 0x10.
 * Validation order (the first failing rule is reported): length, version,
 * reserved bits, media_type, codec_id, codec/media kind, K/E on audio,
 * fec_ratio. See protocol/SPEC.md §3.
 */
import {
  CODEC_KIND_AUDIO,
  CODEC_KIND_BY_ID,
  CODEC_KIND_UNKNOWN,
  CODEC_KIND_VIDEO,
} from './codec-table.js';
import {
  FEC_RATIO_MAX,
  FLAG_FRAME_END,
  FLAG_KEYFRAME,
  FLAG_RESERVED_MASK,
  MEDIA_HEADER_SIZE,
  MediaType,
  OFF_CODEC_ID,
  OFF_FEC_BLOCK,
  OFF_FEC_RATIO,
  OFF_FLAGS,
  OFF_MEDIA_TYPE,
  OFF_SEQ,
  OFF_STREAM_ID,
  OFF_TIMESTAMP,
  OFF_VERSION,
  WIRE_VERSION,
} from './constants.js';
import { WireError, type WireResult } from './error.js';

/** A decoded MediaHeader. `version` is implicit (always 2). */
export interface MediaHeader {
  /** The whole flags byte (T, Q, K, E; reserved bits are always 0 in a valid header). */
  flags: number;
  mediaType: MediaType;
  codecId: number;
  streamId: number;
  /** Raw fec_ratio byte, 0..200 (ratio = value / 100). */
  fecRatio: number;
  /** u32, wraps. */
  seq: number;
  /** u32 milliseconds since session start, wraps. */
  timestamp: number;
  /** u16 (audio: low byte = block id, high byte = symbol index). */
  fecBlock: number;
}

/** A fresh header with every field zero (audio, Opus24k). */
export function createHeader(init?: Partial<MediaHeader>): MediaHeader {
  return {
    flags: init?.flags ?? 0,
    mediaType: init?.mediaType ?? MediaType.Audio,
    codecId: init?.codecId ?? 0,
    streamId: init?.streamId ?? 0,
    fecRatio: init?.fecRatio ?? 0,
    seq: init?.seq ?? 0,
    timestamp: init?.timestamp ?? 0,
    fecBlock: init?.fecBlock ?? 0,
  };
}

/** Copies every field of `src` into `dst` (no allocation). */
export function copyHeader(src: MediaHeader, dst: MediaHeader): MediaHeader {
  dst.flags = src.flags;
  dst.mediaType = src.mediaType;
  dst.codecId = src.codecId;
  dst.streamId = src.streamId;
  dst.fecRatio = src.fecRatio;
  dst.seq = src.seq;
  dst.timestamp = src.timestamp;
  dst.fecBlock = src.fecBlock;
  return dst;
}

/**
 * The semantic rules shared by decoder and encoder, on already-read bytes.
 * Returns the first violated rule's code, or null.
 */
export function checkHeaderSemantics(
  flags: number,
  mediaType: number,
  codecId: number,
  fecRatio: number,
): WireResult {
  if ((flags & FLAG_RESERVED_MASK) !== 0) {
    return 'WIRE_RESERVED_BITS';
  }
  if (mediaType > MediaType.Control) {
    return 'WIRE_UNKNOWN_MEDIA_TYPE';
  }
  const kind = CODEC_KIND_BY_ID[codecId] ?? CODEC_KIND_UNKNOWN;
  if (kind === CODEC_KIND_UNKNOWN) {
    return 'WIRE_UNKNOWN_CODEC';
  }
  if (
    (mediaType === MediaType.Audio && kind === CODEC_KIND_VIDEO) ||
    (mediaType === MediaType.Video && kind === CODEC_KIND_AUDIO)
  ) {
    return 'WIRE_CODEC_MEDIA_MISMATCH';
  }
  if (mediaType === MediaType.Audio && (flags & (FLAG_KEYFRAME | FLAG_FRAME_END)) !== 0) {
    return 'WIRE_VIDEO_FLAGS_ON_AUDIO';
  }
  if (fecRatio > FEC_RATIO_MAX) {
    return 'WIRE_FEC_RATIO_RANGE';
  }
  return null;
}

/**
 * Non-throwing decode of the header at `buf[off..]` into `out`.
 * `end` is the exclusive end of the readable region.
 */
export function readHeader(
  buf: Uint8Array,
  off: number,
  end: number,
  out: MediaHeader,
): WireResult {
  if (end - off < MEDIA_HEADER_SIZE) {
    return 'WIRE_TRUNCATED';
  }
  if (buf[off + OFF_VERSION] !== WIRE_VERSION) {
    return 'WIRE_BAD_VERSION';
  }
  const flags = buf[off + OFF_FLAGS] as number;
  const mediaType = buf[off + OFF_MEDIA_TYPE] as number;
  const codecId = buf[off + OFF_CODEC_ID] as number;
  const fecRatio = buf[off + OFF_FEC_RATIO] as number;
  const bad = checkHeaderSemantics(flags, mediaType, codecId, fecRatio);
  if (bad !== null) {
    return bad;
  }
  out.flags = flags;
  out.mediaType = mediaType as MediaType;
  out.codecId = codecId;
  out.streamId = buf[off + OFF_STREAM_ID] as number;
  out.fecRatio = fecRatio;
  out.seq = readU32(buf, off + OFF_SEQ);
  out.timestamp = readU32(buf, off + OFF_TIMESTAMP);
  out.fecBlock =
    ((buf[off + OFF_FEC_BLOCK] as number) << 8) | (buf[off + OFF_FEC_BLOCK + 1] as number);
  return null;
}

/** Checks that every field fits its wire width and obeys the semantic rules. */
export function validateHeader(h: MediaHeader): WireResult {
  if (
    !isUint(h.flags, 0xff) ||
    !isUint(h.mediaType, 0xff) ||
    !isUint(h.codecId, 0xff) ||
    !isUint(h.streamId, 0xff) ||
    !isUint(h.fecRatio, 0xff) ||
    !isUint(h.seq, 0xffffffff) ||
    !isUint(h.timestamp, 0xffffffff) ||
    !isUint(h.fecBlock, 0xffff)
  ) {
    return 'WIRE_FIELD_RANGE';
  }
  return checkHeaderSemantics(h.flags, h.mediaType, h.codecId, h.fecRatio);
}

/**
 * Writes a header known to be valid (for example one the decoder produced)
 * without checks. Hot path; the caller guarantees 16 bytes of room.
 */
export function writeHeaderUnchecked(h: MediaHeader, buf: Uint8Array, off: number): number {
  buf[off + OFF_VERSION] = WIRE_VERSION;
  buf[off + OFF_FLAGS] = h.flags;
  buf[off + OFF_MEDIA_TYPE] = h.mediaType;
  buf[off + OFF_CODEC_ID] = h.codecId;
  buf[off + OFF_STREAM_ID] = h.streamId;
  buf[off + OFF_FEC_RATIO] = h.fecRatio;
  writeU32(buf, off + OFF_SEQ, h.seq);
  writeU32(buf, off + OFF_TIMESTAMP, h.timestamp);
  buf[off + OFF_FEC_BLOCK] = h.fecBlock >>> 8;
  buf[off + OFF_FEC_BLOCK + 1] = h.fecBlock & 0xff;
  return MEDIA_HEADER_SIZE;
}

/**
 * Validates `h` and writes it into `buf` at `off`; returns the bytes written (16).
 * @throws {WireError} WIRE_FIELD_RANGE, a semantic code, or WIRE_BUFFER_TOO_SMALL.
 */
export function encodeHeaderInto(h: MediaHeader, buf: Uint8Array, off = 0): number {
  const bad = validateHeader(h);
  if (bad !== null) {
    throw new WireError(bad, `cannot encode MediaHeader: ${bad}`);
  }
  if (buf.length - off < MEDIA_HEADER_SIZE) {
    throw new WireError(
      'WIRE_BUFFER_TOO_SMALL',
      `MediaHeader needs ${MEDIA_HEADER_SIZE} bytes, ${buf.length - off} available`,
    );
  }
  return writeHeaderUnchecked(h, buf, off);
}

/** Encodes `h` into a new 16-byte Buffer. @throws {WireError} */
export function encodeHeader(h: MediaHeader): Buffer {
  const buf = Buffer.allocUnsafe(MEDIA_HEADER_SIZE);
  encodeHeaderInto(h, buf, 0);
  return buf;
}

/**
 * Decodes the header at `buf[off..]`. Trailing bytes are allowed (a header
 * is usually followed by a payload).
 * @throws {WireError}
 */
export function decodeHeader(buf: Uint8Array, off = 0): MediaHeader {
  const out = createHeader();
  const bad = readHeader(buf, off, buf.length, out);
  if (bad !== null) {
    throw new WireError(bad, headerErrorMessage(bad, buf, off));
  }
  return out;
}

/** A human message with the offending value for a header decode failure. */
export function headerErrorMessage(code: string, buf: Uint8Array, off: number): string {
  switch (code) {
    case 'WIRE_TRUNCATED':
      return `MediaHeader needs ${MEDIA_HEADER_SIZE} bytes, got ${Math.max(0, buf.length - off)}`;
    case 'WIRE_BAD_VERSION':
      return `MediaHeader version is ${buf[off + OFF_VERSION]}, expected ${WIRE_VERSION}`;
    case 'WIRE_RESERVED_BITS':
      return `reserved flag bits set: flags=0x${hex2(buf[off + OFF_FLAGS])}`;
    case 'WIRE_UNKNOWN_MEDIA_TYPE':
      return `unknown media_type ${buf[off + OFF_MEDIA_TYPE]}`;
    case 'WIRE_UNKNOWN_CODEC':
      return `unknown codec_id ${buf[off + OFF_CODEC_ID]}`;
    case 'WIRE_CODEC_MEDIA_MISMATCH':
      return `codec_id ${buf[off + OFF_CODEC_ID]} does not match media_type ${buf[off + OFF_MEDIA_TYPE]}`;
    case 'WIRE_VIDEO_FLAGS_ON_AUDIO':
      return `keyframe/frame-end flag on an audio packet: flags=0x${hex2(buf[off + OFF_FLAGS])}`;
    case 'WIRE_FEC_RATIO_RANGE':
      return `fec_ratio ${buf[off + OFF_FEC_RATIO]} above ${FEC_RATIO_MAX}`;
    default:
      return code;
  }
}

/** True if `a` and `b` differ only in seq and timestamp. */
export function sameExceptSeqTs(a: MediaHeader, b: MediaHeader): boolean {
  return (
    a.flags === b.flags &&
    a.mediaType === b.mediaType &&
    a.codecId === b.codecId &&
    a.streamId === b.streamId &&
    a.fecRatio === b.fecRatio &&
    a.fecBlock === b.fecBlock
  );
}

/** fec_ratio byte → ratio (0.0..2.0). */
export function fecRatioValue(raw: number): number {
  return raw / 100;
}

/** Ratio → fec_ratio byte, rounded, clamped to 0..200 (NaN → 0). */
export function encodeFecRatio(ratio: number): number {
  if (!(ratio > 0)) {
    return 0;
  }
  return Math.min(FEC_RATIO_MAX, Math.round(ratio * 100));
}

export function readU32(buf: Uint8Array, off: number): number {
  return (
    (((buf[off] as number) << 24) |
      ((buf[off + 1] as number) << 16) |
      ((buf[off + 2] as number) << 8) |
      (buf[off + 3] as number)) >>>
    0
  );
}

export function writeU32(buf: Uint8Array, off: number, v: number): void {
  buf[off] = v >>> 24;
  buf[off + 1] = (v >>> 16) & 0xff;
  buf[off + 2] = (v >>> 8) & 0xff;
  buf[off + 3] = v & 0xff;
}

export function isUint(v: number, max: number): boolean {
  return Number.isInteger(v) && v >= 0 && v <= max;
}

function hex2(v: number | undefined): string {
  return (v ?? 0).toString(16).padStart(2, '0');
}
