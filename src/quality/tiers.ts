/**
 * Quality tiers and the classification of one observation (reference §3.4).
 */

/** Tiers, worst (0) to best (5). */
export const Tier = {
  Catastrophic: 0,
  Degraded: 1,
  Good: 2,
  Studio32k: 3,
  Studio48k: 4,
  Studio64k: 5,
} as const;
export type Tier = (typeof Tier)[keyof typeof Tier];

export const TIER_NAMES = [
  'Catastrophic',
  'Degraded',
  'Good',
  'Studio32k',
  'Studio48k',
  'Studio64k',
] as const;
export type TierName = (typeof TIER_NAMES)[number];

export const BEST_TIER: Tier = Tier.Studio64k;

export type NetworkContext = 'wifi' | 'cellular' | 'unknown';

export function tierName(tier: Tier): TierName {
  return TIER_NAMES[tier] as TierName;
}

/**
 * The tier one observation points to. Checks run top-down (worst first).
 * Wi-Fi/unknown (what a relay uses): loss ≥ 15 % or RTT ≥ 200 ms →
 * Catastrophic; ≥ 5 % or ≥ 100 ms → Degraded; ≥ 2 % or ≥ 80 ms → Good;
 * ≥ 1 % or ≥ 50 ms → Studio32k; RTT ≥ 30 ms → Studio48k; else Studio64k.
 * Cellular: > 25 % or > 500 ms → Catastrophic; > 8 % or > 300 ms →
 * Degraded; else Good (no studio tiers).
 */
export function classify(
  lossPct: number,
  rttMs: number,
  network: NetworkContext = 'unknown',
): Tier {
  if (network === 'cellular') {
    if (lossPct > 25 || rttMs > 500) {
      return Tier.Catastrophic;
    }
    if (lossPct > 8 || rttMs > 300) {
      return Tier.Degraded;
    }
    return Tier.Good;
  }
  if (lossPct >= 15 || rttMs >= 200) {
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

/** Loss percent from a QualityReport's loss byte (0..255 ↦ 0..100 %). */
export function reportLossPercent(lossByte: number): number {
  return (lossByte / 255) * 100;
}

/** RTT in ms from a QualityReport's rtt_4ms byte. */
export function reportRttMs(rttByte: number): number {
  return rttByte * 4;
}

/** The QualityDirective reason for a room tier. */
export function directiveReason(tier: Tier): string {
  return `weakest link: ${tierName(tier)}`;
}
