/**
 * The per-datagram hot path of the relay.
 *
 * Synchronous and total: every datagram is either handled or dropped with
 * a counted reason; nothing here awaits, locks, throws on bad input, or
 * arms a timer per packet. Rooms are read through their published immutable
 * snapshot. Counters are plain integers, bridged to Prometheus at scrape
 * time (see `EngineStats`).
 *
 * Forwarding (protocol/BINDING.md §5): each received compact frame goes to
 * every other bound, subscribed participant of the room as a TRUNK entry
 * tagged with the sender's participant tag. A MINI frame goes unchanged to
 * receivers that already hold the sender's baseline; the others get it
 * expanded to FULL (built once per datagram and shared).
 */
import type { RemoteInfo } from 'node:dgram';
import { AddressMap } from '../util/address-map.js';
import { DeadlineQueue } from '../util/deadline-queue.js';
import { BufferSlab } from '../util/slab.js';
import {
  BIND_MIN_SIZE,
  bindTokenHex,
  type CompactView,
  checkBind,
  checkBindChallenge,
  checkPingDatagram,
  createCompactView,
  encodeBindAck,
  FLAG_KEYFRAME,
  FLAG_REPAIR,
  FrameType,
  fullFrameSize,
  MAX_FORWARDED_FULL_FRAME,
  MediaType,
  readCompact,
  TRUNK_ENTRY_OVERHEAD,
  TrunkBatcher,
  type WireErrorCode,
  writeFullFrameUnchecked,
} from '../wire/index.js';
import { BindGuard, type BindGuardOptions } from './bind.js';
import type { DatagramPath } from './datagram-path.js';
import { DEFAULT_KEYFRAME_LIMITS, KeyframeCache, type KeyframeLimits } from './keyframe-cache.js';
import {
  Admit,
  admitVideo,
  type LayerEvents,
  LayerStats,
  retarget,
  type SenderVideo,
} from './layer-selector.js';
import { Policer, type PolicingConfig, type PolicingKind, type PolicingTier } from './policer.js';
import { type FanoutPlan, Session } from './session.js';
import { type Downstream, MAX_LAYER, type SubscriptionChange } from './subscriptions.js';
import type { UdpDestination } from './udp-io.js';

/** Why a datagram was dropped (label values of wzp_relay_datagrams_dropped_total). */
export type DropReason =
  | 'unbound'
  | 'unknown_frame_type'
  | 'malformed'
  | 'no_baseline'
  | 'not_permitted'
  | 'bind_unknown_token'
  | 'bind_too_short'
  | 'bind_rate_limited'
  | 'bind_bad_challenge'
  | 'bind_expired'
  | 'bad_control'
  | 'oversize'
  | 'policed'
  | 'draining';

export const DROP_REASONS: readonly DropReason[] = [
  'unbound',
  'unknown_frame_type',
  'malformed',
  'no_baseline',
  'not_permitted',
  'bind_unknown_token',
  'bind_too_short',
  'bind_rate_limited',
  'bind_bad_challenge',
  'bind_expired',
  'bad_control',
  'oversize',
  'policed',
  'draining',
];

/** Plain counters of the engine, read by the metrics bridge at scrape time. */
export class EngineStats {
  datagramsIn = 0;
  bytesIn = 0;
  mediaIn = 0;
  packetsForwarded = 0;
  bytesForwarded = 0;
  datagramsOut = 0;
  trunkFrames = 0;
  trunkEntries = 0;
  binds = 0;
  rebinds = 0;
  /** BIND_CHALLENGEs sent (return-path validation). */
  bindChallenges = 0;
  /** Valid BIND_CONFIRMs (each answered with BIND_ACK). */
  bindConfirms = 0;
  pings = 0;
  /** ResyncRequests applied. */
  resyncs = 0;
  /**
   * MINI frames sent expanded to FULL, per receiver, by cause (BINDING.md §4.6):
   * the receiver did not get the previous frame (join, layer switch, subscription,
   * the frame after a ResyncRequest), the resync window, the anchor.
   */
  fullChain = 0;
  fullResync = 0;
  fullAnchor = 0;
  /** Bytes forwarded by media type (index = media_type). */
  readonly bytesByMediaType = [0, 0, 0, 0];
  readonly dropped: Record<DropReason, number> = {
    unbound: 0,
    unknown_frame_type: 0,
    malformed: 0,
    no_baseline: 0,
    not_permitted: 0,
    bind_unknown_token: 0,
    bind_too_short: 0,
    bind_rate_limited: 0,
    bind_bad_challenge: 0,
    bind_expired: 0,
    bad_control: 0,
    oversize: 0,
    policed: 0,
    draining: 0,
  };
  /** Malformed media by wire error code. */
  readonly malformedByCode = new Map<WireErrorCode, number>();
  /** Histogram of fan-out sizes: index = recipients (last bucket = that many or more). */
  readonly fanout = new Float64Array(65);
}

export interface TrunkingOptions {
  enabled: boolean;
  maxEntries: number;
  mtu: number;
  flushMs: number;
}

