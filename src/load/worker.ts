/**
 * One load-generator worker: joins its share of participants, sends
 * timestamped payloads at a fixed rate, and measures what arrives
 * (delivered, duplicates, one-way latency in an HDR histogram).
 *
 * Runs in a child process (forked by the coordinator, IPC messages below)
 * or in-process (`runShare`).
 */
import { randomBytes } from 'node:crypto';
import * as hdr from 'hdr-histogram-js';
import { AvSource, runSource, videoOfferProfiles, WzpClient } from '../client/index.js';
import {
  createHeader,
  FLAG_FRAME_END,
  FLAG_KEYFRAME,
  type MediaHeader,
  MediaType,
} from '../wire/index.js';

/** Simulcast video every participant sends besides its audio load (`wzp load --video`). */
export interface VideoLoadSpec {
  /** Layers (stream ids 0..2). */
  layers: number[];
  /** Scales the reference layer bitrates (150 k, 600 k, 2.5 Mbit/s). */
  bitrateScale: number;
  keyframeInterval: number;
  /** Receivers cap every sender at this layer (SubscriptionUpdate). */
  maxLayer?: number;
}

export interface VideoLoadResult {
  /** Packets sent per layer (index = stream id). */
  sent: number[];
  keyframesSent: number[];
  /** Packets received per layer, over all receivers. */
  received: number[];
  /** Keyframes (K and E) received per layer. */
  keyframesReceived: number[];
  /** Payload bytes of video received. */
  bytes: number;
  /** PLIs the senders got (relay-originated or forwarded). */
  plis: number;
}

export interface ShareSpec {
  signalUrl: string;
  token?: string;
  /** Participants of this share: room name and a globally unique sender id. */
  members: { room: string; senderId: number }[];
  pps: number;
  sizeMin: number;
  sizeMax: number;
  mini: boolean;
  /** Room key for payload encryption (hex), when enabled. */
  roomKeyHex?: string;
  video?: VideoLoadSpec;
}

export interface ShareResult {
  joined: number;
  sent: number;
  /** Sent per sender id (to compute expected deliveries). */
  sentBySender: Record<number, number>;
  delivered: number;
  duplicates: number;
  /** Frames whose payload could not be parsed as a load frame. */
  foreign: number;
  /** Base64 of the compressed HDR histogram of one-way latency in µs. */
  histogram: string;
  video?: VideoLoadResult;
}

/** Payload prefix: send time (µs, f64) ‖ sender id (u32) ‖ seq (u32). */
export const LOAD_HEADER_BYTES = 16;

/** Microseconds on a clock shared by every process of this machine. */
export function nowMicros(): number {
  return (performance.timeOrigin + performance.now()) * 1000;
}

interface Receiver {
  client: WzpClient;
  /** Per sender: highest seq seen and a 32-packet bitmap below it. */
  seen: Map<number, { max: number; bits: number }>;
}

