/**
 * One session with the relay from a browser: the signalling WebSocket
 * (`/v2/signal`, handshake of BINDING §3) and the media WebSocket
 * (`/v2/media`, the UDP binding's datagrams one per message, BINDING §4.4).
 * A new `Session` is made for every (re)connect: fresh ephemeral key, bind
 * token and media socket.
 */
import { type BrowserIdentity, signCallOffer, verifyCallAnswer } from './crypto.js';
import {
  BIND_CHALLENGE_DATAGRAM_SIZE,
  BIND_RECOMMENDED_SIZE,
  BIND_TOKEN_SIZE,
  type BodyOf,
  decodeSignal,
  encodeSignal,
  FrameType,
  type OutgoingSignal,
  type QualityProfile,
  type SignalMessage,
} from './protocol.js';

export interface SessionOptions {
  /** ws(s)://host:port (any path; /v2/signal and /v2/media are used). */
  url: string;
  room: string;
  alias: string | null;
  token?: string;
  identity: BrowserIdentity;
  profiles: QualityProfile[];
  videoCodecs: string[];
  timeoutMs: number;
  onSignal: (msg: SignalMessage) => void;
  onDatagram: (data: Uint8Array) => void;
  /** Either socket closed (after the session was up). */
  onClosed: (why: string) => void;
  /** Redirects (fleet, BINDING §3.2) followed before failing with FLEET_REDIRECT_LOOP (3). */
  maxRedirects?: number;
  /** Told each Redirect followed (the home relay's signalling URL). */
  onRedirect?: (url: string, relayLabel: string | null) => void;
}

/** The relay answered the CallOffer with `Redirect` (a fleet): join at `url` instead. */
class Redirected extends Error {
  constructor(
    readonly url: string,
    readonly relayLabel: string | null,
  ) {
    super(`redirected to ${url}`);
  }
}

export class SignalError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'SignalError';
  }
}

/** The signalling, media and hub URLs for a relay URL (http(s) → ws(s)). */
export function relayUrls(url: string): { signal: string; media: string; hub: string } {
  const u = new URL(url, globalThis.location?.href);
  if (u.protocol === 'http:') {
    u.protocol = 'ws:';
  } else if (u.protocol === 'https:') {
    u.protocol = 'wss:';
  }
  u.search = '';
  u.hash = '';
  u.pathname = '/v2/signal';
  const signal = u.toString();
  u.pathname = '/v2/media';
  const media = u.toString();
  u.pathname = '/v2/hub';
  return { signal, media, hub: u.toString() };
}

function openSocket(url: string, timeoutMs: number): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.binaryType = 'arraybuffer';
    const timer = setTimeout(() => {
      ws.close();
      reject(new SignalError('TRANSPORT_TIMEOUT', `cannot open ${url}`));
    }, timeoutMs);
    ws.onopen = () => {
      clearTimeout(timer);
      resolve(ws);
    };
    ws.onerror = () => {
      clearTimeout(timer);
      reject(new SignalError('TRANSPORT_CLOSED', `cannot open ${url}`));
    };
  });
}

export class Session {
  answer!: BodyOf<'CallAnswer'>;
  /** Redirects followed to get here. */
  redirects = 0;
  private signal!: WebSocket;
  private media!: WebSocket;
  private closed = false;

  private constructor(
    private readonly options: SessionOptions,
    /** The relay this session is on (after any Redirect). */
    readonly url: string,
  ) {}

  /**
   * Handshake, media socket, BIND until BIND_ACK. A `Redirect` before the
   * CallAnswer (a fleet, BINDING §3.2) starts over at the home relay's URL:
   * a new WebSocket, the same token, a fresh CallOffer; the media socket then
   * goes to that relay too.
   */
  static async open(options: SessionOptions): Promise<Session> {
    const max = options.maxRedirects ?? 3;
    let url = options.url;
    for (let hops = 0; ; hops++) {
      const s = new Session(options, url);
      s.redirects = hops;
      try {
        await s.handshake();
        await s.bind();
        return s;
      } catch (err) {
        s.close();
        if (!(err instanceof Redirected)) {
          throw err;
        }
        if (hops >= max) {
          throw new SignalError(
            'FLEET_REDIRECT_LOOP',
            `redirected more than ${max} times (last to ${err.url})`,
          );
        }
        options.onRedirect?.(err.url, err.relayLabel);
        url = err.url;
      }
    }
  }

  get tag(): number {
    return this.answer.participant_tag;
  }

  /** Bytes the media socket has not sent yet (for the sender's own backpressure). */
  get mediaBuffered(): number {
    return this.media?.bufferedAmount ?? 0;
  }

  sendSignal(msg: OutgoingSignal): void {
    if (this.signal?.readyState === WebSocket.OPEN) {
      this.signal.send(encodeSignal(msg) as Uint8Array<ArrayBuffer>);
    }
  }

  sendDatagram(data: Uint8Array): void {
    if (this.media?.readyState === WebSocket.OPEN) {
      this.media.send(data as Uint8Array<ArrayBuffer>);
    }
  }

