/**
 * Media policing: the original's conformance tiers (reference §5.2),
 * enforced, with audio and video metered separately (issue 12 item 7).
 *
 * Per session and per media kind (audio = every non-video packet):
 * - Tier A, bitrate: token bucket on bytes (`16 + payload`, as the
 *   original counts) refilled at the kind's rate, `burstMs` deep.
 *   Audio rate: `max(nominal × 3 × 1.15, 2000)` bit/s of the best audio codec
 *   the session may use (the negotiated profile, raised by every profile the
 *   relay later recommends to it). Video rate: announced
 *   `video_bitrate_kbps` × `videoHeadroom` (the default when none is announced).
 *   Video buckets (tiers A, B and E) are at least `VIDEO_KEYFRAME_BURST_BYTES`
 *   deep (and that / 250 packets), whatever the rate: a keyframe arrives as
 *   one burst several times a delta frame's size.
 * - Tier B, packet rate: token bucket on packets. Audio:
 *   `floor((1000 / frame_ms) × 3 × 1.5)` per second; video: the byte rate /
 *   250 (packets of at least 250 B on average), at least 135.
 * - Tier C, timestamp drift (audio, non-repair): over ≥ `DRIFT_MIN_PACKETS`
 *   (50, one second of 20 ms frames) packets of a stream, timestamps must
 *   advance at least half a frame per packet (`dt/ds ≥ 0.5 × frame_ms`). A
 *   client that stamps frames when its encoder hands them over (not at
 *   capture) sends a start-up or stall burst with nearly equal timestamps;
 *   50 packets tolerate such a burst of up to 25 frames (500 ms). The upper
 *   bound of the original is not enforced: silence suppression (DTX)
 *   legitimately advances timestamps faster. Video is exempt (packets of one
 *   frame share a timestamp).
 * - Tier D, payload size: a payload above 2 × the codec table's bound, scaled
 *   by the negotiated frame duration over the codec's (40 ms Opus frames are
 *   twice as large as the table's 20 ms ones).
 * - Tier E, absolute cap: token bucket at `audioCapKbps` / `videoCapKbps`,
 *   whatever the profile or the announcement.
 *
 * A packet failing any tier is dropped (modes `drop`, `hangup`) and counted
 * once, by kind and by the first tier it failed (D, C, B, A, E in that
 * order). Every forwarded packet took tokens from A, B and E, so receivers
 * get at most rate × t + burst of a sender. Escalation (mode `hangup`): a
 * second with drops is a strike (the first one warns the client), a clean
 * second takes one back; at `strikes` the session is hung up with
 * PolicyViolation and its identity may not rejoin for the cool-down.
 *
 * Synchronous, timer-free (time is passed in), no allocation per packet.
 */
import { TokenBuckets } from '../util/token-bucket.js';
import {
  CODECS,
  type CodecInfo,
  codecById,
  codecByName,
  FLAG_REPAIR,
  MEDIA_HEADER_SIZE,
  type MediaHeader,
  MediaType,
} from '../wire/index.js';

export type PolicingMode = 'off' | 'observe' | 'drop' | 'hangup';
export type PolicingTier = 'A' | 'B' | 'C' | 'D' | 'E';
export type PolicingKind = 'audio' | 'video';
export const POLICING_TIERS: readonly PolicingTier[] = ['A', 'B', 'C', 'D', 'E'];
export const POLICING_KINDS: readonly PolicingKind[] = ['audio', 'video'];

export interface PolicingConfig {
  mode: PolicingMode;
  burstMs: number;
  videoHeadroom: number;
  videoDefaultKbps: number;
  audioCapKbps: number;
  videoCapKbps: number;
  strikes: number;
}

/** Tier C judges a stream over at least this many packets (see above). */
export const DRIFT_MIN_PACKETS = 50;

/**
 * Smallest burst of a video bucket: one keyframe of a realtime 720p encoder
 * at ~2 Mbit/s (measured 40-60 KB) arriving at once, with margin.
 */
export const VIDEO_KEYFRAME_BURST_BYTES = 96 * 1024;

export const POLICING_DEFAULTS: PolicingConfig = {
  mode: 'hangup',
  burstMs: 1000,
  videoHeadroom: 1.5,
  videoDefaultKbps: 2500,
  audioCapKbps: 256,
  videoCapKbps: 8000,
  strikes: 5,
};

/** What the control plane negotiated for a session. */
export interface SessionPolicy {
  /** Codec name of the negotiated audio profile. */
  audioCodec: string;
  /** frame_duration_ms of the negotiated profile. */
  frameMs: number;
  /** Largest video_bitrate_kbps announced in the offer, null when none. */
  videoKbps: number | null;
}

/** Per-kind, per-tier drop counters (read at scrape time). */
export class PolicingStats {
  readonly dropped: Record<PolicingKind, Record<PolicingTier, number>> = {
    audio: { A: 0, B: 0, C: 0, D: 0, E: 0 },
    video: { A: 0, B: 0, C: 0, D: 0, E: 0 },
  };
  /** Packets over a limit but forwarded (mode observe). */
  observed = 0;
  warnings = 0;
  hangups = 0;
}

