/**
 * The two halves of the federation link handshake (see peers.ts for the
 * transcript). Each returns once both sides are authenticated and have
 * exchanged their UDP port and bind token, or throws a WzpError with the
 * reason (FEDERATION_UNKNOWN_PEER, FEDERATION_WRONG_KEY,
 * FEDERATION_BAD_CHALLENGE, FEDERATION_SELF_LINK, …).
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import WebSocket from 'ws';
import { ERROR_CODES, type ErrorCode, WzpError } from '../errors/index.js';
import {
  CLIENT_DECODE_LIMITS,
  type DecodeLimits,
  decodeScannedSignal,
  encodeSignal,
  frameCost,
  type Identity,
  type OutgoingSignal,
  PROTOCOL_VERSION,
  type SignalMessage,
  scanMsgpack,
} from '../signal/index.js';
import { rawDataBytes, toBuffer } from '../util/buffers.js';
import type { FrameSpan } from '../util/frame-span.js';
import { frameHandled } from '../util/reclaim.js';
import { TokenBucket } from '../util/token-bucket.js';
import {
  type Peer,
  type PeerDirectory,
  peerConfigSnippet,
  signAccept,
  signDial,
  verifyAccept,
  verifyDial,
} from './peers.js';

export interface HandshakeContext {
  identity: Identity;
  label: string;
  directory: PeerDirectory;
  /** Our media UDP port, told to the peer. */
  udpPort: number;
  timeoutMs: number;
  maxFrameBytes: number;
  /**
   * Decode budget of a link before it is authenticated: the client one
   * (`signal_budget_bytes_per_sec`, `signal_budget_burst_bytes`); the
   * client decode limits apply too.
   */
  budget: { bytesPerSec: number; burstBytes: number };
  /**
   * Times each received frame together with the handshake step it completes
   * (one per handshake). The caller ends the last span after installing or
   * refusing the link.
   */
  frames?: FrameSpan;
}

export interface HandshakeResult {
  peer: Peer;
  peerPub: Buffer;
  peerLabel: string;
  /** The peer's media UDP port and the token we BIND with. */
  peerUdpPort: number;
  peerBindToken: Buffer;
  /** The token the peer BINDs with at our media port. */
  localBindToken: Buffer;
  /** IP address of the peer's end of the WebSocket (where its media port is). */
  remoteAddress: string;
  /** Messages that arrived after the handshake, in order. */
  pending: SignalMessage[];
}

/** Sends a message; never throws. */
export function sendSignal(ws: WebSocket, msg: OutgoingSignal): void {
  if (ws.readyState === WebSocket.OPEN) {
    ws.send(encodeSignal(msg), { binary: true });
  }
}

/** Strips the IPv4-mapped prefix so the address matches what dgram reports. */
export function plainAddress(address: string | undefined): string {
  const a = address ?? '';
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}

/** Messages an Inbox holds before the handshake takes them; more is a flood. */
const INBOX_MAX = 64;

/**
 * Queues decoded messages of a WebSocket until the handshake takes them
 * (bounded). An unauthenticated peer is a stranger: its frames are scanned
 * against the client decode limits and charged to the client decode budget;
 * over the budget the TCP connection is cut at once (SIGNAL_OVER_BUDGET).
 * After the first failure nothing more is decoded.
 *
 * Timing (`ctx.frames`): a frame's span starts in its 'message' event; one
 * handed to a waiting step stays open until that step asks for the next
 * message (or the caller ends it after the last step), so the span holds the
 * scan, the decode and the step's signature work and replies.
 */
