/**
 * Quality tiers: the six levels a participant's link can be in, how one
 * observation (a QualityReport, or relay-measured loss) is classified into
 * a tier, and what each tier maps to (profile name, audio codec).
 *
 * The numeric order is the quality order, so "worse" is `<` and the weakest
 * of several tiers is `Math.min`. Pure functions, no allocation.
 */
import type { CodecName, QualityReport } from '../wire/index.js';

/** Quality tiers, worst (0) to best (5). Compare with `<`/`>`. */
export const Tier = {
  Catastrophic: 0,
  Degraded: 1,
  Good: 2,
  Studio32k: 3,
  Studio48k: 4,
  Studio64k: 5,
} as const;
/** One of the six tier values 0..5. */
export type Tier = (typeof Tier)[keyof typeof Tier];

/** Display names indexed by tier (also used in `weakest link: <TierName>`). */
export const TIER_NAMES = [
  'Catastrophic',
  'Degraded',
  'Good',
  'Studio32k',
  'Studio48k',
  'Studio64k',
] as const;
/** A tier's display name. */
export type TierName = (typeof TIER_NAMES)[number];

/** Every tier, worst first. */
export const ALL_TIERS = [
  Tier.Catastrophic,
  Tier.Degraded,
  Tier.Good,
  Tier.Studio32k,
  Tier.Studio48k,
  Tier.Studio64k,
] as const;

/** Number of tiers (6). */
export const TIER_COUNT = ALL_TIERS.length;
/** The worst tier. */
export const WORST_TIER: Tier = Tier.Catastrophic;
/** The best tier. */
export const BEST_TIER: Tier = Tier.Studio64k;
/** The tier a participant starts in, and the room tier of an empty room. */
export const INITIAL_TIER: Tier = Tier.Good;

/** Name of the `QualityProfile` constant that belongs to a tier (reference §2.3). */
export type ProfileName =
  | 'CATASTROPHIC'
  | 'DEGRADED'
  | 'GOOD'
  | 'STUDIO_32K'
  | 'STUDIO_48K'
  | 'STUDIO_64K';

const PROFILE_NAMES = [
  'CATASTROPHIC',
  'DEGRADED',
  'GOOD',
  'STUDIO_32K',
  'STUDIO_48K',
  'STUDIO_64K',
] as const satisfies readonly ProfileName[];

const TIER_CODECS = [
  'Codec2_1200',
  'Opus6k',
  'Opus24k',
  'Opus32k',
  'Opus48k',
  'Opus64k',
] as const satisfies readonly CodecName[];

/**
 * The link type a controller classifies for. The relay has no way to know a
 * client's link and uses `'unknown'`, which shares the Wi-Fi thresholds.
 */
export type NetworkType = 'wifi' | 'cellular' | 'unknown';

/** True if `value` is one of the six tier values. */
export function isTier(value: number): value is Tier {
  return Number.isInteger(value) && value >= Tier.Catastrophic && value <= Tier.Studio64k;
}

/** Display name of a tier, e.g. `'Studio48k'`. */
export function tierName(tier: Tier): TierName {
  return TIER_NAMES[tier];
}

/** Name of the profile a relay recommends for a tier, e.g. `'STUDIO_48K'`. */
export function tierProfileName(tier: Tier): ProfileName {
  return PROFILE_NAMES[tier];
}

/** Audio codec of the tier's profile, e.g. `'Opus48k'` (Catastrophic: `'Codec2_1200'`). */
export function tierCodec(tier: Tier): CodecName {
  return TIER_CODECS[tier];
}

/** The worse (lower) of two tiers. */
export function worseTier(a: Tier, b: Tier): Tier {
  if (a < b) {
    return a;
  }
  return b;
}

/** The tier one step better, or `tier` itself at the top. */
export function tierUp(tier: Tier): Tier {
  return ALL_TIERS[tier + 1] ?? tier;
}

/**
 * Classifies one observation into a tier. Checks run top-down, first match
 * wins (reference §3.4); jitter is not used.
 *
 * Wi-Fi / unknown (what the relay uses):
 *
 * | tier         | condition                    |
 * | ------------ | ---------------------------- |
 * | Catastrophic | loss ≥ 15 % or RTT ≥ 200 ms  |
 * | Degraded     | loss ≥ 5 % or RTT ≥ 100 ms   |
 * | Good         | loss ≥ 2 % or RTT ≥ 80 ms    |
 * | Studio32k    | loss ≥ 1 % or RTT ≥ 50 ms    |
 * | Studio48k    | RTT ≥ 30 ms                  |
 * | Studio64k    | otherwise                    |
 *
 * Cellular: loss > 25 % or RTT > 500 ms → Catastrophic; loss > 8 % or
 * RTT > 300 ms → Degraded; otherwise Good (no studio tiers).
 *
 * A NaN input fails every "better than" test and therefore classifies as
 * Catastrophic; callers feed byte-derived values, so this only guards
 * against programming errors without throwing.
 */
export function classifyReport(
  lossPct: number,
  rttMs: number,
  network: NetworkType = 'unknown',
): Tier {
  if (network === 'cellular') {
    if (!(lossPct <= 25 && rttMs <= 500)) {
      return Tier.Catastrophic;
    }
    if (!(lossPct <= 8 && rttMs <= 300)) {
      return Tier.Degraded;
    }
    return Tier.Good;
  }
  if (!(lossPct < 15 && rttMs < 200)) {
    return Tier.Catastrophic;
  }
  if (lossPct >= 5 || rttMs >= 100) {
    return Tier.Degraded;
  }
  if (lossPct >= 2 || rttMs >= 80) {
    return Tier.Good;
  }
  if (lossPct >= 1 || rttMs >= 50) {
    return Tier.Studio32k;
  }
  if (rttMs >= 30) {
    return Tier.Studio48k;
  }
  return Tier.Studio64k;
}

/**
 * Classifies a loss percentage alone (RTT unknown, treated as 0): the same
 * loss thresholds as {@link classifyReport}. Used for relay-measured loss.
 */
export function classifyLoss(lossPct: number, network: NetworkType = 'unknown'): Tier {
  return classifyReport(lossPct, 0, network);
}

/** Loss in percent from a QualityReport `loss_pct` byte: 0..255 ↦ 0..100 %. */
export function reportLossPercent(lossByte: number): number {
  return (lossByte / 255) * 100;
}

/** RTT in ms from a QualityReport `rtt_4ms` byte: v × 4 (0..1020 ms). */
export function reportRttMs(rttByte: number): number {
  return rttByte * 4;
}

/** Classifies a report given as its raw `loss_pct` and `rtt_4ms` bytes. */
export function classifyRawReport(
  lossByte: number,
  rttByte: number,
  network: NetworkType = 'unknown',
): Tier {
  return classifyReport(reportLossPercent(lossByte), reportRttMs(rttByte), network);
}

/** Classifies a decoded wire {@link QualityReport} (jitter and bitrate cap are not used). */
export function classifyQualityReport(
  report: Readonly<QualityReport>,
  network: NetworkType = 'unknown',
): Tier {
  return classifyRawReport(report.lossPct, report.rtt4ms, network);
}
