/**
 * Per-participant adaptive tier controller, as the relay runs it for every
 * participant (reference §3.4). Pure numeric state: time is passed in as
 * `nowMs`, there are no timers, no allocation and no exceptions per call.
 *
 * ## Hysteresis (one step per observation)
 * - observed == current → both counters reset;
 * - observed worse → `up = 0`, `down += 1`; at 3 (2 on cellular) the tier
 *   jumps directly to the observed tier;
 * - observed better → `down = 0`, `up += 1`; at 5 (current below Good) or
 *   10 (current Good or above) the tier moves ONE step up.
 *
 * ## Probing (report-driven observations only)
 * When the hysteresis did not move the tier, the link is not cellular and
 * the tier is below Studio64k: once every observation for 30 s has been at
 * least the current tier, a 5 s probe of the next tier starts (the tier
 * itself does not change). During the probe an observation worse than the
 * probe target is "bad"; a second bad one aborts the probe and blocks new
 * probes for 60 s; an observation 5 s or more after the start with at most
 * one bad adopts the target. A tier change by the hysteresis cancels a probe.
 *
 * ## Two inputs: QualityReports and relay-measured loss
 * The relay sees two kinds of evidence for a participant: the QualityReport
 * trailers the client attaches (loss and RTT, ~1/s), and the loss the relay
 * itself measures on the participant's upstream from sequence gaps
 * ({@link StreamStats.takeIntervalLoss}, evaluated by the caller about once
 * per second). The relay-measured loss is classified with the same loss
 * thresholds ({@link classifyLoss}, RTT ignored). The rule:
 *
 *   effective observed tier = min(report tier, relay-loss tier)
 *
 * - Each report is one observation. Its tier is capped by the worst
 *   relay-loss tier measured since the previous report, or the latest one
 *   if it is still fresh ({@link RELAY_LOSS_FRESH_MS}).
 * - A relay-loss evaluation is an observation of its own only while no
 *   report is fresh ({@link REPORT_FRESH_MS}). While reports flow they set
 *   the cadence, so the same second is never counted twice and the
 *   3-observation downgrade still takes ~3 s.
 * - Without fresh reports the report side of the `min` is Good (the tier
 *   the relay assumes for a participant it knows nothing about): a silent
 *   client degrades on measured loss after 3 bad evaluations, recovers
 *   through the normal upgrade hysteresis, and never rises above Good on
 *   loss alone, since the relay has no RTT evidence. Loss-only
 *   observations never start a probe and cancel a running one.
 */
import {
  BEST_TIER,
  classifyLoss,
  classifyRawReport,
  classifyReport,
  INITIAL_TIER,
  isTier,
  type NetworkType,
  Tier,
  tierUp,
  worseTier,
} from './tiers.js';

/** Worse observations in a row that trigger a downgrade (Wi-Fi / unknown). */
export const DOWNGRADE_COUNT = 3;
/** Worse observations in a row that trigger a downgrade on cellular. */
export const DOWNGRADE_COUNT_CELLULAR = 2;
/** Better observations in a row for one step up while below Good. */
export const UPGRADE_COUNT_LOW = 5;
/** Better observations in a row for one step up at Good or above. */
export const UPGRADE_COUNT_HIGH = 10;
/** How long observations must stay ≥ the current tier before a probe starts. */
export const PROBE_STABLE_MS = 30_000;
/** How long a probe runs before its target is adopted. */
export const PROBE_DURATION_MS = 5_000;
/** No new probe for this long after an aborted one. */
export const PROBE_COOLDOWN_MS = 60_000;
/** Bad observations a probe tolerates (one more aborts it). */
export const PROBE_MAX_BAD = 1;
/**
 * A report younger than this means "reports are flowing". Clients attach one
 * about every 50 frames: ~1 s at 20 ms frames, ~2 s at 40 ms frames.
 */
export const REPORT_FRESH_MS = 5_000;
/** A relay-loss measurement younger than this still caps reports. */
export const RELAY_LOSS_FRESH_MS = 3_000;

/** Adaptive tier controller of one participant; starts at Good. */
export class TierController {
  private readonly net: NetworkType;
  private current: Tier = INITIAL_TIER;
  private down = 0;
  private up = 0;
  private lastObserved: Tier = INITIAL_TIER;

  /** Start of the current run of observations ≥ current (NaN: no run). */
  private stableSinceMs = Number.NaN;
  private probe: Tier | null = null;
  private probeStartMs = 0;
  private probeBad = 0;
  private cooldownUntilMs = Number.NEGATIVE_INFINITY;

  private lastReportMs = Number.NEGATIVE_INFINITY;
  private lossTier: Tier = BEST_TIER;
  private lossAtMs = Number.NEGATIVE_INFINITY;
  /** Worst relay-loss tier since the previous report (best: none). */
  private lossWorstPending: Tier = BEST_TIER;

  /** @param network link type; the relay uses `'unknown'` (Wi-Fi thresholds). */
  constructor(network: NetworkType = 'unknown') {
    this.net = network;
  }

  /** The current tier. */
  get tier(): Tier {
    return this.current;
  }

  /** The tier being probed, or null when no probe runs. */
  get probeTarget(): Tier | null {
    return this.probe;
  }