/** The federation media plane as the engine sees it (implemented in src/federation). */
export interface FederationPlane {
  /** A local sender's frame in a global room, after local fan-out: send it to peers. */
  egress(sender: Session, msg: Buffer, view: CompactView): void;
  /** A FEDERATION (0x03) datagram arrived. */
  ingress(msg: Buffer, rinfo: RemoteInfo): void;
  /**
   * The live link whose local bind token a BIND/BIND_CONFIRM carries (it
   * owns the challenge budget), or null. Links validate like sessions.
   */
  bindLink(msg: Buffer): object | null;
  /** A validated BIND_CONFIRM of a link's token from `rinfo`: bind the link there and acknowledge. */
  bind(msg: Buffer, rinfo: RemoteInfo): boolean;
  /** A BIND_CHALLENGE arrived (this relay binds at a peer): true when a link confirmed it. */
  bindChallenge(msg: Buffer, rinfo: RemoteInfo): boolean;
  /** A BIND_ACK from an address that is no session's: true when a link expected it. */
  bindAck(msg: Buffer, rinfo: RemoteInfo): boolean;
}

export interface MediaEngineOptions {
  /** Sends one datagram (scatter/gather pieces) to a UDP destination. */
  send: (data: Buffer | readonly Buffer[], port: number, address: string) => void;
  /**
   * Sends `prefix ‖ buf` to `destinations[0 .. count)` (src/media/udp-io.ts:
   * one sendmmsg on the native path). Default: `send` to each. `prefix` is
   * the engine's scratch buffer, valid only during the call: an
   * implementation that keeps it (a send queue) copies it.
   */
  sendMany?: (
    prefix: Buffer | null,
    buf: Buffer,
    destinations: readonly UdpDestination[],
    count: number,
  ) => void;
  trunking: TrunkingOptions;
  /** Monotonic milliseconds. */
  now?: () => number;
  /** A session's quality tier changed (control path: broadcast a directive if the room tier moved). */
  onTierChange?: (session: Session) => void;
  /** A BIND moved a session to a new address (logging). */
  onRebind?: (session: Session, from: string | null, to: string) => void;
  /** Return-path validation limits (src/media/bind.ts); defaults below. */
  bind?: Partial<BindGuardOptions>;
  /** Keyframe cache bounds (keyframe-cache.ts). */
  keyframeLimits?: KeyframeLimits;
  /**
   * The relay wants a keyframe of `sender`'s video `streamId` (a receiver
   * switches up to it, or joined without a cached keyframe). Control path:
   * sends a PLI to the sender (or across federation), with suppression.
   */
  onKeyframeNeeded?: (sender: Session, streamId: number) => void;
  /**
   * `sender` sent its first (non-repair) video on `streamId` (once per stream
   * id: a media worker tells the main thread, which routes PLIs).
   */
  onVideoStream?: (sender: Session, streamId: number) => void;
  /** Loss resilience of compact framing towards receivers (BINDING.md §4.6); defaults below. */
  resync?: Partial<ResyncOptions>;
  /** Media policing (src/media/policer.ts): limits and the control-plane hooks. */
  policing?: Partial<PolicingConfig>;
  policingHooks?: {
    onWarn?: (session: Session, tier: PolicingTier, kind: PolicingKind) => void;
    onViolation?: (session: Session, code: string, reason: string) => void;
  };
}

/** Loss resilience of the relay→receiver MINI chains (BINDING.md §4.6). */
export interface ResyncOptions {
  /**
   * Anchored FULL: every frame of a sender whose frame number (counted by the
   * relay over the sender's whole flow) is a multiple of this goes FULL to every
   * receiver, so a receiver that lost a datagram is back in sync within this many
   * frames without asking. 0 turns it off.
   */
  anchorFrames: number;
  /**
   * After a receiver's ResyncRequest for a sender, every frame of that sender
   * goes FULL to that receiver for this long (ms): a receiver that reports loss
   * gets frames that need no chain. 0: only the next frame goes FULL.
   */
  fullMs: number;
}

/** Defaults of the resync options (config keys resync_anchor_frames, resync_full_ms). */
export const RESYNC_DEFAULTS: ResyncOptions = { anchorFrames: 10, fullMs: 5000 };

/** Defaults of the bind guard (config keys bind_challenge_ttl_ms, bind_*_rate). */
export const BIND_DEFAULTS: BindGuardOptions = {
  challengeTtlMs: 5000,
  challengeRate: 10,
  unknownRate: 20,
};

export class MediaEngine {
  readonly stats = new EngineStats();
  private readonly send: MediaEngineOptions['send'];
  private readonly sendMany: NonNullable<MediaEngineOptions['sendMany']>;
  /** The UDP receivers of one input packet (grown to the largest fan-out, reused). */
  private readonly batch: Session[] = [];
  /** Those of them that get the MINI frame expanded to FULL. */
  private readonly batchExpanded: Session[] = [];
  private readonly trunking: TrunkingOptions;
  private readonly now: () => number;
  private readonly onTierChange: ((session: Session) => void) | undefined;
  private readonly onRebind: MediaEngineOptions['onRebind'];
  private readonly byToken = new Map<string, Session>();
  private readonly byAddress = new AddressMap<Session>();
  private readonly view: CompactView = createCompactView();
  private readonly flushQueue: DeadlineQueue | null;
  private readonly remoteView: CompactView = createCompactView();
  /** Return-path validation of BINDs (challenges, per-source limits). */
  readonly bindGuard: BindGuard;
  /** Media policing per session and kind (tiers A-E). */
  readonly policer: Policer;
  /** Set by the federation when it starts. */
  federation: FederationPlane | null = null;
  /** Last complete keyframe per (sender, video stream). */
  readonly keyframes: KeyframeCache;
  readonly layerStats = new LayerStats();
  private readonly onKeyframeNeeded: MediaEngineOptions['onKeyframeNeeded'];
  private readonly onVideoStream: MediaEngineOptions['onVideoStream'];
  readonly resyncOptions: ResyncOptions;
  /** Backing store of expanded (MINI → FULL) frames: a view per datagram, no copy. */
  private readonly slab = new BufferSlab();
  /** The single-entry trunk prefix of the packet being fanned out (sendMany copies what it keeps). */
  private readonly prefixScratch = Buffer.alloc(SINGLE_PREFIX);
  /** The sender of the packet being fanned out (for `layerEvents`). */
  private current: Session | null = null;
  private readonly layerEvents: LayerEvents = {
    needKeyframe: (layer: number): void => {
      const sender = this.current;
      if (sender !== null) {
        this.onKeyframeNeeded?.(sender, layer);
      }
    },
  };

