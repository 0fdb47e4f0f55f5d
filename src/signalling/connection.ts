/**
 * One signalling WebSocket: the handshake state machine (AuthToken →
 * CallOffer → CallAnswer), then the in-room signals (PLI, Ping, Hangup).
 *
 * Messages are handled strictly in arrival order through a bounded queue.
 * Network work (token verification, signature check) happens before the
 * room's critical section; the RoomUpdate is sent after it.
 *
 * Hostile input is bounded on both sides: every frame is scanned against
 * the decode limits before it is decoded and charged to a per-connection
 * decode budget (over it, the connection closes); rejections are counted
 * every time but answered at most once per second after a small burst,
 * with a count, and logged sampled; every send checks the WebSocket's
 * buffered bytes against a cap, and a peer that does not read is closed.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import type { RawData, WebSocket } from 'ws';
import { type Grants, grantsAllowRoom, verifyToken } from '../auth/token.js';
import { type ErrorCode, isWzpError, WzpError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import type { Session } from '../media/session.js';
import { validateRoomName } from '../room/index.js';
import {
  type BodyOf,
  CLIENT_DECODE_LIMITS,
  type DecodeLimits,
  decodeScannedSignal,
  encodeSignal,
  fingerprint,
  frameCost,
  negotiateProfile,
  negotiateVideoCodec,
  type OutgoingSignal,
  PROTOCOL_VERSION,
  rawPublicKey,
  type SignalMessage,
  scanMsgpack,
  signCallAnswer,
  verifyCallOffer,
} from '../signal/index.js';
import { rawDataBytes, toBuffer } from '../util/buffers.js';
import { ErrorReplyLimiter } from '../util/error-replies.js';
import { frameHandled } from '../util/reclaim.js';
import { threadCpuUsage } from '../util/thread-cpu.js';
import { TokenBucket } from '../util/token-bucket.js';
import type { RelayCore, SignalPeer } from './relay-core.js';

type State = 'auth' | 'offer' | 'joining' | 'joined' | 'closed';

/** Messages waiting to be handled; more than this and the connection is flooding. */
const MAX_PENDING = 64;
/** Error replies: a burst of this many, then one per second (the rest are counted). */
export const ERROR_REPLY_BURST = 8;
/** After a close frame, the peer gets this long to answer before the TCP connection is cut. */
const CLOSE_GRACE_MS = 1000;

const limitsByMax = new Map<number, DecodeLimits>();

/** The client decode limits with `maxBytes` frames (one frozen object per size). */
function clientLimits(maxBytes: number): DecodeLimits {
  let l = limitsByMax.get(maxBytes);
  if (l === undefined) {
    l = Object.freeze({ ...CLIENT_DECODE_LIMITS, maxBytes });
    limitsByMax.set(maxBytes, l);
  }
  return l;
}

export class SignalConnection implements SignalPeer {
  private state: State;
  private session: Session | null = null;
  private grants: Grants | null = null;
  private subject: string | null = null;
  private readonly bucket: TokenBucket;
  private readonly budget: TokenBucket;
  private readonly errorReplies: ErrorReplyLimiter;
  private readonly limits: DecodeLimits;
  private readonly sendCap: number;
  private closeTimer: NodeJS.Timeout | null = null;
  private readonly handshakeTimer: NodeJS.Timeout;
  private readonly openedAt = performance.now();
  private queue: Promise<void> = Promise.resolve();
  private pending = 0;
  private readonly log: Logger;

