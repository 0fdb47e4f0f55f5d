import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  classify,
  directiveReason,
  PROBE_COOLDOWN_MS,
  RoomTierTracker,
  StreamStats,
  Tier,
  TierController,
} from './index.js';

describe('classify', () => {
  it('follows the Wi-Fi/unknown thresholds top-down', () => {
    expect(classify(15, 0)).toBe(Tier.Catastrophic);
    expect(classify(0, 200)).toBe(Tier.Catastrophic);
    expect(classify(5, 0)).toBe(Tier.Degraded);
    expect(classify(0, 100)).toBe(Tier.Degraded);
    expect(classify(2, 0)).toBe(Tier.Good);
    expect(classify(0, 80)).toBe(Tier.Good);
    expect(classify(1, 0)).toBe(Tier.Studio32k);
    expect(classify(0, 50)).toBe(Tier.Studio32k);
    expect(classify(0, 30)).toBe(Tier.Studio48k);
    expect(classify(0.5, 29)).toBe(Tier.Studio64k);
  });

  it('has no studio tiers on cellular and looser limits', () => {
    expect(classify(26, 0, 'cellular')).toBe(Tier.Catastrophic);
    expect(classify(25, 0, 'cellular')).toBe(Tier.Degraded);
    expect(classify(0, 301, 'cellular')).toBe(Tier.Degraded);
    expect(classify(8, 300, 'cellular')).toBe(Tier.Good);
    expect(classify(0, 0, 'cellular')).toBe(Tier.Good);
  });
});

describe('TierController', () => {
  it('starts Good and downgrades directly on the 3rd bad report', () => {
    const c = new TierController();
    expect(c.tier).toBe(Tier.Good);
    expect(c.observeReport(50, 300, 0)).toBe(false);
    expect(c.observeReport(50, 300, 1000)).toBe(false);
    expect(c.observeReport(50, 300, 2000)).toBe(true);
    expect(c.tier).toBe(Tier.Catastrophic);
  });

  it('a report equal to the tier resets the down counter', () => {
    const c = new TierController();
    c.observeReport(50, 300, 0);
    c.observeReport(50, 300, 1);
    c.observeReport(3, 0, 2); // Good == current
    expect(c.observeReport(50, 300, 3)).toBe(false);
    expect(c.tier).toBe(Tier.Good);
  });

  it('upgrades one step after 5 good reports below Good, 10 at or above', () => {
    const c = new TierController();
    for (let i = 0; i < 3; i++) {
      c.observeReport(50, 0, i);
    }
    expect(c.tier).toBe(Tier.Catastrophic);
    for (let i = 0; i < 4; i++) {
      expect(c.observeReport(0, 0, 10 + i)).toBe(false);
    }
    expect(c.observeReport(0, 0, 14)).toBe(true);
    expect(c.tier).toBe(Tier.Degraded);
    for (let i = 0; i < 5; i++) {
      c.observeReport(0, 0, 20 + i);
    }
    expect(c.tier).toBe(Tier.Good);
    for (let i = 0; i < 9; i++) {
      expect(c.observeReport(0, 0, 30 + i)).toBe(false);
    }
    expect(c.observeReport(0, 0, 39)).toBe(true);
    expect(c.tier).toBe(Tier.Studio32k);
  });

  it('downgrades after 2 bad reports on cellular', () => {
    const c = new TierController('cellular');
    c.observeReport(30, 0, 0);
    expect(c.observeReport(30, 0, 1)).toBe(true);
    expect(c.tier).toBe(Tier.Catastrophic);
  });

  it('probes the next tier after 30 s of stable reports and adopts it after 5 s', () => {
    const c = new TierController();
    // Reports exactly at Good (2 % loss) never trigger the up counter.
    let t = 0;
    for (; t <= 30_000; t += 1000) {
      c.observeReport(2, 0, t);
    }
    expect(c.probing).toBe(Tier.Studio32k);
    expect(c.tier).toBe(Tier.Good);
    for (; t <= 36_000; t += 1000) {
      c.observeReport(2, 0, t);
    }
    // Only one report (the first after 5 s) can be bad; Good < Studio32k counts as bad.
    // Probe targets are judged against the target tier: reports at Good are worse than Studio32k.
    expect(c.probing).toBe(-1);
  });

  it('a probe survives with reports at the target tier and aborts with a 60 s cooldown', () => {
    const ok = new TierController();
    let t = 0;
    for (; t <= 30_000; t += 1000) {
      ok.observeReport(2, 0, t);
    }
    expect(ok.probing).toBe(Tier.Studio32k);
    for (let i = 0; i < 6; i++, t += 1000) {
      ok.observeReport(1, 0, t); // Studio32k: at target, not bad
    }
    expect(ok.tier).toBe(Tier.Studio32k);

    const bad = new TierController();
    t = 0;
    for (; t <= 30_000; t += 1000) {
      bad.observeReport(2, 0, t);
    }
    bad.observeReport(2, 0, t);
    bad.observeReport(2, 0, t + 500); // second bad → abort
    expect(bad.probing).toBe(-1);
    expect(bad.tier).toBe(Tier.Good);
    for (let k = 1; k <= 40; k++) {
      bad.observeReport(2, 0, t + 500 + k * 1000);
    }
    expect(bad.probing).toBe(-1); // still cooling down (< 60 s)
    let restarted = -1;
    for (let k = 41; k <= PROBE_COOLDOWN_MS / 1000 + 32 && restarted < 0; k++) {
      bad.observeReport(2, 0, t + 500 + k * 1000);
      if (bad.probing === Tier.Studio32k) {
        restarted = k * 1000;
      }
    }
    expect(restarted).toBeGreaterThanOrEqual(PROBE_COOLDOWN_MS);
  });

  it('degrades from relay-measured loss alone and caps reports with it', () => {
    const c = new TierController();
    expect(c.observeRelayLoss(20, 0)).toBe(false);
    expect(c.observeRelayLoss(20, 1000)).toBe(false);
    expect(c.observeRelayLoss(20, 2000)).toBe(true);
    expect(c.tier).toBe(Tier.Catastrophic);
    // Perfect reports are capped by the measured loss: no upgrade.
    for (let i = 0; i < 10; i++) {
      expect(c.observeReport(0, 0, 3000 + i)).toBe(false);
    }
    expect(c.tier).toBe(Tier.Catastrophic);
  });

  it('upgrades from relay-measured loss when no reports flow', () => {
    const c = new TierController();
    for (let i = 0; i < 3; i++) {
      c.observeRelayLoss(20, i * 1000);
    }
    for (let i = 3; i < 8; i++) {
      c.observeRelayLoss(0, i * 1000);
    }
    expect(c.tier).toBe(Tier.Degraded);
  });
});