  constructor(options: MediaEngineOptions) {
    this.send = options.send;
    this.sendMany =
      options.sendMany ??
      ((prefix, buf, destinations, count) => {
        const p = prefix === null ? null : Buffer.from(prefix);
        for (let i = 0; i < count; i++) {
          const d = destinations[i] as UdpDestination;
          if (d.address !== null) {
            this.send(p === null ? buf : [p, buf], d.port, d.address);
          }
        }
      });
    this.trunking = options.trunking;
    this.now = options.now ?? (() => performance.now());
    this.onTierChange = options.onTierChange;
    this.onRebind = options.onRebind;
    this.bindGuard = new BindGuard({ ...BIND_DEFAULTS, ...options.bind });
    this.onKeyframeNeeded = options.onKeyframeNeeded;
    this.onVideoStream = options.onVideoStream;
    this.resyncOptions = { ...RESYNC_DEFAULTS, ...options.resync };
    this.keyframes = new KeyframeCache(options.keyframeLimits ?? DEFAULT_KEYFRAME_LIMITS);
    const hooks = options.policingHooks;
    this.policer = new Policer(options.policing, {
      ...(hooks?.onWarn === undefined
        ? {}
        : { onWarn: (o, tier, kind) => hooks.onWarn?.(o as Session, tier, kind) }),
      ...(hooks?.onViolation === undefined
        ? {}
        : { onViolation: (o, code, reason) => hooks.onViolation?.(o as Session, code, reason) }),
    });
    this.flushQueue = options.trunking.enabled
      ? new DeadlineQueue(options.trunking.flushMs, this.now)
      : null;
  }

  /** Number of registered sessions. */
  get sessionCount(): number {
    return this.byToken.size;
  }

  /** Makes a session reachable by its bind token. */
  register(session: Session): void {
    this.byToken.set(session.bindKey, session);
  }

  /** Forgets a session (flushing what is batched for it). Idempotent. */
  unregister(session: Session): void {
    session.closed = true;
    session.batcher?.flush();
    if (this.byToken.get(session.bindKey) === session) {
      this.byToken.delete(session.bindKey);
    }
    this.unmapAddress(session);
    // Flows from this sender die with it, and its keyframes; flows to it too.
    session.av.forgetAll();
    this.keyframes.dropSender(session.av.keyframes);
    const snapshot = session.room.snapshot;
    for (let i = 0; i < snapshot.length; i++) {
      const other = snapshot[i]?.sink;
      if (other !== undefined) {
        other.av.forget(session);
        session.av.rx.forget(other.tag);
      }
    }
  }

  /** Looks up the session bound to a UDP source. */
  sessionAt(address: string, port: number): Session | undefined {
    return this.byAddress.get(port, address);
  }

  /** Flushes every pending trunk batch now (shutdown). */
  flushAll(): void {
    this.flushQueue?.drainAll();
    for (const s of this.byToken.values()) {
      s.batcher?.flush();
    }
  }

  /** Stops timers. */
  close(): void {
    this.flushAll();
    this.flushQueue?.close();
  }

  /**
   * Entry point for every datagram received on the media socket, or on a
   * stream path (`path`, whose `rinfo` is the source).
   */
  onDatagram(msg: Buffer, rinfo: RemoteInfo, path: DatagramPath | null = null): void {
    const stats = this.stats;
    stats.datagramsIn++;
    stats.bytesIn += msg.length;
    const type = msg.length > 0 ? (msg[0] as number) : -1;
    if (type === FrameType.Full || type === FrameType.Mini) {
      this.onMedia(msg, rinfo);
    } else if (type === FrameType.Bind) {
      this.onBind(msg, rinfo, path);
    } else if (type === FrameType.BindConfirm) {
      this.onBindConfirm(msg, rinfo, path);
    } else if (type === FrameType.BindChallenge) {
      if (path !== null || this.federation?.bindChallenge(msg, rinfo) !== true) {
        stats.dropped.unbound++;
      }
    } else if (type === FrameType.Ping) {
      this.onPing(msg, rinfo, path);
    } else if (type === FrameType.Federation) {
      if (this.federation === null || path !== null) {
        stats.dropped.unknown_frame_type++;
      } else {
        this.federation.ingress(msg, rinfo);
      }
    } else if (type === FrameType.Pong || type === FrameType.BindAck) {
      const s = this.sessionAt(rinfo.address, rinfo.port);
      if (s !== undefined) {
        s.lastDatagramMs = this.now();
      } else if (
        type !== FrameType.BindAck ||
        this.federation === null ||
        path !== null ||
        !this.federation.bindAck(msg, rinfo)
      ) {
        stats.dropped.unbound++;
      }
    } else {
      stats.dropped.unknown_frame_type++;
    }
  }

