/**
 * Quality profiles: the codec/FEC settings a relay recommends per tier.
 */
import type { CodecName } from '../wire/index.js';

export type PriorityMode = 'AudioFirst' | 'VideoFirst' | 'ScreenShare' | 'Balanced';

export interface QualityProfile {
  codec: CodecName;
  fec_ratio: number;
  frame_duration_ms: number;
  frames_per_block: number;
  priority_mode: PriorityMode;
  video_bitrate_kbps: number | null;
  video_resolution: [number, number] | null;
  video_fps: number | null;
}

function audioProfile(
  codec: CodecName,
  fec: number,
  frameMs: number,
  perBlock: number,
): Readonly<QualityProfile> {
  return Object.freeze({
    codec,
    fec_ratio: fec,
    frame_duration_ms: frameMs,
    frames_per_block: perBlock,
    priority_mode: 'AudioFirst',
    video_bitrate_kbps: null,
    video_resolution: null,
    video_fps: null,
  });
}

export const STUDIO_64K = audioProfile('Opus64k', 0.1, 20, 5);
export const STUDIO_48K = audioProfile('Opus48k', 0.1, 20, 5);
export const STUDIO_32K = audioProfile('Opus32k', 0.1, 20, 5);
export const GOOD = audioProfile('Opus24k', 0.2, 20, 5);
export const DEGRADED = audioProfile('Opus6k', 0.5, 40, 10);
export const CATASTROPHIC = audioProfile('Codec2_1200', 1.0, 40, 8);

/** Profiles by tier index: 0 Catastrophic … 5 Studio64k. */
export const PROFILES_BY_TIER: readonly Readonly<QualityProfile>[] = Object.freeze([
  CATASTROPHIC,
  DEGRADED,
  GOOD,
  STUDIO_32K,
  STUDIO_48K,
  STUDIO_64K,
]);

/**
 * Picks the profile to answer a CallOffer with: among the offered profiles
 * whose codec the relay has a profile for, the one of the highest tier (the
 * relay's own profile for that codec is returned, so FEC and framing are the
 * relay's). If none is known, the relay answers with GOOD, the protocol's
 * default.
 */
export function negotiateProfile(offered: readonly { codec: string }[]): QualityProfile {
  let best = -1;
  for (const p of offered) {
    const tier = PROFILES_BY_TIER.findIndex((known) => known.codec === p.codec);
    if (tier > best) {
      best = tier;
    }
  }
  const chosen = best >= 0 ? (PROFILES_BY_TIER[best] as QualityProfile) : GOOD;
  return { ...chosen };
}

/** Video codecs the relay answers, in its order of preference (cheapest to encode first). */
export const VIDEO_CODEC_PREFERENCE: readonly CodecName[] = ['H264Baseline', 'Av1Main', 'H265Main'];

/**
 * The video codec of a CallAnswer: the relay's most preferred codec among
 * the offered `video_codecs`, or undefined when the client offered none it
 * knows. Receivers decode by each packet's codec_id, so senders that chose
 * differently still interoperate when receivers can decode both.
 */
export function negotiateVideoCodec(offered: readonly string[] | undefined): CodecName | undefined {
  if (offered === undefined) {
    return undefined;
  }
  return VIDEO_CODEC_PREFERENCE.find((c) => offered.includes(c));
}
