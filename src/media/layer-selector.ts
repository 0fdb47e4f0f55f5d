/**
 * Simulcast layer selection (docs/video.md, BINDING.md §6.3). A sender's
 * video layers are stream_id 0 (low), 1 (mid) and 2 (high); every receiver
 * gets at most one of them per sender at a time:
 *
 * - target = the highest *available* layer (a packet within
 *   `LAYER_STALE_MS`) not above the receiver's `max_layer` for that sender
 *   and its bandwidth layer (subscriptions.ts); if none fits, the lowest
 *   available layer within `max_layer`; none when video is unsubscribed;
 * - up (or the first layer): only at the first packet of a keyframe of the
 *   target layer; while waiting, after `KEYFRAME_WAIT_MS` the relay asks the
 *   sender for one (PLI, suppressed per (sender, stream));
 * - down: at the first packet of a frame of the lower layer once the
 *   current layer's frame ended (a frame boundary); the relay then asks for
 *   a keyframe of the new layer unless the switch packet is one;
 * - the first frame after a switch goes FULL (the flow's MINI chain breaks
 *   when packets of it are filtered; the chain rule in the engine does it).
 *
 * Video on other stream ids (not simulcast layers) and data/control media
 * are forwarded as they come; audio follows the `audio` subscription.
 * Everything here is plain arithmetic on preallocated state: no allocation
 * per packet.
 */
import {
  FLAG_FRAME_END,
  FLAG_KEYFRAME,
  FLAG_REPAIR,
  type MediaHeader,
  MediaType,
} from '../wire/index.js';
import {
  type Downstream,
  LOSS_DOWN_SHARE,
  MAX_LAYER,
  type ReceiverPrefs,
  type SubscriptionPrefs,
  UP_HEADROOM,
  UP_HOLD_MS,
} from './subscriptions.js';

/** A layer without a packet for this long is no longer available. */
export const LAYER_STALE_MS = 1000;
/** A pending switch up waits this long for a keyframe before the relay sends a PLI. */
export const KEYFRAME_WAIT_MS = 300;
/** Window of the per-layer rate measurement. */
const RATE_WINDOW_MS = 500;

const LAYERS = MAX_LAYER + 1;

/** Per-sender video state: layer availability, rates and frame boundaries. */
export class SenderVideo {
  /** Last packet time per layer (ms; -1 = never or stale). */
  readonly lastSeen = new Float64Array(LAYERS).fill(-1);
  /** `timestamp_ms` of the last packet per layer. */
  readonly lastTs = new Float64Array(LAYERS).fill(-1);
  /** The last packet of the layer had E (1) or not (0). */
  readonly ended = new Uint8Array(LAYERS).fill(1);
  /** Measured rate per layer, bit/s. */
  readonly rateBps = new Float64Array(LAYERS);
  private readonly winStart = new Float64Array(LAYERS);
  private readonly winBytes = new Float64Array(LAYERS);
  /** Bumped when the set of available layers changes. */
  epoch = 0;
  /** Bit mask of available layers. */
  available = 0;
  private lastStaleCheck = 0;

  /** Marks stale layers unavailable (called once per video packet, cheap). */
  refresh(nowMs: number): void {
    if (nowMs - this.lastStaleCheck < 100) {
      return;
    }
    this.lastStaleCheck = nowMs;
    for (let l = 0; l < LAYERS; l++) {
      const seen = this.lastSeen[l] as number;
      if (seen >= 0 && nowMs - seen > LAYER_STALE_MS) {
        this.lastSeen[l] = -1;
        this.rateBps[l] = 0;
        this.available &= ~(1 << l);
        this.epoch++;
      }
    }
  }

  /** True if `h` (a layer packet) is the first packet of a frame. */
  frameStart(h: MediaHeader): boolean {
    const l = h.streamId;
    return this.ended[l] === 1 || this.lastTs[l] !== h.timestamp;
  }