  constructor(
    private readonly core: RelayCore,
    private readonly ws: WebSocket,
    readonly remote: string,
  ) {
    this.log = core.log.child({ conn: remote });
    this.state = core.config.auth_secret !== undefined ? 'auth' : 'offer';
    const cfg = core.config;
    const now = performance.now();
    const rate = cfg.signal_rate_per_sec;
    this.bucket = new TokenBucket(rate, rate * 2, now);
    this.budget = new TokenBucket(
      cfg.signal_budget_bytes_per_sec,
      cfg.signal_budget_burst_bytes,
      now,
    );
    this.errorReplies = new ErrorReplyLimiter(ERROR_REPLY_BURST, 1, now);
    this.limits = clientLimits(cfg.signal_max_frame_bytes);
    this.sendCap = cfg.signal_send_buffer_bytes;
    this.handshakeTimer = setTimeout(() => {
      if (this.state === 'auth' || this.state === 'offer') {
        this.handshakeTimeout();
      }
    }, cfg.handshake_timeout_ms);
    this.handshakeTimer.unref();
    ws.on('message', (data, isBinary) => this.onFrame(data, isBinary));
    ws.on('close', () => this.onClose());
    ws.on('error', (err: Error & { code?: string }) => {
      // Frames over maxPayload and protocol violations end here; ws then closes.
      const code: ErrorCode =
        err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH'
          ? 'SIGNAL_TOO_LARGE'
          : 'SIGNAL_UNDECODABLE';
      this.core.metrics.signalErrors.labels(code).inc();
      this.logSampled(code, { err: err.message }, 'websocket error');
    });
  }

  /** True once the connection joined a room (it is then not evictable). */
  get established(): boolean {
    return this.state === 'joined';
  }

  /** The joined session, if any. */
  get joined(): Session | null {
    return this.session;
  }

  /**
   * Sends a message if the socket is open; never throws. A peer whose send
   * buffer is over the cap is not reading: it is closed (SIGNAL_SLOW_READER).
   */
  send(msg: OutgoingSignal, onSent?: () => void): void {
    if (this.ws.readyState !== this.ws.OPEN) {
      return;
    }
    let bytes: Uint8Array;
    try {
      bytes = encodeSignal(msg);
    } catch (err) {
      this.log.warn({ err: (err as Error).message, type: msg.type }, 'cannot encode signal');
      return;
    }
    this.sendFrame(bytes, onSent);
  }

  /** Sends an encoded message, under the same send-buffer cap as `send`. */
  sendFrame(bytes: Uint8Array, onSent?: () => void): void {
    if (this.ws.readyState !== this.ws.OPEN) {
      return;
    }
    if (this.ws.bufferedAmount > this.sendCap) {
      this.slowReader();
      return;
    }
    this.ws.send(bytes, { binary: true }, onSent);
    this.core.metrics.signalMessagesOut.inc();
  }

  /**
   * Closes the WebSocket (the session ends through the close handler). The
   * peer has CLOSE_GRACE_MS to answer the close frame, then the TCP
   * connection is cut (ws itself would wait 30 s).
   */
  close(code = 1000, reason = ''): void {
    clearTimeout(this.handshakeTimer);
    if (this.ws.readyState === this.ws.OPEN || this.ws.readyState === this.ws.CONNECTING) {
      this.ws.close(code, reason.slice(0, 120));
    }
    if (this.closeTimer === null && this.ws.readyState !== this.ws.CLOSED) {
      this.closeTimer = setTimeout(() => this.ws.terminate(), CLOSE_GRACE_MS);
      this.closeTimer.unref();
    }
  }

  /** Ends without waiting for the peer (shutdown deadline reached, eviction). */
  terminate(): void {
    this.state = 'closed';
    this.ws.terminate();
  }

  /** The handshake did not complete in time: Error, then the TCP connection is cut at once. */
  private handshakeTimeout(): void {
    const code = 'SIGNAL_HANDSHAKE_TIMEOUT';
    this.core.metrics.signalErrors.labels(code).inc();
    this.logSampled(code, {}, 'signalling error');
    this.state = 'closed';
    if (this.ws.readyState !== this.ws.OPEN || this.ws.bufferedAmount > 0) {
      this.ws.terminate();
      return;
    }
    this.send(
      { type: 'Error', body: { version: 1, code, message: 'handshake not completed in time' } },
      () => this.ws.terminate(),
    );
    // The write callback may never come (a peer that does not read): cut anyway.
    setTimeout(() => this.ws.terminate(), 100).unref();
  }

