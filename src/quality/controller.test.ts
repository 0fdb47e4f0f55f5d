import { describe, expect, it } from 'vitest';
import {
  PROBE_COOLDOWN_MS,
  PROBE_DURATION_MS,
  PROBE_STABLE_MS,
  RELAY_LOSS_FRESH_MS,
  REPORT_FRESH_MS,
  TierController,
} from './controller.js';
import { Tier as T, type Tier } from './tiers.js';

/** Feeds `n` reports of `tier` one second apart from `t0`; returns the change flags. */
function feed(c: TierController, tier: Tier, n: number, t0: number): boolean[] {
  const out: boolean[] = [];
  for (let i = 0; i < n; i++) {
    out.push(c.observe(tier, t0 + i * 1000));
  }
  return out;
}

/** A controller driven to `tier` by reports (1/s), and the time of its last report. */
function at(tier: Tier): { c: TierController; t: number } {
  const c = new TierController();
  let t = 0;
  if (tier < T.Good) {
    feed(c, tier, 3, t);
    t += 3000;
  }
  while (c.tier < tier) {
    c.observe(T.Studio64k, t);
    t += 1000;
  }
  expect(c.tier).toBe(tier);
  return { c, t };
}

describe('TierController: reference hysteresis', () => {
  it('starts at Good', () => {
    const c = new TierController();
    expect(c.tier).toBe(T.Good);
    expect(c.probeTarget).toBeNull();
    expect(c.network).toBe('unknown');
  });

  it('two bad reports (50 %, 300 ms) change nothing; the third jumps directly to Catastrophic', () => {
    const c = new TierController();
    expect(c.observeReport(50, 300, 0)).toBe(false);
    expect(c.observeReport(50, 300, 1000)).toBe(false);
    expect(c.tier).toBe(T.Good);
    expect(c.observeReport(50, 300, 2000)).toBe(true);
    expect(c.tier).toBe(T.Catastrophic);
  });

  it('the same from raw QualityReport bytes', () => {
    const c = new TierController();
    expect([0, 1, 2].map((i) => c.observeRawReport(127, 75, i * 1000))).toEqual([
      false,
      false,
      true,
    ]);
    expect(c.tier).toBe(T.Catastrophic);
  });

  it('downgrades to the observed tier of the third report, not the worst seen', () => {
    const c = new TierController();
    c.observe(T.Catastrophic, 0);
    c.observe(T.Catastrophic, 1000);
    expect(c.observe(T.Degraded, 2000)).toBe(true);
    expect(c.tier).toBe(T.Degraded);
  });

  it('a report at the current tier or better resets the down counter', () => {
    const c = new TierController();
    feed(c, T.Degraded, 2, 0);
    c.observe(T.Good, 2000);
    expect(feed(c, T.Degraded, 2, 3000)).toEqual([false, false]);
    c.observe(T.Studio64k, 5000);
    expect(feed(c, T.Degraded, 2, 6000)).toEqual([false, false]);
    expect(c.observe(T.Degraded, 8000)).toBe(true);
  });

  it('upgrades from Catastrophic one step per 5 better reports, even on perfect reports', () => {
    const c = new TierController();
    feed(c, T.Catastrophic, 3, 0);
    expect(c.tier).toBe(T.Catastrophic);
    expect(feed(c, T.Studio64k, 5, 10_000)).toEqual([false, false, false, false, true]);
    expect(c.tier).toBe(T.Degraded);
    expect(feed(c, T.Studio64k, 5, 20_000)).toEqual([false, false, false, false, true]);
    expect(c.tier).toBe(T.Good);
  });

  it('needs 10 better reports per step at or above Good', () => {
    const c = new TierController();
    const flags = feed(c, T.Studio64k, 10, 0);
    expect(flags.slice(0, 9).every((f) => !f)).toBe(true);
    expect(flags[9]).toBe(true);
    expect(c.tier).toBe(T.Studio32k);
    feed(c, T.Studio64k, 10, 10_000);
    expect(c.tier).toBe(T.Studio48k);
    feed(c, T.Studio64k, 10, 20_000);
    expect(c.tier).toBe(T.Studio64k);
    expect(feed(c, T.Studio64k, 20, 30_000).some((f) => f)).toBe(false);
  });

  it('a worse report resets the up counter', () => {
    const { c, t } = at(T.Degraded);
    feed(c, T.Good, 4, t);
    c.observe(T.Catastrophic, t + 4000);
    expect(feed(c, T.Good, 4, t + 5000).some((f) => f)).toBe(false);
    expect(c.observe(T.Good, t + 9000)).toBe(true);
    expect(c.tier).toBe(T.Good);
  });

  it('ignores an invalid tier value', () => {
    const c = new TierController();
    for (let i = 0; i < 5; i++) {
      expect(c.observe(9 as Tier, i)).toBe(false);
    }
    expect(c.tier).toBe(T.Good);
  });
});