  private onMedia(msg: Buffer, rinfo: RemoteInfo): void {
    const stats = this.stats;
    const sender = this.sessionAt(rinfo.address, rinfo.port);
    if (sender === undefined || sender.closed) {
      stats.dropped.unbound++;
      return;
    }
    const now = this.now();
    sender.lastDatagramMs = now;
    const view = this.view;
    const bad = readCompact(msg, 0, msg.length, sender.ctx, view);
    if (bad !== null) {
      if (bad === 'WIRE_NO_BASELINE') {
        stats.dropped.no_baseline++;
      } else {
        stats.dropped.malformed++;
        stats.malformedByCode.set(bad, (stats.malformedByCode.get(bad) ?? 0) + 1);
      }
      return;
    }
    if (!sender.canPublish) {
      stats.dropped.not_permitted++;
      return;
    }
    if (!this.admit(sender, msg, view, now)) {
      return;
    }
    stats.mediaIn++;
    sender.packetsIn++;
    sender.bytesIn += msg.length;
    const h = view.header;
    const q = view.hasQuality;
    if (
      sender.observer.observe(
        h,
        msg.length,
        now,
        q ? view.quality.lossPct : -1,
        q ? view.quality.rtt4ms : -1,
      )
    ) {
      this.onTierChange?.(sender);
    }
    this.fanOut(sender, msg, view);
    if (sender.globalRoom !== null && this.federation !== null) {
      this.federation.egress(sender, msg, view);
    }
  }

  /**
   * Ingress limits of a decoded frame before any fan-out: a frame whose
   * forwarded form cannot fit one datagram (issue 12 item 8), then media
   * policing (src/media/policer.ts). Both drop and count.
   */
  private admit(sender: Session, msg: Buffer, view: CompactView, now: number): boolean {
    const full =
      view.frameType === FrameType.Mini ? fullFrameSize(view.payloadLength, false) : msg.length;
    if (full > MAX_FORWARDED_FULL_FRAME) {
      this.stats.dropped.oversize++;
      return false;
    }
    if (!this.policer.admit(sender, view.header, view.payloadLength, now)) {
      this.stats.dropped.policed++;
      return false;
    }
    return true;
  }

  /**
   * Forwards a FULL compact frame of a participant of another relay
   * (federation ingress) to the local participants of its room. `frame`
   * must already be validated. Returns false if it does not decode.
   */
  forwardRemote(sender: Session, frame: Buffer): boolean {
    const view = this.remoteView;
    if (readCompact(frame, 0, frame.length, sender.ctx, view) !== null) {
      return false;
    }
    sender.packetsIn++;
    sender.bytesIn += frame.length;
    this.fanOut(sender, frame, view);
    return true;
  }

  // ── control-plane inputs (signalling → media plane) ────────────────────

  /** A receiver's SubscriptionUpdate (BINDING.md §6.3). */
  subscription(receiver: Session, change: SubscriptionChange): void {
    receiver.av.rx.apply(change);
  }

  /** A receiver's TransportFeedback (BINDING.md §6.4). */
  feedback(receiver: Session, rembBps: number, acked: number, nacked: number): void {
    receiver.av.rx.feedback({ rembBps, acked, nacked, nowMs: this.now() });
  }

  /**
   * A receiver lost sync with sender `tag` (ResyncRequest, BINDING.md §4.6):
   * that sender's next frame goes FULL to it, and so does every frame for
   * `resync.fullMs`. False if no such sender.
   */
  resync(receiver: Session, tag: number): boolean {
    const sender = senderByTag(receiver.room.snapshot, tag);
    if (sender === null || sender === receiver || sender.closed) {
      return false;
    }
    const d = sender.av.downstream(receiver);
    d.lastFrame = -2;
    d.fullUntil = this.now() + this.resyncOptions.fullMs;
    this.stats.resyncs++;
    return true;
  }

  /** Per-packet video bookkeeping before the fan-out; returns the sender's video state or null. */
  private videoIn(
    sender: Session,
    msg: Buffer,
    view: CompactView,
    now: number,
  ): SenderVideo | null {
    const h = view.header;
    if (h.mediaType !== MediaType.Video) {
      return null;
    }
    const av = sender.av;
    if ((h.flags & FLAG_REPAIR) === 0) {
      const w = h.streamId >>> 5;
      const bits = av.videoStreams[w] as number;
      const bit = 1 << (h.streamId & 31);
      if ((bits & bit) === 0) {
        av.videoStreams[w] = bits | bit;
        this.onVideoStream?.(sender, h.streamId);
      }
    }
    if (
      (h.flags & FLAG_REPAIR) === 0 &&
      ((h.flags & FLAG_KEYFRAME) !== 0 || av.keyframes !== null)
    ) {
      av.keyframes ??= [];
      this.keyframes.observe(av.keyframes, sender.room, msg, view);
    }
    if (h.streamId > MAX_LAYER) {
      return null;
    }
    const sv = av.senderVideo();
    sv.refresh(now);
    sv.before(h, now);
    return sv;
  }

