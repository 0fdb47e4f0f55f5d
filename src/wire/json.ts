/**
 * Canonical JSON forms of the wire structures (snake_case, as in
 * protocol/SPEC.md). Used by `wzp decode`, the golden vectors and the
 * conformance adapter, so every implementation can compare the same shapes.
 */
import { codecById } from './codec-table.js';
import type { CompactFrame } from './compact.js';
import {
  FLAG_FRAME_END,
  FLAG_KEYFRAME,
  FLAG_QUALITY,
  FLAG_REPAIR,
  MEDIA_TYPE_NAMES,
  type MediaType,
  WIRE_VERSION,
} from './constants.js';
import { WireError } from './error.js';
import type { FederationEntry, FederationEntryInput } from './federation-frame.js';
import { createHeader, type MediaHeader } from './header.js';
import { parseHex, toHex } from './hex.js';
import type { MiniHeader } from './mini.js';
import type { MediaPacket } from './packet.js';
import type { QualityReport } from './quality-report.js';
import type { TrunkEntry } from './trunk.js';

export interface HeaderJson {
  version: number;
  flags: number;
  media_type: number;
  codec_id: number;
  stream_id: number;
  fec_ratio: number;
  seq: number;
  timestamp_ms: number;
  fec_block: number;
}

export interface QualityReportJson {
  loss_pct: number;
  rtt_4ms: number;
  jitter_ms: number;
  bitrate_cap_kbps: number;
}

export interface MiniHeaderJson {
  seq_delta: number;
  timestamp_delta: number;
  payload_len: number;
}

export interface PacketJson {
  header: HeaderJson;
  payload_hex: string;
  quality_report: QualityReportJson | null;
}

export function headerToJson(h: MediaHeader): HeaderJson {
  return {
    version: WIRE_VERSION,
    flags: h.flags,
    media_type: h.mediaType,
    codec_id: h.codecId,
    stream_id: h.streamId,
    fec_ratio: h.fecRatio,
    seq: h.seq,
    timestamp_ms: h.timestamp,
    fec_block: h.fecBlock,
  };
}

/** Adds human-readable names to a header's JSON (for `wzp decode`). */
export function describeHeader(h: MediaHeader): HeaderJson & Record<string, unknown> {
  const names: string[] = [];
  if (h.flags & FLAG_REPAIR) {
    names.push('repair');
  }
  if (h.flags & FLAG_QUALITY) {
    names.push('quality');
  }
  if (h.flags & FLAG_KEYFRAME) {
    names.push('keyframe');
  }
  if (h.flags & FLAG_FRAME_END) {
    names.push('frame_end');
  }
  return {
    ...headerToJson(h),
    flag_names: names,
    media_type_name: MEDIA_TYPE_NAMES[h.mediaType] ?? 'unknown',
    codec: codecById(h.codecId)?.name ?? 'unknown',
    fec_ratio_value: h.fecRatio / 100,
  };
}

export function qualityToJson(q: QualityReport): QualityReportJson {
  return {
    loss_pct: q.lossPct,
    rtt_4ms: q.rtt4ms,
    jitter_ms: q.jitterMs,
    bitrate_cap_kbps: q.bitrateCapKbps,
  };
}

export function miniToJson(m: MiniHeader): MiniHeaderJson {
  return { seq_delta: m.seqDelta, timestamp_delta: m.timestampDelta, payload_len: m.payloadLength };
}

export function packetToJson(p: MediaPacket): PacketJson {
  return {
    header: headerToJson(p.header),
    payload_hex: toHex(p.payload),
    quality_report: p.quality === null ? null : qualityToJson(p.quality),
  };
}

export function compactToJson(f: CompactFrame): PacketJson & {
  frame_type: 'full' | 'mini';
  mini_header: MiniHeaderJson | null;
} {
  return {
    frame_type: f.frameType,
    mini_header: f.mini === null ? null : miniToJson(f.mini),
    ...packetToJson(f),
  };
}

export function trunkToJson(entries: readonly TrunkEntry[]): {
  count: number;
  entries: { tag: number; length: number; data_hex: string }[];
} {
  return {
    count: entries.length,
    entries: entries.map((e) => ({ tag: e.tag, length: e.data.length, data_hex: toHex(e.data) })),
  };
}

// ── JSON → structures (for encoders driven by vectors or the adapter) ─────

