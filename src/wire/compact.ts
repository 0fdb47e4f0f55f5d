/**
 * Compact framing: a frame-type byte, then either a media packet (FULL,
 * 0x00) or a MiniHeader and the payload (MINI, 0x01).
 *
 * ```text
 * FULL: | 0x00 | MediaHeader (16) | payload | QualityReport (4, iff Q) |
 * MINI: | 0x01 | MiniHeader (5)   | payload (payload_len bytes)        |
 * ```
 * A compact frame occupies its whole region: bytes after a MINI payload
 * are rejected (WIRE_TRAILING_BYTES). A frame that fails to decode never
 * changes the flow's context.
 */
import {
  FLAG_QUALITY,
  FrameType,
  MEDIA_HEADER_SIZE,
  MINI_FULL_INTERVAL,
  MINI_HEADER_SIZE,
  OFF_MEDIA_TYPE,
  OFF_SEQ,
  OFF_STREAM_ID,
  QUALITY_REPORT_SIZE,
} from './constants.js';
import { WireError, type WireResult } from './error.js';
import { copyHeader, createHeader, type MediaHeader, validateHeader } from './header.js';
import {
  createMiniHeader,
  type MiniContext,
  type MiniHeader,
  readMiniHeader,
  writeMiniHeaderUnchecked,
} from './mini.js';
import {
  createPacketView,
  type MediaPacket,
  type PacketView,
  packetErrorMessage,
  readPacket,
  writePacketUnchecked,
} from './packet.js';
import { isValidQualityReport, type QualityReport } from './quality-report.js';

/** Overhead of a FULL frame (type byte + header). */
export const FULL_FRAME_OVERHEAD = 1 + MEDIA_HEADER_SIZE;
/** Overhead of a MINI frame (type byte + mini header). */
export const MINI_FRAME_OVERHEAD = 1 + MINI_HEADER_SIZE;

/** Reusable decode target for compact frames. */
export interface CompactView extends PacketView {
  frameType: typeof FrameType.Full | typeof FrameType.Mini;
  /** The MiniHeader as read (valid when frameType is MINI). */
  mini: MiniHeader;
}

export function createCompactView(): CompactView {
  return { ...createPacketView(), frameType: FrameType.Full, mini: createMiniHeader() };
}

/**
 * Non-throwing decode of the compact frame occupying `buf[off..end)`,
 * updating `ctx` on success only.
 */
export function readCompact(
  buf: Uint8Array,
  off: number,
  end: number,
  ctx: MiniContext,
  out: CompactView,
): WireResult {
  if (end - off < 1) {
    return 'WIRE_TRUNCATED';
  }
  const type = buf[off];
  if (type === FrameType.Full) {
    const bad = readPacket(buf, off + 1, end, out);
    if (bad !== null) {
      return bad;
    }
    out.frameType = FrameType.Full;
    ctx.setBaseline(out.header);
    return null;
  }
  if (type === FrameType.Mini) {
    if (end - off < MINI_FRAME_OVERHEAD) {
      return 'WIRE_TRUNCATED';
    }
    const mini = readMiniHeader(buf, off + 1, out.mini);
    const frameEnd = off + MINI_FRAME_OVERHEAD + mini.payloadLength;
    if (frameEnd > end) {
      return 'WIRE_TRUNCATED';
    }
    if (frameEnd < end) {
      return 'WIRE_TRAILING_BYTES';
    }
    const bad = ctx.expand(mini, out.header);
    if (bad !== null) {
      return bad;
    }
    out.frameType = FrameType.Mini;
    out.payloadOffset = off + MINI_FRAME_OVERHEAD;
    out.payloadLength = mini.payloadLength;
    out.hasQuality = false;
    return null;
  }
  return 'WIRE_UNKNOWN_FRAME_TYPE';
}

/** A decoded compact frame (tools and tests). */
export interface CompactFrame extends MediaPacket {
  frameType: 'full' | 'mini';
  mini: MiniHeader | null;
}

