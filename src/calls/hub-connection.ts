/**
 * One WebSocket on the direct-call hub (`/v2/hub`): optional AuthToken (its
 * grants must include `call`), then a signed RegisterPresence within
 * `hub_register_timeout_ms`, then call signalling until the socket closes.
 *
 * Bounded like the room signalling: a message rate per connection, a frame
 * size bound, at most one Error reply per second (carrying the count of the
 * refusals it stands for), and a cap on what may wait in the send buffer.
 */
import type { RawData, WebSocket } from 'ws';
import { verifyToken } from '../auth/token.js';
import type { RelayConfig } from '../config/index.js';
import { type ErrorCode, isWzpError, WzpError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import type { RelayMetrics } from '../metrics/index.js';
import {
  type BodyOf,
  decodeSignal,
  encodeSignal,
  fingerprint,
  type OutgoingSignal,
  type SignalMessage,
  verifyRegisterPresence,
} from '../signal/index.js';
import { toBuffer } from '../util/buffers.js';
import { ErrorReplyLimiter } from '../util/error-replies.js';
import { TokenBucket } from '../util/token-bucket.js';
import type { Hub, HubUser } from './hub.js';

/** A reader this far behind is closed rather than buffered for. */
const MAX_BUFFERED_BYTES = 1 << 20;
/** WebSocket close codes. */
const CLOSE_POLICY = 1008;
const CLOSE_SLOW = 4010;
const CLOSE_REPLACED = 4011;

type State = 'auth' | 'register' | 'registered' | 'closed';

export interface HubConnectionOptions {
  config: RelayConfig;
  log: Logger;
  metrics: RelayMetrics;
  hub: Hub;
  /** `a.b.c.d:port` of the peer (ReflectResponse). */
  remote: string;
  /** Build string sent in RegisterPresenceAck. */
  build: string;
}

export class HubConnection implements HubUser {
  private state: State;
  private registeredAs: {
    fingerprint: string;
    alias: string | null;
    contacts: Set<string>;
  } | null = null;
  private subject: string | null = null;
  private readonly bucket: TokenBucket;
  private readonly timer: NodeJS.Timeout;
  /** At most one Error reply per second (no burst), carrying the count of refusals. */
  private readonly errorReplies = new ErrorReplyLimiter(1);
  private readonly log: Logger;
  private busy: Promise<void> = Promise.resolve();

  constructor(
    private readonly ws: WebSocket,
    private readonly o: HubConnectionOptions,
  ) {
    this.log = o.log.child({ component: 'hub', conn: o.remote });
    this.state = o.config.auth_secret !== undefined ? 'auth' : 'register';
    const rate = o.config.signal_rate_per_sec;
    this.bucket = new TokenBucket(rate, rate * 2, performance.now());
    this.timer = setTimeout(() => {
      if (this.state === 'auth' || this.state === 'register') {
        this.refuse('HUB_REGISTER_TIMEOUT', 'no RegisterPresence in time', true);
      }
    }, o.config.hub_register_timeout_ms);
    this.timer.unref();
    ws.on('message', (data, isBinary) => this.onFrame(data, isBinary));
    ws.on('close', () => this.onClose());
    ws.on('error', (err) => this.log.debug({ err: err.message }, 'hub websocket error'));
  }

  get fingerprint(): string {
    return this.registeredAs?.fingerprint ?? '';
  }

  get alias(): string | null {
    return this.registeredAs?.alias ?? null;
  }

  get contacts(): ReadonlySet<string> {
    return this.registeredAs?.contacts ?? new Set();
  }

  send(msg: OutgoingSignal): void {
    if (this.ws.readyState !== this.ws.OPEN) {
      return;
    }
    if (this.ws.bufferedAmount > MAX_BUFFERED_BYTES) {
      this.log.info({ buffered: this.ws.bufferedAmount }, 'hub reader too slow, closing');
      this.o.metrics.hubRejections.labels('SLOW_READER').inc();
      this.state = 'closed';
      this.ws.close(CLOSE_SLOW, 'reader too slow');
      return;
    }
    try {
      this.ws.send(encodeSignal(msg), { binary: true });
    } catch (err) {
      this.log.warn({ err: (err as Error).message, type: msg.type }, 'cannot encode hub signal');
    }
  }

  replaced(): void {
    this.refuse('HUB_ALREADY_REGISTERED', 'this identity registered on another connection', false);
    this.state = 'closed';
    this.close(CLOSE_REPLACED, 'registered elsewhere');
  }

  close(code = 1000, reason = ''): void {
    clearTimeout(this.timer);
    if (this.ws.readyState === this.ws.OPEN || this.ws.readyState === this.ws.CONNECTING) {
      this.ws.close(code, reason.slice(0, 120));
    }
  }

  terminate(): void {
    this.ws.terminate();
  }

  private onFrame(data: RawData, isBinary: boolean): void {
    if (this.state === 'closed') {
      return;
    }
    if (!this.bucket.take(performance.now())) {
      this.refuse('SIGNAL_RATE_LIMITED', 'too many hub messages', false);
      return;
    }
    let msg: SignalMessage;
    try {
      if (!isBinary) {
        throw new WzpError('SIGNAL_UNDECODABLE', 'hub frames must be binary');
      }
      msg = decodeSignal(toBuffer(data), this.o.config.signal_max_frame_bytes);
    } catch (err) {
      const code: ErrorCode = isWzpError(err) ? err.code : 'SIGNAL_UNDECODABLE';
      this.refuse(
        code,
        err instanceof Error ? err.message : String(err),
        this.state !== 'registered',
      );
      return;
    }
    // Token verification is async: keep messages in order behind it.
    this.busy = this.busy
      .then(() => this.handle(msg))
      .catch((err: unknown) => {
        if (isWzpError(err)) {
          this.refuse(err.code, err.message, this.state !== 'registered');
        } else {
          this.log.error({ err }, 'hub handler failed');
          this.refuse('SIGNAL_UNEXPECTED', 'internal error', true);
        }
      });
  }

  private async handle(msg: SignalMessage): Promise<void> {
    if (this.state === 'closed') {
      return;
    }
    if (msg.type === 'Ping') {
      this.send({ type: 'Pong', body: { timestamp_ms: msg.body.timestamp_ms } });
      return;
    }
    if (msg.type === 'Reflect') {
      this.send({ type: 'ReflectResponse', body: { observed_addr: this.o.remote } });
      return;
    }
    if (this.state === 'auth') {
      if (msg.type !== 'AuthToken') {
        throw new WzpError('AUTH_FAILED', 'the first hub message must be AuthToken');
      }
      const t = await verifyToken(
        msg.body.token,
        this.o.config.auth_secret as string,
        this.o.config.auth_issuer,
      );
      if (!t.grants.call) {
        throw new WzpError('AUTH_FAILED', 'the token does not grant calling (wzp.call)');
      }
      this.subject = t.subject;
      this.state = 'register';
      return;
    }
    if (this.state === 'register') {
      if (msg.type !== 'RegisterPresence') {
        throw new WzpError('HUB_NOT_REGISTERED', `${msg.type} before RegisterPresence`);
      }
      this.register(msg.body);
      return;
    }
    const hub = this.o.hub;
    let refusal: ErrorCode | null;
    switch (msg.type) {
      case 'RegisterPresence':
        this.refuse('HUB_ALREADY_REGISTERED', 'already registered', false);
        return;
      case 'DirectCallOffer':
        refusal = hub.offer(this, msg.body);
        if (refusal !== null) {
          // The caller learns which call failed; bounded by the message rate.
          this.send({ type: 'Hangup', body: { reason: 'Error', call_id: msg.body.call_id } });
        }
        break;
      case 'DirectCallAnswer':
        refusal = hub.answer(this, msg.body);
        break;
      case 'Hangup':
      case 'CandidateUpdate':
      case 'MediaPathReport':
      case 'UpgradeProposal':
      case 'UpgradeResponse':
      case 'UpgradeConfirm':
      case 'QualityCapability':
        refusal = hub.callSignal(this, msg as OutgoingSignal & { body: { call_id?: string } });
        break;
      case 'Pong':
        return;
      default:
        this.refuse('SIGNAL_UNEXPECTED', `${msg.type} is not used on the hub`, false);
        return;
    }
    if (refusal !== null) {
      // The hub counted it already.
      this.refuse(refusal, `${msg.type} refused`, false, false);
    }
  }

  private register(body: BodyOf<'RegisterPresence'>): void {
    const fp = fingerprint(body.identity_pub);
    const subjectOk =
      this.subject === null || !looksLikeFingerprint(this.subject) || this.subject === fp;
    if (!subjectOk || !verifyRegisterPresence(body.identity_pub, body.signature)) {
      this.send({
        type: 'RegisterPresenceAck',
        body: { success: false, error: 'HUB_BAD_REGISTRATION' },
      });
      throw new WzpError(
        'HUB_BAD_REGISTRATION',
        subjectOk
          ? 'RegisterPresence signature does not verify'
          : 'key differs from the token subject',
      );
    }
    clearTimeout(this.timer);
    this.registeredAs = { fingerprint: fp, alias: body.alias, contacts: new Set(body.contacts) };
    this.state = 'registered';
    this.send({
      type: 'RegisterPresenceAck',
      body: { success: true, fingerprint: fp, relay_build: this.o.build },
    });
    this.o.hub.register(this);
  }

  /**
   * Counts a refusal and answers with a typed Error — at most one per second,
   * with the number of refusals it stands for; closes when `close`.
   */
  private refuse(code: ErrorCode, message: string, close: boolean, count = true): void {
    if (count) {
      this.o.metrics.hubRejections.labels(code).inc();
    }
    const n = this.errorReplies.admit(performance.now(), close);
    if (n > 0) {
      this.log.info({ code, count: n, closing: close }, message.slice(0, 200));
      this.send({
        type: 'Error',
        body: { code, message: `${message.slice(0, 900)}${n > 1 ? ` (${n} refusals)` : ''}` },
      });
    }
    if (close) {
      this.state = 'closed';
      this.close(CLOSE_POLICY, code);
    }
  }

  private onClose(): void {
    clearTimeout(this.timer);
    const wasRegistered = this.registeredAs !== null;
    this.state = 'closed';
    if (wasRegistered) {
      this.o.hub.unregister(this);
    }
  }
}

function looksLikeFingerprint(s: string): boolean {
  return /^([0-9a-f]{4}:){7}[0-9a-f]{4}$/.test(s);
}