function field(obj: Record<string, unknown>, key: string, fallback?: number): number {
  const v = obj[key];
  if (v === undefined && fallback !== undefined) {
    return fallback;
  }
  if (typeof v !== 'number' || !Number.isInteger(v)) {
    throw new WireError(
      'WIRE_FIELD_RANGE',
      `field ${key} must be an integer, got ${JSON.stringify(v)}`,
    );
  }
  return v;
}

function asObject(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new WireError('WIRE_FIELD_RANGE', `${what} must be an object`);
  }
  return v as Record<string, unknown>;
}

export function headerFromJson(v: unknown): MediaHeader {
  const o = asObject(v, 'header');
  const version = field(o, 'version', WIRE_VERSION);
  if (version !== WIRE_VERSION) {
    throw new WireError(
      'WIRE_BAD_VERSION',
      `only version ${WIRE_VERSION} can be encoded, got ${version}`,
    );
  }
  return createHeader({
    flags: field(o, 'flags', 0),
    mediaType: field(o, 'media_type', 0) as MediaType,
    codecId: field(o, 'codec_id', 0),
    streamId: field(o, 'stream_id', 0),
    fecRatio: field(o, 'fec_ratio', 0),
    seq: field(o, 'seq', 0),
    timestamp: field(o, 'timestamp_ms', 0),
    fecBlock: field(o, 'fec_block', 0),
  });
}

export function qualityFromJson(v: unknown): QualityReport {
  const o = asObject(v, 'quality_report');
  return {
    lossPct: field(o, 'loss_pct'),
    rtt4ms: field(o, 'rtt_4ms'),
    jitterMs: field(o, 'jitter_ms'),
    bitrateCapKbps: field(o, 'bitrate_cap_kbps'),
  };
}

export function miniFromJson(v: unknown): MiniHeader {
  const o = asObject(v, 'mini_header');
  return {
    seqDelta: field(o, 'seq_delta'),
    timestampDelta: field(o, 'timestamp_delta'),
    payloadLength: field(o, 'payload_len'),
  };
}

export function packetFromJson(v: unknown): MediaPacket {
  const o = asObject(v, 'packet');
  const payloadHex = o.payload_hex ?? '';
  if (typeof payloadHex !== 'string') {
    throw new WireError('WIRE_BAD_HEX', 'payload_hex must be a string');
  }
  const q = o.quality_report;
  return {
    header: headerFromJson(o.header),
    payload: parseHex(payloadHex),
    quality: q === null || q === undefined ? null : qualityFromJson(q),
  };
}

export function trunkFromJson(v: unknown): TrunkEntry[] {
  const o = asObject(v, 'trunk');
  const entries = o.entries;
  if (!Array.isArray(entries)) {
    throw new WireError('WIRE_FIELD_RANGE', 'trunk.entries must be an array');
  }
  return entries.map((e: unknown) => {
    const eo = asObject(e, 'trunk entry');
    const hex = eo.data_hex;
    if (typeof hex !== 'string') {
      throw new WireError('WIRE_BAD_HEX', 'data_hex must be a string');
    }
    return { tag: field(eo, 'tag'), data: parseHex(hex) };
  });
}

/** JSON form of a FEDERATION datagram (hex for byte fields). */
export function federationFrameToJson(
  entries: readonly FederationEntry[],
): Record<string, unknown> {
  return {
    entries: entries.map((e) => ({
      hop_limit: e.hopLimit,
      room_hash: e.roomHash.toString('hex'),
      origin: e.origin.toString('hex'),
      sender_tag: e.senderTag,
      packet: packetToJson(e.packet),
    })),
  };
}

export function federationFrameFromJson(v: unknown): FederationEntryInput[] {
  const o = asObject(v, 'federation_frame');
  const entries = o.entries;
  if (!Array.isArray(entries)) {
    throw new WireError('WIRE_FIELD_RANGE', 'federation_frame.entries must be an array');
  }
  return entries.map((e: unknown) => {
    const eo = asObject(e, 'federation entry');
    const hex = (name: string): Buffer => {
      const x = eo[name];
      if (typeof x !== 'string') {
        throw new WireError('WIRE_BAD_HEX', `${name} must be a hex string`);
      }
      return parseHex(x);
    };
    return {
      hopLimit: field(eo, 'hop_limit'),
      roomHash: hex('room_hash'),
      origin: hex('origin'),
      senderTag: field(eo, 'sender_tag'),
      packet: packetFromJson(eo.packet),
    };
  });
}