/**
 * Decodes one compact frame with `ctx` (updated on success).
 * @throws {WireError}
 */
export function decodeCompactFrame(
  buf: Buffer,
  ctx: MiniContext,
  off = 0,
  end = buf.length,
): CompactFrame {
  const view = createCompactView();
  const bad = readCompact(buf, off, end, ctx, view);
  if (bad !== null) {
    throw new WireError(bad, compactErrorMessage(bad, buf, off, end));
  }
  return {
    frameType: view.frameType === FrameType.Full ? 'full' : 'mini',
    mini: view.frameType === FrameType.Mini ? { ...view.mini } : null,
    header: view.header,
    payload: buf.subarray(view.payloadOffset, view.payloadOffset + view.payloadLength),
    quality: view.hasQuality ? view.quality : null,
  };
}

function compactErrorMessage(code: string, buf: Uint8Array, off: number, end: number): string {
  const type = buf[off];
  switch (code) {
    case 'WIRE_UNKNOWN_FRAME_TYPE':
      return `unknown frame type 0x${(type ?? 0).toString(16).padStart(2, '0')}`;
    case 'WIRE_NO_BASELINE':
      return 'MINI frame before any FULL frame on this flow';
    case 'WIRE_TRAILING_BYTES':
    case 'WIRE_TRUNCATED':
      if (type === FrameType.Mini) {
        const declared =
          end - off >= MINI_FRAME_OVERHEAD
            ? ((buf[off + 4] as number) << 8) | (buf[off + 5] as number)
            : 0;
        return `MINI frame declares ${declared} payload bytes, ${Math.max(0, end - off - MINI_FRAME_OVERHEAD)} present`;
      }
      if (end - off < 1) {
        return 'empty frame';
      }
      return packetErrorMessage(code, buf, off + 1, end);
    default:
      return packetErrorMessage(code, buf, off + 1, end);
  }
}

/** Size of the FULL frame for a packet. */
export function fullFrameSize(payloadLength: number, hasQuality: boolean): number {
  return FULL_FRAME_OVERHEAD + payloadLength + (hasQuality ? QUALITY_REPORT_SIZE : 0);
}

/**
 * Writes a FULL frame for a known-valid header (hot path: a relay expanding
 * a MINI frame for a receiver without a baseline). Returns bytes written.
 */
export function writeFullFrameUnchecked(
  header: MediaHeader,
  payload: Uint8Array,
  quality: QualityReport | null,
  buf: Uint8Array,
  off: number,
): number {
  buf[off] = FrameType.Full;
  return 1 + writePacketUnchecked(header, payload, quality, buf, off + 1);
}

/**
 * Encoder-side state of one flow: decides FULL or MINI per frame.
 *
 * FULL is emitted for the first frame, every {@link MINI_FULL_INTERVAL}th
 * frame, whenever a field other than seq/timestamp differs from the previous
 * frame, whenever a delta does not fit (seq_delta > 255 or negative,
 * timestamp_delta > 65535 or negative, payload > 65535 bytes), and whenever
 * the frame carries a QualityReport (a MINI frame cannot).
 */
export class MiniCompressor {
  private readonly last: MediaHeader = createHeader();
  private hasLast = false;
  private framesSinceFull = 0;
  private readonly mini: MiniHeader = createMiniHeader();

  /** True if the next frame with this header/quality would be sent FULL. */
  needsFull(header: MediaHeader, payloadLength: number, hasQuality: boolean): boolean {
    if (!this.hasLast || hasQuality || this.framesSinceFull >= MINI_FULL_INTERVAL) {
      return true;
    }
    if (payloadLength > 0xffff) {
      return true;
    }
    const last = this.last;
    if (
      (header.flags & ~FLAG_QUALITY) !== last.flags ||
      header.mediaType !== last.mediaType ||
      header.codecId !== last.codecId ||
      header.streamId !== last.streamId ||
      header.fecRatio !== last.fecRatio ||
      header.fecBlock !== last.fecBlock
    ) {
      return true;
    }
    const seqDelta = (header.seq - last.seq) >>> 0;
    const tsDelta = (header.timestamp - last.timestamp) >>> 0;
    return seqDelta > 0xff || tsDelta > 0xffff;
  }

