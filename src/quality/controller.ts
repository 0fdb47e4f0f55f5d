/**
 * Per-participant tier controller with hysteresis and probing, as the
 * original relay runs it for each participant (reference §3.4):
 *
 * - an observation equal to the current tier resets both counters;
 * - a worse one counts down; the 3rd in a row (2 on cellular) jumps
 *   directly to the observed tier;
 * - a better one counts up; after 5 in a row (below Good) or 10 (at or
 *   above Good) the tier rises ONE step;
 * - probing: when nothing fired, the network is not cellular and the tier
 *   is below the best, 30 s of observations at least as good as the current
 *   tier start a 5 s probe of the next tier; more than one observation worse
 *   than the probe target aborts it (60 s cooldown), surviving 5 s adopts it.
 *
 * Inputs: QualityReports (loss + RTT) and the loss the relay measures
 * itself from sequence gaps, classified with the same thresholds (RTT 0)
 * once per evaluation interval:
 * - relay-measured loss worse than the current tier feeds the hysteresis
 *   (so a sender that never reports still degrades after 3 bad intervals);
 * - while reports flow (one within {@link REPORT_FRESH_MS}), they drive
 *   upgrades and relay-measured loss only caps them: a report's tier is
 *   lowered to the latest loss tier (the worse of the two wins);
 * - without fresh reports, relay-measured loss alone can also upgrade.
 *
 * Pure state: time is passed in, no timers, no allocation per call.
 */
import { BEST_TIER, classify, type NetworkContext, Tier } from './tiers.js';

export const DOWN_THRESHOLD = 3;
export const DOWN_THRESHOLD_CELLULAR = 2;
export const UP_THRESHOLD_LOW = 5;
export const UP_THRESHOLD_HIGH = 10;
export const PROBE_STABLE_MS = 30_000;
export const PROBE_DURATION_MS = 5_000;
export const PROBE_COOLDOWN_MS = 60_000;
export const PROBE_MAX_BAD = 1;
/** A report younger than this counts as "reports are flowing". */
export const REPORT_FRESH_MS = 3_000;

export class TierController {
  private current: Tier = Tier.Good;
  private down = 0;
  private up = 0;
  private network: NetworkContext;
  /** Since when observations have been ≥ current (NaN: not stable). */
  private stableSince = Number.NaN;
  private probeTarget: Tier | -1 = -1;
  private probeStart = 0;
  private probeBad = 0;
  private cooldownUntil = 0;
  /** Latest tier implied by relay-measured loss (best tier when unknown). */
  private lossCap: Tier = BEST_TIER;
  private lastReportMs = Number.NEGATIVE_INFINITY;

  constructor(network: NetworkContext = 'unknown') {
    this.network = network;
  }

  get tier(): Tier {
    return this.current;
  }

  /** The tier being probed, or -1. */
  get probing(): Tier | -1 {
    return this.probeTarget;
  }

  /** Feeds one QualityReport; returns true if the tier changed. */
  observeReport(lossPct: number, rttMs: number, nowMs: number): boolean {
    this.lastReportMs = nowMs;
    const observed = classify(lossPct, rttMs, this.network);
    return this.observeTier(Math.min(observed, this.lossCap) as Tier, nowMs);
  }

  /** Feeds relay-measured loss for the last interval; returns true if the tier changed. */
  observeRelayLoss(lossPct: number, nowMs: number): boolean {
    const lossTier = classify(lossPct, 0, this.network);
    this.lossCap = lossTier;
    if (lossTier < this.current || nowMs - this.lastReportMs > REPORT_FRESH_MS) {
      return this.observeTier(lossTier, nowMs);
    }
    return false;
  }

  /** Feeds one observed tier; returns true if the tier changed. */
  observeTier(observed: Tier, nowMs: number): boolean {
    const before = this.current;
    const fired = this.hysteresis(observed);
    if (fired) {
      this.stableSince = Number.NaN;
      this.cancelProbe();
    } else {
      this.runProbe(observed, nowMs);
    }
    return this.current !== before;
  }

  private hysteresis(observed: Tier): boolean {
    const current = this.current;
    if (observed === current) {
      this.down = 0;
      this.up = 0;
      return false;
    }
    if (observed < current) {
      this.up = 0;
      this.down++;
      const limit = this.network === 'cellular' ? DOWN_THRESHOLD_CELLULAR : DOWN_THRESHOLD;
      if (this.down >= limit) {
        this.current = observed;
        this.down = 0;
        return true;
      }
      return false;
    }
    this.down = 0;
    this.up++;
    const limit = current < Tier.Good ? UP_THRESHOLD_LOW : UP_THRESHOLD_HIGH;
    if (this.up >= limit) {
      this.current = (current + 1) as Tier;
      this.up = 0;
      return true;
    }
    return false;
  }

  private runProbe(observed: Tier, nowMs: number): void {
    if (this.network === 'cellular' || this.current >= BEST_TIER) {
      this.stableSince = Number.NaN;
      this.cancelProbe();
      return;
    }
    if (this.probeTarget !== -1) {
      if (observed < this.probeTarget) {
        this.probeBad++;
        if (this.probeBad > PROBE_MAX_BAD) {
          this.cancelProbe();
          this.cooldownUntil = nowMs + PROBE_COOLDOWN_MS;
          this.stableSince = Number.NaN;
          return;
        }
      }
      if (nowMs - this.probeStart >= PROBE_DURATION_MS) {
        this.current = this.probeTarget;
        this.down = 0;
        this.up = 0;
        this.cancelProbe();
        this.stableSince = Number.NaN;
      }
      return;
    }
    if (observed < this.current) {
      this.stableSince = Number.NaN;
      return;
    }
    if (Number.isNaN(this.stableSince)) {
      this.stableSince = nowMs;
      return;
    }
    if (nowMs - this.stableSince >= PROBE_STABLE_MS && nowMs >= this.cooldownUntil) {
      this.probeTarget = (this.current + 1) as Tier;
      this.probeStart = nowMs;
      this.probeBad = 0;
    }
  }

  private cancelProbe(): void {
    this.probeTarget = -1;
    this.probeBad = 0;
  }
}