describe('RoomTierTracker', () => {
  it('tracks the weakest tier and reports changes, including the weakest leaving', () => {
    const r = new RoomTierTracker();
    expect(r.tier).toBe(Tier.Good);
    expect(r.set(1, Tier.Good)).toBeNull();
    expect(r.set(2, Tier.Degraded)).toBe(Tier.Degraded);
    expect(r.set(3, Tier.Studio64k)).toBeNull();
    expect(r.remove(2)).toBe(Tier.Good);
    expect(r.remove(2)).toBeNull();
    expect(r.set(1, Tier.Studio48k)).toBe(Tier.Studio48k);
    expect(r.remove(1)).toBe(Tier.Studio64k);
    expect(r.remove(3)).toBe(Tier.Good);
    expect(directiveReason(Tier.Degraded)).toBe('weakest link: Degraded');
  });
});

describe('StreamStats', () => {
  it('counts no loss in order, gap loss, and gap filled by reordering', () => {
    const s = new StreamStats();
    for (let i = 0; i < 10; i++) {
      s.update(100 + i, i * 20, 100, i * 20);
    }
    expect(s.lost()).toBe(0);
    s.update(112, 240, 100, 240); // 110, 111 missing
    expect(s.lost()).toBe(2);
    s.update(110, 200, 100, 245);
    expect(s.lost()).toBe(1);
    expect(s.reordered).toBe(1);
    s.update(110, 200, 100, 246);
    expect(s.duplicates).toBe(1);
    expect(s.lost()).toBe(1);
  });

  it('wraps across 0xFFFFFFFF without loss', () => {
    const s = new StreamStats();
    for (let i = 0; i < 20; i++) {
      s.update((0xfffffff6 + i) >>> 0, (0xfffffff0 + i * 20) >>> 0, 50, i * 20);
    }
    expect(s.expected()).toBe(20);
    expect(s.lost()).toBe(0);
    expect(s.jitterMs).toBeCloseTo(0, 5);
  });

  it('resynchronises after a confirmed big jump instead of counting thousands lost', () => {
    const s = new StreamStats();
    s.update(1, 0, 10, 0);
    s.update(2, 20, 10, 20);
    s.update(1_000_000, 40, 10, 40);
    s.update(1_000_001, 60, 10, 60);
    expect(s.lost()).toBe(0);
    expect(s.expected()).toBe(1);
  });

  it('measures jitter: ~0 for constant transit, > 0 for variable arrival', () => {
    const steady = new StreamStats();
    const noisy = new StreamStats();
    for (let i = 0; i < 200; i++) {
      steady.update(i, i * 20, 100, 1000 + i * 20);
      noisy.update(i, i * 20, 100, 1000 + i * 20 + (i % 2 === 0 ? 0 : 8));
    }
    expect(steady.jitterMs).toBeLessThan(0.01);
    expect(noisy.jitterMs).toBeGreaterThan(6);
  });

  it('reports rates and interval loss', () => {
    const s = new StreamStats();
    for (let i = 0; i < 100; i++) {
      if (i % 10 !== 5) {
        s.update(i, i * 20, 200, i * 20);
      }
    }
    const snap = s.snapshot(1990);
    expect(snap.pps).toBeGreaterThan(40);
    expect(snap.pps).toBeLessThan(50);
    expect(snap.bps).toBeGreaterThan(60_000);
    expect(s.takeIntervalLoss()).toBeCloseTo(10, 5); // 10 of seq 0..99 missing
    expect(s.takeIntervalLoss()).toBe(0);
    expect(s.snapshot(10_000).pps).toBe(0);
  });

  it('property: lost = expected − distinct received for any drop/reorder pattern', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.array(fc.boolean(), { minLength: 2, maxLength: 300 }),
        fc.array(fc.nat(), { maxLength: 30 }),
        (start, keep, swaps) => {
          const seqs: number[] = [];
          keep.forEach((k, i) => {
            if (k || i === 0 || i === keep.length - 1) {
              seqs.push(i);
            }
          });
          // Local reorders of neighbours (never moving the first packet).
          for (const w of swaps) {
            const i = 1 + (w % Math.max(1, seqs.length - 2));
            if (i + 1 < seqs.length - 1) {
              [seqs[i], seqs[i + 1]] = [seqs[i + 1] as number, seqs[i] as number];
            }
          }
          const s = new StreamStats();
          seqs.forEach((q, i) => {
            s.update((start + q) >>> 0, q * 20, 10, i);
          });
          const expected = keep.length;
          return s.expected() === expected && s.lost() === expected - new Set(seqs).size;
        },
      ),
      { numRuns: 500 },
    );
  });
});