  /** Upper bound of the encoded size of the next frame. */
  maxFrameSize(payloadLength: number, hasQuality: boolean): number {
    return fullFrameSize(payloadLength, hasQuality);
  }

  /**
   * Encodes one frame into `buf` at `off`; returns the bytes written.
   * @throws {WireError} on an invalid header/report or a short buffer.
   */
  encodeInto(
    header: MediaHeader,
    payload: Uint8Array,
    quality: QualityReport | null,
    buf: Uint8Array,
    off = 0,
  ): number {
    const hasQuality = quality !== null;
    // The Q bit does not take part in validation, so the header is checked as given.
    const bad = validateHeader(header);
    if (bad !== null) {
      throw new WireError(bad, `cannot encode compact frame: ${bad}`);
    }
    if (quality !== null && !isValidQualityReport(quality)) {
      throw new WireError('WIRE_FIELD_RANGE', 'QualityReport fields must be bytes (0..255)');
    }
    const full = this.needsFull(header, payload.length, hasQuality);
    const size = full
      ? fullFrameSize(payload.length, hasQuality)
      : MINI_FRAME_OVERHEAD + payload.length;
    if (buf.length - off < size) {
      throw new WireError(
        'WIRE_BUFFER_TOO_SMALL',
        `compact frame needs ${size} bytes, ${buf.length - off} available`,
      );
    }
    if (full) {
      buf[off] = FrameType.Full;
      writePacketUnchecked(header, payload, quality, buf, off + 1);
      this.framesSinceFull = 1;
    } else {
      const m = this.mini;
      m.seqDelta = (header.seq - this.last.seq) >>> 0;
      m.timestampDelta = (header.timestamp - this.last.timestamp) >>> 0;
      m.payloadLength = payload.length;
      buf[off] = FrameType.Mini;
      writeMiniHeaderUnchecked(m, buf, off + 1);
      buf.set(payload, off + MINI_FRAME_OVERHEAD);
      this.framesSinceFull += 1;
    }
    copyHeader(header, this.last);
    this.last.flags &= ~FLAG_QUALITY;
    this.hasLast = true;
    return size;
  }

  /** Encodes one frame into a new Buffer. @throws {WireError} */
  encode(header: MediaHeader, payload: Uint8Array, quality: QualityReport | null = null): Buffer {
    const buf = Buffer.allocUnsafe(this.maxFrameSize(payload.length, quality !== null));
    const n = this.encodeInto(header, payload, quality, buf, 0);
    return buf.subarray(0, n);
  }

  /** Forces the next frame to be FULL (e.g. after a receiver reported loss of context). */
  reset(): void {
    this.hasLast = false;
    this.framesSinceFull = 0;
  }
}

/** `stream_id` of the FULL compact frame at `buf[off]` (the caller has validated it). */
export function fullFrameStreamId(buf: Uint8Array, off: number): number {
  return buf[off + 1 + OFF_STREAM_ID] as number;
}

/** `media_type` of the FULL compact frame at `buf[off]` (the caller has validated it). */
export function fullFrameMediaType(buf: Uint8Array, off: number): number {
  return buf[off + 1 + OFF_MEDIA_TYPE] as number;
}

/** `seq` of the FULL compact frame at `buf[off]` (the caller has validated it). */
export function fullFrameSeq(buf: Uint8Array, off: number): number {
  const p = off + 1 + OFF_SEQ;
  return (
    (((buf[p] as number) << 24) |
      ((buf[p + 1] as number) << 16) |
      ((buf[p + 2] as number) << 8) |
      (buf[p + 3] as number)) >>>
    0
  );
}
