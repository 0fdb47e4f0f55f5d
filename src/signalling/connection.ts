/**
 * One signalling WebSocket: the handshake state machine (AuthToken →
 * CallOffer → CallAnswer), then the in-room signals (PLI, Ping, Hangup).
 *
 * Messages are handled strictly in arrival order through a bounded queue.
 * Network work (token verification, signature check) happens before the
 * room's critical section; the RoomUpdate is sent after it.
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
  decodeSignal,
  encodeSignal,
  fingerprint,
  negotiateProfile,
  negotiateVideoCodec,
  type OutgoingSignal,
  PROTOCOL_VERSION,
  type SignalMessage,
  signCallAnswer,
  verifyCallOffer,
} from '../signal/index.js';
import { toBuffer } from '../util/buffers.js';
import { TokenBucket } from '../util/token-bucket.js';
import type { RelayCore, SignalPeer } from './relay-core.js';

type State = 'auth' | 'offer' | 'joining' | 'joined' | 'closed';

/** Messages waiting to be handled; more than this and the connection is flooding. */
const MAX_PENDING = 64;

export class SignalConnection implements SignalPeer {
  private state: State;
  private session: Session | null = null;
  private grants: Grants | null = null;
  private readonly bucket: TokenBucket;
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
    const rate = core.config.signal_rate_per_sec;
    this.bucket = new TokenBucket(rate, rate * 2, performance.now());
    this.handshakeTimer = setTimeout(() => {
      if (this.state === 'auth' || this.state === 'offer') {
        this.fail('SIGNAL_HANDSHAKE_TIMEOUT', 'handshake not completed in time', true);
      }
    }, core.config.handshake_timeout_ms);
    this.handshakeTimer.unref();
    ws.on('message', (data, isBinary) => this.onFrame(data, isBinary));
    ws.on('close', () => this.onClose());
    ws.on('error', (err) => this.log.debug({ err: err.message }, 'websocket error'));
  }

  /** The joined session, if any. */
  get joined(): Session | null {
    return this.session;
  }

  /** Sends a message if the socket is open; never throws. */
  send(msg: OutgoingSignal): void {
    if (this.ws.readyState !== this.ws.OPEN) {
      return;
    }
    try {
      this.ws.send(encodeSignal(msg), { binary: true });
      this.core.metrics.signalMessages.labels('out').inc();
    } catch (err) {
      this.log.warn({ err: (err as Error).message, type: msg.type }, 'cannot encode signal');
    }
  }

  /** Closes the WebSocket (the session ends through the close handler). */
  close(code = 1000, reason = ''): void {
    clearTimeout(this.handshakeTimer);
    if (this.ws.readyState === this.ws.OPEN || this.ws.readyState === this.ws.CONNECTING) {
      this.ws.close(code, reason.slice(0, 120));
    }
  }

  /** Ends without waiting for the peer (shutdown deadline reached). */
  terminate(): void {
    this.ws.terminate();
  }

  private onFrame(data: RawData, isBinary: boolean): void {
    this.core.metrics.signalMessages.labels('in').inc();
    if (this.state === 'closed') {
      return;
    }
    if (!this.bucket.take(performance.now()) || this.pending >= MAX_PENDING) {
      this.fail('SIGNAL_RATE_LIMITED', 'too many signalling messages', this.inHandshake());
      return;
    }
    const frame = toBuffer(data);
    let msg: SignalMessage;
    try {
      if (!isBinary) {
        throw new WzpError('SIGNAL_UNDECODABLE', 'signalling frames must be binary');
      }
      msg = decodeSignal(frame, this.core.config.signal_max_frame_bytes);
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
      alias: offer.alias,
      bindToken,
      canPublish: this.grants?.publish ?? true,
      canSubscribe: this.grants?.subscribe ?? true,
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
        udp_port: this.core.advertisedUdpPort,
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
        this.core.routePli(session, msg.body.stream_id);
        return;
      case 'Ping':
        this.send({ type: 'Pong', body: { version: 1, timestamp_ms: msg.body.timestamp_ms } });
        return;
      case 'Hangup':
        void this.core.endSession(session, 'hangup').then(() => this.close(1000, 'hangup'));
        return;
      case 'Pong':
        return;
      default:
        this.fail('SIGNAL_UNEXPECTED', `${msg.type} is not expected in a room`, false);
    }
  }

  /** Answers with Error { code }, counts and logs it; closes during the handshake. */
  fail(code: ErrorCode | 'PROTOCOL_VERSION_MISMATCH', message: string, close: boolean): void {
    this.core.metrics.signalErrors.labels(code).inc();
    this.log.info({ code, message: message.slice(0, 200), closing: close }, 'signalling error');
    this.send({ type: 'Error', body: { version: 1, code, message: message.slice(0, 1000) } });
    if (close) {
      this.state = 'closed';
      this.close(1008, code);
    }
  }

  private onClose(): void {
    clearTimeout(this.handshakeTimer);
    this.state = 'closed';
    this.core.connectionClosed(this);
    if (this.session !== null) {
      void this.core.endSession(this.session, 'ws_close');
    }
  }
}

/** A fresh X25519 public key for the CallAnswer (the relay never decrypts media). */
function x25519Public(): Buffer {
  const { publicKey } = generateKeyPairSync('x25519');
  const der = publicKey.export({ format: 'der', type: 'spki' });
  return Buffer.from(der.subarray(der.length - 32));
}