export class Share {
  private readonly spec: ShareSpec;
  private readonly clients: WzpClient[] = [];
  private readonly receivers: Receiver[] = [];
  private readonly histogram = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 60_000_000,
    numberOfSignificantValueDigits: 3,
  });
  private readonly sentBySender: Record<number, number> = {};
  private sent = 0;
  private delivered = 0;
  private duplicates = 0;
  private foreign = 0;
  private timer: NodeJS.Timeout | null = null;
  private seq = 0;
  private readonly sources: AvSource[] = [];
  private readonly runs: { stop(): void }[] = [];
  private readonly video: VideoLoadResult = {
    sent: [0, 0, 0],
    keyframesSent: [0, 0, 0],
    received: [0, 0, 0],
    keyframesReceived: [0, 0, 0],
    bytes: 0,
    plis: 0,
  };

  constructor(spec: ShareSpec) {
    this.spec = spec;
  }

  /** Joins every member (a few at a time). */
  async join(): Promise<number> {
    const roomKey =
      this.spec.roomKeyHex === undefined ? undefined : Buffer.from(this.spec.roomKeyHex, 'hex');
    const batch = 16;
    for (let i = 0; i < this.spec.members.length; i += batch) {
      const part = this.spec.members.slice(i, i + batch);
      const joined = await Promise.all(
        part.map(async (m) => {
          const receiver: Receiver = { client: null as unknown as WzpClient, seen: new Map() };
          const client = await WzpClient.connect({
            signalUrl: this.spec.signalUrl,
            room: m.room,
            alias: `load-${m.senderId}`,
            miniFrames: this.spec.mini,
            ...(this.spec.token !== undefined ? { token: this.spec.token } : {}),
            ...(roomKey !== undefined ? { roomKey } : {}),
            ...(this.spec.video !== undefined && this.spec.video.layers.length > 0
              ? {
                  profiles: videoOfferProfiles(
                    this.spec.video.layers,
                    this.spec.video.bitrateScale,
                  ),
                }
              : {}),
            ...(this.spec.video?.maxLayer !== undefined
              ? { subscription: { maxLayer: this.spec.video.maxLayer } }
              : {}),
            ...(roomKey === undefined
              ? {
                  onRawMedia: (_tag: number, payload: Buffer, header: MediaHeader) =>
                    this.onMedia(receiver, payload, header),
                }
              : {}),
          });
          receiver.client = client;
          if (roomKey !== undefined) {
            client.on('media', (media) => this.onMedia(receiver, media.payload, media.header));
          }
          return { client, receiver };
        }),
      );
      for (const j of joined) {
        this.clients.push(j.client);
        this.receivers.push(j.receiver);
      }
    }
    return this.clients.length;
  }

  /** Starts sending: one tick per frame interval sends one packet per member. */
  start(): void {
    const v = this.spec.video;
    if (v !== undefined && v.layers.length > 0) {
      for (const client of this.clients) {
        const source = new AvSource({
          audio: false,
          layers: v.layers,
          bitrateScale: v.bitrateScale,
          keyframeInterval: v.keyframeInterval,
        });
        client.on('signal', (m) => {
          if (m.type === 'PictureLossIndication') {
            this.video.plis++;
            source.requestKeyframe(m.body.stream_id);
          }
        });
        this.sources.push(source);
        this.runs.push(runSource(source, (h, p) => client.sendMedia(h, p)));
      }
    }
    const interval = 1000 / this.spec.pps;
    const header = createHeader({ fecRatio: 20 });
    const max = Math.max(this.spec.sizeMin, this.spec.sizeMax, LOAD_HEADER_BYTES);
    const pad = randomBytes(max);
    let next = performance.now();
    const tick = (): void => {
      const seq = this.seq++;
      header.seq = seq;
      header.timestamp = Math.round(seq * interval) >>> 0;
      this.clients.forEach((client, i) => {
        const member = this.spec.members[i];
        if (member === undefined) {
          return;
        }
        const size =
          this.spec.sizeMin +
          Math.floor(Math.random() * (this.spec.sizeMax - this.spec.sizeMin + 1));
        const payload = Buffer.allocUnsafe(Math.max(LOAD_HEADER_BYTES, size));
        pad.copy(payload, 0, 0, payload.length);
        payload.writeDoubleBE(nowMicros(), 0);
        payload.writeUInt32BE(member.senderId, 8);
        payload.writeUInt32BE(seq, 12);
        client.sendMedia(header, payload);
        this.sent++;
        this.sentBySender[member.senderId] = (this.sentBySender[member.senderId] ?? 0) + 1;
      });
      // Deadline-driven: sleep to the next frame time, never drifting.
      next += interval;
      this.timer = setTimeout(tick, Math.max(0, next - performance.now()));
    };
    tick();
  }

  /** Stops sending. */
  stop(): void {
    for (const r of this.runs.splice(0)) {
      r.stop();
    }
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  get sentCount(): number {
    return this.sent;
  }

  get deliveredCount(): number {
    return this.delivered;
  }

  result(): ShareResult {
    return {
      joined: this.clients.length,
      sent: this.sent,
      sentBySender: this.sentBySender,
      delivered: this.delivered,
      duplicates: this.duplicates,
      foreign: this.foreign,
      histogram: hdr.encodeIntoCompressedBase64(this.histogram),
      ...(this.spec.video === undefined ? {} : { video: this.videoResult() }),
    };
  }

  private videoResult(): VideoLoadResult {
    const v = this.video;
    const sent = [0, 0, 0];
    const keys = [0, 0, 0];
    for (const s of this.sources) {
      for (let l = 0; l < 3; l++) {
        sent[l] = (sent[l] as number) + (s.sent.video[l] as number);
        keys[l] = (keys[l] as number) + (s.sent.keyframes[l] as number);
      }
    }
    return { ...v, sent, keyframesSent: keys };
  }

  /** A received frame: video is counted per layer, audio is a load frame. */
  private onMedia(r: Receiver, payload: Buffer, h: MediaHeader): void {
    if (h.mediaType === MediaType.Video) {
      const l = h.streamId;
      if (l < 3) {
        const v = this.video;
        v.received[l] = (v.received[l] as number) + 1;
        if ((h.flags & (FLAG_KEYFRAME | FLAG_FRAME_END)) === (FLAG_KEYFRAME | FLAG_FRAME_END)) {
          v.keyframesReceived[l] = (v.keyframesReceived[l] as number) + 1;
        }
        v.bytes += payload.length;
      }
      return;
    }
    this.onPayload(r, payload);
  }

  async close(): Promise<void> {
    this.stop();
    await Promise.all(this.clients.map((c) => c.close(false)));
    this.histogram.destroy();
  }

  private onPayload(r: Receiver, payload: Buffer): void {
    if (payload.length < LOAD_HEADER_BYTES) {
      this.foreign++;
      return;
    }
    const sentAt = payload.readDoubleBE(0);
    const sender = payload.readUInt32BE(8);
    const seq = payload.readUInt32BE(12);
    let s = r.seen.get(sender);
    if (s === undefined) {
      s = { max: seq, bits: 1 };
      r.seen.set(sender, s);
    } else if (seq > s.max) {
      const shift = seq - s.max;
      s.bits = shift >= 32 ? 1 : ((s.bits << shift) | 1) >>> 0;
      s.max = seq;
    } else {
      const back = s.max - seq;
      if (back < 32) {
        const bit = 1 << back;
        if ((s.bits & bit) !== 0) {
          this.duplicates++;
          return;
        }
        s.bits = (s.bits | bit) >>> 0;
      }
    }
    this.delivered++;
    const latency = nowMicros() - sentAt;
    this.histogram.recordValue(Math.max(1, Math.round(latency)));
  }
}

