/**
 * A WZP v2 client of the wzp-relay binding (protocol/BINDING.md): handshake
 * with an Ed25519 identity, UDP bind, media through the mini compressor,
 * optional payload encryption, and demultiplexing of TRUNK frames by sender
 * tag with one mini context per sender. Used by the tests, `wzp client` and
 * the load generator.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { EventEmitter } from 'node:events';
import { WebSocket } from 'ws';
import { WzpError } from '../errors/index.js';
import {
  type BodyOf,
  decodeSignal,
  encodeSignal,
  GOOD,
  Identity,
  type OutgoingSignal,
  type QualityProfile,
  type SignalMessage,
  signCallOffer,
  verifyCallAnswer,
} from '../signal/index.js';
import {
  BIND_ACK_SIZE,
  BIND_CHALLENGE_DATAGRAM_SIZE,
  bindTokenEquals,
  type CompactView,
  confirmOf,
  createCompactView,
  encodeBind,
  encodePing,
  FLAG_QUALITY,
  FrameType,
  type MediaHeader,
  MiniCompressor,
  MiniContext,
  type QualityReport,
  readCompact,
  type TrunkEntryView,
  TrunkReader,
  writeHeaderUnchecked,
  writeQualityReportUnchecked,
} from '../wire/index.js';

export interface ClientOptions {
  /** ws://host:port/v2/signal */
  signalUrl: string;
  room: string;
  identity?: Identity;
  alias?: string | null;
  /** Access token, sent as AuthToken before the offer. */
  token?: string;
  /** protocol_version to offer; null omits the field (tests of old clients). Default 2. */
  protocolVersion?: number | null;
  profiles?: QualityProfile[];
  /** UDP host of the relay (default: the signalling URL's host). */
  udpHost?: string;
  /** Room secret for payload encryption (ChaCha20-Poly1305); off when absent. */
  roomKey?: Uint8Array;
  /** Redirects (fleet) followed before giving up with FLEET_REDIRECT_LOOP (default 3). */
  maxRedirects?: number;
  /** Handshake timeout in ms (default 5000). */
  timeoutMs?: number;
  /** Local UDP address to bind (default 127.0.0.1 when the relay is local, else 0.0.0.0). */
  localAddress?: string;
  /**
   * Media path: 'udp' (default) or 'websocket' (the same datagrams over
   * ws(s)://host:port/v2/media, as browsers do).
   */
  mediaTransport?: 'udp' | 'websocket';
  /** Local address of the signalling TCP connection (default: chosen by the system). */
  signalLocalAddress?: string;
  /** Send MINI frames when possible (default true); false sends every frame FULL. */
  miniFrames?: boolean;
  /**
   * UDP port of the relay's media socket (default: the CallAnswer's
   * `udp_port`); e.g. a port forward or a loss-injecting proxy.
   */
  udpPort?: number;
  /**
   * Default subscription (BINDING.md §6.3) for every sender, applied before
   * the UDP bind so even the keyframe replay after the first BIND follows it.
   */
  subscription?: { audio?: boolean; video?: boolean; maxLayer?: number };
  /**
   * Send a ResyncRequest for a sender whose frame failed to expand (no
   * baseline) or to authenticate (BINDING.md §4.6), at most one per sender
   * per 50 ms, and while a sender's sequence numbers show loss, one per
   * second to keep its frames FULL. Default true.
   */
  autoResync?: boolean;
  /**
   * Fast path for load generation: called for every received frame instead of
   * the `media` event, with a view of the (still encrypted) payload. The view is
   * valid only during the call.
   */
  onRawMedia?: (senderTag: number, payload: Buffer, header: MediaHeader) => void;
}

export interface ReceivedMedia {
  senderTag: number;
  /** Fingerprint of the sender when a RoomUpdate named it. */
  senderFingerprint: string | null;
  frameType: 'full' | 'mini';
  header: MediaHeader;
  /** Decrypted payload when a room key is set, else the payload bytes (a copy). */
  payload: Buffer;
  quality: QualityReport | null;
  /** The compact frame exactly as the relay sent it. */
  frame: Buffer;
}

export interface ClientEvents {
  media: [ReceivedMedia];
  roomUpdate: [BodyOf<'RoomUpdate'>];
  qualityDirective: [BodyOf<'QualityDirective'>];
  hangup: [BodyOf<'Hangup'>];
  signal: [SignalMessage];
  relayError: [BodyOf<'Error'>];
  /** The relay sent a Redirect; the client follows it to this URL. */
  redirect: [string];
  decodeError: [string];
  close: [];
}