  /**
   * Sends `sender`'s cached keyframe of the layer `receiver` will get, as
   * FULL frames, right after the receiver's first BIND (BINDING.md §6.2).
   */
  private replayKeyframes(receiver: Session): void {
    if (!receiver.canSubscribe) {
      return;
    }
    const now = this.now();
    const snapshot = receiver.room.snapshot;
    for (let i = 0; i < snapshot.length; i++) {
      const sender = (snapshot[i] as { readonly sink: Session }).sink;
      const sv = sender.av.video;
      if (sender === receiver || sender.closed || sv === null) {
        continue;
      }
      const prefs = receiver.av.rx.prefsFor(sender.tag);
      const d = sender.av.downstream(receiver);
      retarget(d, prefs, receiver.av.rx, sv, now, 1);
      if (d.target < 0 || !prefs.video) {
        continue;
      }
      const slot = this.keyframes.get(sender.av.keyframes, d.target);
      if (slot === null || slot.frames === null) {
        this.keyframes.stats.misses++;
        continue;
      }
      this.keyframes.stats.hits++;
      for (const frame of slot.frames) {
        this.deliver(receiver, sender.tag, frame, null);
        d.bytes += frame.length;
        d.packets++;
      }
      d.layer = d.target;
      d.frameDone = true;
      d.lastFrame = -2;
    }
  }

  /**
   * `fanOut` for audio without trunking, the bulk of all traffic: the same
   * decisions and counters, over the sender's fan-out plan (the receivers that
   * want its audio and their flows, resolved once per room snapshot and
   * subscription change) instead of the snapshot, so a packet touches no
   * subscription state. When every receiver takes the frame unchanged over
   * UDP, as they do between changes, the plan's own receiver array is the
   * send's destination list: nothing is written per receiver but its counters.
   */
  private fanOutAudio(
    sender: Session,
    msg: Buffer,
    view: CompactView,
    isMini: boolean,
    anchor: boolean,
    frameNo: number,
    now: number,
  ): void {
    const stats = this.stats;
    const plan = this.planFor(sender);
    const receivers = plan.receivers;
    const downs = plan.downs;
    const tag = sender.tag;
    let expanded: Buffer | null = null;
    let prefix: Buffer | null = null;
    let sent = 0;
    let bytes = 0;
    const batch = this.batch;
    const batchExpanded = this.batchExpanded;
    // While every receiver so far goes into the plain UDP batch, `receivers`
    // itself is that batch (its first nBatch entries); copied on the first one that does not.
    let inPlace = true;
    let nBatch = 0;
    let nExpanded = 0;
    for (let k = 0; k < receivers.length; k++) {
      const r = receivers[k] as Session;
      const d = downs[k] as Downstream;
      const skip = (r.address === null && r.path === null) || r.closed || !r.canSubscribe;
      const full = !skip && isMini && (anchor || d.lastFrame !== frameNo - 1 || d.fullUntil > now);
      if (inPlace && (skip || full || r.path !== null)) {
        inPlace = false;
        for (let j = 0; j < nBatch; j++) {
          batch[j] = receivers[j] as Session;
        }
      }
      if (skip) {
        continue;
      }
      let n: number;
      if (full) {
        expanded ??= this.expandToFull(msg, view, tag);
        if (d.lastFrame !== frameNo - 1) {
          stats.fullChain++;
        } else if (d.fullUntil > now) {
          stats.fullResync++;
        } else {
          stats.fullAnchor++;
        }
        if (r.path === null) {
          batchExpanded[nExpanded++] = r;
        } else {
          r.path.send(expanded);
        }
        n = expanded.length - SINGLE_PREFIX;
      } else {
        if (r.path !== null) {
          prefix ??= singleEntryPrefix(tag, msg.length);
          r.path.send([prefix, msg]);
        } else if (inPlace) {
          nBatch++;
        } else {
          batch[nBatch++] = r;
        }
        n = msg.length;
      }
      d.lastFrame = frameNo;
      sent++;
      bytes += n;
      r.packetsOut++;
      r.bytesOut += n;
      d.bytes += n;
      d.packets++;
    }
    stats.datagramsOut += sent;
    stats.trunkFrames += sent;
    stats.trunkEntries += sent;
    this.sendFanOut(tag, msg, inPlace ? receivers : batch, !inPlace, nBatch, expanded, nExpanded);
    this.countFanOut(MediaType.Audio, sent, bytes);
  }

  /**
   * Sends one fan-out: `msg` behind a single-entry prefix to `nBatch`
   * destinations (the engine's batch, cleared after, or a plan's own array),
   * and the FULL expansion to the receivers in `batchExpanded`. No allocation:
   * sendMany reads the prefix during the call only.
   */
  private sendFanOut(
    tag: number,
    msg: Buffer,
    destinations: Session[],
    clearAfter: boolean,
    nBatch: number,
    expanded: Buffer | null,
    nExpanded: number,
  ): void {
    if (nBatch > 0) {
      const scratch = this.prefixScratch;
      writeSinglePrefix(scratch, 0, tag, msg.length);
      this.sendMany(scratch, msg, destinations, nBatch);
      if (clearAfter) {
        clearBatch(destinations, nBatch);
      }
    }
    if (nExpanded > 0) {
      const batchExpanded = this.batchExpanded;
      this.sendMany(null, expanded as Buffer, batchExpanded, nExpanded);
      clearBatch(batchExpanded, nExpanded);
    }
  }

