/**
 * The browser-safe subset of the WZP codec and signalling: only modules
 * without `node:` imports (the bundle is built for the browser platform,
 * and esbuild refuses a `node:` import there).
 */

export { decodeSignal, encodeSignal } from '../signal/codec.js';
export type {
  BodyOf,
  OutgoingSignal,
  QualityProfileBody,
  RoomParticipant,
  SignalMessage,
} from '../signal/messages.js';
export {
  GOOD,
  PROFILES_BY_TIER,
  type QualityProfile,
  STUDIO_32K,
  STUDIO_48K,
  STUDIO_64K,
} from '../signal/profiles.js';
export { BIND_CHALLENGE_DATAGRAM_SIZE, BIND_RECOMMENDED_SIZE } from '../wire/bind.js';
export { CODECS, type CodecName, codecById, codecByName } from '../wire/codec-table.js';
export {
  type CompactView,
  createCompactView,
  MiniCompressor,
  readCompact,
} from '../wire/compact.js';
export {
  BIND_TOKEN_SIZE,
  FLAG_FRAME_END,
  FLAG_KEYFRAME,
  FLAG_QUALITY,
  FrameType,
  MediaType,
} from '../wire/constants.js';
export { createHeader, type MediaHeader, writeHeaderUnchecked } from '../wire/header.js';
export { MiniContext } from '../wire/mini.js';
export {
  type QualityReport,
  qualityFromPathStats,
  writeQualityReportUnchecked,
} from '../wire/quality-report.js';
export { type TrunkEntryView, TrunkReader } from '../wire/trunk.js';