  /** A layer packet arrived (before the fan-out decisions): its layer is available. */
  before(h: MediaHeader, nowMs: number): void {
    const l = h.streamId;
    if (this.lastSeen[l] === -1) {
      this.available |= 1 << l;
      this.epoch++;
      this.winStart[l] = nowMs;
      this.winBytes[l] = 0;
    }
    this.lastSeen[l] = nowMs;
  }

  /** Records a layer packet after the fan-out decisions (frame boundaries, rate). */
  after(h: MediaHeader, bytes: number, nowMs: number): void {
    const l = h.streamId;
    if ((h.flags & FLAG_REPAIR) === 0) {
      this.lastTs[l] = h.timestamp;
      this.ended[l] = (h.flags & FLAG_FRAME_END) !== 0 ? 1 : 0;
    }
    this.winBytes[l] = (this.winBytes[l] as number) + bytes;
    const elapsed = nowMs - (this.winStart[l] as number);
    if (elapsed >= RATE_WINDOW_MS) {
      this.rateBps[l] = ((this.winBytes[l] as number) * 8 * 1000) / elapsed;
      this.winStart[l] = nowMs;
      this.winBytes[l] = 0;
    }
  }

  isAvailable(layer: number): boolean {
    return (this.available & (1 << layer)) !== 0;
  }
}

/** What the selector decided for one packet and receiver. */
export const Admit = {
  Drop: 0,
  Forward: 1,
  /** Forward as the first packet of a new layer (goes FULL). */
  Switch: 2,
} as const;
export type Admit = (typeof Admit)[keyof typeof Admit];

export interface LayerEvents {
  /** The relay wants a keyframe of `layer` from the sender (PLI). */
  needKeyframe(layer: number): void;
}

/** Counters (metrics). */
export class LayerStats {
  switchesUp = 0;
  switchesDown = 0;
  relayPlis = 0;
}

/**
 * Decides per (packet, receiver) whether a packet of `sender` goes to a
 * receiver. `videoSenders` is how many senders share the receiver's
 * bandwidth budget.
 */
export function admitVideo(
  d: Downstream,
  prefs: SubscriptionPrefs,
  rx: ReceiverPrefs,
  sv: SenderVideo,
  h: MediaHeader,
  frameStart: boolean,
  nowMs: number,
  videoSenders: number,
  events: LayerEvents,
  stats: LayerStats,
): Admit {
  if (!prefs.video) {
    d.layer = -1;
    d.target = -1;
    return Admit.Drop;
  }
  const s = h.streamId;
  if (s > MAX_LAYER) {
    return Admit.Forward;
  }
  if (d.prefsEpoch !== rx.epoch || d.senderEpoch !== sv.epoch) {
    retarget(d, prefs, rx, sv, nowMs, videoSenders);
  }
  const t = d.target;
  if (t < 0) {
    d.layer = -1;
    return Admit.Drop;
  }
  if (s === d.layer) {
    if ((h.flags & FLAG_REPAIR) === 0) {
      d.frameDone = (h.flags & FLAG_FRAME_END) !== 0;
    }
    return Admit.Forward;
  }
  if (s !== t) {
    return Admit.Drop;
  }
  const key = (h.flags & FLAG_KEYFRAME) !== 0 && (h.flags & FLAG_REPAIR) === 0;
  if (t > d.layer) {
    if (key && frameStart) {
      switchTo(d, t, h, stats, true);
      return Admit.Switch;
    }
    if (!d.pliSent && nowMs - d.pendingSince >= KEYFRAME_WAIT_MS) {
      d.pliSent = true;
      stats.relayPlis++;
      events.needKeyframe(t);
    }
    return Admit.Drop;
  }
  // Down: at a frame boundary of both layers.
  if (frameStart && d.frameDone && (h.flags & FLAG_REPAIR) === 0) {
    switchTo(d, t, h, stats, false);
    if (!key) {
      stats.relayPlis++;
      events.needKeyframe(t);
    }
    return Admit.Switch;
  }
  return Admit.Drop;
}