// ── child-process mode ───────────────────────────────────────────────────────

type ParentMessage = { type: 'spec'; spec: ShareSpec } | { type: 'start' } | { type: 'stop' };

/** Entry of a forked worker: spec → join → ready → start → progress… → stop → result. */
export function runWorkerProcess(): void {
  let share: Share | null = null;
  let progress: NodeJS.Timeout | null = null;
  const send = (m: unknown): void => {
    process.send?.(m);
  };
  process.on('message', (raw) => {
    const msg = raw as ParentMessage;
    if (msg.type === 'spec') {
      share = new Share(msg.spec);
      share
        .join()
        .then((joined) => send({ type: 'ready', joined }))
        .catch((err: unknown) => send({ type: 'error', message: String(err) }));
    } else if (msg.type === 'start' && share !== null) {
      share.start();
      const s = share;
      progress = setInterval(
        () => send({ type: 'progress', sent: s.sentCount, delivered: s.deliveredCount }),
        250,
      );
    } else if (msg.type === 'stop' && share !== null) {
      const s = share;
      s.stop();
      if (progress !== null) {
        clearInterval(progress);
      }
      // Let in-flight packets arrive before counting.
      setTimeout(() => {
        const result = s.result();
        void s.close().then(() => {
          send({ type: 'result', result });
          setTimeout(() => process.exit(0), 50);
        });
      }, 300);
    }
  });
}
