/**
 * A synthetic audio + simulcast video sender for tests, `wzp client` and
 * `wzp load`: Opus-sized audio packets every 20 ms on (audio, stream 0) and,
 * per simulcast layer (video, stream 0 low / 1 mid / 2 high), frames at the
 * layer's rate split into packets, with a keyframe (K on every packet of the
 * access unit) every `keyframeInterval` frames or on request (PLI), and E on
 * the last packet of every frame. Each stream numbers its own `seq`.
 *
 * Payloads are self-describing so receivers can check what they got:
 * `kind u8 (0 audio, 1 video) ‖ layer u8 ‖ frame u32 ‖ packet u16 ‖
 * packets u16 ‖ send time f64 (ms, performance clock)`, padded to size.
 */
import { GOOD, type QualityProfile } from '../signal/index.js';
import {
  createHeader,
  FLAG_FRAME_END,
  FLAG_KEYFRAME,
  type MediaHeader,
  MediaType,
} from '../wire/index.js';

/** One simulcast layer's nominal shape (the reference sender's table). */
export interface LayerSpec {
  /** stream_id of the layer: 0 low, 1 mid, 2 high. */
  streamId: number;
  bitrateBps: number;
  fps: number;
}

/** The reference sender's layers: 320×180@15 150 kbit/s, 640×360@24 600 kbit/s, 1280×720@30 2.5 Mbit/s. */
export const SIMULCAST_LAYERS: readonly LayerSpec[] = [
  { streamId: 0, bitrateBps: 150_000, fps: 15 },
  { streamId: 1, bitrateBps: 600_000, fps: 24 },
  { streamId: 2, bitrateBps: 2_500_000, fps: 30 },
];

/**
 * The `video_bitrate_kbps` to announce in a CallOffer for these layers
 * (relays police video against it with headroom for keyframes, docs/operator.md):
 * the layers' nominal bitrates, scaled, summed, rounded up.
 */
export function announcedVideoKbps(
  layers: readonly number[],
  bitrateScale = 1,
  specs: readonly LayerSpec[] = SIMULCAST_LAYERS,
): number {
  let bps = 0;
  for (const id of layers) {
    bps += (specs.find((s) => s.streamId === id)?.bitrateBps ?? 0) * bitrateScale;
  }
  return Math.ceil(bps / 1000);
}

/** The profiles a sender of these video layers offers: Good, announcing the layers' bitrate. */
export function videoOfferProfiles(layers: readonly number[], bitrateScale = 1): QualityProfile[] {
  return [{ ...GOOD, video_bitrate_kbps: announcedVideoKbps(layers, bitrateScale) }];
}

export interface AvSourceOptions {
  /** Send audio (Opus24k, 20 ms, 60-byte payloads). Default true. */
  audio?: boolean;
  /** Video layers to send (stream ids); empty for none. Default []. */
  layers?: readonly number[];
  /** Frames between keyframes (per layer). Default 60. */
  keyframeInterval?: number;
  /** Largest payload of one video packet. Default 1000. */
  maxPacketBytes?: number;
  /** Keyframes are this many times the size of a delta frame. Default 4. */
  keyframeScale?: number;
  /** Scales every layer's bitrate (tests use small values to stay light). Default 1. */
  bitrateScale?: number;
  /** Overrides the layer table. */
  layerSpecs?: readonly LayerSpec[];
}

/** A packet the source wants sent. The header object is reused: copy it to keep it. */
export type EmitPacket = (header: MediaHeader, payload: Buffer) => void;

/** Header size of a payload (kind, layer, frame, packet, packets, time). */
export const PAYLOAD_INFO_SIZE = 18;

export interface PayloadInfo {
  kind: 'audio' | 'video';
  layer: number;
  frame: number;
  packet: number;
  packets: number;
  sentMs: number;
}

/** Reads the self-description of a payload made by {@link AvSource} (null if too short). */
export function readPayloadInfo(payload: Uint8Array): PayloadInfo | null {
  if (payload.length < PAYLOAD_INFO_SIZE) {
    return null;
  }
  const b = Buffer.from(payload.buffer, payload.byteOffset, payload.length);
  return {
    kind: b[0] === 1 ? 'video' : 'audio',
    layer: b[1] as number,
    frame: b.readUInt32BE(2),
    packet: b.readUInt16BE(6),
    packets: b.readUInt16BE(8),
    sentMs: b.readDoubleBE(10),
  };
}

interface LayerState {
  spec: LayerSpec;
  seq: number;
  frame: number;
  nextMs: number;
  keyframeRequested: boolean;
}

export class AvSource {
  private readonly header: MediaHeader = createHeader();
  private readonly audio: boolean;
  private audioSeq = 0;
  private audioFrame = 0;
  private nextAudioMs: number;
  private readonly layers: LayerState[];
  private readonly keyframeInterval: number;
  private readonly maxPacketBytes: number;
  private readonly keyframeScale: number;
  private readonly bitrateScale: number;
  /** Packets and keyframes sent, per stream (for reports). */
  readonly sent = { audio: 0, video: [0, 0, 0], keyframes: [0, 0, 0] };