describe('TierController: cellular', () => {
  it('classifies with the cellular table and downgrades after 2 reports', () => {
    const c = new TierController('cellular');
    expect(c.observeReport(20, 400, 0)).toBe(false); // Degraded on cellular
    expect(c.observeReport(20, 400, 1000)).toBe(true);
    expect(c.tier).toBe(T.Degraded);
    // 20 % loss would be Catastrophic on Wi-Fi.
    const w = new TierController('wifi');
    w.observeReport(20, 400, 0);
    w.observeReport(20, 400, 1000);
    expect(w.observeReport(20, 400, 2000)).toBe(true);
    expect(w.tier).toBe(T.Catastrophic);
  });

  it('never probes, and caps at Good', () => {
    const c = new TierController('cellular');
    for (let t = 0; t <= 120_000; t += 1000) {
      expect(c.observeReport(0, 0, t)).toBe(false);
      expect(c.probeTarget).toBeNull();
    }
    expect(c.tier).toBe(T.Good);
  });
});

describe('TierController: probing', () => {
  /**
   * Reports alternating Good / Studio64k: never 10 better in a row (no
   * hysteresis upgrade from Good), always ≥ Good (a stable run).
   */
  function stableAtGood(c: TierController, from: number, to: number): void {
    for (let t = from; t <= to; t += 1000) {
      c.observe((t / 1000) % 2 === 0 ? T.Good : T.Studio64k, t);
    }
  }

  it('starts a probe of the next tier after 30 s of reports ≥ current, without changing the tier', () => {
    const c = new TierController();
    stableAtGood(c, 0, PROBE_STABLE_MS - 1000);
    expect(c.probeTarget).toBeNull();
    expect(c.observe(T.Good, PROBE_STABLE_MS)).toBe(false);
    expect(c.probeTarget).toBe(T.Studio32k);
    expect(c.tier).toBe(T.Good);
  });

  it('a report below the current tier restarts the 30 s', () => {
    const c = new TierController();
    stableAtGood(c, 0, 20_000);
    c.observe(T.Degraded, 21_000);
    stableAtGood(c, 22_000, 50_000);
    expect(c.probeTarget).toBeNull();
    stableAtGood(c, 51_000, 52_000);
    expect(c.probeTarget).toBe(T.Studio32k);
  });

  it('adopts the target after surviving 5 s, tolerating one bad report', () => {
    const c = new TierController();
    stableAtGood(c, 0, PROBE_STABLE_MS);
    const start = PROBE_STABLE_MS;
    expect(c.observe(T.Studio32k, start + 1000)).toBe(false);
    expect(c.observe(T.Good, start + 2000)).toBe(false); // bad #1: tolerated
    expect(c.observe(T.Studio48k, start + 3000)).toBe(false);
    expect(c.observe(T.Studio32k, start + 4000)).toBe(false);
    expect(c.probeTarget).toBe(T.Studio32k);
    expect(c.observe(T.Studio32k, start + PROBE_DURATION_MS)).toBe(true);
    expect(c.tier).toBe(T.Studio32k);
    expect(c.probeTarget).toBeNull();
  });

  it('aborts on the second bad report and waits out a 60 s cooldown', () => {
    const c = new TierController();
    stableAtGood(c, 0, PROBE_STABLE_MS);
    const start = PROBE_STABLE_MS;
    c.observe(T.Good, start + 1000); // bad #1
    expect(c.probeTarget).toBe(T.Studio32k);
    expect(c.observe(T.Good, start + 2000)).toBe(false); // bad #2 → abort
    expect(c.probeTarget).toBeNull();
    expect(c.tier).toBe(T.Good);
    const abortAt = start + 2000;
    stableAtGood(c, abortAt + 1000, abortAt + PROBE_COOLDOWN_MS - 1000);
    expect(c.probeTarget).toBeNull();
    // The stable run went on through the cooldown: the probe restarts as soon as it ends.
    c.observe(T.Good, abortAt + PROBE_COOLDOWN_MS);
    expect(c.probeTarget).toBe(T.Studio32k);
  });

  it('bad reports abort a probe before the downgrade fires', () => {
    const c = new TierController();
    stableAtGood(c, 0, PROBE_STABLE_MS);
    c.observe(T.Catastrophic, PROBE_STABLE_MS + 100); // bad #1, down 1
    c.observe(T.Catastrophic, PROBE_STABLE_MS + 200); // bad #2 → abort, down 2
    expect(c.probeTarget).toBeNull();
    expect(c.observe(T.Catastrophic, PROBE_STABLE_MS + 300)).toBe(true);
    expect(c.tier).toBe(T.Catastrophic);
    expect(c.probeTarget).toBeNull();
  });

  it('a hysteresis upgrade during a probe ends it', () => {
    const { c, t } = at(T.Catastrophic);
    for (let k = 0; k <= 30; k++) {
      c.observe(k % 2 === 0 ? T.Catastrophic : T.Degraded, t + k * 1000);
    }
    expect(c.probeTarget).toBe(T.Degraded);
    const start = t + 30_000;
    // Five better reports inside the probe (faster than 1/s): the hysteresis moves first.
    const flags = [1, 2, 3, 4, 5].map((k) => c.observe(T.Good, start + k * 200));
    expect(flags).toEqual([false, false, false, false, true]);
    expect(c.tier).toBe(T.Degraded);
    expect(c.probeTarget).toBeNull();
  });

  it('probes from below Good too, but never at Studio64k', () => {
    const { c, t } = at(T.Catastrophic);
    // Alternate Catastrophic / Degraded: up counter never reaches 5.
    for (let k = 0; k <= 30; k++) {
      c.observe(k % 2 === 0 ? T.Catastrophic : T.Degraded, t + k * 1000);
    }
    expect(c.probeTarget).toBe(T.Degraded);

    const top = at(T.Studio64k);
    for (let k = 0; k <= 60; k++) {
      top.c.observe(T.Studio64k, top.t + k * 1000);
    }
    expect(top.c.probeTarget).toBeNull();
  });
});