/** Tier A byte rate of an audio codec (bytes/s): the original's ceiling. */
export function audioCeilingBytes(codec: CodecInfo): number {
  return Math.max(Math.floor((codec.bitrateBps * 3 * 115) / 100), 2000) / 8;
}

/** Tier B packet rate of an audio codec at `frameMs`. */
export function audioMaxPps(frameMs: number): number {
  return Math.floor(Math.floor(1000 / Math.max(1, frameMs)) * 3 * 1.5);
}

/** Bucket slots of a KindMeter's `buckets`, in the order they are checked. */
const PACKETS = 0;
const BYTES = 1;
const CAP = 2;

class KindMeter {
  /** Packets per second, bytes per second and the hard byte cap (slots PACKETS, BYTES, CAP). */
  readonly buckets = new TokenBuckets(3);
  /** Current rates (for the docs/tests). */
  bytesPerSec: number;
  pps: number;

  constructor(
    bytesPerSec: number,
    pps: number,
    capBytesPerSec: number,
    burstMs: number,
    now: number,
    minBurstBytes = 1500,
  ) {
    this.bytesPerSec = bytesPerSec;
    this.pps = pps;
    const depth = burstMs / 1000;
    const b = this.buckets;
    b.set(BYTES, bytesPerSec, Math.max(bytesPerSec * depth, minBurstBytes), now);
    b.set(PACKETS, pps, Math.max(pps * depth, 4, Math.ceil(minBurstBytes / 250)), now);
    b.set(CAP, capBytesPerSec, Math.max(capBytesPerSec * depth, minBurstBytes), now);
  }

  /** The rate tier a packet of `size` bytes breaks (B packets, A bytes, E cap), or null. */
  check(now: number, size: number): PolicingTier | null {
    const b = this.buckets;
    if (!b.take(PACKETS, now)) {
      return 'B';
    }
    if (!b.take(BYTES, now, size)) {
      return 'A';
    }
    return b.take(CAP, now, size) ? null : 'E';
  }
}

/** Audio stream ids whose drift is tracked per session (the first ones seen). */
const DRIFT_STREAMS = 8;

export class SessionMeter {
  audio: KindMeter;
  video: KindMeter;
  /** Best audio codec allowed (raised by recommendations). */
  audioCodec: CodecInfo;
  frameMs: number;
  /**
   * Tier C anchors: (stream id, seq, timestamp) of up to DRIFT_STREAMS audio
   * streams, packed in one array searched linearly (a session has one or two).
   */
  readonly drift = new Float64Array(DRIFT_STREAMS * 3);
  driftCount = 0;
  windowStart: number;
  windowDrops = 0;
  strikes = 0;
  warned = false;
  hungUp = false;

  constructor(
    readonly config: PolicingConfig,
    policy: SessionPolicy,
    now: number,
  ) {
    this.audioCodec = audioCodecOf(policy.audioCodec);
    this.frameMs = policy.frameMs > 0 ? policy.frameMs : this.audioCodec.frameMs;
    this.audio = this.audioMeter(now);
    const kbps = policy.videoKbps ?? config.videoDefaultKbps;
    const vBytes = ((kbps * 1000) / 8) * config.videoHeadroom;
    this.video = new KindMeter(
      vBytes,
      Math.max(135, Math.ceil(vBytes / 250)),
      (config.videoCapKbps * 1000) / 8,
      config.burstMs,
      now,
      VIDEO_KEYFRAME_BURST_BYTES,
    );
    this.windowStart = now;
  }

  private audioMeter(now: number): KindMeter {
    const frame = Math.min(this.frameMs, this.audioCodec.frameMs);
    return new KindMeter(
      audioCeilingBytes(this.audioCodec),
      audioMaxPps(frame),
      (this.config.audioCapKbps * 1000) / 8,
      this.config.burstMs,
      now,
    );
  }

  /** Allows a better audio codec (a profile the relay recommended); never lowers. */
  allowAudio(codec: CodecInfo, frameMs: number, now: number): void {
    if (codec.bitrateBps > this.audioCodec.bitrateBps || frameMs < this.frameMs) {
      if (codec.bitrateBps > this.audioCodec.bitrateBps) {
        this.audioCodec = codec;
      }
      this.frameMs = Math.min(this.frameMs, frameMs);
      this.audio = this.audioMeter(now);
    }
  }
}

function audioCodecOf(name: string): CodecInfo {
  const c = codecByName(name);
  return c !== undefined && c.kind === 'audio' ? c : (CODECS[0] as CodecInfo);
}

export interface PolicerHooks {
  /** First violating second of a session: tell the client (control plane). */
  onWarn?: (owner: object, tier: PolicingTier, kind: PolicingKind) => void;
  /** A sustained violator (mode hangup): hang it up with PolicyViolation. */
  onViolation?: (owner: object, code: string, reason: string) => void;
}