  close(hangup = false): void {
    if (this.closed) {
      return;
    }
    this.closed = true;
    if (hangup) {
      this.sendSignal({ type: 'Hangup', body: { version: 1, reason: 'Normal' } });
    }
    this.signal?.close(1000);
    this.media?.close(1000);
  }

  private async handshake(): Promise<void> {
    const o = this.options;
    const urls = relayUrls(this.url);
    const ws = await openSocket(urls.signal, o.timeoutMs);
    this.signal = ws;
    const answered = new Promise<BodyOf<'CallAnswer'>>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new SignalError('TRANSPORT_TIMEOUT', 'no CallAnswer in time')),
        o.timeoutMs,
      );
      let answer: BodyOf<'CallAnswer'> | null = null;
      ws.onmessage = (ev: MessageEvent<ArrayBuffer>) => {
        let msg: SignalMessage;
        try {
          msg = decodeSignal(new Uint8Array(ev.data));
        } catch {
          return;
        }
        if (answer === null) {
          if (msg.type === 'CallAnswer') {
            answer = msg.body;
            clearTimeout(timer);
            resolve(msg.body);
          } else if (msg.type === 'Error') {
            clearTimeout(timer);
            reject(new SignalError(msg.body.code, msg.body.message));
          } else if (msg.type === 'Redirect') {
            clearTimeout(timer);
            reject(new Redirected(msg.body.url, msg.body.relay_label));
            return;
          } else if (msg.type === 'Hangup') {
            clearTimeout(timer);
            reject(
              new SignalError(
                'TRANSPORT_CLOSED',
                `relay hung up: ${JSON.stringify(msg.body.reason)}`,
              ),
            );
          }
        }
        o.onSignal(msg);
      };
      ws.onclose = () => {
        clearTimeout(timer);
        reject(new SignalError('TRANSPORT_CLOSED', 'signalling closed'));
        if (answer !== null && !this.closed) {
          o.onClosed('signalling closed');
        }
      };
    });
    if (o.token !== undefined) {
      this.sendSignal({ type: 'AuthToken', body: { version: 1, token: o.token } });
    }
    const ephemeral = globalThis.crypto.getRandomValues(new Uint8Array(32));
    this.sendSignal({
      type: 'CallOffer',
      body: {
        version: 1,
        identity_pub: o.identity.publicKey,
        ephemeral_pub: ephemeral,
        signature: await signCallOffer(o.identity, ephemeral),
        supported_profiles: o.profiles,
        alias: o.alias,
        room: o.room,
        protocol_version: 2,
        supported_versions: [2],
        video_codecs: o.videoCodecs as BodyOf<'CallOffer'>['video_codecs'],
      } as OutgoingSignal['body'],
    } as OutgoingSignal);
    const answer = await answered;
    if (!(await verifyCallAnswer(answer.identity_pub, answer.ephemeral_pub, answer.signature))) {
      throw new SignalError('BAD_SIGNATURE', 'relay CallAnswer signature does not verify');
    }
    this.answer = answer;
  }

  private async bind(): Promise<void> {
    const o = this.options;
    const ws = await openSocket(relayUrls(this.url).media, o.timeoutMs);
    this.media = ws;
    const token = this.answer.bind_token;
    // BINDING §4.5: BIND (padded, never smaller than the challenge it provokes) → BIND_CHALLENGE
    // → BIND_CONFIRM (the challenge echoed on the same path) → BIND_ACK.
    const bind = new Uint8Array(BIND_RECOMMENDED_SIZE);
    bind[0] = FrameType.Bind;
    bind.set(token, 1);
    const ours = (d: Uint8Array): boolean => {
      for (let i = 0; i < BIND_TOKEN_SIZE; i++) {
        if (d[1 + i] !== token[i]) {
          return false;
        }
      }
      return true;
    };
    await new Promise<void>((resolve, reject) => {
      let attempts = 0;
      const timer = setInterval(() => {
        if (++attempts >= 10) {
          clearInterval(timer);
          reject(new SignalError('TRANSPORT_TIMEOUT', 'no BIND_ACK after 10 attempts'));
          return;
        }
        ws.send(bind);
      }, 250);
      ws.onmessage = (ev: MessageEvent<ArrayBuffer>) => {
        const d = new Uint8Array(ev.data);
        if (
          d[0] === FrameType.BindChallenge &&
          d.length === BIND_CHALLENGE_DATAGRAM_SIZE &&
          ours(d)
        ) {
          const confirm = new Uint8Array(d);
          confirm[0] = FrameType.BindConfirm;
          ws.send(confirm);
        } else if (d[0] === FrameType.BindAck && d.length === 1 + BIND_TOKEN_SIZE && ours(d)) {
          clearInterval(timer);
          ws.onmessage = (e: MessageEvent<ArrayBuffer>) => o.onDatagram(new Uint8Array(e.data));
          resolve();
        }
      };
      ws.onclose = () => {
        clearInterval(timer);
        reject(new SignalError('TRANSPORT_CLOSED', 'media socket closed'));
        if (!this.closed) {
          o.onClosed('media socket closed');
        }
      };
      ws.send(bind);
    });
  }
}