describe('TierController: relay-measured loss', () => {
  it('degrades on relay-measured loss alone (no reports) after 3 evaluations', () => {
    const c = new TierController();
    expect(c.observeRelayLoss(20, 0)).toBe(false);
    expect(c.observeRelayLoss(20, 1000)).toBe(false);
    expect(c.observeRelayLoss(20, 2000)).toBe(true);
    expect(c.tier).toBe(T.Catastrophic);
  });

  it('without reports recovers through the upgrade hysteresis, but never above Good, never probing', () => {
    const c = new TierController();
    for (let i = 0; i < 3; i++) {
      c.observeRelayLoss(6, i * 1000);
    }
    expect(c.tier).toBe(T.Degraded);
    const flags: boolean[] = [];
    for (let i = 3; i < 120; i++) {
      flags.push(c.observeRelayLoss(0, i * 1000));
      expect(c.probeTarget).toBeNull();
    }
    expect(flags.filter((f) => f)).toHaveLength(1);
    expect(flags[4]).toBe(true); // 5th clean second
    expect(c.tier).toBe(T.Good);
    expect(c.observedTier).toBe(T.Good);
  });

  it('caps reports with the measured loss: effective tier = min(report, loss)', () => {
    const c = new TierController();
    c.observe(T.Good, 0);
    for (let i = 0; i < 3; i++) {
      const t = 1000 + i * 1000;
      c.observeRelayLoss(20, t); // measured between reports
      expect(c.observe(T.Studio64k, t + 500)).toBe(i === 2);
    }
    expect(c.tier).toBe(T.Catastrophic);
    expect(c.observedTier).toBe(T.Catastrophic);
  });

  it('does not count a measurement twice while reports flow', () => {
    const c = new TierController();
    c.observe(T.Good, 0);
    // Measurements alone while reports are fresh: not observations.
    for (let t = 1000; t <= REPORT_FRESH_MS; t += 1000) {
      expect(c.observeRelayLoss(20, t)).toBe(false);
    }
    expect(c.tier).toBe(T.Good);
    // Each report carries the measurement: the third report downgrades.
    expect(c.observe(T.Good, REPORT_FRESH_MS + 100)).toBe(false);
    c.observeRelayLoss(20, REPORT_FRESH_MS + 200);
    expect(c.observe(T.Good, REPORT_FRESH_MS + 300)).toBe(false);
    c.observeRelayLoss(20, REPORT_FRESH_MS + 400);
    expect(c.observe(T.Good, REPORT_FRESH_MS + 500)).toBe(true);
    expect(c.tier).toBe(T.Catastrophic);
  });

  it('caps a report with the worst measurement since the previous report', () => {
    const c = new TierController();
    c.observe(T.Good, 0);
    let t = 1000;
    for (let i = 0; i < 3; i++) {
      c.observeRelayLoss(6, t); // Degraded
      c.observeRelayLoss(0, t + 1000); // clean, but the bad second still counts
      c.observe(T.Studio64k, t + 1500);
      t += 2000;
    }
    expect(c.tier).toBe(T.Degraded);
  });

  it('a stale measurement no longer caps reports', () => {
    const c = new TierController();
    c.observe(T.Good, 0);
    c.observeRelayLoss(20, 500);
    c.observe(T.Good, 600); // capped once: consumes the pending measurement
    const late = 500 + RELAY_LOSS_FRESH_MS + 1;
    expect(feed(c, T.Good, 3, late).some((f) => f)).toBe(false);
    expect(c.tier).toBe(T.Good);
  });

  it('when reports stop, measured loss takes over with Good as the ceiling', () => {
    const { c, t } = at(T.Studio32k);
    // Reports are fresh: clean measurements do not count.
    expect(c.observeRelayLoss(0, t)).toBe(false);
    const stale = t + REPORT_FRESH_MS + 1000;
    expect(c.observeRelayLoss(0, stale)).toBe(false);
    expect(c.observeRelayLoss(0, stale + 1000)).toBe(false);
    expect(c.observeRelayLoss(0, stale + 2000)).toBe(true);
    expect(c.tier).toBe(T.Good);
  });

  it('ignores NaN ("not enough packets")', () => {
    const c = new TierController();
    for (let i = 0; i < 5; i++) {
      expect(c.observeRelayLoss(Number.NaN, i * 1000)).toBe(false);
    }
    expect(c.tier).toBe(T.Good);
    expect(c.observeRelayLoss(20, 6000)).toBe(false);
    expect(c.observeRelayLoss(20, 7000)).toBe(false);
    expect(c.observeRelayLoss(Number.NaN, 7500)).toBe(false);
    expect(c.observeRelayLoss(20, 8000)).toBe(true);
  });
});