const TAG_SIZE = 16;

export class WzpClient extends EventEmitter<ClientEvents> {
  readonly identity: Identity;
  readonly options: ClientOptions;
  answer: BodyOf<'CallAnswer'> | null = null;
  lastRoomUpdate: BodyOf<'RoomUpdate'> | null = null;
  private ws: WebSocket | null = null;
  private udp: Socket | null = null;
  private mediaWs: WebSocket | null = null;
  private udpHost = '127.0.0.1';
  private bindWaiter: ((msg: Buffer) => void) | null = null;
  private readonly compressor = new MiniCompressor();
  private readonly contexts = new Map<number, MiniContext>();
  private readonly fingerprints = new Map<number, string>();
  private readonly trunk = new TrunkReader();
  private readonly entry: TrunkEntryView = { tag: 0, offset: 0, length: 0 };
  private readonly view: CompactView = createCompactView();
  private readonly pendingPings = new Map<bigint, (rttMs: number) => void>();
  /** Random per-session key salt (protocol/BINDING.md §4.3); a rejoin gets a fresh one. */
  readonly keySalt: Buffer = randomBytes(KEY_SALT_SIZE);
  private readonly sendKey: Buffer | null;
  private readonly recvKeys = new Map<string, Buffer>();
  private outBuf = Buffer.allocUnsafe(2048);
  /** When (ms) the last ResyncRequest per sender tag went out. */
  private readonly resyncAt = new Map<number, number>();
  /** ResyncRequests this client sent. */
  resyncsSent = 0;
  /** Last seq seen per (sender tag, media type, stream id) key (loss detection for resync). */
  private readonly lastSeq = new Map<number, number>();
  private closed = false;
  private currentUrl: string;

  constructor(options: ClientOptions) {
    super();
    this.options = options;
    this.currentUrl = options.signalUrl;
    this.identity = options.identity ?? Identity.generate();
    this.sendKey =
      options.roomKey === undefined
        ? null
        : sessionKey(options.roomKey, this.identity.fingerprint, this.keySalt);
  }

  /** Connects, joins and binds; resolves when media can flow. */
  static async connect(options: ClientOptions): Promise<WzpClient> {
    const client = new WzpClient(options);
    try {
      await client.handshake();
      if (options.subscription !== undefined) {
        client.subscribe(null, options.subscription);
        // The relay handles signalling in order: once the Pong is back, the subscription holds.
        await client.signalPing();
      }
      await client.bind();
    } catch (err) {
      await client.close(false);
      throw err;
    }
    return client;
  }

  /** The relay-assigned participant tag. */
  get tag(): number {
    return this.answer?.participant_tag ?? 0;
  }

  /** Local UDP port (after bind; 0 on the WebSocket path). */
  get localPort(): number {
    return this.udp?.address().port ?? 0;
  }

  /** The media path in use. */
  get mediaTransport(): 'udp' | 'websocket' {
    return this.options.mediaTransport ?? 'udp';
  }

  /** The signalling URL of the relay that answered (after any Redirect). */
  get relayUrl(): string {
    return this.currentUrl;
  }

  /**
   * Performs only the signalling handshake (tests use this for failure
   * cases). A `Redirect` before `CallAnswer` (a fleet, docs/fleet.md) is
   * followed: the handshake starts over at the given URL, at most
   * `maxRedirects` times.
   */
  async handshake(): Promise<BodyOf<'CallAnswer'>> {
    const max = this.options.maxRedirects ?? 3;
    for (let hops = 0; ; hops++) {
      const result = await this.handshakeAt(this.currentUrl);
      if (result.kind === 'answer') {
        return result.answer;
      }
      const ws = this.ws;
      this.ws = null;
      ws?.removeAllListeners();
      ws?.on('error', () => {});
      ws?.terminate();
      if (hops >= max) {
        throw new WzpError(
          'FLEET_REDIRECT_LOOP',
          `redirected more than ${max} times (last to ${result.url})`,
        );
      }
      this.emit('redirect', result.url);
      this.currentUrl = result.url;
    }
  }