export class Policer {
  readonly stats = new PolicingStats();
  readonly config: PolicingConfig;
  private readonly meters = new WeakMap<object, SessionMeter>();
  private readonly hooks: PolicerHooks;

  constructor(config: Partial<PolicingConfig> = {}, hooks: PolicerHooks = {}) {
    this.config = { ...POLICING_DEFAULTS, ...config };
    this.hooks = hooks;
  }

  /** Sets (or replaces) the negotiated policy of a session. */
  configure(owner: object, policy: SessionPolicy, now: number): SessionMeter {
    const m = new SessionMeter(this.config, policy, now);
    this.meters.set(owner, m);
    return m;
  }

  /** The meter of a session (created with the defaults if the control plane set none). */
  meter(owner: object, now: number): SessionMeter {
    return (
      this.meters.get(owner) ??
      this.configure(owner, { audioCodec: 'Opus24k', frameMs: 20, videoKbps: null }, now)
    );
  }

  /** The relay recommended `codecName` to the session: allow it from now on. */
  allowAudio(owner: object, codecName: string, frameMs: number, now: number): void {
    const c = codecByName(codecName);
    if (c !== undefined && c.kind === 'audio') {
      this.meter(owner, now).allowAudio(c, frameMs, now);
    }
  }

  /**
   * Meters one decoded packet of `owner` (`payloadLength` bytes of payload).
   * Returns true when it may be forwarded.
   */
  admit(owner: object, h: MediaHeader, payloadLength: number, now: number): boolean {
    const cfg = this.config;
    if (cfg.mode === 'off') {
      return true;
    }
    const m = this.meter(owner, now);
    if (now - m.windowStart >= 1000) {
      this.closeWindow(owner, m, now);
    }
    const video = h.mediaType === MediaType.Video;
    const k = video ? m.video : m.audio;
    const size = MEDIA_HEADER_SIZE + payloadLength;
    const codec = codecById(h.codecId);
    let tier: PolicingTier | null = null;
    if (
      codec !== undefined &&
      payloadLength > 2 * codec.payloadBound * Math.max(1, m.frameMs / codec.frameMs)
    ) {
      tier = 'D';
    } else if (!video && (h.flags & FLAG_REPAIR) === 0 && this.drifts(m, h, codec)) {
      tier = 'C';
    } else {
      tier = k.check(now, size);
    }
    if (tier === null) {
      return true;
    }
    if (cfg.mode === 'observe') {
      this.stats.observed++;
      return true;
    }
    this.stats.dropped[video ? 'video' : 'audio'][tier]++;
    m.windowDrops++;
    if (!m.warned) {
      m.warned = true;
      this.stats.warnings++;
      this.hooks.onWarn?.(owner, tier, video ? 'video' : 'audio');
    }
    return false;
  }

  private closeWindow(owner: object, m: SessionMeter, now: number): void {
    if (m.windowDrops > 0) {
      m.strikes++;
    } else if (m.strikes > 0) {
      m.strikes--;
    }
    m.windowDrops = 0;
    m.windowStart = now;
    if (this.config.mode === 'hangup' && m.strikes >= this.config.strikes && !m.hungUp) {
      m.hungUp = true;
      this.stats.hangups++;
      this.hooks.onViolation?.(
        owner,
        'MEDIA_POLICY_VIOLATION',
        `media over the policed limits for ${m.strikes} seconds (tiers A-E, docs/operator.md)`,
      );
    }
  }

  /** Tier C: true when timestamps advance less than half a frame per packet. */
  private drifts(m: SessionMeter, h: MediaHeader, codec: CodecInfo | undefined): boolean {
    const d = m.drift;
    const n = m.driftCount;
    let o = 0;
    while (o < n * 3 && d[o] !== h.streamId) {
      o += 3;
    }
    if (o === n * 3) {
      if (n < DRIFT_STREAMS) {
        d[o] = h.streamId;
        d[o + 1] = h.seq;
        d[o + 2] = h.timestamp;
        m.driftCount = n + 1;
      }
      return false;
    }
    const ds = (h.seq - (d[o + 1] as number)) >>> 0;
    if (ds === 0 || ds > 0x7fffffff) {
      return false; // duplicate or reordered
    }
    if (ds > 1000) {
      d[o + 1] = h.seq;
      d[o + 2] = h.timestamp;
      return false; // a gap or a restarted stream: judge from here
    }
    const frame = codec?.frameMs ?? m.frameMs;
    const dt = (h.timestamp - (d[o + 2] as number)) >>> 0;
    if (ds >= DRIFT_MIN_PACKETS && dt < ds * frame * 0.5) {
      return true;
    }
    if (ds >= 200) {
      d[o + 1] = h.seq;
      d[o + 2] = h.timestamp;
    }
    return false;
  }
}
