/**
 * Our own codec behind the vector runner's interface (also what the
 * reference adapter `wzp conformance adapter` serves).
 */
import { isWzpError } from '../errors/index.js';
import { fingerprint } from '../signal/index.js';
import {
  type BindJson,
  compactToJson,
  createHeader,
  decodeBindDatagram,
  decodeCompactFrame,
  decodeFederationDatagram,
  decodeFederationFrame,
  decodeMediaPacket,
  decodeMiniHeader,
  decodeQualityReport,
  decodeTrunk,
  encodeBindDatagram,
  encodeFederationDatagram,
  encodeFederationFrame,
  encodeHeader,
  encodeMediaPacket,
  encodeMiniHeader,
  encodeQualityReport,
  encodeTrunk,
  federationFrameFromJson,
  federationFrameToJson,
  hashedRoomName,
  headerErrorMessage,
  headerFromJson,
  headerToJson,
  MiniContext,
  miniFromJson,
  miniToJson,
  packetFromJson,
  packetToJson,
  parseHex,
  qualityFromJson,
  qualityFromPathStats,
  qualityToJson,
  readHeader,
  roomHashHex,
  trunkFromJson,
  trunkToJson,
  WireError,
} from '../wire/index.js';
import type { CodecAnswer, VectorCodec } from './vectors.js';

function attempt(fn: () => unknown): CodecAnswer {
  try {
    return { ok: true, value: fn() };
  } catch (err) {
    if (isWzpError(err)) {
      return { ok: false, code: err.code, message: err.message };
    }
    return { ok: false, code: 'INTERNAL', message: String(err) };
  }
}

function decodeHeaderExact(bytes: Buffer): unknown {
  const h = createHeader();
  const bad = readHeader(bytes, 0, bytes.length, h);
  if (bad !== null) {
    throw new WireError(bad, headerErrorMessage(bad, bytes, 0));
  }
  if (bytes.length > 16) {
    throw new WireError('WIRE_TRAILING_BYTES', `a MediaHeader is 16 bytes, got ${bytes.length}`);
  }
  return headerToJson(h);
}

export const nativeCodec: VectorCodec = {
  decode(kind, hex) {
    return attempt(() => {
      const bytes = parseHex(hex);
      switch (kind) {
        case 'media_header':
          return decodeHeaderExact(bytes);
        case 'media_packet':
          return packetToJson(decodeMediaPacket(bytes));
        case 'quality_report':
          return qualityToJson(decodeQualityReport(bytes));
        case 'mini_header':
          return miniToJson(decodeMiniHeader(bytes));
        case 'compact':
          return compactToJson(decodeCompactFrame(bytes, new MiniContext()));
        case 'trunk':
          return trunkToJson(decodeTrunk(bytes));
        case 'federation': {
          const d = decodeFederationDatagram(bytes);
          return { room_hash: d.roomHash.toString('hex'), packet: packetToJson(d.packet) };
        }
        case 'federation_frame':
          return federationFrameToJson(decodeFederationFrame(bytes));
        case 'bind':
          return decodeBindDatagram(bytes);
        default:
          throw new WireError('WIRE_UNKNOWN_FRAME_TYPE', `unknown vector kind ${kind}`);
      }
    });
  },

  encode(kind, fields) {
    return attempt(() => {
      const f = fields as Record<string, unknown>;
      switch (kind) {
        case 'media_header':
          return encodeHeader(headerFromJson(f)).toString('hex');
        case 'media_packet':
          return encodeMediaPacket(packetFromJson(f)).toString('hex');
        case 'quality_report':
          return encodeQualityReport(qualityFromJson(f)).toString('hex');
        case 'mini_header':
          return encodeMiniHeader(miniFromJson(f)).toString('hex');
        case 'trunk':
          return encodeTrunk(trunkFromJson(f)).toString('hex');
        case 'federation':
          return encodeFederationDatagram(
            parseHex(String(f.room_hash)),
            packetFromJson(f.packet),
          ).toString('hex');
        case 'federation_frame':
          return encodeFederationFrame(federationFrameFromJson(f)).toString('hex');
        case 'bind':
          return encodeBindDatagram(f as unknown as BindJson).toString('hex');
        default:
          throw new WireError('WIRE_UNKNOWN_FRAME_TYPE', `cannot encode kind ${kind}`);
      }
    });
  },

  decodeSequence(frames) {
    const ctx = new MiniContext();
    return frames.map((hex) =>
      attempt(() => compactToJson(decodeCompactFrame(parseHex(hex), ctx))),
    );
  },

  derive(kind, input) {
    return attempt(() => {
      switch (kind) {
        case 'room_hash':
          return roomHashHex(String(input));
        case 'hashed_room_name':
          return hashedRoomName(String(input));
        case 'fingerprint':
          return fingerprint(parseHex(String(input)));
        case 'quality_from_path_stats': {
          const i = input as { loss_percent: number; rtt_ms: number; jitter_ms: number };
          return encodeQualityReport(
            qualityFromPathStats(i.loss_percent, i.rtt_ms, i.jitter_ms),
          ).toString('hex');
        }
        default:
          throw new WireError('WIRE_UNKNOWN_FRAME_TYPE', `cannot derive kind ${kind}`);
      }
    });
  },
};
