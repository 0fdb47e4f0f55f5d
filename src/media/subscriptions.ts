/**
 * What a receiver asked for: per-sender subscriptions (`SubscriptionUpdate`)
 * and its downstream feedback (`TransportFeedback`), plus the state of one
 * (sender → receiver) flow (`Downstream`). Control-plane messages update
 * these objects; the per-packet path only reads them.
 */

/** The highest simulcast layer (stream_id 2 = high). */
export const MAX_LAYER = 2;

export interface SubscriptionPrefs {
  audio: boolean;
  video: boolean;
  /** Highest video layer wanted, 0..2. */
  maxLayer: number;
}

/** A `SubscriptionUpdate` as the media plane applies it. */
export interface SubscriptionChange {
  /** null: the default for every sender; else the sender's participant tag. */
  tag: number | null;
  audio?: boolean | undefined;
  video?: boolean | undefined;
  maxLayer?: number | undefined;
}

/** A `TransportFeedback` as the media plane applies it. */
export interface FeedbackInput {
  rembBps: number;
  acked: number;
  nacked: number;
  nowMs: number;
}

/**
 * Bandwidth hysteresis of a receiver (docs/video.md, "Layer selection"):
 * - the budget is `remb_bps` of the latest TransportFeedback, shared equally
 *   by the senders whose video the receiver gets;
 * - if more than `LOSS_DOWN_SHARE` of the sequence numbers a feedback
 *   reports were nacked, the budget is taken as `(1 − loss) ×` the layer
 *   rate actually received (a relay-side signal);
 * - down: as soon as a feedback's budget is below the current layer's
 *   measured rate (no hold: congestion hurts at once);
 * - up: only when the budget has covered the next layer's rate ×
 *   `UP_HEADROOM` continuously for `UP_HOLD_MS` (and in at least two
 *   feedbacks), so a receiver near a threshold does not flap.
 */
export const UP_HEADROOM = 1.25;
export const UP_HOLD_MS = 3000;
export const LOSS_DOWN_SHARE = 0.1;

export class ReceiverPrefs {
  readonly defaults: SubscriptionPrefs = { audio: true, video: true, maxLayer: MAX_LAYER };
  private readonly perSender = new Map<number, SubscriptionPrefs>();
  /** Bumped on every change; flows recompute their target when it moved. */
  epoch = 0;
  /** Latest remb_bps (bit/s), or -1 without feedback. */
  rembBps = -1;
  /** Share of nacked sequence numbers in the latest feedback. */
  lossShare = 0;
  feedbacks = 0;
  lastFeedbackMs = 0;
  /**
   * Called after every change of the per-sender prefs (apply, forget): the
   * session drops the fan-out plans of its room's senders (session.ts).
   */
  onChange: (() => void) | null = null;

  /** The prefs that apply to the sender with participant tag `tag`. */
  prefsFor(tag: number): SubscriptionPrefs {
    // Most receivers never set per-sender prefs: no hash lookup per packet for them.
    return this.perSender.size === 0 ? this.defaults : (this.perSender.get(tag) ?? this.defaults);
  }

  apply(change: SubscriptionChange): void {
    const base =
      change.tag === null
        ? this.defaults
        : { ...(this.perSender.get(change.tag) ?? this.defaults) };
    if (change.audio !== undefined) {
      base.audio = change.audio;
    }
    if (change.video !== undefined) {
      base.video = change.video;
    }
    if (change.maxLayer !== undefined) {
      base.maxLayer = Math.min(MAX_LAYER, Math.max(0, change.maxLayer));
    }
    if (change.tag !== null) {
      this.perSender.set(change.tag, base);
    }
    this.epoch++;
    this.onChange?.();
  }

  feedback(fb: FeedbackInput): void {
    this.rembBps = fb.rembBps;
    const total = fb.acked + fb.nacked;
    this.lossShare = total > 0 ? fb.nacked / total : 0;
    this.feedbacks++;
    this.lastFeedbackMs = fb.nowMs;
    this.epoch++;
  }

  /** Forgets the per-sender prefs of a sender tag that left. */
  forget(tag: number): void {
    this.perSender.delete(tag);
    this.onChange?.();
  }

  /** Tags with their own prefs (operator view). */
  overrides(): { tag: number; prefs: SubscriptionPrefs }[] {
    return [...this.perSender].map(([tag, prefs]) => ({ tag, prefs: { ...prefs } }));
  }
}

/** State of one sender → receiver flow. */
export class Downstream {
  /** The receiver this flow goes to. */
  readonly receiver: object;

  constructor(receiver: object) {
    this.receiver = receiver;
  }

  /** The sender's frame number last forwarded here (MINI frames chain on it). */
  lastFrame = -1;
  /** Until when (monotonic ms) every frame goes FULL here (after a ResyncRequest, BINDING.md §4.6). */
  fullUntil = 0;
  /** Video layer forwarded now (-1: none yet). */
  layer = -1;
  /** Layer the selection wants (-1: none). */
  target = -1;
  /** Epochs the target was computed at. */
  prefsEpoch = -1;
  senderEpoch = -1;
  /** Since when a switch up to `target` is pending (ms), and whether the relay asked for a keyframe. */
  pendingSince = 0;
  pliSent = false;
  /** The last video packet forwarded here ended its frame (a switch may happen). */
  frameDone = true;
  /** Bandwidth cap layer and the hold of an up move (see ReceiverPrefs). */
  bwLayer = MAX_LAYER;
  bwEpoch = -1;
  upSince = -1;
  upFeedbacks = 0;
  /** Forwarded to this receiver from this sender. */
  bytes = 0;
  packets = 0;
  switchesUp = 0;
  switchesDown = 0;
}