  private async handshakeAt(
    signalUrl: string,
  ): Promise<{ kind: 'answer'; answer: BodyOf<'CallAnswer'> } | { kind: 'redirect'; url: string }> {
    const url = new URL(signalUrl);
    this.udpHost = this.options.udpHost ?? url.hostname.replace(/^\[|\]$/g, '');
    const ws = new WebSocket(url, {
      maxPayload: 4 << 20,
      ...(this.options.signalLocalAddress === undefined
        ? {}
        : { localAddress: this.options.signalLocalAddress }),
    });
    this.ws = ws;
    ws.binaryType = 'nodebuffer';
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', (err) =>
        reject(new WzpError('TRANSPORT_CLOSED', `cannot connect: ${err.message}`)),
      );
    });
    let redirectTo: string | null = null;
    const answered = new Promise<BodyOf<'CallAnswer'>>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new WzpError('TRANSPORT_TIMEOUT', 'no CallAnswer in time')),
        this.options.timeoutMs ?? 5000,
      );
      const finish = (fn: () => void): void => {
        clearTimeout(timer);
        fn();
      };
      ws.on('message', (data: Buffer) => {
        let msg: SignalMessage;
        try {
          msg = decodeSignal(data);
        } catch (err) {
          this.emit('decodeError', (err as Error).message);
          return;
        }
        if (this.answer === null && redirectTo === null) {
          if (msg.type === 'Redirect') {
            redirectTo = msg.body.url;
            finish(() => resolve(null as unknown as BodyOf<'CallAnswer'>));
            return;
          }
          if (msg.type === 'CallAnswer') {
            if (
              !verifyCallAnswer(msg.body.identity_pub, msg.body.ephemeral_pub, msg.body.signature)
            ) {
              finish(() =>
                reject(new WzpError('BAD_SIGNATURE', 'relay CallAnswer signature does not verify')),
              );
              return;
            }
            this.answer = msg.body;
            finish(() => resolve(msg.body));
          } else if (msg.type === 'Error') {
            const code = msg.body.code as ConstructorParameters<typeof WzpError>[0];
            finish(() => reject(new WzpError(code, msg.body.message)));
          } else if (msg.type === 'Hangup') {
            const reason = msg.body.reason;
            finish(() =>
              reject(
                typeof reason === 'object' && 'ProtocolVersionMismatch' in reason
                  ? new WzpError(
                      'PROTOCOL_VERSION_MISMATCH',
                      `relay supports ${reason.ProtocolVersionMismatch.server_supported.join(',')}`,
                    )
                  : new WzpError('TRANSPORT_CLOSED', `relay hung up: ${JSON.stringify(reason)}`),
              ),
            );
          }
        }
        this.onSignal(msg);
      });
      ws.on('close', () => {
        finish(() =>
          reject(new WzpError('TRANSPORT_CLOSED', 'signalling closed before CallAnswer')),
        );
        if (!this.closed && redirectTo === null) {
          this.emit('close');
        }
      });
    });
    if (this.options.token !== undefined) {
      this.sendSignal({ type: 'AuthToken', body: { version: 1, token: this.options.token } });
    }
    const ephemeral = randomBytes(32);
    const offer: OutgoingSignal = {
      type: 'CallOffer',
      body: {
        version: 1,
        identity_pub: this.identity.publicKey,
        ephemeral_pub: ephemeral,
        signature: signCallOffer(this.identity, ephemeral),
        supported_profiles: this.options.profiles ?? [GOOD],
        alias: this.options.alias ?? null,
        room: this.options.room,
        supported_versions: [2],
        ...(this.options.protocolVersion === null
          ? {}
          : { protocol_version: this.options.protocolVersion ?? 2 }),
      },
    };
    this.sendSignal(offer);
    const answer = await answered;
    return redirectTo === null ? { kind: 'answer', answer } : { kind: 'redirect', url: redirectTo };
  }

  /** Opens the UDP socket and binds it to the session (retrying BIND until acknowledged). */
  async bind(): Promise<void> {
    const answer = this.answer;
    if (answer === null) {
      throw new WzpError('TRANSPORT_CLOSED', 'bind before CallAnswer');
    }
    if (this.mediaTransport === 'websocket') {
      await this.openMediaWs();
    } else {
      await this.openUdp();
    }
    await this.sendBind(answer.bind_token);
  }

  /**
   * Moves the session to a fresh UDP socket (a new source port) or a new
   * media WebSocket, as a NAT rebinding or network change would.
   */
  async rebind(): Promise<void> {
    await this.closeMedia();
    await this.bind();
  }

  private async closeMedia(): Promise<void> {
    const old = this.udp;
    this.udp = null;
    if (old !== null) {
      await new Promise<void>((r) => old.close(() => r()));
    }
    const ws = this.mediaWs;
    this.mediaWs = null;
    if (ws !== null) {
      await closeWs(ws);
    }
  }

  private async openMediaWs(): Promise<void> {
    const url = new URL(this.options.signalUrl);
    url.pathname = '/v2/media';
    url.search = '';
    const ws = new WebSocket(url, { maxPayload: 1 << 16, perMessageDeflate: false });
    ws.binaryType = 'nodebuffer';
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', (err) =>
        reject(new WzpError('TRANSPORT_CLOSED', `cannot open media WebSocket: ${err.message}`)),
      );
    });
    ws.on('error', () => {});
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) {
        this.onDatagram(data);
      }
    });
    this.mediaWs = ws;
  }

  private async openUdp(): Promise<void> {
    const local = this.options.localAddress ?? (isLoopback(this.udpHost) ? '127.0.0.1' : undefined);
    const socket = createSocket(this.udpHost.includes(':') ? 'udp6' : 'udp4');
    socket.on('message', (msg) => this.onDatagram(msg));
    socket.on('error', () => {});
    await new Promise<void>((resolve) => socket.bind(0, local, () => resolve()));
    this.udp = socket;
  }

  /**
   * Return-path validation (protocol/BINDING.md §4.5): sends BIND every
   * 250 ms (up to 10 times) on the current media path; answers a
   * BIND_CHALLENGE carrying our token with its BIND_CONFIRM on the same
   * path; done at BIND_ACK. A challenge for another token is never confirmed.
   */
  private sendBind(token: Uint8Array): Promise<void> {
    const datagram = encodeBind(token);
    return new Promise((resolve, reject) => {
      let attempts = 0;
      this.bindWaiter = (msg: Buffer): void => {
        if (!bindTokenEquals(msg, 0, msg.length, token)) {
          return;
        }
        if (msg[0] === FrameType.BindChallenge && msg.length === BIND_CHALLENGE_DATAGRAM_SIZE) {
          this.sendDatagram(confirmOf(msg));
        } else if (msg[0] === FrameType.BindAck && msg.length === BIND_ACK_SIZE) {
          clearInterval(timer);
          this.bindWaiter = null;
          resolve();
        }
      };
      const tick = (): void => {
        if (attempts++ >= 10) {
          clearInterval(timer);
          this.bindWaiter = null;
          reject(new WzpError('TRANSPORT_TIMEOUT', 'no BIND_ACK after 10 attempts'));
          return;
        }
        this.sendDatagram(datagram);
      };
      const timer = setInterval(tick, 250);
      tick();
    });
  }

  /**
   * Sends one media packet through the mini compressor (FULL or MINI). With a
   * room key the payload is encrypted first. Returns the compact frame sent.
   */
  sendMedia(
    header: MediaHeader,
    payload: Uint8Array,
    quality: QualityReport | null = null,
  ): Buffer {
    const body =
      this.sendKey === null
        ? payload
        : encryptPayload(this.sendKey, this.keySalt, header, payload, quality);
    const need = this.compressor.maxFrameSize(body.length, quality !== null);
    if (this.outBuf.length < need) {
      this.outBuf = Buffer.allocUnsafe(need * 2);
    }
    if (this.options.miniFrames === false) {
      this.compressor.reset();
    }
    const n = this.compressor.encodeInto(header, body, quality, this.outBuf, 0);
    const frame = Buffer.from(this.outBuf.subarray(0, n));
    this.sendDatagram(frame);
    return frame;
  }

  /** Sends raw bytes on the media path (tests of malformed input). */
  sendDatagram(bytes: Uint8Array): void {
    const ws = this.mediaWs;
    if (ws !== null) {
      if (ws.readyState === WebSocket.OPEN) {
        ws.send(bytes, { binary: true });
      }
      return;
    }
    const port = this.options.udpPort ?? this.answer?.udp_port;
    if (this.udp === null || port === undefined) {
      return;
    }
    this.udp.send(bytes, port, this.udpHost);
  }

  /** Sends a signalling message. */
  sendSignal(msg: OutgoingSignal): void {
    if (this.ws?.readyState === WebSocket.OPEN) {
      this.ws.send(encodeSignal(msg));
    }
  }

  /**
   * Subscription (BINDING.md §6.3): for sender `tag` (null: every sender),
   * turn audio/video on or off and cap the video layer.
   */
  subscribe(
    tag: number | null,
    change: { audio?: boolean; video?: boolean; maxLayer?: number },
  ): void {
    this.sendSignal({
      type: 'SubscriptionUpdate',
      body: {
        version: 1,
        tag,
        ...(change.audio === undefined ? {} : { audio: change.audio }),
        ...(change.video === undefined ? {} : { video: change.video }),
        ...(change.maxLayer === undefined ? {} : { max_layer: change.maxLayer }),
      },
    });
  }

  /** A signalling round trip (Ping → Pong, BINDING.md §6.5), in ms. */
  signalPing(timeoutMs = 3000): Promise<number> {
    const stamp = Date.now();
    const start = performance.now();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('signal', onSignal);
        reject(new WzpError('TRANSPORT_TIMEOUT', `no Pong within ${timeoutMs} ms`));
      }, timeoutMs);
      const onSignal = (m: SignalMessage): void => {
        if (m.type === 'Pong' && Number(m.body.timestamp_ms) === stamp) {
          clearTimeout(timer);
          this.off('signal', onSignal);
          resolve(performance.now() - start);
        }
      };
      this.on('signal', onSignal);
      this.sendSignal({ type: 'Ping', body: { version: 1, timestamp_ms: stamp } });
    });
  }

  /** Asks for a keyframe of sender `tag`'s video `streamId` (null tag: every sender of it). */
  requestKeyframe(tag: number | null, streamId: number): void {
    this.sendSignal({
      type: 'PictureLossIndication',
      body: { version: 1, stream_id: streamId, ...(tag === null ? {} : { tag }) },
    });
  }

  /** Downstream feedback (BINDING.md §6.4): the receiver's capacity estimate and acks. */
  sendFeedback(
    rembBps: number,
    options: { streamId?: number; acked?: number[]; nacked?: number[] } = {},
  ): void {
    this.sendSignal({
      type: 'TransportFeedback',
      body: {
        version: 1,
        stream_id: options.streamId ?? 0,
        acked_seqs: options.acked ?? [],
        nacked_seqs: options.nacked ?? [],
        remb_bps: Math.max(0, Math.min(0xffffffff, Math.round(rembBps))),
        recv_time_us: Math.round(performance.now() * 1000),
      },
    });
  }

  /** Asks the relay to send sender `tag`'s frames FULL for a while (BINDING.md §4.6). */
  requestResync(tag: number): void {
    this.resyncsSent++;
    this.sendSignal({ type: 'ResyncRequest', body: { version: 1, tag } });
  }

  /** The mini context of sender `tag` is out of sync: ask for a resync (rate-limited). */
  private lostSync(tag: number, minGapMs = 50): void {
    if (this.options.autoResync === false) {
      return;
    }
    const now = performance.now();
    const last = this.resyncAt.get(tag);
    if (last !== undefined && now - last < minGapMs) {
      return;
    }
    this.resyncAt.set(tag, now);
    this.requestResync(tag);
  }

  /**
   * A decoded frame: a forward gap in its stream's seq means loss on the way
   * here, so the relay should keep (or start) sending this sender FULL
   * (one request per second at most).
   */
  private noteSeq(tag: number, h: MediaHeader): void {
    const key = tag * 65536 + h.mediaType * 256 + h.streamId;
    const last = this.lastSeq.get(key);
    this.lastSeq.set(key, h.seq);
    if (last !== undefined) {
      const step = (h.seq - last) >>> 0;
      if (step > 1 && step < 0x8000) {
        this.lostSync(tag, 1000);
      }
    }
  }

  /** Sends raw bytes on the signalling WebSocket (tests of malformed signalling). */
  sendSignalFrame(bytes: Uint8Array | string): void {
    if (this.ws?.readyState === WebSocket.OPEN) {
      this.ws.send(bytes);
    }
  }

  /** UDP round trip to the relay (PING/PONG), in ms. */
  ping(timeoutMs = 2000): Promise<number> {
    const value = randomBytes(8).readBigUInt64BE(0);
    const start = performance.now();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pendingPings.delete(value);
        reject(new WzpError('TRANSPORT_TIMEOUT', 'no PONG'));
      }, timeoutMs);
      this.pendingPings.set(value, () => {
        clearTimeout(timer);
        resolve(performance.now() - start);
      });
      this.sendDatagram(encodePing(value));
    });
  }

  /** Sends Hangup (when `hangup`), closes the WebSocket and the UDP socket. */
  async close(hangup = true): Promise<void> {
    if (this.closed) {
      return;
    }
    this.closed = true;
    const ws = this.ws;
    if (ws !== null && ws.readyState === WebSocket.OPEN) {
      if (hangup && this.answer !== null) {
        this.sendSignal({ type: 'Hangup', body: { version: 1, reason: 'Normal' } });
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          ws.terminate();
          resolve();
        }, 1000);
        ws.once('close', () => {
          clearTimeout(t);
          resolve();
        });
        ws.close(1000);
      });
    } else {
      ws?.terminate();
    }
    await this.closeMedia();
  }

  private onSignal(msg: SignalMessage): void {
    this.emit('signal', msg);
    switch (msg.type) {
      case 'RoomUpdate':
        this.lastRoomUpdate = msg.body;
        this.fingerprints.clear();
        for (const p of msg.body.participants) {
          this.fingerprints.set(p.tag, p.fingerprint);
        }
        this.emit('roomUpdate', msg.body);
        break;
      case 'QualityDirective':
        this.emit('qualityDirective', msg.body);
        break;
      case 'Hangup':
        this.emit('hangup', msg.body);
        break;
      case 'Error':
        this.emit('relayError', msg.body);
        break;
      default:
        break;
    }
  }

  private onDatagram(msg: Buffer): void {
    const type = msg[0];
    if (type === FrameType.Trunk) {
      this.onTrunk(msg);
    } else if (type === FrameType.BindAck || type === FrameType.BindChallenge) {
      this.bindWaiter?.(msg);
    } else if (type === FrameType.Pong && msg.length === 9) {
      const done = this.pendingPings.get(msg.readBigUInt64BE(1));
      if (done !== undefined) {
        this.pendingPings.delete(msg.readBigUInt64BE(1));
        done(0);
      }
    }
  }

  private onTrunk(msg: Buffer): void {
    const bad = this.trunk.reset(msg, 1, msg.length);
    if (bad !== null) {
      this.emit('decodeError', bad);
      return;
    }
    const e = this.entry;
    const view = this.view;
    while (this.trunk.next(e)) {
      let ctx = this.contexts.get(e.tag);
      if (ctx === undefined) {
        ctx = new MiniContext();
        this.contexts.set(e.tag, ctx);
      }
      const err = readCompact(msg, e.offset, e.offset + e.length, ctx, view);
      if (err !== null) {
        if (err === 'WIRE_NO_BASELINE') {
          this.lostSync(e.tag);
        }
        this.emit('decodeError', err);
        continue;
      }
      const raw = this.options.onRawMedia;
      if (raw !== undefined) {
        raw(
          e.tag,
          msg.subarray(view.payloadOffset, view.payloadOffset + view.payloadLength),
          view.header,
        );
        continue;
      }
      const fp = this.fingerprints.get(e.tag) ?? null;
      let payload: Buffer<ArrayBufferLike> = Buffer.from(
        msg.subarray(view.payloadOffset, view.payloadOffset + view.payloadLength),
      );
      const quality = view.hasQuality ? { ...view.quality } : null;
      if (this.options.roomKey !== undefined && fp !== null) {
        if (payload.length < KEY_SALT_SIZE + TAG_SIZE) {
          this.emit('decodeError', 'payload authentication failed');
          continue;
        }
        const key = this.recvKey(fp, payload.subarray(0, KEY_SALT_SIZE));
        const plain = decryptPayload(key, view.header, payload, quality);
        if (plain === null) {
          // After a lost datagram a MINI expands to a wrong seq/timestamp: the nonce
          // and AAD no longer match. Ask for FULL frames (BINDING.md §4.6).
          if (view.frameType === FrameType.Mini) {
            this.lostSync(e.tag);
          }
          this.emit('decodeError', 'payload authentication failed');
          continue;
        }
        payload = plain;
      }
      this.noteSeq(e.tag, view.header);
      this.emit('media', {
        senderTag: e.tag,
        senderFingerprint: fp,
        frameType: view.frameType === FrameType.Full ? 'full' : 'mini',
        header: { ...view.header },
        payload,
        quality,
        frame: Buffer.from(msg.subarray(e.offset, e.offset + e.length)),
      });
    }
  }

  private recvKey(fingerprint: string, salt: Buffer): Buffer {
    const id = `${fingerprint}/${salt.toString('hex')}`;
    let key = this.recvKeys.get(id);
    if (key === undefined) {
      if (this.recvKeys.size >= 1024) {
        this.recvKeys.clear();
      }
      key = sessionKey(this.options.roomKey as Uint8Array, fingerprint, salt);
      this.recvKeys.set(id, key);
    }
    return key;
  }
}

