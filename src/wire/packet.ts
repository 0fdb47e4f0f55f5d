/**
 * Media packet = MediaHeader (16) ‖ payload ‖ QualityReport (4, iff Q).
 *
 * The payload is never copied: decoders report offsets (hot path) or a
 * `subarray` view (tools). Encoders set the Q flag from the presence of a
 * report, so a header and its trailer can never disagree.
 */
import { FLAG_QUALITY, MEDIA_HEADER_SIZE, QUALITY_REPORT_SIZE } from './constants.js';
import { WireError, type WireResult } from './error.js';
import {
  createHeader,
  headerErrorMessage,
  type MediaHeader,
  readHeader,
  validateHeader,
  writeHeaderUnchecked,
} from './header.js';
import {
  createQualityReport,
  isValidQualityReport,
  type QualityReport,
  readQualityReport,
  writeQualityReportUnchecked,
} from './quality-report.js';

/** A decoded media packet with a payload view. */
export interface MediaPacket {
  header: MediaHeader;
  /** View into the input buffer (not a copy). */
  payload: Buffer;
  quality: QualityReport | null;
}

/** Reusable decode target for the hot path: offsets instead of views. */
export interface PacketView {
  header: MediaHeader;
  payloadOffset: number;
  payloadLength: number;
  hasQuality: boolean;
  /** Valid only when `hasQuality`. */
  quality: QualityReport;
}

export function createPacketView(): PacketView {
  return {
    header: createHeader(),
    payloadOffset: 0,
    payloadLength: 0,
    hasQuality: false,
    quality: createQualityReport(),
  };
}

/**
 * Non-throwing decode of the media packet occupying exactly `buf[off..end)`.
 */
export function readPacket(buf: Uint8Array, off: number, end: number, out: PacketView): WireResult {
  const bad = readHeader(buf, off, end, out.header);
  if (bad !== null) {
    return bad;
  }
  const bodyStart = off + MEDIA_HEADER_SIZE;
  let bodyEnd = end;
  if ((out.header.flags & FLAG_QUALITY) !== 0) {
    if (end - bodyStart < QUALITY_REPORT_SIZE) {
      return 'WIRE_MISSING_QUALITY_REPORT';
    }
    bodyEnd = end - QUALITY_REPORT_SIZE;
    readQualityReport(buf, bodyEnd, out.quality);
    out.hasQuality = true;
  } else {
    out.hasQuality = false;
  }
  out.payloadOffset = bodyStart;
  out.payloadLength = bodyEnd - bodyStart;
  return null;
}

/** Human message for a packet decode failure. */
export function packetErrorMessage(
  code: string,
  buf: Uint8Array,
  off: number,
  end: number,
): string {
  if (code === 'WIRE_MISSING_QUALITY_REPORT') {
    return `Q flag set but only ${Math.max(0, end - off - MEDIA_HEADER_SIZE)} bytes follow the header (need 4)`;
  }
  return headerErrorMessage(code, buf, off);
}

/**
 * Decodes a whole buffer (or `buf[off..end)`) as one media packet.
 * @throws {WireError}
 */
export function decodeMediaPacket(buf: Buffer, off = 0, end = buf.length): MediaPacket {
  const view = createPacketView();
  const bad = readPacket(buf, off, end, view);
  if (bad !== null) {
    throw new WireError(bad, packetErrorMessage(bad, buf, off, end));
  }
  return {
    header: view.header,
    payload: buf.subarray(view.payloadOffset, view.payloadOffset + view.payloadLength),
    quality: view.hasQuality ? view.quality : null,
  };
}

/** Encoded size of a packet with this payload length. */
export function mediaPacketSize(payloadLength: number, hasQuality: boolean): number {
  return MEDIA_HEADER_SIZE + payloadLength + (hasQuality ? QUALITY_REPORT_SIZE : 0);
}

/**
 * Writes a packet whose header and report are known valid. The Q flag is
 * taken from `quality !== null`. Returns bytes written.
 */
export function writePacketUnchecked(
  header: MediaHeader,
  payload: Uint8Array,
  quality: QualityReport | null,
  buf: Uint8Array,
  off: number,
): number {
  const flags = header.flags;
  header.flags = quality !== null ? flags | FLAG_QUALITY : flags & ~FLAG_QUALITY;
  writeHeaderUnchecked(header, buf, off);
  header.flags = flags;
  let pos = off + MEDIA_HEADER_SIZE;
  buf.set(payload, pos);
  pos += payload.length;
  if (quality !== null) {
    pos += writeQualityReportUnchecked(quality, buf, pos);
  }
  return pos - off;
}

/**
 * Validates and writes a packet into `buf` at `off`; returns bytes written.
 * @throws {WireError}
 */
export function encodeMediaPacketInto(
  packet: { header: MediaHeader; payload: Uint8Array; quality: QualityReport | null },
  buf: Uint8Array,
  off = 0,
): number {
  const { header, payload, quality } = packet;
  // The Q bit does not take part in validation; it is set from `quality` on write.
  const bad = validateHeader(header);
  if (bad !== null) {
    throw new WireError(bad, `cannot encode media packet: ${bad}`);
  }
  if (quality !== null && !isValidQualityReport(quality)) {
    throw new WireError('WIRE_FIELD_RANGE', 'QualityReport fields must be bytes (0..255)');
  }
  const size = mediaPacketSize(payload.length, quality !== null);
  if (buf.length - off < size) {
    throw new WireError(
      'WIRE_BUFFER_TOO_SMALL',
      `media packet needs ${size} bytes, ${buf.length - off} available`,
    );
  }
  return writePacketUnchecked(header, payload, quality, buf, off);
}

/** Encodes a packet into a new Buffer. @throws {WireError} */
export function encodeMediaPacket(packet: {
  header: MediaHeader;
  payload: Uint8Array;
  quality: QualityReport | null;
}): Buffer {
  const buf = Buffer.allocUnsafe(mediaPacketSize(packet.payload.length, packet.quality !== null));
  encodeMediaPacketInto(packet, buf, 0);
  return buf;
}