class Inbox {
  private readonly queue: SignalMessage[] = [];
  private waiter: ((m: SignalMessage | WzpError) => void) | null = null;
  private failure: WzpError | null = null;
  private readonly limits: DecodeLimits;
  private readonly budget: TokenBucket;
  private readonly frames: FrameSpan | null;
  /** The frame being handled went to a waiting step (its span stays open). */
  private handedOver = false;
  private readonly onMessage = (data: WebSocket.RawData, isBinary: boolean): void => {
    const frames = this.frames;
    if (this.failure !== null) {
      // nothing more is decoded
    } else if (frames === null) {
      this.receive(data, isBinary);
    } else {
      frames.begin();
      this.handedOver = false;
      try {
        this.receive(data, isBinary);
      } finally {
        if (!this.handedOver) {
          frames.end();
        }
      }
    }
    frameHandled(rawDataBytes(data), performance.now());
  };
  private receive(data: WebSocket.RawData, isBinary: boolean): void {
    if (!isBinary) {
      this.fail(new WzpError('SIGNAL_UNDECODABLE', 'federation frames are binary'));
      return;
    }
    if (this.queue.length >= INBOX_MAX) {
      this.fail(new WzpError('SIGNAL_RATE_LIMITED', 'too many messages during the handshake'));
      return;
    }
    const frame = toBuffer(data);
    try {
      const elements = scanMsgpack(frame, this.limits);
      if (!this.budget.take(performance.now(), frameCost(frame.length, elements))) {
        this.fail(
          new WzpError('SIGNAL_OVER_BUDGET', 'decode budget spent during the federation handshake'),
        );
        this.ws.terminate();
        return;
      }
      this.push(decodeScannedSignal(frame));
    } catch (err) {
      this.fail(err instanceof WzpError ? err : new WzpError('SIGNAL_UNDECODABLE'));
    }
  }
  private readonly onClose = (code: number, reason: Buffer): void => {
    this.fail(
      new WzpError(
        'FEDERATION_LINK_DOWN',
        `closed during the handshake (${code}${reason.length > 0 ? ` ${reason.toString()}` : ''})`,
      ),
    );
  };

  constructor(
    private readonly ws: WebSocket,
    ctx: HandshakeContext,
  ) {
    this.limits = Object.freeze({ ...CLIENT_DECODE_LIMITS, maxBytes: ctx.maxFrameBytes });
    this.budget = new TokenBucket(ctx.budget.bytesPerSec, ctx.budget.burstBytes, performance.now());
    this.frames = ctx.frames ?? null;
    ws.on('message', this.onMessage);
    ws.on('close', this.onClose);
  }

  /** The next message, which must be `type` (an Error message becomes a throw). */
  async expect<T extends SignalMessage['type']>(
    type: T,
    timeoutMs: number,
  ): Promise<Extract<SignalMessage, { type: T }>> {
    // The previous step's synchronous work ends here.
    this.frames?.end();
    const m = await this.next(timeoutMs);
    // A message taken from the queue (its frame's span has ended): the step gets its own.
    this.frames?.ensure();
    if (m.type === 'Error' && m.body !== null) {
      const code = (
        Object.hasOwn(ERROR_CODES, m.body.code) ? m.body.code : 'FEDERATION_BAD_CHALLENGE'
      ) as ErrorCode;
      throw new WzpError(code, `peer refused: ${m.body.message}`);
    }
    if (m.type !== type) {
      throw new WzpError('SIGNAL_UNEXPECTED', `expected ${type}, got ${m.type}`);
    }
    return m as Extract<SignalMessage, { type: T }>;
  }

  /** Stops listening; returns what is still queued. */
  detach(): SignalMessage[] {
    this.ws.off('message', this.onMessage);
    this.ws.off('close', this.onClose);
    return this.queue.splice(0);
  }

  private next(timeoutMs: number): Promise<SignalMessage> {
    const queued = this.queue.shift();
    if (queued !== undefined) {
      return Promise.resolve(queued);
    }
    if (this.failure !== null) {
      return Promise.reject(this.failure);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        reject(new WzpError('SIGNAL_HANDSHAKE_TIMEOUT', 'federation handshake timed out'));
      }, timeoutMs);
      this.waiter = (m) => {
        clearTimeout(timer);
        this.waiter = null;
        if (m instanceof WzpError) {
          reject(m);
        } else {
          resolve(m);
        }
      };
    });
  }

  private push(m: SignalMessage): void {
    if (this.waiter !== null) {
      this.handedOver = true;
      this.waiter(m);
    } else {
      this.queue.push(m);
    }
  }

  private fail(err: WzpError): void {
    this.failure ??= err;
    if (this.waiter !== null) {
      this.handedOver = true;
      this.waiter(err);
    }
  }
}

/**
 * Acceptor side, on an upgraded WebSocket. `onProven` runs once the peer
 * has proved its key (signed our challenge) and may throw.
 */