function closeWs(ws: WebSocket): Promise<void> {
  if (ws.readyState === WebSocket.CLOSED) {
    return Promise.resolve();
  }
  return new Promise<void>((resolve) => {
    const t = setTimeout(() => {
      ws.terminate();
      resolve();
    }, 1000);
    ws.once('close', () => {
      clearTimeout(t);
      resolve();
    });
    ws.close(1000);
  });
}

// ── payload encryption (protocol/BINDING.md §4.3) ──

/** Bytes of the per-session key salt that starts every encrypted payload. */
export const KEY_SALT_SIZE = 8;

/**
 * Per-session payload key: HKDF-SHA256(ikm = room key, salt = "wzp-v2-session-key",
 * info = UTF-8(sender fingerprint) ‖ key salt). A sender draws a fresh random
 * 8-byte key salt for every session, so a rejoin (seq back at 0) never reuses
 * a (key, nonce) pair.
 */
export function sessionKey(roomKey: Uint8Array, fingerprint: string, salt: Uint8Array): Buffer {
  const info = Buffer.concat([Buffer.from(fingerprint, 'utf8'), salt]);
  return Buffer.from(hkdfSync('sha256', roomKey, 'wzp-v2-session-key', info, 32));
}

/** Nonce: stream_id ‖ media_type ‖ 0x0000 ‖ seq (u32 BE) ‖ 0x00000000. */
function nonceOf(h: MediaHeader): Buffer {
  const n = Buffer.alloc(12);
  n[0] = h.streamId;
  n[1] = h.mediaType;
  n.writeUInt32BE(h.seq, 4);
  return n;
}