  /** Counts one input's fan-out: packets, bytes by media type, the fan-out histogram. */
  private countFanOut(mediaType: number, sent: number, bytes: number): void {
    const stats = this.stats;
    stats.packetsForwarded += sent;
    stats.bytesForwarded += bytes;
    const bm = stats.bytesByMediaType;
    bm[mediaType] = (bm[mediaType] as number) + bytes;
    const fan = stats.fanout;
    const bucket = sent < fan.length ? sent : fan.length - 1;
    fan[bucket] = (fan[bucket] as number) + 1;
  }

  /** The sender's fan-out plan for its room's current snapshot, rebuilt after any change. */
  private planFor(sender: Session): FanoutPlan {
    const snapshot = sender.room.snapshot;
    const cached = sender.fanout;
    if (cached !== null && cached.snapshot === snapshot) {
      return cached;
    }
    const receivers: Session[] = [];
    const downs: Downstream[] = [];
    const tag = sender.tag;
    for (let i = 0; i < snapshot.length; i++) {
      const r = (snapshot[i] as { readonly sink: Session }).sink;
      // A closed receiver never reopens; leaving it out also keeps a flow
      // from being created again after unregister forgot it.
      if (r !== sender && !r.closed && r.av.rx.prefsFor(tag).audio) {
        receivers.push(r);
        downs.push(sender.av.downstream(r));
      }
    }
    const plan: FanoutPlan = { snapshot, receivers, downs };
    sender.fanout = plan;
    return plan;
  }

  /** Sends one compact frame to a receiver as a TRUNK entry (batched when trunking). */
  private deliver(r: Session, tag: number, frame: Buffer, prefix: Buffer | null): void {
    const stats = this.stats;
    if (this.trunking.enabled) {
      this.pushTrunk(r, tag, frame);
    } else {
      const pieces = [prefix ?? singleEntryPrefix(tag, frame.length), frame];
      if (r.path === null) {
        if (r.address !== null) {
          this.send(pieces, r.port, r.address);
        }
      } else {
        r.path.send(pieces);
      }
      stats.datagramsOut++;
      stats.trunkFrames++;
      stats.trunkEntries++;
    }
    r.packetsOut++;
    r.bytesOut += frame.length;
  }

  private fanOut(sender: Session, msg: Buffer, view: CompactView): void {
    const stats = this.stats;
    const snapshot = sender.room.snapshot;
    const isMini = view.frameType === FrameType.Mini;
    const trunking = this.trunking.enabled;
    const tag = sender.tag;
    const av = sender.av;
    const frameNo = ++av.frameNo;
    const h = view.header;
    const now = this.now();
    const sv = this.videoIn(sender, msg, view, now);
    const frameStart = sv?.frameStart(h) === true;
    const isAudio = h.mediaType === MediaType.Audio;
    const anchorEvery = this.resyncOptions.anchorFrames;
    // Anchored FULL (BINDING.md §4.6): the same frame for every receiver, so one expansion serves all.
    const anchor = isMini && anchorEvery > 0 && frameNo % anchorEvery === 0;
    if (isAudio && !trunking) {
      this.fanOutAudio(sender, msg, view, isMini, anchor, frameNo, now);
      return;
    }
    let videoSenders = -1;
    this.current = sender;
    // Lazily built, shared by every receiver that needs the same bytes.
    let prefix: Buffer | null = null;
    let expanded: Buffer | null = null;
    let sent = 0;
    let bytes = 0;
    // Non-trunking: the receivers are collected, then each group leaves in one sendMany.
    const batch = this.batch;
    const batchExpanded = this.batchExpanded;
    let nBatch = 0;
    let nExpanded = 0;
    for (let i = 0; i < snapshot.length; i++) {
      const r = (snapshot[i] as { readonly sink: Session }).sink;
      if (r === sender || (r.address === null && r.path === null) || r.closed || !r.canSubscribe) {
        continue;
      }
      const d = av.downstream(r);
      if (isAudio) {
        if (!r.av.rx.prefsFor(tag).audio) {
          continue;
        }
      } else if (sv !== null) {
        if (videoSenders < 0) {
          videoSenders = countVideoSenders(snapshot, r);
        }
        const admit = admitVideo(
          d,
          r.av.rx.prefsFor(tag),
          r.av.rx,
          sv,
          h,
          frameStart,
          now,
          videoSenders,
          this.layerEvents,
          this.layerStats,
        );
        if (admit === Admit.Drop) {
          continue;
        }
      } else if (h.mediaType === MediaType.Video && !r.av.rx.prefsFor(tag).video) {
        continue;
      }
      let frame = msg;
      // A MINI chains on the sender's previous frame: it goes unchanged only to
      // receivers that got that frame (and are not due a FULL, §4.6); the others
      // get it expanded to FULL.
      if (isMini && (anchor || d.lastFrame !== frameNo - 1 || d.fullUntil > now)) {
        expanded ??= this.expandToFull(msg, view, tag);
        frame = expanded;
        if (d.lastFrame !== frameNo - 1) {
          stats.fullChain++;
        } else if (d.fullUntil > now) {
          stats.fullResync++;
        } else {
          stats.fullAnchor++;
        }
      }
      d.lastFrame = frameNo;
      if (trunking) {
        this.pushTrunk(r, tag, frame);
      } else if (frame === msg) {
        if (r.path === null) {
          batch[nBatch++] = r;
        } else {
          prefix ??= singleEntryPrefix(tag, msg.length);
          r.path.send([prefix, msg]);
        }
        stats.datagramsOut++;
        stats.trunkFrames++;
        stats.trunkEntries++;
      } else {
        // `expanded` already carries its own single-entry trunk prefix.
        if (r.path === null) {
          batchExpanded[nExpanded++] = r;
        } else {
          r.path.send(frame);
        }
        stats.datagramsOut++;
        stats.trunkFrames++;
        stats.trunkEntries++;
      }
      sent++;
      const n = trunking || frame === msg ? frame.length : frame.length - SINGLE_PREFIX;
      bytes += n;
      r.packetsOut++;
      r.bytesOut += n;
      d.bytes += n;
      d.packets++;
    }
    this.current = null;
    if (sv !== null) {
      sv.after(h, msg.length, now);
    }
    this.sendFanOut(tag, msg, batch, true, nBatch, expanded, nExpanded);
    this.countFanOut(h.mediaType & 3, sent, bytes);
  }