  constructor(
    options: AvSourceOptions = {},
    private readonly startMs = performance.now(),
  ) {
    this.audio = options.audio ?? true;
    this.keyframeInterval = options.keyframeInterval ?? 60;
    this.maxPacketBytes = options.maxPacketBytes ?? 1000;
    this.keyframeScale = options.keyframeScale ?? 4;
    this.bitrateScale = options.bitrateScale ?? 1;
    const specs = options.layerSpecs ?? SIMULCAST_LAYERS;
    this.nextAudioMs = startMs;
    this.layers = (options.layers ?? []).map((id) => {
      const spec = specs.find((s) => s.streamId === id) ?? {
        streamId: id,
        bitrateBps: 500_000,
        fps: 30,
      };
      return { spec, seq: 0, frame: 0, nextMs: startMs, keyframeRequested: false };
    });
  }

  /** The next frame of `streamId` (every layer when absent) is a keyframe. */
  requestKeyframe(streamId?: number): void {
    for (const l of this.layers) {
      if (streamId === undefined || l.spec.streamId === streamId) {
        l.keyframeRequested = true;
      }
    }
  }

  /** Emits every packet due at `nowMs`; returns the time of the next one. */
  tick(nowMs: number, emit: EmitPacket): number {
    let next = Number.POSITIVE_INFINITY;
    if (this.audio) {
      while (this.nextAudioMs <= nowMs) {
        this.emitAudio(emit);
        this.nextAudioMs += 20;
      }
      next = this.nextAudioMs;
    }
    for (const l of this.layers) {
      const interval = 1000 / l.spec.fps;
      while (l.nextMs <= nowMs) {
        this.emitFrame(l, emit);
        l.nextMs += interval;
      }
      next = Math.min(next, l.nextMs);
    }
    return next;
  }

  private emitAudio(emit: EmitPacket): void {
    const h = this.header;
    h.flags = 0;
    h.mediaType = MediaType.Audio;
    h.codecId = 0;
    h.streamId = 0;
    h.fecRatio = 0;
    h.seq = this.audioSeq;
    h.timestamp = Math.round(this.nextAudioMs - this.startMs) >>> 0;
    h.fecBlock = 0;
    this.audioSeq = (this.audioSeq + 1) >>> 0;
    emit(h, payloadOf(0, 0, this.audioFrame++, 0, 1, 60));
    this.sent.audio++;
  }

  private emitFrame(l: LayerState, emit: EmitPacket): void {
    const key = l.keyframeRequested || l.frame % this.keyframeInterval === 0;
    l.keyframeRequested = false;
    const frameBytes = Math.max(
      PAYLOAD_INFO_SIZE,
      Math.round(
        ((l.spec.bitrateBps * this.bitrateScale) / 8 / l.spec.fps) * (key ? this.keyframeScale : 1),
      ),
    );
    const packets = Math.max(1, Math.ceil(frameBytes / this.maxPacketBytes));
    const size = Math.max(PAYLOAD_INFO_SIZE, Math.ceil(frameBytes / packets));
    const h = this.header;
    const timestamp = Math.round(l.nextMs - this.startMs) >>> 0;
    for (let i = 0; i < packets; i++) {
      h.flags = (key ? FLAG_KEYFRAME : 0) | (i === packets - 1 ? FLAG_FRAME_END : 0);
      h.mediaType = MediaType.Video;
      h.codecId = 9; // H264Baseline
      h.streamId = l.spec.streamId;
      h.fecRatio = 0;
      h.seq = l.seq;
      h.timestamp = timestamp;
      h.fecBlock = l.frame & 0xffff;
      l.seq = (l.seq + 1) >>> 0;
      emit(h, payloadOf(1, l.spec.streamId, l.frame, i, packets, size));
      const s = l.spec.streamId;
      if (s < 3) {
        this.sent.video[s] = (this.sent.video[s] as number) + 1;
      }
    }
    if (key && l.spec.streamId < 3) {
      this.sent.keyframes[l.spec.streamId] = (this.sent.keyframes[l.spec.streamId] as number) + 1;
    }
    l.frame++;
  }
}

function payloadOf(
  kind: number,
  layer: number,
  frame: number,
  packet: number,
  packets: number,
  size: number,
): Buffer {
  const b = Buffer.alloc(Math.max(PAYLOAD_INFO_SIZE, size));
  b[0] = kind;
  b[1] = layer;
  b.writeUInt32BE(frame >>> 0, 2);
  b.writeUInt16BE(packet, 6);
  b.writeUInt16BE(packets, 8);
  b.writeDoubleBE(performance.now(), 10);
  return b;
}

/**
 * Drives a source with a deadline timer (sleeping to the next packet) until
 * `stop()`; `emit` gets every packet. Answers PLIs through `requestKeyframe`.
 */
export function runSource(
  source: AvSource,
  emit: EmitPacket,
): { stop(): void; readonly running: boolean } {
  let timer: NodeJS.Timeout | null = null;
  let running = true;
  const step = (): void => {
    if (!running) {
      return;
    }
    const now = performance.now();
    const next = source.tick(now, emit);
    if (next !== Number.POSITIVE_INFINITY) {
      timer = setTimeout(step, Math.max(1, next - performance.now()));
    }
  };
  step();
  return {
    stop(): void {
      running = false;
      if (timer !== null) {
        clearTimeout(timer);
      }
    },
    get running(): boolean {
      return running;
    },
  };
}
