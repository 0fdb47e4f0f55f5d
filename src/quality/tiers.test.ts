import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createQualityReport, qualityFromPathStats } from '../wire/index.js';
import {
  ALL_TIERS,
  classifyLoss,
  classifyQualityReport,
  classifyRawReport,
  classifyReport,
  isTier,
  reportLossPercent,
  reportRttMs,
  TIER_NAMES,
  Tier,
  tierCodec,
  tierName,
  tierProfileName,
  tierUp,
} from './tiers.js';

describe('classifyReport (Wi-Fi / unknown)', () => {
  it('applies each threshold at its boundary, top-down', () => {
    const cases: [number, number, Tier][] = [
      [15, 0, Tier.Catastrophic],
      [14.99, 0, Tier.Degraded],
      [0, 200, Tier.Catastrophic],
      [0, 199, Tier.Degraded],
      [5, 0, Tier.Degraded],
      [4.99, 0, Tier.Good],
      [0, 100, Tier.Degraded],
      [0, 99, Tier.Good],
      [2, 0, Tier.Good],
      [1.99, 0, Tier.Studio32k],
      [0, 80, Tier.Good],
      [0, 79, Tier.Studio32k],
      [1, 0, Tier.Studio32k],
      [0.99, 0, Tier.Studio64k],
      [0, 50, Tier.Studio32k],
      [0, 49, Tier.Studio48k],
      [0, 30, Tier.Studio48k],
      [0, 29, Tier.Studio64k],
      [0, 0, Tier.Studio64k],
      // The worse of loss and RTT wins.
      [0.5, 150, Tier.Degraded],
      [20, 10, Tier.Catastrophic],
    ];
    for (const [loss, rtt, tier] of cases) {
      expect(classifyReport(loss, rtt), `${loss} % / ${rtt} ms`).toBe(tier);
      expect(classifyReport(loss, rtt, 'wifi'), `wifi ${loss} % / ${rtt} ms`).toBe(tier);
    }
  });

  it('uses the looser cellular table with no studio tiers', () => {
    expect(classifyReport(25.01, 0, 'cellular')).toBe(Tier.Catastrophic);
    expect(classifyReport(25, 0, 'cellular')).toBe(Tier.Degraded);
    expect(classifyReport(0, 501, 'cellular')).toBe(Tier.Catastrophic);
    expect(classifyReport(0, 500, 'cellular')).toBe(Tier.Degraded);
    expect(classifyReport(8.01, 0, 'cellular')).toBe(Tier.Degraded);
    expect(classifyReport(8, 0, 'cellular')).toBe(Tier.Good);
    expect(classifyReport(0, 301, 'cellular')).toBe(Tier.Degraded);
    expect(classifyReport(0, 300, 'cellular')).toBe(Tier.Good);
    expect(classifyReport(0, 0, 'cellular')).toBe(Tier.Good);
  });

  it('classifies NaN as the worst tier instead of throwing', () => {
    expect(classifyReport(Number.NaN, 0)).toBe(Tier.Catastrophic);
    expect(classifyReport(0, Number.NaN, 'cellular')).toBe(Tier.Catastrophic);
  });

  it('property: more loss or more RTT never gives a better tier', () => {
    const loss = fc.double({ min: 0, max: 100, noNaN: true });
    const rtt = fc.double({ min: 0, max: 1100, noNaN: true });
    const net = fc.constantFrom('wifi' as const, 'cellular' as const, 'unknown' as const);
    fc.assert(
      fc.property(loss, loss, rtt, rtt, net, (l1, l2, r1, r2, n) => {
        const better = classifyReport(Math.min(l1, l2), Math.min(r1, r2), n);
        const worse = classifyReport(Math.max(l1, l2), Math.max(r1, r2), n);
        return worse <= better;
      }),
    );
  });
});

describe('relay-measured loss and raw reports', () => {
  it('classifyLoss uses the loss thresholds only', () => {
    expect(classifyLoss(0)).toBe(Tier.Studio64k);
    expect(classifyLoss(1)).toBe(Tier.Studio32k);
    expect(classifyLoss(3)).toBe(Tier.Good);
    expect(classifyLoss(6)).toBe(Tier.Degraded);
    expect(classifyLoss(15)).toBe(Tier.Catastrophic);
    expect(classifyLoss(9, 'cellular')).toBe(Tier.Degraded);
  });

  it('converts the QualityReport bytes', () => {
    expect(reportLossPercent(0)).toBe(0);
    expect(reportLossPercent(255)).toBe(100);
    expect(reportLossPercent(51)).toBeCloseTo(20, 10);
    expect(reportRttMs(25)).toBe(100);
    expect(reportRttMs(255)).toBe(1020);
  });

  it('classifies raw and decoded reports (reference vector 10 %, 100 ms → bytes 25, 25)', () => {
    const q = qualityFromPathStats(10, 100, 20);
    expect([q.lossPct, q.rtt4ms]).toEqual([25, 25]);
    expect(classifyRawReport(25, 25)).toBe(Tier.Degraded); // 9.8 %, 100 ms
    expect(classifyQualityReport(q)).toBe(Tier.Degraded);
    expect(classifyQualityReport(createQualityReport())).toBe(Tier.Studio64k);
    expect(classifyRawReport(127, 75)).toBe(Tier.Catastrophic); // ~50 %, 300 ms
    expect(classifyRawReport(3, 7)).toBe(Tier.Studio32k); // 1.18 %, 28 ms
  });
});

describe('tier mappings', () => {
  it('names, profiles and codecs per tier', () => {
    expect(ALL_TIERS.map(tierName)).toEqual([...TIER_NAMES]);
    expect(ALL_TIERS.map(tierProfileName)).toEqual([
      'CATASTROPHIC',
      'DEGRADED',
      'GOOD',
      'STUDIO_32K',
      'STUDIO_48K',
      'STUDIO_64K',
    ]);
    expect(ALL_TIERS.map(tierCodec)).toEqual([
      'Codec2_1200',
      'Opus6k',
      'Opus24k',
      'Opus32k',
      'Opus48k',
      'Opus64k',
    ]);
  });

  it('steps up one tier, capped at the best; validates tier values', () => {
    expect(tierUp(Tier.Catastrophic)).toBe(Tier.Degraded);
    expect(tierUp(Tier.Studio48k)).toBe(Tier.Studio64k);
    expect(tierUp(Tier.Studio64k)).toBe(Tier.Studio64k);
    expect(isTier(0)).toBe(true);
    expect(isTier(5)).toBe(true);
    expect(isTier(6)).toBe(false);
    expect(isTier(-1)).toBe(false);
    expect(isTier(1.5)).toBe(false);
    expect(isTier(Number.NaN)).toBe(false);
  });
});