  /**
   * Builds the FULL form of the MINI frame in `view` for receivers without
   * the sender's baseline. In non-trunking mode the buffer starts with the
   * single-entry trunk prefix so it can be sent as is.
   */
  private expandToFull(msg: Buffer, view: CompactView, tag: number): Buffer {
    const payload = msg.subarray(view.payloadOffset, view.payloadOffset + view.payloadLength);
    const frameLen = fullFrameSize(view.payloadLength, false);
    if (this.trunking.enabled) {
      const buf = this.slab.take(frameLen);
      writeFullFrameUnchecked(view.header, payload, null, buf, 0);
      return buf;
    }
    const buf = this.slab.take(SINGLE_PREFIX + frameLen);
    writeSinglePrefix(buf, 0, tag, frameLen);
    writeFullFrameUnchecked(view.header, payload, null, buf, SINGLE_PREFIX);
    return buf;
  }

  private pushTrunk(r: Session, tag: number, frame: Buffer): void {
    let b = r.batcher;
    if (b === null) {
      b = this.createBatcher(r);
    }
    b.push(tag, frame);
    if (b.pendingEntries === 1) {
      // A new batch began with this entry: it must leave within flushMs.
      (this.flushQueue as DeadlineQueue).add(r.flushItem, r.batchGeneration);
    }
  }

  private createBatcher(r: Session): TrunkBatcher {
    const stats = this.stats;
    const b = new TrunkBatcher({
      maxEntries: this.trunking.maxEntries,
      maxBytes: this.trunking.mtu,
      prefixByte: FrameType.Trunk,
      onFlush: (frame, entries) => {
        r.batchGeneration++;
        if (r.path !== null) {
          r.path.send(frame);
          stats.datagramsOut++;
          stats.trunkFrames++;
          stats.trunkEntries += entries;
        } else if (r.address !== null) {
          this.send(frame, r.port, r.address);
          stats.datagramsOut++;
          stats.trunkFrames++;
          stats.trunkEntries += entries;
        }
      },
    });
    r.batcher = b;
    return b;
  }

  /**
   * BIND: answered with a BIND_CHALLENGE to the source, nothing else. The
   * session's address (and where its media goes) changes only on a valid
   * BIND_CONFIRM from that source (onBindConfirm). Stream paths (WebSocket)
   * go through the same exchange.
   */
  private onBind(msg: Buffer, rinfo: RemoteInfo, path: DatagramPath | null): void {
    const stats = this.stats;
    const bad = checkBind(msg, 0, msg.length);
    if (bad !== null) {
      if (msg.length < BIND_MIN_SIZE) {
        stats.dropped.bind_too_short++;
      } else {
        stats.dropped.bad_control++;
      }
      return;
    }
    const now = this.now();
    const guard = this.bindGuard;
    if (guard.blocked(rinfo.address, now)) {
      stats.dropped.bind_rate_limited++;
      return;
    }
    const owner = this.bindOwner(msg, path);
    if (owner === null) {
      if (guard.noteUnknown(rinfo.address, now)) {
        stats.dropped.bind_unknown_token++;
      } else {
        stats.dropped.bind_rate_limited++;
      }
      return;
    }
    if (!guard.allowChallenge(owner, now)) {
      stats.dropped.bind_rate_limited++;
      return;
    }
    const challenge = guard.challengeFor(msg, rinfo.address, rinfo.port, now);
    if (path === null) {
      this.send(challenge, rinfo.port, rinfo.address);
    } else {
      path.send(challenge);
    }
    stats.bindChallenges++;
    stats.datagramsOut++;
  }