  /** The peer does not read what we send: count, log sampled, close without waiting. */
  private slowReader(): void {
    if (this.state === 'closed' && this.closeTimer !== null) {
      return;
    }
    const code = 'SIGNAL_SLOW_READER';
    this.core.metrics.signalErrors.labels(code).inc();
    this.logSampled(
      code,
      { buffered: this.ws.bufferedAmount, cap: this.sendCap },
      'signalling peer does not read; closing',
    );
    this.state = 'closed';
    this.ws.terminate();
  }

  /** Logs `msg` unless the relay-wide sampler swallows it (at most a few lines/s per code). */
  private logSampled(code: string, fields: Record<string, unknown>, msg: string): void {
    const suppressed = this.core.logSampler.sample(code, performance.now());
    if (suppressed >= 0) {
      this.log.info({ code, ...fields, ...(suppressed > 0 ? { suppressed } : {}) }, msg);
    }
  }

  private onFrame(data: RawData, isBinary: boolean): void {
    if (this.state === 'closed') {
      // Frames still buffered behind a close: not worth a look.
      frameHandled(rawDataBytes(data), performance.now());
      return;
    }
    const t0 = performance.now();
    const cpu0 = threadCpuUsage();
    try {
      this.onFrameTimed(data, isBinary, t0);
    } finally {
      const cpu = threadCpuUsage(cpu0);
      const m = this.core.metrics;
      const t1 = performance.now();
      m.signalFrameSeconds.observe((t1 - t0) / 1000);
      m.signalFrameCpuSeconds.observe((cpu.user + cpu.system) / 1e6);
      // Outside the frame's time: what the frame left behind is reclaimed (util/reclaim.ts).
      frameHandled(rawDataBytes(data), t1);
    }
  }

  private onFrameTimed(data: RawData, isBinary: boolean, now: number): void {
    this.core.metrics.signalMessagesIn.inc();
    const frame = toBuffer(data);
    if (!this.bucket.take(now) || this.pending >= MAX_PENDING) {
      if (this.charge(frame.length, 0, now)) {
        this.fail('SIGNAL_RATE_LIMITED', 'too many signalling messages', this.inHandshake());
      }
      return;
    }
    let msg: SignalMessage;
    let elements = 0;
    try {
      if (!isBinary) {
        throw new WzpError('SIGNAL_UNDECODABLE', 'signalling frames must be binary');
      }
      elements = scanMsgpack(frame, this.limits);
    } catch (err) {
      if (this.charge(frame.length, 0, now)) {
        const code: ErrorCode = isWzpError(err) ? err.code : 'SIGNAL_UNDECODABLE';
        this.fail(code, err instanceof Error ? err.message : String(err), this.inHandshake());
      }
      return;
    }
    if (!this.charge(frame.length, elements, now)) {
      return;
    }
    try {
      msg = decodeScannedSignal(frame);
    } catch (err) {
      const code: ErrorCode = isWzpError(err) ? err.code : 'SIGNAL_UNDECODABLE';
      this.fail(code, err instanceof Error ? err.message : String(err), this.inHandshake());
      return;
    }
    this.pending++;
    this.queue = this.queue
      .then(() => this.handle(msg))
      .catch((err: unknown) => {
        if (isWzpError(err)) {
          this.fail(err.code, err.message, this.inHandshake());
        } else {
          this.log.error({ err }, 'signal handler failed');
          this.fail('SIGNAL_UNEXPECTED', 'internal error', true);
        }
      })
      .finally(() => {
        this.pending--;
      });
  }

  /**
   * Charges a frame to the decode budget. Over budget the connection is
   * closed (SIGNAL_OVER_BUDGET) and false is returned.
   */
  private charge(bytes: number, elements: number, now: number): boolean {
    if (this.budget.take(now, frameCost(bytes, elements))) {
      return true;
    }
    this.fail(
      'SIGNAL_OVER_BUDGET',
      `decode budget of ${this.core.config.signal_budget_bytes_per_sec} per second spent`,
      true,
    );
    // Whatever is still buffered is not parsed: the TCP connection goes now.
    this.ws.terminate();
    return false;
  }

  private inHandshake(): boolean {
    return this.state === 'auth' || this.state === 'offer' || this.state === 'joining';
  }

