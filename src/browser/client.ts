/**
 * The browser client: a call in one room through a wzp-relay.
 *
 * Sending: microphone → WebCodecs Opus at the negotiated profile (a
 * QualityDirective reconfigures it); camera → AV1 or H.264 (the relay's
 * `video_codec` answer), one encoder per simulcast layer, packetized into
 * WZP media packets; optional ChaCha20-Poly1305 end-to-end encryption with
 * a per-session key (BINDING §4.3); FULL/MINI framing; one datagram per
 * WebSocket message on `/v2/media`.
 *
 * Receiving: TRUNK entries demultiplexed by sender tag (one mini context per
 * sender), decrypted, decoded per sender: audio through an AudioWorklet
 * jitter buffer, video drawn to a canvas per sender. Lost video asks for a
 * keyframe (PLI).
 *
 * Recovery: when either socket closes, the call reconnects with exponential
 * backoff and jitter: a new handshake, a new bind, a new key salt.
 */
import {
  BrowserIdentity,
  type CipherImpl,
  hasNativeChaCha,
  KEY_SALT_SIZE,
  PayloadKey,
  parseRoomKey,
} from './crypto.js';
import {
  type BodyOf,
  CODECS,
  type CodecName,
  type CompactView,
  codecById,
  codecByName,
  createCompactView,
  createHeader,
  FLAG_FRAME_END,
  FLAG_KEYFRAME,
  FrameType,
  GOOD,
  type MediaHeader,
  MediaType,
  MiniCompressor,
  MiniContext,
  type QualityProfile,
  type QualityProfileBody,
  type QualityReport,
  qualityFromPathStats,
  type RoomParticipant,
  readCompact,
  type SignalMessage,
  STUDIO_32K,
  STUDIO_48K,
  STUDIO_64K,
  type TrunkEntryView,
  TrunkReader,
} from './protocol.js';
import { Session } from './transport.js';

export type VideoCodecName = 'Av1Main' | 'H264Baseline';

/** WebCodecs codec strings of the WZP video codecs a browser can use. */
export const VIDEO_CODEC_STRINGS: Record<VideoCodecName, string> = {
  Av1Main: 'av01.0.04M.08',
  H264Baseline: 'avc1.42001f',
};

export interface SimulcastLayer {
  streamId: number;
  /** Fraction of the camera's width and height. */
  scale: number;
  bitrate: number;
}

export interface ConnectOptions {
  /** The relay: http(s):// or ws(s):// host and port of the signalling server. */
  url: string;
  room: string;
  /** Display name. */
  alias?: string;
  /** Access token (HS256 JWT) when the relay requires one. */
  token?: string;
  /** Room key for end-to-end encryption (bytes, hex or base64url text); off when absent. */
  roomKey?: string | Uint8Array;
  /** Microphone: true (default), false, or constraints. */
  audio?: boolean | MediaTrackConstraints;
  /** Camera: true (default), false, or constraints. */
  video?: boolean | MediaTrackConstraints;
  /** Video codecs to offer, in order of preference (default both that this browser encodes). */
  videoCodecs?: VideoCodecName[];
  /**
   * Simulcast (default true): three encoders send the camera on stream_id 0
   * (¼ size), 1 (½) and 2 (full), and the relay forwards each receiver one
   * of them (BINDING §6.3). false: one layer on stream_id 1.
   */
  simulcast?: boolean;
  /** Video layers, overriding `simulcast` (each `{ streamId, scale, bitrate }`). */
  layers?: SimulcastLayer[];
  /**
   * 'auto' (default): each participant's video subscription follows its
   * canvas: not in the document, hidden or off screen (or the page hidden)
   * → `video: false`; drawn small → a lower `max_layer` (SubscriptionUpdate).
   * 'manual': only `setSubscription()` sends them.
   */
  subscriptions?: 'auto' | 'manual';
  /** 'auto' (WebCrypto when available, else pure JS), 'webcrypto' or 'js'. */
  cipher?: 'auto' | CipherImpl;
  /** Reconnect backoff (ms): first delay and cap. */
  reconnect?: { initialMs?: number; maxMs?: number; enabled?: boolean };
  /** Jitter buffer: target and maximum queued audio per sender (ms). */
  jitter?: { targetMs?: number; maxMs?: number };
  /** URL of the playback worklet module (default: wzp-worklet.js next to this module). */
  workletUrl?: string;
  /** Handshake timeout (ms). */
  timeoutMs?: number;
  /**
   * Redirects (fleet, docs/fleet.md) followed for one join (default 3).
   * Every join and reconnect starts at `url` (the entry relay), which
   * redirects to the room's current home.
   */
  maxRedirects?: number;
  /**
   * The identity to join with (default: a fresh one per call). A call room
   * (`call-<id>`) admits only the two parties' registered identities, so a
   * direct call joins with the identity the hub knows (`BrowserIdentity.persistent()`).
   */
  identity?: BrowserIdentity;
}

export type CallState = 'connecting' | 'connected' | 'reconnecting' | 'closed';

export interface PeerStats {
  tag: number;
  /** The simulcast layer (stream_id 0–2) of this sender the relay forwards now (null before video). */
  videoLayer: number | null;
  layerSwitches: number;
  /** What this page asked the relay for (SubscriptionUpdate). */
  subscription: { video: boolean; maxLayer: number };
  alias: string | null;
  fingerprint: string;
  relayLabel: string | null;
  audioPackets: number;
  audioFramesDecoded: number;
  audioLost: number;
  /** Highest audio sequence number seen from this sender (its frames are numbered from 0). */
  audioHighestSeq: number;
  videoPackets: number;
  videoFramesDecoded: number;
  videoFramesDropped: number;
  keyframesRequested: number;
  decryptFailures: number;
  /** 'encrypted' when payloads authenticate with the room key, 'clear', or 'unknown' before media. */
  e2ee: 'encrypted' | 'clear' | 'failing' | 'unknown';
  audioLevel: number;
  speaking: boolean;
  /** Receiver-side network quality of this sender: loss and jitter of its audio. */
  quality: 'good' | 'fair' | 'poor' | 'unknown';
  lossPct: number;
  jitterMs: number;
  jitterBufferMs: number;
  videoCodec: string | null;
  videoSize: [number, number] | null;
}

export interface CallStats {
  room: string;
  state: CallState;
  tag: number;
  fingerprint: string;
  profile: QualityProfileBody | null;
  videoCodec: string | null;
  transport: 'websocket';
  /** The relay the call is on (the room's home after a Redirect). */
  relayUrl: string | null;
  /** Redirects followed (all joins). */
  redirects: number;
  rttMs: number | null;
  reconnects: number;
  e2ee: { enabled: boolean; impl: CipherImpl | null };
  muted: boolean;
  cameraOn: boolean;
  sent: {
    audioPackets: number;
    audioFrames: number;
    videoPackets: number;
    videoFrames: number;
    keyframes: number;
    bytes: number;
    dropped: number;
    /** Milliseconds of microphone audio captured. */
    capturedMs: number;
    /** PictureLossIndications received (each answered with a keyframe of that layer). */
    plisReceived: number;
  };
  /** The camera's layers as encoded now. */
  layers: {
    streamId: number;
    width: number;
    height: number;
    frames: number;
    keyframes: number;
  }[];
  mediaBufferedBytes: number;
  peers: PeerStats[];
}

/** The automation hook's shape (`window.wzpStats()`). */
export interface WzpStats {
  room: string;
  participants: number;
  peers: Record<
    string,
    {
      alias: string | null;
      audioFramesDecoded: number;
      videoFramesDecoded: number;
      audioLevel: number;
    }
  >;
}