function switchTo(
  d: Downstream,
  layer: number,
  h: MediaHeader,
  stats: LayerStats,
  up: boolean,
): void {
  if (up) {
    d.switchesUp++;
    stats.switchesUp++;
  } else {
    d.switchesDown++;
    stats.switchesDown++;
  }
  d.layer = layer;
  d.pliSent = false;
  d.frameDone = (h.flags & FLAG_FRAME_END) !== 0;
  // The receiver's MINI context now follows another stream: next frames chain again from here.
  d.lastFrame = -2;
}

/** Recomputes the target layer of a flow (on a subscription, feedback or availability change). */
export function retarget(
  d: Downstream,
  prefs: SubscriptionPrefs,
  rx: ReceiverPrefs,
  sv: SenderVideo,
  nowMs: number,
  videoSenders: number,
): void {
  if (d.prefsEpoch !== rx.epoch && rx.feedbacks > 0 && d.bwEpoch !== rx.feedbacks) {
    d.bwEpoch = rx.feedbacks;
    bandwidthStep(d, rx, sv, nowMs, videoSenders);
  }
  d.prefsEpoch = rx.epoch;
  d.senderEpoch = sv.epoch;
  const limit = Math.min(prefs.maxLayer, rx.feedbacks > 0 ? d.bwLayer : MAX_LAYER);
  let t = -1;
  for (let l = limit; l >= 0; l--) {
    if (sv.isAvailable(l)) {
      t = l;
      break;
    }
  }
  if (t < 0) {
    for (let l = limit + 1; l <= prefs.maxLayer; l++) {
      if (sv.isAvailable(l)) {
        t = l;
        break;
      }
    }
  }
  if (t !== d.target) {
    d.target = t;
    if (t > d.layer) {
      d.pendingSince = nowMs;
      d.pliSent = false;
    }
  }
}

/** One TransportFeedback's effect on the bandwidth layer (the hysteresis rule in subscriptions.ts). */
function bandwidthStep(
  d: Downstream,
  rx: ReceiverPrefs,
  sv: SenderVideo,
  nowMs: number,
  videoSenders: number,
): void {
  let budget = rx.rembBps / Math.max(1, videoSenders);
  const current = d.layer >= 0 ? d.layer : d.bwLayer;
  if (rx.lossShare > LOSS_DOWN_SHARE) {
    budget = Math.min(budget, (1 - rx.lossShare) * (sv.rateBps[current] as number));
  }
  let cur = Math.min(d.bwLayer, MAX_LAYER);
  while (cur > 0 && (!sv.isAvailable(cur) || (sv.rateBps[cur] as number) > budget)) {
    cur--;
  }
  if (cur < d.bwLayer) {
    d.bwLayer = cur;
    d.upSince = -1;
    d.upFeedbacks = 0;
    return;
  }
  let next = -1;
  for (let l = cur + 1; l <= MAX_LAYER; l++) {
    if (sv.isAvailable(l)) {
      next = l;
      break;
    }
  }
  if (next < 0) {
    // Nothing above is sent now: do not cap what may come.
    d.upSince = -1;
    d.upFeedbacks = 0;
    return;
  }
  if ((sv.rateBps[next] as number) * UP_HEADROOM <= budget) {
    if (d.upSince < 0) {
      d.upSince = nowMs;
      d.upFeedbacks = 1;
    } else {
      d.upFeedbacks++;
    }
    if (nowMs - d.upSince >= UP_HOLD_MS && d.upFeedbacks >= 2) {
      d.bwLayer = next;
      d.upSince = -1;
      d.upFeedbacks = 0;
    }
  } else {
    d.upSince = -1;
    d.upFeedbacks = 0;
  }
}

/** True for a packet the layer selector governs (video on a simulcast layer). */
export function isLayerPacket(h: MediaHeader): boolean {
  return h.mediaType === MediaType.Video && h.streamId <= MAX_LAYER;
}