  /** BIND_CONFIRM: a valid echo of our challenge binds (or moves) the session here. */
  private onBindConfirm(msg: Buffer, rinfo: RemoteInfo, path: DatagramPath | null): void {
    const stats = this.stats;
    if (checkBindChallenge(0, msg.length) !== null) {
      stats.dropped.bad_control++;
      return;
    }
    const now = this.now();
    const guard = this.bindGuard;
    if (guard.blocked(rinfo.address, now)) {
      stats.dropped.bind_rate_limited++;
      return;
    }
    const owner = this.bindOwner(msg, path);
    if (owner === null) {
      if (guard.noteUnknown(rinfo.address, now)) {
        stats.dropped.bind_unknown_token++;
      } else {
        stats.dropped.bind_rate_limited++;
      }
      return;
    }
    const verdict = guard.verify(msg, rinfo.address, rinfo.port, now);
    if (verdict !== 'ok') {
      if (verdict === 'expired') {
        stats.dropped.bind_expired++;
      } else {
        stats.dropped.bind_bad_challenge++;
      }
      return;
    }
    stats.bindConfirms++;
    if (!(owner instanceof Session)) {
      // A federation link: it binds its peer's media source and answers BIND_ACK itself.
      this.federation?.bind(msg, rinfo);
      return;
    }
    const session = owner;
    this.bindTo(session, rinfo.address, rinfo.port, path, now);
    const ack = encodeBindAck(session.bindToken);
    if (path === null) {
      this.send(ack, rinfo.port, rinfo.address);
    } else {
      path.attached();
      path.send(ack);
    }
    stats.datagramsOut++;
    if (!session.av.replayed) {
      // A joiner starts with the cached keyframes of the layers it will get.
      session.av.replayed = true;
      this.replayKeyframes(session);
    }
  }

  /** The live session, else (UDP only) the federation link, whose token `msg` carries. */
  private bindOwner(msg: Buffer, path: DatagramPath | null): Session | object | null {
    const session = this.byToken.get(bindTokenHex(msg));
    if (session !== undefined && !session.closed) {
      return session;
    }
    if (path !== null || this.federation === null) {
      return null;
    }
    return this.federation.bindLink(msg);
  }

  /** Pins `session` to a validated address (idempotent). */
  private bindTo(
    session: Session,
    address: string,
    port: number,
    path: DatagramPath | null,
    now: number,
  ): void {
    const stats = this.stats;
    session.lastDatagramMs = now;
    if (session.address === address && session.port === port && session.path === path) {
      return;
    }
    const from = session.address === null ? null : `${session.address}:${session.port}`;
    this.unmapAddress(session);
    // A validated address moves to this session: whoever held it can no longer
    // receive there (it proved nothing; the new holder did).
    const previous = this.sessionAt(address, port);
    if (previous !== undefined) {
      this.unmapAddress(previous);
    }
    session.address = address;
    session.port = port;
    session.path = path;
    this.byAddress.set(port, address, session);
    if (from === null) {
      stats.binds++;
    } else {
      stats.rebinds++;
    }
    this.onRebind?.(session, from, `${address}:${port}`);
  }

  private onPing(msg: Buffer, rinfo: RemoteInfo, path: DatagramPath | null): void {
    const stats = this.stats;
    if (checkPingDatagram(0, msg.length) !== null) {
      stats.dropped.bad_control++;
      return;
    }
    const session = this.sessionAt(rinfo.address, rinfo.port);
    if (session === undefined) {
      stats.dropped.unbound++;
      return;
    }
    session.lastDatagramMs = this.now();
    stats.pings++;
    const pong = Buffer.from(msg);
    pong[0] = FrameType.Pong;
    if (path === null) {
      this.send(pong, rinfo.port, rinfo.address);
    } else {
      path.send(pong);
    }
    stats.datagramsOut++;
  }

  private unmapAddress(session: Session): void {
    if (session.address === null) {
      return;
    }
    this.byAddress.deleteIf(session.port, session.address, session);
    session.address = null;
    session.port = 0;
    session.path = null;
  }

  /** A stream path closed: the session bound through it (if still) loses its binding. */
  detachPath(path: DatagramPath): void {
    const session = this.sessionAt(path.rinfo.address, path.rinfo.port);
    if (session !== undefined && session.path === path) {
      this.unmapAddress(session);
    }
  }
}

/** Drops the batch's references (so ended sessions are not kept alive); the array keeps its size. */
function clearBatch(batch: Session[], n: number): void {
  for (let i = 0; i < n; i++) {
    batch[i] = NO_SESSION;
  }
}

const NO_SESSION = null as unknown as Session;
/** The participant of a room snapshot with participant tag `tag`. */
export function senderByTag(
  snapshot: readonly { readonly sink: Session }[],
  tag: number,
): Session | null {
  for (let i = 0; i < snapshot.length; i++) {
    const s = (snapshot[i] as { readonly sink: Session }).sink;
    if (s.tag === tag && !s.closed) {
      return s;
    }
  }
  return null;
}

/** Senders other than `receiver` whose video layers are available (they share its budget). */
function countVideoSenders(
  snapshot: readonly { readonly sink: Session }[],
  receiver: Session,
): number {
  let n = 0;
  for (let i = 0; i < snapshot.length; i++) {
    const s = (snapshot[i] as { readonly sink: Session }).sink;
    if (s !== receiver && s.av.video !== null && s.av.video.available !== 0) {
      n++;
    }
  }
  return n;
}

/** `0x02 | count=1 | tag | len` before a single trunk entry. */
const SINGLE_PREFIX = 1 + 2 + TRUNK_ENTRY_OVERHEAD;

function singleEntryPrefix(tag: number, len: number): Buffer {
  const buf = Buffer.allocUnsafe(SINGLE_PREFIX);
  writeSinglePrefix(buf, 0, tag, len);
  return buf;
}

function writeSinglePrefix(buf: Buffer, off: number, tag: number, len: number): void {
  buf[off] = FrameType.Trunk;
  buf[off + 1] = 0;
  buf[off + 2] = 1;
  buf[off + 3] = tag >>> 8;
  buf[off + 4] = tag & 0xff;
  buf[off + 5] = len >>> 8;
  buf[off + 6] = len & 0xff;
}