const MAX_VIDEO_PAYLOAD = 1000;
/** The highest simulcast layer (stream_id 2); video on higher stream ids is not layered. */
const MAX_LAYER = 2;
/** Simulcast layers: ¼, ½ and full size of the camera (bitrates for a 640×480 camera). */
export const SIMULCAST_LAYERS: readonly SimulcastLayer[] = [
  { streamId: 0, scale: 0.25, bitrate: 120_000 },
  { streamId: 1, scale: 0.5, bitrate: 350_000 },
  { streamId: 2, scale: 1, bitrate: 900_000 },
];
/**
 * Tile widths (device pixels) below which a receiver caps a sender at layer
 * 0 and layer 1; wider tiles get every layer.
 */
export const LAYER_WIDTH_THRESHOLDS: readonly [number, number] = [240, 480];
/** Subscription changes are sent at most this often (ms). */
const SUBSCRIPTION_DEBOUNCE_MS = 150;
const AUDIO_RING = 48_000;
const PLI_MIN_INTERVAL_MS = 500;
const MAX_PENDING_CRYPTO = 256;

interface VideoAssembly {
  decoder: VideoDecoder | null;
  codecId: number;
  expectSeq: number;
  started: boolean;
  prevEnd: boolean;
  inFrame: boolean;
  parts: Uint8Array[];
  partsKey: boolean;
  needKey: boolean;
  lastPli: number;
}

interface Peer {
  tag: number;
  alias: string | null;
  fingerprint: string;
  relayLabel: string | null;
  ctx: MiniContext;
  keys: Map<string, Promise<PayloadKey>>;
  chain: Promise<void>;
  pending: number;
  audioDecoder: AudioDecoder | null;
  audioExpect: number;
  audioStarted: boolean;
  video: Map<number, VideoAssembly>;
  /** The layer stream (0–2) video last came on: another one means the relay switched. */
  videoLayer: number;
  canvas: HTMLCanvasElement;
  /** Canvas state the auto subscription follows. */
  view: { intersecting: boolean; widthPx: number };
  /** The subscription the relay has for this sender (its defaults until we send one). */
  sub: { video: boolean; maxLayer: number };
  observers: { io: IntersectionObserver | null; ro: ResizeObserver | null };
  ring: Float32Array;
  ringPos: number;
  lastArrival: number;
  lastTs: number;
  jitter: number;
  lossWindow: { received: number; lost: number };
  stats: PeerStats;
}

function copyHeader(h: MediaHeader): MediaHeader {
  return { ...h };
}

function hex(b: Uint8Array): string {
  let s = '';
  for (const x of b) {
    s += x.toString(16).padStart(2, '0');
  }
  return s;
}

/** Opus bitrate of an audio codec name (Codec2 has no browser codec: Opus 6k instead). */
function opusFor(codec: string): { id: number; bitrate: number } {
  const c = codecByName(codec);
  if (c === undefined || !codec.startsWith('Opus')) {
    return { id: 2, bitrate: 6000 };
  }
  return { id: c.id, bitrate: c.bitrateBps };
}

export class WzpCall extends EventTarget {
  readonly options: ConnectOptions;
  state: CallState = 'connecting';
  identity!: BrowserIdentity;
  participants: RoomParticipant[] = [];
  profile: QualityProfileBody | null = null;
  videoCodec: VideoCodecName | null = null;
  activeSpeaker: number | null = null;
  muted = false;
  cameraOn: boolean;
  localStream: MediaStream | null = null;
  private session: Session | null = null;
  /** This session's tag (known from CallAnswer, before the session object is complete). */
  private selfTag = 0;
  private readonly peers = new Map<number, Peer>();
  private readonly compressor = new MiniCompressor();
  private readonly out = new Uint8Array(70_000);
  private readonly trunk = new TrunkReader();
  private readonly entry: TrunkEntryView = { tag: 0, offset: 0, length: 0 };
  private readonly view: CompactView = createCompactView();
  private readonly roomKey: Uint8Array | null;
  private cipherImpl: CipherImpl | null = null;
  private sendKey: PayloadKey | null = null;
  private sendChain: Promise<void> = Promise.resolve();
  private sendPending = 0;
  private readonly t0 = performance.now();
  private audioSeq = 0;
  /**
   * Media clock of the audio stream: header timestamps follow the capture
   * clock of the encoded chunks (`chunk.timestamp`), anchored once to
   * `now()`. Stamping each chunk when the encoder hands it over would
   * squeeze a burst of frames (encoder start-up, a busy main thread) into
   * a few milliseconds, and relays police timestamps that advance less than
   * half a frame per packet (tier C, docs/operator.md).
   */
  private audioClock: { offsetMs: number; lastMs: number } | null = null;
  private audioEncoder: AudioEncoder | null = null;
  private audioConfig: {
    sampleRate: number;
    codecId: number;
    frameMs: number;
    fec: number;
  } | null = null;
  private readonly layers: (SimulcastLayer & {
    encoder: VideoEncoder | null;
    seq: number;
    block: number;
    forceKey: boolean;
    width: number;
    height: number;
    frames: number;
    keyframes: number;
  })[];
  private subTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly onVisibility = (): void => this.scheduleSubscriptions();
  private audioReader: ReadableStreamDefaultReader<AudioData> | null = null;
  private videoReader: ReadableStreamDefaultReader<VideoFrame> | null = null;
  private audioCtx: AudioContext | null = null;
  private playback: AudioWorkletNode | null = null;
  private pingTimer: ReturnType<typeof setInterval> | null = null;
  private pings = new Map<string, number>();
  private rttMs: number | null = null;
  private reconnects = 0;
  private redirects = 0;
  private closedByUser = false;
  private reconnecting = false;
  private localLevel = 0;
  private readonly sent = {
    audioPackets: 0,
    audioFrames: 0,
    videoPackets: 0,
    videoFrames: 0,
    keyframes: 0,
    bytes: 0,
    dropped: 0,
    capturedMs: 0,
    plisReceived: 0,
  };
  private speakerTimer: ReturnType<typeof setInterval> | null = null;

  constructor(options: ConnectOptions) {
    super();
    this.options = options;
    this.roomKey =
      options.roomKey === undefined || options.roomKey === ''
        ? null
        : typeof options.roomKey === 'string'
          ? parseRoomKey(options.roomKey)
          : options.roomKey;
    this.cameraOn = options.video !== false;
    // Without simulcast one layer, on stream_id 1 (the relay's mid layer; relays that key stream
    // statistics by stream_id alone then do not mix it with audio on stream 0).
    const layers =
      options.layers ??
      (options.simulcast === false
        ? [{ streamId: 1, scale: 1, bitrate: 600_000 }]
        : SIMULCAST_LAYERS);
    this.layers = layers.map((l) => ({
      ...l,
      encoder: null,
      seq: 0,
      block: 0,
      forceKey: true,
      width: 0,
      height: 0,
      frames: 0,
      keyframes: 0,
    }));
  }

  /** The participant tag the relay gave this call (0 before the first join). */
  get tag(): number {
    return this.selfTag;
  }

  /** True when payloads are end-to-end encrypted. */
  get encrypted(): boolean {
    return this.roomKey !== null;
  }

  // ── lifecycle ────────────────────────────────────────────────────────────

  /** Opens devices, audio output and the session. */
  async start(): Promise<void> {
    this.identity = this.options.identity ?? (await BrowserIdentity.generate());
    if (this.roomKey !== null) {
      const want = this.options.cipher ?? 'auto';
      this.cipherImpl =
        want === 'js'
          ? 'js'
          : want === 'webcrypto' || (await hasNativeChaCha())
            ? 'webcrypto'
            : 'js';
    }
    await this.startAudioOutput();
    await this.openDevices();
    await this.join();
    this.speakerTimer = setInterval(() => this.updateSpeaker(), 200);
    if (this.options.subscriptions !== 'manual') {
      document.addEventListener('visibilitychange', this.onVisibility);
    }
    this.startCapture();
  }