export async function acceptHandshake(
  ws: WebSocket,
  req: IncomingMessage,
  ctx: HandshakeContext,
  onProven: (peer: Peer, peerPub: Buffer) => void = () => {},
): Promise<HandshakeResult> {
  const inbox = new Inbox(ws, ctx);
  try {
    const hello = (await inbox.expect('FederationHello', ctx.timeoutMs)).body;
    if (hello.protocol_version !== PROTOCOL_VERSION) {
      throw new WzpError(
        'PROTOCOL_VERSION_MISMATCH',
        `federation peer speaks version ${hello.protocol_version}, this relay ${PROTOCOL_VERSION}`,
      );
    }
    const peerPub = Buffer.from(hello.identity_pub);
    if (peerPub.equals(ctx.identity.publicKey)) {
      throw new WzpError('FEDERATION_SELF_LINK', 'a relay cannot link to itself');
    }
    const peer = ctx.directory.byKey(peerPub);
    if (peer === undefined) {
      throw new WzpError(
        'FEDERATION_UNKNOWN_PEER',
        `relay "${hello.label}" is not a configured peer; to accept it add:\n${peerConfigSnippet(hello.label, peerPub)}`,
      );
    }
    const nonce = randomBytes(32);
    sendSignal(ws, {
      type: 'FederationChallenge',
      body: {
        identity_pub: ctx.identity.publicKey,
        nonce,
        signature: signAccept(ctx.identity, hello.nonce, nonce, peerPub),
        label: ctx.label,
      },
    });
    const auth = (await inbox.expect('FederationAuth', ctx.timeoutMs)).body;
    if (!verifyDial(auth.signature, nonce, hello.nonce, peerPub, ctx.identity.publicKey)) {
      throw new WzpError(
        'FEDERATION_BAD_CHALLENGE',
        `relay "${peer.label}" did not sign the challenge with its key`,
      );
    }
    onProven(peer, peerPub);
    const ready = (await inbox.expect('FederationReady', ctx.timeoutMs)).body;
    const localBindToken = randomBytes(16);
    sendSignal(ws, {
      type: 'FederationReady',
      body: { udp_port: ctx.udpPort, bind_token: localBindToken },
    });
    return {
      peer,
      peerPub,
      peerLabel: hello.label,
      peerUdpPort: ready.udp_port,
      peerBindToken: Buffer.from(ready.bind_token),
      localBindToken,
      remoteAddress: plainAddress(req.socket.remoteAddress),
      pending: inbox.detach(),
    };
  } catch (err) {
    inbox.detach();
    throw err;
  }
}

/** Dialer side: connects to `peer.url` and authenticates both ways. */
export async function dialHandshake(
  peer: Peer,
  ctx: HandshakeContext,
): Promise<{ ws: WebSocket; result: HandshakeResult }> {
  const url = peer.url as string;
  const ws = new WebSocket(url, {
    maxPayload: ctx.maxFrameBytes * 4,
    handshakeTimeout: ctx.timeoutMs,
  });
  ws.on('error', () => {}); // failures surface as 'close' or the open rejection below
  let remoteAddress = '';
  ws.once('upgrade', (res: IncomingMessage) => {
    remoteAddress = plainAddress(res.socket.remoteAddress);
  });
  const inbox = new Inbox(ws, ctx);
  try {
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', (err) =>
        reject(new WzpError('FEDERATION_LINK_DOWN', `cannot reach ${url}: ${err.message}`)),
      );
    });
    const nonce = randomBytes(32);
    sendSignal(ws, {
      type: 'FederationHello',
      body: {
        identity_pub: ctx.identity.publicKey,
        nonce,
        label: ctx.label,
        protocol_version: PROTOCOL_VERSION,
      },
    });
    const ch = (await inbox.expect('FederationChallenge', ctx.timeoutMs)).body;
    const peerPub = Buffer.from(ch.identity_pub);
    if (!ctx.directory.matches(peer, peerPub)) {
      throw new WzpError(
        'FEDERATION_WRONG_KEY',
        `${url} answered with key ${peerPub.toString('hex')} ("${ch.label}"), not the one configured for peer "${peer.label}"; if that relay was re-keyed, update its entry:\n${peerConfigSnippet(peer.label, peerPub)}`,
      );
    }
    if (!verifyAccept(ch.signature, nonce, ch.nonce, ctx.identity.publicKey, peerPub)) {
      throw new WzpError(
        'FEDERATION_BAD_CHALLENGE',
        `${url} did not sign our challenge with its key`,
      );
    }
    const localBindToken = randomBytes(16);
    sendSignal(ws, {
      type: 'FederationAuth',
      body: { signature: signDial(ctx.identity, ch.nonce, nonce, peerPub) },
    });
    sendSignal(ws, {
      type: 'FederationReady',
      body: { udp_port: ctx.udpPort, bind_token: localBindToken },
    });
    const ready = (await inbox.expect('FederationReady', ctx.timeoutMs)).body;
    return {
      ws,
      result: {
        peer,
        peerPub,
        peerLabel: ch.label,
        peerUdpPort: ready.udp_port,
        peerBindToken: Buffer.from(ready.bind_token),
        localBindToken,
        remoteAddress,
        pending: inbox.detach(),
      },
    };
  } catch (err) {
    inbox.detach();
    ws.terminate();
    throw err;
  }
}