  /** The link type this controller classifies for. */
  get network(): NetworkType {
    return this.net;
  }

  /** The effective tier of the latest observation (Good before the first). */
  get observedTier(): Tier {
    return this.lastObserved;
  }

  /**
   * Feeds one QualityReport already classified into `reportTier` (see the
   * module comment for how relay-measured loss caps it). Returns true if the
   * tier changed.
   */
  observe(reportTier: Tier, nowMs: number): boolean {
    if (!isTier(reportTier)) {
      return false;
    }
    this.lastReportMs = nowMs;
    let cap = this.lossWorstPending;
    if (nowMs - this.lossAtMs <= RELAY_LOSS_FRESH_MS && this.lossTier < cap) {
      cap = this.lossTier;
    }
    this.lossWorstPending = BEST_TIER;
    return this.step(worseTier(reportTier, cap), true, nowMs);
  }

  /** Feeds one QualityReport as loss (%) and RTT (ms). Returns true if the tier changed. */
  observeReport(lossPct: number, rttMs: number, nowMs: number): boolean {
    return this.observe(classifyReport(lossPct, rttMs, this.net), nowMs);
  }

  /**
   * Feeds one QualityReport as its raw `loss_pct` and `rtt_4ms` bytes.
   * Returns true if the tier changed.
   */
  observeRawReport(lossByte: number, rttByte: number, nowMs: number): boolean {
    return this.observe(classifyRawReport(lossByte, rttByte, this.net), nowMs);
  }

  /**
   * Feeds the loss (%) the relay measured on this participant's upstream
   * over the last evaluation interval (call about once per second). NaN
   * ("not enough packets to tell") is ignored. Returns true if the tier
   * changed.
   */
  observeRelayLoss(lossPct: number, nowMs: number): boolean {
    if (Number.isNaN(lossPct)) {
      return false;
    }
    const lossTier = classifyLoss(lossPct, this.net);
    this.lossTier = lossTier;
    this.lossAtMs = nowMs;
    if (lossTier < this.lossWorstPending) {
      this.lossWorstPending = lossTier;
    }
    if (nowMs - this.lastReportMs <= REPORT_FRESH_MS) {
      return false; // reports are flowing: the next one carries this as a cap
    }
    this.lossWorstPending = BEST_TIER;
    return this.step(worseTier(lossTier, INITIAL_TIER), false, nowMs);
  }

  /** One observation: hysteresis, then (report-driven only) probing. */
  private step(observed: Tier, fromReport: boolean, nowMs: number): boolean {
    this.lastObserved = observed;
    if (this.hysteresis(observed)) {
      this.cancelProbe();
      this.stableSinceMs = Number.NaN;
      return true;
    }
    if (!fromReport || this.net === 'cellular' || this.current >= BEST_TIER) {
      this.cancelProbe();
      this.stableSinceMs = Number.NaN;
      return false;
    }
    return this.runProbe(observed, nowMs);
  }

  /** Applies the counters; returns true if the tier moved. */
  private hysteresis(observed: Tier): boolean {
    const current = this.current;
    if (observed === current) {
      this.down = 0;
      this.up = 0;
      return false;
    }
    if (observed < current) {
      this.up = 0;
      this.down += 1;
      const needed = this.net === 'cellular' ? DOWNGRADE_COUNT_CELLULAR : DOWNGRADE_COUNT;
      if (this.down < needed) {
        return false;
      }
      this.current = observed;
      this.down = 0;
      return true;
    }
    this.down = 0;
    this.up += 1;
    const needed = current < Tier.Good ? UPGRADE_COUNT_LOW : UPGRADE_COUNT_HIGH;
    if (this.up < needed) {
      return false;
    }
    this.current = tierUp(current);
    this.up = 0;
    return true;
  }

  /** Probe bookkeeping after an observation that moved nothing; true if a probe was adopted. */
  private runProbe(observed: Tier, nowMs: number): boolean {
    // The stable run is tracked during a probe too, so that after an abort
    // and its cooldown a new probe needs no fresh 30 s if nothing dipped.
    if (observed < this.current) {
      this.stableSinceMs = Number.NaN;
    } else if (Number.isNaN(this.stableSinceMs)) {
      this.stableSinceMs = nowMs;
    }
    const target = this.probe;
    if (target !== null) {
      if (observed < target) {
        this.probeBad += 1;
        if (this.probeBad > PROBE_MAX_BAD) {
          this.cancelProbe();
          this.cooldownUntilMs = nowMs + PROBE_COOLDOWN_MS;
          return false;
        }
      }
      if (nowMs - this.probeStartMs < PROBE_DURATION_MS) {
        return false;
      }
      this.current = target;
      this.down = 0;
      this.up = 0;
      this.cancelProbe();
      this.stableSinceMs = Number.NaN;
      return true;
    }
    if (nowMs - this.stableSinceMs >= PROBE_STABLE_MS && nowMs >= this.cooldownUntilMs) {
      this.probe = tierUp(this.current);
      this.probeStartMs = nowMs;
      this.probeBad = 0;
    }
    return false;
  }

  private cancelProbe(): void {
    this.probe = null;
    this.probeBad = 0;
  }
}