  /** Leaves the room and releases every device. */
  async close(): Promise<void> {
    this.closedByUser = true;
    this.setState('closed');
    this.session?.close(true);
    this.session = null;
    if (this.pingTimer !== null) {
      clearInterval(this.pingTimer);
    }
    if (this.speakerTimer !== null) {
      clearInterval(this.speakerTimer);
    }
    if (this.subTimer !== null) {
      clearTimeout(this.subTimer);
    }
    document.removeEventListener('visibilitychange', this.onVisibility);
    await this.audioReader?.cancel().catch(() => {});
    await this.videoReader?.cancel().catch(() => {});
    for (const t of this.localStream?.getTracks() ?? []) {
      t.stop();
    }
    this.closeEncoders();
    for (const p of this.peers.values()) {
      this.dropPeer(p);
    }
    this.peers.clear();
    await this.audioCtx?.close().catch(() => {});
  }

  private setState(s: CallState): void {
    if (this.state !== s) {
      this.state = s;
      this.dispatchEvent(new CustomEvent('state', { detail: s }));
    }
  }

  private profilesToOffer(): QualityProfile[] {
    const audio = [STUDIO_64K, STUDIO_48K, STUDIO_32K, GOOD];
    if (this.options.video === false) {
      return audio;
    }
    // The relay polices video against the announced bitrate (with headroom for keyframes,
    // docs/operator.md): announce what the encoders are configured for, every layer summed.
    let bps = 0;
    for (const l of this.layers) {
      bps += l.bitrate;
    }
    const kbps = Math.ceil(bps / 1000);
    return audio.map((p) => ({ ...p, video_bitrate_kbps: kbps }));
  }

  private async videoCodecsToOffer(): Promise<VideoCodecName[]> {
    const wanted = this.options.videoCodecs ?? ['H264Baseline', 'Av1Main'];
    const ok: VideoCodecName[] = [];
    for (const c of wanted) {
      try {
        const enc = await VideoEncoder.isConfigSupported({
          codec: VIDEO_CODEC_STRINGS[c],
          width: 640,
          height: 480,
          ...(c === 'H264Baseline' ? { avc: { format: 'annexb' as const } } : {}),
        });
        const dec = await VideoDecoder.isConfigSupported({ codec: VIDEO_CODEC_STRINGS[c] });
        if (enc.supported === true && dec.supported === true) {
          ok.push(c);
        }
      } catch {
        // not supported
      }
    }
    return ok;
  }

  private async join(): Promise<void> {
    this.setState(this.reconnects === 0 ? 'connecting' : 'reconnecting');
    const session = await Session.open({
      url: this.options.url,
      room: this.options.room,
      alias: this.options.alias ?? null,
      ...(this.options.token !== undefined ? { token: this.options.token } : {}),
      identity: this.identity,
      profiles: this.profilesToOffer(),
      videoCodecs: this.options.video === false ? [] : await this.videoCodecsToOffer(),
      timeoutMs: this.options.timeoutMs ?? 8000,
      onSignal: (msg) => this.onSignal(msg),
      onDatagram: (d) => this.onDatagram(d),
      onClosed: (why) => this.onSessionLost(why),
      ...(this.options.maxRedirects === undefined
        ? {}
        : { maxRedirects: this.options.maxRedirects }),
      onRedirect: (url, label) =>
        this.dispatchEvent(new CustomEvent('redirect', { detail: { url, relayLabel: label } })),
    });
    this.session = session;
    this.redirects += session.redirects;
    this.profile = session.answer.chosen_profile;
    const vc = session.answer.video_codec;
    this.videoCodec =
      vc === 'Av1Main' || vc === 'H264Baseline' ? vc : (this.videoCodec ?? 'H264Baseline');
    // A fresh key salt per session: no (key, nonce) pair is ever reused (BINDING §4.3).
    if (this.roomKey !== null) {
      const salt = globalThis.crypto.getRandomValues(new Uint8Array(KEY_SALT_SIZE));
      this.sendKey = await PayloadKey.derive(
        this.roomKey,
        this.identity.fingerprint,
        salt,
        this.cipherImpl ?? 'js',
      );
    }
    this.compressor.reset();
    for (const l of this.layers) {
      l.forceKey = true;
    }
    this.reconfigureAudio();
    this.startPings();
    this.setState('connected');
  }

  private onSessionLost(why: string): void {
    if (this.closedByUser || this.reconnecting) {
      return;
    }
    this.reconnecting = true;
    this.session?.close();
    this.session = null;
    this.dispatchEvent(new CustomEvent('disconnected', { detail: why }));
    for (const p of this.peers.values()) {
      this.dropPeer(p);
    }
    this.peers.clear();
    this.participants = [];
    this.dispatchEvent(new CustomEvent('roomupdate', { detail: [] }));
    if (this.options.reconnect?.enabled === false) {
      this.setState('closed');
      return;
    }
    this.setState('reconnecting');
    void this.reconnectLoop();
  }

  private async reconnectLoop(): Promise<void> {
    const initial = this.options.reconnect?.initialMs ?? 500;
    const max = this.options.reconnect?.maxMs ?? 10_000;
    for (let attempt = 0; !this.closedByUser; attempt++) {
      const delay = Math.min(max, initial * 2 ** attempt) * (0.5 + Math.random() / 2);
      await new Promise((r) => setTimeout(r, delay));
      if (this.closedByUser) {
        return;
      }
      try {
        this.reconnects++;
        await this.join();
        this.reconnecting = false;
        this.dispatchEvent(new CustomEvent('reconnected', { detail: this.reconnects }));
        return;
      } catch {
        this.session?.close();
        this.session = null;
      }
    }
  }

  private startPings(): void {
    if (this.pingTimer !== null) {
      clearInterval(this.pingTimer);
    }
    const ping = (): void => {
      const d = new Uint8Array(9);
      d[0] = FrameType.Ping;
      globalThis.crypto.getRandomValues(d.subarray(1));
      this.pings.set(hex(d.subarray(1)), performance.now());
      if (this.pings.size > 16) {
        this.pings.delete(this.pings.keys().next().value as string);
      }
      this.session?.sendDatagram(d);
    };
    ping();
    this.pingTimer = setInterval(ping, 2000);
  }

  // ── devices ──────────────────────────────────────────────────────────────