  private async handle(msg: SignalMessage): Promise<void> {
    switch (this.state) {
      case 'auth':
        if (msg.type !== 'AuthToken') {
          this.core.metrics.authAttempts.labels('fail').inc();
          throw new WzpError('AUTH_FAILED', `expected AuthToken first, got ${msg.type}`);
        }
        await this.onAuth(msg.body.token);
        return;
      case 'offer':
        if (msg.type === 'AuthToken') {
          return; // no auth configured: accepted and ignored
        }
        if (msg.type !== 'CallOffer') {
          throw new WzpError('SIGNAL_UNEXPECTED', `expected CallOffer, got ${msg.type}`);
        }
        await this.onOffer(msg.body);
        return;
      case 'joined':
        this.inRoom(msg);
        return;
      default:
        return;
    }
  }

  private async onAuth(token: string): Promise<void> {
    const secret = this.core.config.auth_secret as string;
    try {
      const verified = await verifyToken(token, secret, this.core.config.auth_issuer);
      // Counted as ok once the offer's room is checked against the grants.
      this.grants = verified.grants;
      this.subject = verified.subject;
      this.state = 'offer';
    } catch (err) {
      this.core.metrics.authAttempts.labels('fail').inc();
      throw err;
    }
  }

  private async onOffer(offer: BodyOf<'CallOffer'>): Promise<void> {
    if (offer.protocol_version !== PROTOCOL_VERSION) {
      this.log.info(
        { protocol_version: offer.protocol_version ?? null },
        'protocol version mismatch',
      );
      this.send({
        type: 'Hangup',
        body: {
          version: 1,
          reason: { ProtocolVersionMismatch: { server_supported: [PROTOCOL_VERSION] } },
        },
      });
      this.core.metrics.signalErrors.labels('PROTOCOL_VERSION_MISMATCH').inc();
      this.state = 'closed';
      this.close(1002, 'protocol version mismatch');
      return;
    }
    if (!verifyCallOffer(offer.identity_pub, offer.ephemeral_pub, offer.signature)) {
      throw new WzpError('BAD_SIGNATURE', 'CallOffer signature does not verify');
    }
    validateRoomName(offer.room);
    if (this.grants !== null) {
      if (!grantsAllowRoom(this.grants, offer.room)) {
        this.core.metrics.authAttempts.labels('fail').inc();
        throw new WzpError(
          'AUTH_FAILED',
          `token does not grant room ${JSON.stringify(offer.room)}`,
        );
      }
      this.core.metrics.authAttempts.labels('ok').inc();
    }
    const profile = negotiateProfile(offer.supported_profiles);
    const videoCodec = negotiateVideoCodec(offer.video_codecs);
    const ephemeral = x25519Public();
    const bindToken = randomBytes(16);
    const fp = fingerprint(offer.identity_pub);
    this.state = 'joining';
    const route = await this.core.route(offer.room);
    if (route.kind === 'redirect') {
      // Fleet: the room lives on another relay (protocol/BINDING.md §3.2).
      this.send({
        type: 'Redirect',
        body: { version: 1, url: route.url, room: offer.room, relay_label: route.label },
      });
      this.state = 'closed';
      clearTimeout(this.handshakeTimer);
      this.close(1000, 'redirect');
      return;
    }
    const session = await this.core.join(this, {
      room: offer.room,
      fingerprint: fp,
      subject: this.subject,
      alias: offer.alias,
      bindToken,
      canPublish: this.grants?.publish ?? true,
      canSubscribe: this.grants?.subscribe ?? true,
      policy: {
        audioCodec: profile.codec,
        frameMs: profile.frame_duration_ms,
        videoKbps: announcedVideoKbps(offer.supported_profiles),
      },
    });
    if (this.ws.readyState !== this.ws.OPEN) {
      // The client left while we were joining.
      await this.core.endSession(session, 'ws_close');
      return;
    }
    this.session = session;
    this.state = 'joined';
    clearTimeout(this.handshakeTimer);
    this.send({
      type: 'CallAnswer',
      body: {
        version: 1,
        identity_pub: this.core.identity.publicKey,
        ephemeral_pub: ephemeral,
        signature: signCallAnswer(this.core.identity, ephemeral),
        chosen_profile: profile,
        ...(videoCodec === undefined ? {} : { video_codec: videoCodec }),
        udp_port: this.core.udpPortOf(session),
        bind_token: bindToken,
        participant_tag: session.tag,
      },
    });
    this.core.metrics.handshakeSeconds.observe((performance.now() - this.openedAt) / 1000);
    this.log.info(
      { room: offer.room, fingerprint: fp, tag: session.tag, session: session.id },
      'joined',
    );
    this.core.broadcastRoomUpdate(session);
  }