/** AAD: the header as sent (Q set iff a report follows) ‖ the report. */
function aadOf(h: MediaHeader, quality: QualityReport | null): Buffer {
  const aad = Buffer.alloc(16 + (quality === null ? 0 : 4));
  const flags = h.flags;
  writeHeaderUnchecked(
    { ...h, flags: quality === null ? flags & ~FLAG_QUALITY : flags | FLAG_QUALITY },
    aad,
    0,
  );
  if (quality !== null) {
    writeQualityReportUnchecked(quality, aad, 16);
  }
  return aad;
}

/** Encrypted payload: key salt (8) ‖ ChaCha20-Poly1305 ciphertext ‖ tag (16). */
export function encryptPayload(
  key: Buffer,
  salt: Uint8Array,
  h: MediaHeader,
  payload: Uint8Array,
  quality: QualityReport | null,
): Buffer {
  const cipher = createCipheriv('chacha20-poly1305', key, nonceOf(h), { authTagLength: TAG_SIZE });
  cipher.setAAD(aadOf(h, quality), { plaintextLength: payload.length });
  return Buffer.concat([salt, cipher.update(payload), cipher.final(), cipher.getAuthTag()]);
}

/** Decrypts `salt ‖ ciphertext ‖ tag` with the key of that salt; null if it does not authenticate. */
export function decryptPayload(
  key: Buffer,
  h: MediaHeader,
  body: Uint8Array,
  quality: QualityReport | null,
): Buffer | null {
  if (body.length < KEY_SALT_SIZE + TAG_SIZE) {
    return null;
  }
  try {
    const decipher = createDecipheriv('chacha20-poly1305', key, nonceOf(h), {
      authTagLength: TAG_SIZE,
    });
    decipher.setAAD(aadOf(h, quality), { plaintextLength: body.length - KEY_SALT_SIZE - TAG_SIZE });
    decipher.setAuthTag(body.subarray(body.length - TAG_SIZE));
    return Buffer.concat([
      decipher.update(body.subarray(KEY_SALT_SIZE, body.length - TAG_SIZE)),
      decipher.final(),
    ]);
  } catch {
    return null;
  }
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host.startsWith('127.') || host === '::1';
}