  private async openDevices(): Promise<void> {
    const wantAudio = this.options.audio !== false;
    const wantVideo = this.options.video !== false;
    if (!wantAudio && !wantVideo) {
      return;
    }
    const video =
      typeof this.options.video === 'object'
        ? this.options.video
        : { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 20 } };
    this.localStream = await navigator.mediaDevices.getUserMedia({
      audio: wantAudio
        ? typeof this.options.audio === 'object'
          ? this.options.audio
          : { echoCancellation: true, noiseSuppression: true, autoGainControl: true }
        : false,
      video: wantVideo ? video : false,
    });
    this.dispatchEvent(new CustomEvent('localstream', { detail: this.localStream }));
  }

  /** Input and output devices. */
  async devices(): Promise<MediaDeviceInfo[]> {
    return navigator.mediaDevices.enumerateDevices();
  }

  /** Switches the microphone. */
  async setMicrophone(deviceId: string): Promise<void> {
    await this.replaceTrack('audio', { audio: { deviceId: { exact: deviceId } } });
  }

  /** Switches the camera. */
  async setCamera(deviceId: string): Promise<void> {
    await this.replaceTrack('video', { video: { deviceId: { exact: deviceId } } });
  }

  /** Switches the audio output (where the browser supports it). */
  async setSpeaker(deviceId: string): Promise<void> {
    await this.audioCtx?.setSinkId?.(deviceId);
  }

  private async replaceTrack(kind: 'audio' | 'video', c: MediaStreamConstraints): Promise<void> {
    const fresh = await navigator.mediaDevices.getUserMedia(c);
    const track = kind === 'audio' ? fresh.getAudioTracks()[0] : fresh.getVideoTracks()[0];
    if (track === undefined) {
      return;
    }
    const stream = this.localStream ?? new MediaStream();
    for (const old of kind === 'audio' ? stream.getAudioTracks() : stream.getVideoTracks()) {
      old.stop();
      stream.removeTrack(old);
    }
    stream.addTrack(track);
    this.localStream = stream;
    if (kind === 'audio') {
      await this.audioReader?.cancel().catch(() => {});
      this.captureAudio(track);
    } else {
      await this.videoReader?.cancel().catch(() => {});
      this.captureVideo(track);
    }
    this.dispatchEvent(new CustomEvent('localstream', { detail: stream }));
  }

  /** Mutes or unmutes the microphone: while muted no audio packet is sent. */
  setMuted(muted: boolean): void {
    this.muted = muted;
    for (const t of this.localStream?.getAudioTracks() ?? []) {
      t.enabled = !muted;
    }
    this.dispatchEvent(new CustomEvent('mute', { detail: muted }));
  }

  /** Turns the camera on or off: while off no video packet is sent. */
  setCameraOn(on: boolean): void {
    this.cameraOn = on;
    for (const t of this.localStream?.getVideoTracks() ?? []) {
      t.enabled = on;
    }
    for (const l of this.layers) {
      l.forceKey = true;
    }
    this.dispatchEvent(new CustomEvent('camera', { detail: on }));
  }

  // ── audio out ────────────────────────────────────────────────────────────

  private async startAudioOutput(): Promise<void> {
    const ctx = new AudioContext({ sampleRate: 48_000, latencyHint: 'interactive' });
    this.audioCtx = ctx;
    const url = this.options.workletUrl ?? new URL('./wzp-worklet.js', import.meta.url).toString();
    await ctx.audioWorklet.addModule(url);
    const node = new AudioWorkletNode(ctx, 'wzp-playback', {
      numberOfInputs: 0,
      numberOfOutputs: 1,
      outputChannelCount: [2],
    });
    node.connect(ctx.destination);
    node.port.postMessage({
      type: 'config',
      targetMs: this.options.jitter?.targetMs ?? 60,
      maxMs: this.options.jitter?.maxMs ?? 300,
    });
    node.port.onmessage = (ev: MessageEvent) => {
      const m = ev.data as {
        type: string;
        stats: Record<number, { queuedMs: number }>;
        frame: number;
      };
      if (m.type === 'onset') {
        // When a sound onset reached the output, on the wall clock (performance.timeOrigin based).
        const ts = ctx.getOutputTimestamp();
        const perf =
          (ts.performanceTime ?? performance.now()) +
          (m.frame / ctx.sampleRate - (ts.contextTime ?? ctx.currentTime)) * 1000 +
          (ctx.outputLatency ?? 0) * 1000;
        this.dispatchEvent(
          new CustomEvent('playoutonset', { detail: { at: performance.timeOrigin + perf } }),
        );
      } else if (m.type === 'stats') {
        for (const [tag, s] of Object.entries(m.stats)) {
          const p = this.peers.get(Number(tag));
          if (p !== undefined) {
            p.stats.jitterBufferMs = s.queuedMs;
          }
        }
      }
    };
    this.playback = node;
    if (ctx.state === 'suspended') {
      void ctx.resume().catch(() => {});
    }
  }

  /** Resumes audio output (call from a user gesture where autoplay is blocked). */
  async resumeAudio(): Promise<void> {
    await this.audioCtx?.resume();
  }

  /** True while the output is blocked by the autoplay policy. */
  get audioBlocked(): boolean {
    return this.audioCtx?.state === 'suspended';
  }

  // ── capture and send ─────────────────────────────────────────────────────

  private startCapture(): void {
    const a = this.localStream?.getAudioTracks()[0];
    if (a !== undefined) {
      this.captureAudio(a);
    }
    const v = this.localStream?.getVideoTracks()[0];
    if (v !== undefined) {
      this.captureVideo(v);
    }
  }

  private captureAudio(track: MediaStreamTrack): void {
    const reader = new MediaStreamTrackProcessor<AudioData>({ track }).readable.getReader();
    this.audioReader = reader;
    void (async () => {
      for (;;) {
        const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
        if (done || value === undefined) {
          return;
        }
        try {
          this.onMicData(value);
        } finally {
          value.close();
        }
      }
    })();
  }

  private onMicData(data: AudioData): void {
    const n = data.numberOfFrames;
    this.sent.capturedMs += (1000 * n) / data.sampleRate;
    const mono = new Float32Array(n);
    const ch = data.numberOfChannels;
    const plane = new Float32Array(n);
    for (let c = 0; c < ch; c++) {
      data.copyTo(plane, { planeIndex: c, format: 'f32-planar' });
      for (let i = 0; i < n; i++) {
        mono[i] = (mono[i] as number) + (plane[i] as number) / ch;
      }
    }
    let sum = 0;
    let firstLoud = -1;
    for (let i = 0; i < n; i++) {
      const v = mono[i] as number;
      sum += v * v;
      if (firstLoud < 0 && (v > 0.05 || v < -0.05)) {
        firstLoud = i;
      }
    }
    this.localLevel = this.muted ? 0 : Math.sqrt(sum / Math.max(1, n));
    this.dispatchEvent(
      new CustomEvent('micframe', {
        detail: {
          at: performance.timeOrigin + performance.now(),
          level: this.localLevel,
          frames: n,
          sampleRate: data.sampleRate,
          /** Index of the first sample above 0.05 in magnitude (-1: none), for onset timing. */
          firstLoud,
        },
      }),
    );
    if (this.muted || this.session === null) {
      return;
    }
    this.ensureAudioEncoder(data.sampleRate);
    const enc = this.audioEncoder;
    if (enc === null || enc.state !== 'configured') {
      return;
    }
    const frame = new AudioData({
      format: 'f32-planar',
      sampleRate: data.sampleRate,
      numberOfFrames: n,
      numberOfChannels: 1,
      timestamp: data.timestamp,
      data: mono,
    });
    enc.encode(frame);
    frame.close();
  }

  private audioTarget(): { codecId: number; bitrate: number; frameMs: number; fec: number } {
    const p = this.profile ?? GOOD;
    const o = opusFor(p.codec);
    const frameMs =
      p.frame_duration_ms === 40 || p.frame_duration_ms === 60 ? p.frame_duration_ms : 20;
    return { codecId: o.id, bitrate: o.bitrate, frameMs, fec: p.fec_ratio };
  }

  private ensureAudioEncoder(sampleRate: number): void {
    const t = this.audioTarget();
    const c = this.audioConfig;
    if (
      this.audioEncoder !== null &&
      c !== null &&
      c.sampleRate === sampleRate &&
      c.codecId === t.codecId &&
      c.frameMs === t.frameMs &&
      c.fec === t.fec
    ) {
      return;
    }
    if (this.audioEncoder === null || this.audioEncoder.state === 'closed') {
      this.audioEncoder = new AudioEncoder({
        output: (chunk) => this.onAudioChunk(chunk),
        error: () => {
          this.audioEncoder = null;
          this.audioConfig = null;
        },
      });
    }
    this.audioEncoder.configure({
      codec: 'opus',
      sampleRate,
      numberOfChannels: 1,
      bitrate: t.bitrate,
      opus: {
        frameDuration: t.frameMs * 1000,
        useinbandfec: t.fec > 0,
        packetlossperc: Math.min(100, Math.round(t.fec * 50)),
      },
    } as AudioEncoderConfig);
    this.audioConfig = { sampleRate, codecId: t.codecId, frameMs: t.frameMs, fec: t.fec };
  }

  /** Applies the current profile to the encoder (QualityDirective). */
  private reconfigureAudio(): void {
    const c = this.audioConfig;
    if (c !== null) {
      this.ensureAudioEncoder(c.sampleRate);
    }
  }

  private now(): number {
    return Math.round(performance.now() - this.t0) >>> 0;
  }

  private onAudioChunk(chunk: EncodedAudioChunk): void {
    if (this.muted) {
      return;
    }
    const data = new Uint8Array(chunk.byteLength);
    chunk.copyTo(data);
    const c = this.audioConfig;
    const h = createHeader({
      mediaType: MediaType.Audio,
      codecId: c?.codecId ?? 0,
      streamId: 0,
      fecRatio: Math.min(200, Math.round((this.profile?.fec_ratio ?? 0) * 100)),
      seq: this.audioSeq,
      timestamp: this.audioTimestamp(chunk.timestamp / 1000),
    });
    this.audioSeq = (this.audioSeq + 1) >>> 0;
    this.sent.audioFrames++;
    // A QualityReport once a second lets the relay see this receiver's view of the path.
    const q = this.audioSeq % 50 === 0 ? this.qualityReport() : null;
    this.sendMedia(h, data, q, 'audio');
  }

  /** Header timestamp of an audio chunk captured at `captureMs` (see `audioClock`). */
  private audioTimestamp(captureMs: number): number {
    const now = this.now();
    let c = this.audioClock;
    const at = c === null ? Number.NaN : captureMs + c.offsetMs;
    // Re-anchor when there is no clock yet, or the capture clock jumped (a new track, a
    // device change): backwards, or far ahead of our own clock.
    if (c === null || !(at >= c.lastMs) || at > now + 5000) {
      c = { offsetMs: now - captureMs, lastMs: c === null ? 0 : c.lastMs };
      this.audioClock = c;
    }
    const ts = Math.max(c.lastMs, Math.round(captureMs + c.offsetMs));
    c.lastMs = ts;
    return ts >>> 0;
  }

  private qualityReport(): QualityReport {
    let lost = 0;
    let received = 0;
    let jitter = 0;
    for (const p of this.peers.values()) {
      lost += p.lossWindow.lost;
      received += p.lossWindow.received;
      jitter = Math.max(jitter, p.jitter);
      p.lossWindow = { received: 0, lost: 0 };
    }
    const loss = received + lost === 0 ? 0 : (100 * lost) / (received + lost);
    return qualityFromPathStats(loss, this.rttMs ?? 0, jitter);
  }

  private captureVideo(track: MediaStreamTrack): void {
    const reader = new MediaStreamTrackProcessor<VideoFrame>({
      track,
      maxBufferSize: 2,
    }).readable.getReader();
    this.videoReader = reader;
    void (async () => {
      for (;;) {
        const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
        if (done || value === undefined) {
          return;
        }
        try {
          this.onCameraFrame(value);
        } finally {
          // Never hold VideoFrames: about 30 held ones kill the renderer.
          value.close();
        }
      }
    })();
  }

  private onCameraFrame(frame: VideoFrame): void {
    if (!this.cameraOn || this.session === null || this.videoCodec === null) {
      return;
    }
    const codec = VIDEO_CODEC_STRINGS[this.videoCodec];
    const codecId = codecByName(this.videoCodec)?.id ?? 9;
    const w = frame.displayWidth;
    const hgt = frame.displayHeight;
    for (const layer of this.layers) {
      const width = Math.max(16, Math.round((w * layer.scale) / 2) * 2);
      const height = Math.max(16, Math.round((hgt * layer.scale) / 2) * 2);
      if (
        layer.encoder === null ||
        layer.encoder.state === 'closed' ||
        layer.width !== width ||
        layer.height !== height
      ) {
        layer.encoder?.state === 'configured' && layer.encoder.close();
        const enc = new VideoEncoder({
          output: (chunk) => this.onVideoChunk(layer, codecId, chunk),
          error: () => {
            layer.encoder = null;
          },
        });
        enc.configure({
          codec,
          width,
          height,
          bitrate: layer.bitrate,
          framerate: 20,
          latencyMode: 'realtime',
          ...(this.videoCodec === 'H264Baseline' ? { avc: { format: 'annexb' as const } } : {}),
        });
        layer.encoder = enc;
        layer.width = width;
        layer.height = height;
        layer.forceKey = true;
      }
      const enc = layer.encoder;
      if (enc.encodeQueueSize > 2) {
        this.sent.dropped++;
        continue;
      }
      const key = layer.forceKey || layer.frames % 100 === 0;
      layer.forceKey = false;
      layer.frames++;
      enc.encode(frame, { keyFrame: key });
    }
  }

  private onVideoChunk(
    layer: (typeof this.layers)[number],
    codecId: number,
    chunk: EncodedVideoChunk,
  ): void {
    if (!this.cameraOn || this.session === null) {
      return;
    }
    const data = new Uint8Array(chunk.byteLength);
    chunk.copyTo(data);
    const key = chunk.type === 'key';
    const ts = this.now();
    const block = layer.block;
    layer.block = (layer.block + 1) & 0xffff;
    this.sent.videoFrames++;
    if (key) {
      this.sent.keyframes++;
      layer.keyframes++;
    }
    for (let off = 0; off < data.length || off === 0; off += MAX_VIDEO_PAYLOAD) {
      const end = Math.min(data.length, off + MAX_VIDEO_PAYLOAD);
      const h = createHeader({
        mediaType: MediaType.Video,
        codecId,
        streamId: layer.streamId,
        flags: (key ? FLAG_KEYFRAME : 0) | (end >= data.length ? FLAG_FRAME_END : 0),
        seq: layer.seq,
        timestamp: ts,
        fecBlock: block,
      });
      layer.seq = (layer.seq + 1) >>> 0;
      this.sendMedia(h, data.subarray(off, end), null, 'video');
      if (end >= data.length) {
        break;
      }
    }
  }

  private sendMedia(
    h: MediaHeader,
    payload: Uint8Array,
    q: QualityReport | null,
    kind: 'audio' | 'video',
  ): void {
    const session = this.session;
    if (session === null) {
      return;
    }
    // Our own backpressure: a socket that cannot drain drops media (like UDP would).
    if (session.mediaBuffered > 512 * 1024) {
      this.sent.dropped++;
      return;
    }
    const key = this.sendKey;
    if (key === null) {
      this.emit(session, h, payload, q, kind);
      return;
    }
    if (this.sendPending >= MAX_PENDING_CRYPTO) {
      this.sent.dropped++;
      return;
    }
    this.sendPending++;
    const sealed = key.encrypt(h, payload, q);
    // Frames leave in the order they were made (the MINI compressor needs it).
    this.sendChain = this.sendChain.then(async () => {
      try {
        const body = await sealed;
        if (this.session === session && this.sendKey === key) {
          this.emit(session, h, body, q, kind);
        }
      } catch {
        this.sent.dropped++;
      } finally {
        this.sendPending--;
      }
    });
  }

  private emit(
    session: Session,
    h: MediaHeader,
    body: Uint8Array,
    q: QualityReport | null,
    kind: 'audio' | 'video',
  ): void {
    const n = this.compressor.encodeInto(h, body, q, this.out, 0);
    session.sendDatagram(this.out.slice(0, n));
    this.sent.bytes += n;
    if (kind === 'audio') {
      this.sent.audioPackets++;
    } else {
      this.sent.videoPackets++;
    }
  }

  private closeEncoders(): void {
    if (this.audioEncoder !== null && this.audioEncoder.state !== 'closed') {
      this.audioEncoder.close();
    }
    this.audioEncoder = null;
    this.audioConfig = null;
    for (const l of this.layers) {
      if (l.encoder !== null && l.encoder.state !== 'closed') {
        l.encoder.close();
      }
      l.encoder = null;
    }
  }

  // ── signalling ───────────────────────────────────────────────────────────

  private onSignal(msg: SignalMessage): void {
    switch (msg.type) {
      case 'CallAnswer':
        this.selfTag = msg.body.participant_tag;
        break;
      case 'RoomUpdate':
        this.onRoomUpdate(msg.body);
        break;
      case 'QualityDirective':
        this.profile = msg.body.recommended_profile;
        this.reconfigureAudio();
        this.dispatchEvent(new CustomEvent('quality', { detail: msg.body }));
        break;
      case 'PictureLossIndication': {
        // The relay forwards PLIs for our own streams (tag = ours): the next frame of that
        // layer is a keyframe.
        const sid = msg.body.stream_id;
        this.sent.plisReceived++;
        for (const l of this.layers) {
          if (l.streamId === sid) {
            l.forceKey = true;
          }
        }
        break;
      }
      case 'Hangup':
        this.dispatchEvent(new CustomEvent('hangup', { detail: msg.body.reason }));
        this.onSessionLost(`hangup ${JSON.stringify(msg.body.reason)}`);
        break;
      case 'Error':
        this.dispatchEvent(new CustomEvent('relayerror', { detail: msg.body }));
        break;
      default:
        break;
    }
  }

  private onRoomUpdate(body: BodyOf<'RoomUpdate'>): void {
    const mine = this.selfTag;
    const others = body.participants.filter((p) => p.tag !== mine);
    const seen = new Set<number>();
    for (const p of others) {
      seen.add(p.tag);
      const existing = this.peers.get(p.tag);
      if (existing !== undefined && existing.fingerprint !== p.fingerprint) {
        // A tag reused by someone else: start over.
        this.dropPeer(existing);
        this.peers.delete(p.tag);
      }
      if (!this.peers.has(p.tag)) {
        const peer = this.newPeer(p);
        this.peers.set(p.tag, peer);
        this.observe(peer);
        this.dispatchEvent(new CustomEvent('peerjoined', { detail: p }));
      } else {
        const peer = this.peers.get(p.tag) as Peer;
        peer.alias = p.alias;
        peer.stats.alias = p.alias;
      }
    }
    for (const [tag, p] of this.peers) {
      if (!seen.has(tag)) {
        this.dropPeer(p);
        this.peers.delete(tag);
        this.dispatchEvent(new CustomEvent('peerleft', { detail: tag }));
      }
    }
    this.participants = others;
    this.dispatchEvent(new CustomEvent('roomupdate', { detail: others }));
  }

  private newPeer(p: RoomParticipant): Peer {
    const canvas = document.createElement('canvas');
    canvas.width = 320;
    canvas.height = 240;
    canvas.dataset.tag = String(p.tag);
    return {
      tag: p.tag,
      alias: p.alias,
      fingerprint: p.fingerprint,
      relayLabel: p.relay_label,
      ctx: new MiniContext(),
      keys: new Map(),
      chain: Promise.resolve(),
      pending: 0,
      audioDecoder: null,
      audioExpect: 0,
      audioStarted: false,
      video: new Map(),
      videoLayer: -1,
      canvas,
      view: { intersecting: true, widthPx: canvas.width },
      sub: { video: true, maxLayer: MAX_LAYER },
      observers: { io: null, ro: null },
      ring: new Float32Array(AUDIO_RING),
      ringPos: 0,
      lastArrival: 0,
      lastTs: 0,
      jitter: 0,
      lossWindow: { received: 0, lost: 0 },
      stats: {
        tag: p.tag,
        videoLayer: null,
        layerSwitches: 0,
        subscription: { video: true, maxLayer: MAX_LAYER },
        alias: p.alias,
        fingerprint: p.fingerprint,
        relayLabel: p.relay_label,
        audioPackets: 0,
        audioFramesDecoded: 0,
        audioLost: 0,
        audioHighestSeq: -1,
        videoPackets: 0,
        videoFramesDecoded: 0,
        videoFramesDropped: 0,
        keyframesRequested: 0,
        decryptFailures: 0,
        e2ee: 'unknown',
        audioLevel: 0,
        speaking: false,
        quality: 'unknown',
        lossPct: 0,
        jitterMs: 0,
        jitterBufferMs: 0,
        videoCodec: null,
        videoSize: null,
      },
    };
  }

  private dropPeer(p: Peer): void {
    p.observers.io?.disconnect();
    p.observers.ro?.disconnect();
    if (p.audioDecoder !== null && p.audioDecoder.state !== 'closed') {
      p.audioDecoder.close();
    }
    for (const v of p.video.values()) {
      if (v.decoder !== null && v.decoder.state !== 'closed') {
        v.decoder.close();
      }
    }
    this.playback?.port.postMessage({ type: 'remove', tag: p.tag });
  }

  // ── receive ──────────────────────────────────────────────────────────────

  private onDatagram(d: Uint8Array): void {
    const type = d[0];
    if (type === FrameType.Trunk) {
      this.onTrunk(d);
    } else if (type === FrameType.Pong && d.length === 9) {
      const k = hex(d.subarray(1));
      const at = this.pings.get(k);
      if (at !== undefined) {
        this.pings.delete(k);
        this.rttMs = performance.now() - at;
      }
    }
  }

  private onTrunk(d: Uint8Array): void {
    if (this.trunk.reset(d, 1, d.length) !== null) {
      return;
    }
    const e = this.entry;
    const view = this.view;
    while (this.trunk.next(e)) {
      const peer = this.peers.get(e.tag);
      if (peer === undefined) {
        continue;
      }
      if (readCompact(d, e.offset, e.offset + e.length, peer.ctx, view) !== null) {
        continue;
      }
      const h = copyHeader(view.header);
      const q = view.hasQuality ? { ...view.quality } : null;
      const payload = d.slice(view.payloadOffset, view.payloadOffset + view.payloadLength);
      if (this.roomKey === null) {
        peer.stats.e2ee = 'clear';
        this.onMedia(peer, h, payload);
        continue;
      }
      if (peer.pending >= MAX_PENDING_CRYPTO) {
        peer.stats.decryptFailures++;
        continue;
      }
      peer.pending++;
      const opened = this.open(peer, h, payload, q);
      peer.chain = peer.chain.then(async () => {
        try {
          const plain = await opened;
          if (plain === null) {
            peer.stats.decryptFailures++;
            peer.stats.e2ee = 'failing';
          } else {
            peer.stats.e2ee = 'encrypted';
            this.onMedia(peer, h, plain);
          }
        } finally {
          peer.pending--;
        }
      });
    }
  }

  private async open(
    peer: Peer,
    h: MediaHeader,
    body: Uint8Array,
    q: QualityReport | null,
  ): Promise<Uint8Array | null> {
    if (body.length < KEY_SALT_SIZE) {
      return null;
    }
    const id = hex(body.subarray(0, KEY_SALT_SIZE));
    let key = peer.keys.get(id);
    if (key === undefined) {
      if (peer.keys.size >= 8) {
        peer.keys.clear();
      }
      key = PayloadKey.derive(
        this.roomKey as Uint8Array,
        peer.fingerprint,
        body.subarray(0, KEY_SALT_SIZE),
        this.cipherImpl ?? 'js',
      );
      peer.keys.set(id, key);
    }
    return (await key).decrypt(h, body, q);
  }

  private onMedia(peer: Peer, h: MediaHeader, payload: Uint8Array): void {
    if (h.mediaType === MediaType.Audio) {
      this.onAudio(peer, h, payload);
    } else if (h.mediaType === MediaType.Video) {
      this.onVideo(peer, h, payload);
    }
  }

  private onAudio(peer: Peer, h: MediaHeader, payload: Uint8Array): void {
    const s = peer.stats;
    s.audioPackets++;
    // Loss (sequence gaps) and interarrival jitter (RFC 3550 style) of this sender's audio.
    const now = performance.now();
    if (peer.audioStarted) {
      const gap = (h.seq - peer.audioExpect) | 0;
      if (gap > 0 && gap < 1000) {
        s.audioLost += gap;
        peer.lossWindow.lost += gap;
      }
      const d = now - peer.lastArrival - ((h.timestamp - peer.lastTs) | 0);
      peer.jitter += (Math.abs(d) - peer.jitter) / 16;
      s.jitterMs = peer.jitter;
    }
    peer.lossWindow.received++;
    if (!peer.audioStarted || ((h.seq - s.audioHighestSeq) | 0) > 0) {
      s.audioHighestSeq = h.seq;
    }
    peer.audioStarted = true;
    peer.audioExpect = (h.seq + 1) >>> 0;
    peer.lastArrival = now;
    peer.lastTs = h.timestamp;
    const total = s.audioPackets + s.audioLost;
    s.lossPct = total === 0 ? 0 : (100 * s.audioLost) / total;
    s.quality = s.lossPct < 2 && s.jitterMs < 30 ? 'good' : s.lossPct < 10 ? 'fair' : 'poor';
    if (codecById(h.codecId)?.name.startsWith('Opus') !== true) {
      return;
    }
    let dec = peer.audioDecoder;
    if (dec === null || dec.state === 'closed') {
      dec = new AudioDecoder({
        output: (data) => this.onDecodedAudio(peer, data),
        error: () => {
          peer.audioDecoder = null;
        },
      });
      dec.configure({ codec: 'opus', sampleRate: 48_000, numberOfChannels: 1 });
      peer.audioDecoder = dec;
    }
    dec.decode(
      new EncodedAudioChunk({ type: 'key', timestamp: h.timestamp * 1000, data: payload }),
    );
  }

  private onDecodedAudio(peer: Peer, data: AudioData): void {
    try {
      const n = data.numberOfFrames;
      const pcm = new Float32Array(n);
      data.copyTo(pcm, { planeIndex: 0, format: 'f32-planar' });
      let sum = 0;
      let firstLoud = -1;
      for (let i = 0; i < n; i++) {
        const v = pcm[i] as number;
        sum += v * v;
        if (firstLoud < 0 && (v > 0.05 || v < -0.05)) {
          firstLoud = i;
        }
      }
      const level = Math.sqrt(sum / Math.max(1, n));
      const s = peer.stats;
      s.audioLevel = s.audioLevel * 0.7 + level * 0.3;
      s.audioFramesDecoded++;
      const ring = peer.ring;
      for (let i = 0; i < n; i++) {
        ring[peer.ringPos] = pcm[i] as number;
        peer.ringPos = (peer.ringPos + 1) % ring.length;
      }
      this.dispatchEvent(
        new CustomEvent('audioframe', {
          detail: {
            tag: peer.tag,
            at: performance.timeOrigin + performance.now(),
            level,
            firstLoud,
          },
        }),
      );
      this.playback?.port.postMessage({ type: 'pcm', tag: peer.tag, samples: pcm }, [pcm.buffer]);
    } finally {
      data.close();
    }
  }

  private onVideo(peer: Peer, h: MediaHeader, payload: Uint8Array): void {
    peer.stats.videoPackets++;
    if (h.streamId <= MAX_LAYER && h.streamId !== peer.videoLayer) {
      this.onLayerSwitch(peer, h);
    }
    let a = peer.video.get(h.streamId);
    if (a === undefined) {
      a = {
        decoder: null,
        codecId: h.codecId,
        expectSeq: 0,
        started: false,
        prevEnd: false,
        inFrame: false,
        parts: [],
        partsKey: false,
        needKey: true,
        lastPli: -Infinity,
      };
      peer.video.set(h.streamId, a);
    }
    if (a.started && h.seq !== a.expectSeq) {
      // Lost packets: the frame in progress is gone and so is the reference chain.
      a.parts = [];
      a.inFrame = false;
      a.prevEnd = false;
      a.needKey = true;
      this.requestKeyframe(peer, a, h.streamId);
    } else if (!a.started && h.seq === 0) {
      // The sender's very first packet starts a frame.
      a.prevEnd = true;
    }
    a.started = true;
    a.expectSeq = (h.seq + 1) >>> 0;
    const end = (h.flags & FLAG_FRAME_END) !== 0;
    if (!a.inFrame) {
      // A packet starts a frame only right after the end of the previous one.
      if (!a.prevEnd) {
        a.prevEnd = end;
        if (a.needKey) {
          this.requestKeyframe(peer, a, h.streamId);
        }
        return;
      }
      a.inFrame = true;
      a.partsKey = (h.flags & FLAG_KEYFRAME) !== 0;
    }
    a.parts.push(payload);
    a.prevEnd = end;
    if (!end) {
      return;
    }
    a.inFrame = false;
    const parts = a.parts;
    a.parts = [];
    if (a.needKey && !a.partsKey) {
      peer.stats.videoFramesDropped++;
      this.requestKeyframe(peer, a, h.streamId);
      return;
    }
    const size = parts.reduce((n, p) => n + p.length, 0);
    const frame = new Uint8Array(size);
    let off = 0;
    for (const p of parts) {
      frame.set(p, off);
      off += p.length;
    }
    this.decodeVideo(peer, a, h, frame);
  }

  /**
   * The relay forwards one layer of a sender at a time and switches only at
   * the first packet of a frame (up: a keyframe; down: a frame boundary,
   * BINDING §6.3). The new layer's stream starts a frame here and needs a
   * keyframe; the old layer's decoder is closed.
   */
  private onLayerSwitch(peer: Peer, h: MediaHeader): void {
    if (peer.videoLayer >= 0) {
      peer.stats.layerSwitches++;
    }
    for (const [sid, old] of peer.video) {
      if (sid <= MAX_LAYER && sid !== h.streamId) {
        if (old.decoder !== null && old.decoder.state !== 'closed') {
          old.decoder.close();
        }
        peer.video.delete(sid);
      }
    }
    peer.videoLayer = h.streamId;
    peer.stats.videoLayer = h.streamId;
    peer.video.set(h.streamId, {
      decoder: null,
      codecId: h.codecId,
      expectSeq: h.seq,
      started: true,
      prevEnd: true,
      inFrame: false,
      parts: [],
      partsKey: false,
      needKey: true,
      lastPli: -Infinity,
    });
  }

  private decodeVideo(peer: Peer, a: VideoAssembly, h: MediaHeader, frame: Uint8Array): void {
    const name = codecById(h.codecId)?.name as CodecName | undefined;
    const codec =
      name === 'Av1Main' || name === 'H264Baseline' ? VIDEO_CODEC_STRINGS[name] : undefined;
    if (codec === undefined) {
      peer.stats.videoFramesDropped++;
      return;
    }
    if (a.decoder === null || a.decoder.state === 'closed' || a.codecId !== h.codecId) {
      if (a.decoder !== null && a.decoder.state !== 'closed') {
        a.decoder.close();
      }
      const dec = new VideoDecoder({
        output: (vf) => this.onDecodedVideo(peer, vf),
        error: () => {
          a.decoder = null;
          a.needKey = true;
        },
      });
      dec.configure({ codec, optimizeForLatency: true });
      a.decoder = dec;
      a.codecId = h.codecId;
      peer.stats.videoCodec = name ?? null;
    }
    if (a.decoder.decodeQueueSize > 5) {
      peer.stats.videoFramesDropped++;
      a.needKey = true;
      return;
    }
    const key = (h.flags & FLAG_KEYFRAME) !== 0;
    a.decoder.decode(
      new EncodedVideoChunk({
        type: key ? 'key' : 'delta',
        timestamp: h.timestamp * 1000,
        data: frame,
      }),
    );
    if (key) {
      a.needKey = false;
    }
  }

  private onDecodedVideo(peer: Peer, vf: VideoFrame): void {
    try {
      const c = peer.canvas;
      if (c.width !== vf.displayWidth || c.height !== vf.displayHeight) {
        c.width = vf.displayWidth;
        c.height = vf.displayHeight;
      }
      c.getContext('2d')?.drawImage(vf, 0, 0, c.width, c.height);
      peer.stats.videoFramesDecoded++;
      peer.stats.videoSize = [vf.displayWidth, vf.displayHeight];
    } finally {
      vf.close();
    }
  }

  private requestKeyframe(peer: Peer, a: VideoAssembly, streamId: number): void {
    const now = performance.now();
    if (now - a.lastPli < PLI_MIN_INTERVAL_MS) {
      return;
    }
    a.lastPli = now;
    peer.stats.keyframesRequested++;
    // `tag` targets the sender (relays without targeted PLI ignore the extra field).
    this.session?.sendSignal({
      type: 'PictureLossIndication',
      body: { version: 1, stream_id: streamId, tag: peer.tag } as {
        version: number;
        stream_id: number;
      },
    });
  }

  // ── subscriptions (what this page asks the relay for, BINDING §6.3) ─────

  /**
   * Asks the relay for (or to stop) a sender's audio or video, or caps its
   * video layer. `tag: null` sets the default for every sender. With
   * `subscriptions: 'auto'` the next tile change recomputes `video` and
   * `maxLayer` of that sender.
   */
  setSubscription(
    tag: number | null,
    want: { audio?: boolean; video?: boolean; maxLayer?: number },
  ): void {
    this.session?.sendSignal({
      type: 'SubscriptionUpdate',
      body: {
        tag,
        ...(want.audio === undefined ? {} : { audio: want.audio }),
        ...(want.video === undefined ? {} : { video: want.video }),
        ...(want.maxLayer === undefined ? {} : { max_layer: want.maxLayer }),
      },
    });
    const targets = tag === null ? [...this.peers.values()] : [this.peers.get(tag)];
    for (const p of targets) {
      if (p !== undefined) {
        p.sub = {
          video: want.video ?? p.sub.video,
          maxLayer: want.maxLayer ?? p.sub.maxLayer,
        };
        p.stats.subscription = { ...p.sub };
      }
    }
  }

  /** Watches a participant's canvas: its visibility and drawn size drive its subscription. */
  private observe(peer: Peer): void {
    if (this.options.subscriptions === 'manual' || typeof IntersectionObserver === 'undefined') {
      return;
    }
    peer.observers.io = new IntersectionObserver(
      (entries) => {
        for (const e of entries) {
          peer.view.intersecting = e.isIntersecting;
        }
        this.scheduleSubscriptions();
      },
      { rootMargin: '64px' },
    );
    peer.observers.io.observe(peer.canvas);
    if (typeof ResizeObserver !== 'undefined') {
      peer.observers.ro = new ResizeObserver((entries) => {
        for (const e of entries) {
          peer.view.widthPx = e.contentRect.width * (globalThis.devicePixelRatio || 1);
        }
        this.scheduleSubscriptions();
      });
      peer.observers.ro.observe(peer.canvas);
    }
  }

  private scheduleSubscriptions(): void {
    if (this.subTimer === null) {
      this.subTimer = setTimeout(() => {
        this.subTimer = null;
        this.updateSubscriptions();
      }, SUBSCRIPTION_DEBOUNCE_MS);
    }
  }

  /** Sends a SubscriptionUpdate for each sender whose tile asks for something else now. */
  private updateSubscriptions(): void {
    if (this.session === null) {
      return;
    }
    const pageHidden = document.visibilityState === 'hidden';
    const [t0, t1] = LAYER_WIDTH_THRESHOLDS;
    for (const p of this.peers.values()) {
      const shown =
        !pageHidden && p.canvas.isConnected && p.view.intersecting && p.view.widthPx > 0;
      const maxLayer = p.view.widthPx < t0 ? 0 : p.view.widthPx < t1 ? 1 : MAX_LAYER;
      const want = { video: shown, maxLayer: shown ? maxLayer : p.sub.maxLayer };
      if (want.video !== p.sub.video || want.maxLayer !== p.sub.maxLayer) {
        this.setSubscription(p.tag, want);
      }
    }
  }

  // ── speakers and stats ───────────────────────────────────────────────────

  private updateSpeaker(): void {
    let best: Peer | null = null;
    for (const p of this.peers.values()) {
      // Levels decay when no audio arrives (muted senders stop sending).
      if (performance.now() - p.lastArrival > 300) {
        p.stats.audioLevel *= 0.5;
      }
      p.stats.speaking = p.stats.audioLevel > 0.01;
      if (p.stats.speaking && (best === null || p.stats.audioLevel > best.stats.audioLevel)) {
        best = p;
      }
    }
    const tag = best?.tag ?? null;
    if (tag !== this.activeSpeaker) {
      this.activeSpeaker = tag;
      this.dispatchEvent(new CustomEvent('activespeaker', { detail: tag }));
    }
  }

  /** Level of the local microphone (RMS, 0..1). */
  get microphoneLevel(): number {
    return this.localLevel;
  }

  /** The canvas a participant's video is drawn on. */
  canvasOf(tag: number): HTMLCanvasElement | null {
    return this.peers.get(tag)?.canvas ?? null;
  }

  /** The last second of a participant's decoded audio (48 kHz mono), oldest first. */
  recentAudio(tag: number): Float32Array {
    const p = this.peers.get(tag);
    if (p === undefined) {
      return new Float32Array(0);
    }
    const out = new Float32Array(p.ring.length);
    out.set(p.ring.subarray(p.ringPos), 0);
    out.set(p.ring.subarray(0, p.ringPos), p.ring.length - p.ringPos);
    return out;
  }

  getStats(): CallStats {
    return {
      room: this.options.room,
      state: this.state,
      tag: this.tag,
      fingerprint: this.identity?.fingerprint ?? '',
      profile: this.profile,
      videoCodec: this.videoCodec,
      transport: 'websocket',
      relayUrl: this.session?.url ?? null,
      redirects: this.redirects,
      rttMs: this.rttMs,
      reconnects: this.reconnects,
      e2ee: { enabled: this.roomKey !== null, impl: this.cipherImpl },
      muted: this.muted,
      cameraOn: this.cameraOn,
      sent: { ...this.sent },
      layers: this.layers.map((l) => ({
        streamId: l.streamId,
        width: l.width,
        height: l.height,
        frames: l.frames,
        keyframes: l.keyframes,
      })),
      mediaBufferedBytes: this.session?.mediaBuffered ?? 0,
      peers: [...this.peers.values()].map((p) => ({ ...p.stats })),
    };
  }

  /** The automation hook (`window.wzpStats()`). */
  wzpStats(): WzpStats {
    const peers: WzpStats['peers'] = {};
    for (const p of this.peers.values()) {
      peers[p.tag] = {
        alias: p.alias,
        audioFramesDecoded: p.stats.audioFramesDecoded,
        videoFramesDecoded: p.stats.videoFramesDecoded,
        audioLevel: p.stats.audioLevel,
      };
    }
    return { room: this.options.room, participants: this.participants.length, peers };
  }
}

/** Opus bitrates of the WZP codec table (for UIs). */
export const AUDIO_CODECS = CODECS.filter((c) => c.name.startsWith('Opus')).map((c) => c.name);

/**
 * Joins `room` on the relay at `url`: opens the microphone and camera,
 * connects, and starts sending. `window.wzpStats()` reports on the call.
 */
export async function connect(options: ConnectOptions): Promise<WzpCall> {
  const call = new WzpCall(options);
  await call.start();
  if (typeof window !== 'undefined') {
    window.wzpStats = () => call.wzpStats();
    window.wzpCall = call;
  }
  return call;
}
