/**
 * QualityReport trailer: 4 bytes after the payload, present iff the Q flag is set.
 *
 * ```text
 * +-----------+-----------+-----------+------------------+
 * | loss_pct  |  rtt_4ms  | jitter_ms | bitrate_cap_kbps |
 * +-----------+-----------+-----------+------------------+
 * ```
 * loss_pct 0..255 ↦ 0..100 %, rtt_4ms ↦ rtt = v × 4 ms, jitter in ms,
 * bitrate cap in kbps (clients send 200).
 */
import { QUALITY_REPORT_SIZE } from './constants.js';
import { WireError } from './error.js';
import { isUint } from './header.js';

export interface QualityReport {
  lossPct: number;
  rtt4ms: number;
  jitterMs: number;
  bitrateCapKbps: number;
}

/** Default bitrate cap clients put in reports. */
export const DEFAULT_BITRATE_CAP_KBPS = 200;

export function createQualityReport(init?: Partial<QualityReport>): QualityReport {
  return {
    lossPct: init?.lossPct ?? 0,
    rtt4ms: init?.rtt4ms ?? 0,
    jitterMs: init?.jitterMs ?? 0,
    bitrateCapKbps: init?.bitrateCapKbps ?? DEFAULT_BITRATE_CAP_KBPS,
  };
}

/** Reads 4 bytes at `off` into `out` (caller checked the length). */
export function readQualityReport(buf: Uint8Array, off: number, out: QualityReport): QualityReport {
  out.lossPct = buf[off] as number;
  out.rtt4ms = buf[off + 1] as number;
  out.jitterMs = buf[off + 2] as number;
  out.bitrateCapKbps = buf[off + 3] as number;
  return out;
}

/** Writes a report known to be valid (4 bytes). */
export function writeQualityReportUnchecked(
  q: QualityReport,
  buf: Uint8Array,
  off: number,
): number {
  buf[off] = q.lossPct;
  buf[off + 1] = q.rtt4ms;
  buf[off + 2] = q.jitterMs;
  buf[off + 3] = q.bitrateCapKbps;
  return QUALITY_REPORT_SIZE;
}

/** True if every field is a byte. */
export function isValidQualityReport(q: QualityReport): boolean {
  return (
    isUint(q.lossPct, 0xff) &&
    isUint(q.rtt4ms, 0xff) &&
    isUint(q.jitterMs, 0xff) &&
    isUint(q.bitrateCapKbps, 0xff)
  );
}

/** Decodes exactly 4 bytes. @throws {WireError} */
export function decodeQualityReport(buf: Uint8Array, off = 0): QualityReport {
  const left = buf.length - off;
  if (left < QUALITY_REPORT_SIZE) {
    throw new WireError('WIRE_TRUNCATED', `QualityReport needs 4 bytes, got ${Math.max(0, left)}`);
  }
  if (left > QUALITY_REPORT_SIZE) {
    throw new WireError('WIRE_TRAILING_BYTES', `QualityReport is 4 bytes, got ${left}`);
  }
  return readQualityReport(buf, off, createQualityReport());
}

/** Encodes a report into 4 new bytes. @throws {WireError} WIRE_FIELD_RANGE */
export function encodeQualityReport(q: QualityReport): Buffer {
  if (!isValidQualityReport(q)) {
    throw new WireError('WIRE_FIELD_RANGE', 'QualityReport fields must be bytes (0..255)');
  }
  const buf = Buffer.allocUnsafe(QUALITY_REPORT_SIZE);
  writeQualityReportUnchecked(q, buf, 0);
  return buf;
}

/**
 * Builds a report from path statistics: loss in percent (0..100), RTT and
 * jitter in milliseconds. Values are clamped and truncated; cap = 200 kbps.
 */
export function qualityFromPathStats(
  lossPercent: number,
  rttMs: number,
  jitterMs: number,
): QualityReport {
  return {
    lossPct: clampByte(Math.trunc((lossPercent / 100) * 255)),
    rtt4ms: clampByte(Math.trunc(rttMs / 4)),
    jitterMs: clampByte(Math.trunc(jitterMs)),
    bitrateCapKbps: DEFAULT_BITRATE_CAP_KBPS,
  };
}

/** Loss in percent (0..100) from a report's raw byte. */
export function qualityLossPercent(q: QualityReport): number {
  return (q.lossPct / 255) * 100;
}

/** Round-trip time in milliseconds (0..1020). */
export function qualityRttMs(q: QualityReport): number {
  return q.rtt4ms * 4;
}

function clampByte(v: number): number {
  if (!(v > 0)) {
    return 0;
  }
  return Math.min(v, 255);
}