  private inRoom(msg: SignalMessage): void {
    const session = this.session as Session;
    switch (msg.type) {
      case 'PictureLossIndication':
        this.core.routePli(session, msg.body.stream_id, msg.body.tag ?? null);
        return;
      case 'SubscriptionUpdate':
        this.core.subscribe(session, {
          tag: msg.body.tag,
          audio: msg.body.audio ?? undefined,
          video: msg.body.video ?? undefined,
          maxLayer: msg.body.max_layer ?? undefined,
        });
        return;
      case 'TransportFeedback':
        this.core.transportFeedback(session, msg.body);
        return;
      case 'ResyncRequest':
        if (!this.core.resync(session, msg.body.tag)) {
          this.fail('SIGNAL_UNKNOWN_TAG', `no sender with tag ${msg.body.tag} in the room`, false);
        }
        return;
      case 'Ping': {
        // After every earlier signal reached the media plane (RelayCore.settled).
        const pong = (): void =>
          this.send({ type: 'Pong', body: { version: 1, timestamp_ms: msg.body.timestamp_ms } });
        void this.core.settled(session).then(pong, pong);
        return;
      }
      case 'Hangup':
        void this.core.endSession(session, 'hangup').then(() => this.close(1000, 'hangup'));
        return;
      case 'Pong':
        return;
      default:
        this.fail('SIGNAL_UNEXPECTED', `${msg.type} is not expected in a room`, false);
    }
  }

  /**
   * Counts a rejection and logs it sampled. It is answered with Error { code }
   * unless the replies are over their rate (burst 8, then 1/s): the next
   * reply then carries the count. Closing rejections are always answered.
   */
  fail(code: ErrorCode | 'PROTOCOL_VERSION_MISMATCH', message: string, close: boolean): void {
    if (this.state === 'closed') {
      return;
    }
    const now = performance.now();
    this.core.metrics.signalErrors.labels(code).inc();
    this.logSampled(code, { message: message.slice(0, 200), closing: close }, 'signalling error');
    const count = this.errorReplies.admit(now, close);
    if (count > 0) {
      const text =
        count > 1 ? `${message.slice(0, 900)} (and ${count - 1} more rejections)` : message;
      this.send({
        type: 'Error',
        body: {
          version: 1,
          code,
          message: text.slice(0, 1000),
          ...(count > 1 ? { count } : {}),
        },
      });
    }
    if (close) {
      this.state = 'closed';
      this.close(1008, code);
    }
  }

  private onClose(): void {
    clearTimeout(this.handshakeTimer);
    if (this.closeTimer !== null) {
      clearTimeout(this.closeTimer);
    }
    this.state = 'closed';
    this.core.connectionClosed(this);
    if (this.session !== null) {
      void this.core.endSession(this.session, 'ws_close');
    }
  }
}

/** A fresh X25519 public key for the CallAnswer (the relay never decrypts media). */
function x25519Public(): Buffer {
  return rawPublicKey(generateKeyPairSync('x25519').publicKey);
}

/** The largest video_bitrate_kbps of the offered profiles (what media policing allows), or null. */
function announcedVideoKbps(
  profiles: readonly { video_bitrate_kbps?: number | null }[],
): number | null {
  let best: number | null = null;
  for (const p of profiles) {
    const v = p.video_bitrate_kbps;
    if (typeof v === 'number' && Number.isFinite(v) && v > 0 && (best === null || v > best)) {
      best = v;
    }
  }
  return best;
}
