/**
 * Client of the direct-call hub (`/v2/hub`, protocol/BINDING.md §9):
 * register presence, call a person by fingerprint, ring, answer, and get a
 * `CallSetup` with the room to join and the call's end-to-end key.
 *
 * Call key (docs/calls.md): each side makes a fresh X25519 key pair per call
 * and sends its public half as `ephemeral_pub`, signed by its identity key
 * (offer: over ephemeral_pub ‖ "call-offer"; answer: ‖ "call-answer"). Both
 * verify the other's signature and fingerprint, then derive
 *   room_key = HKDF-SHA256(ikm = X25519(own, peer), salt = call_id,
 *                          info = "wzp-call-key" ‖ caller_fp ‖ callee_fp, 32)
 * and use it as the room key of `call-<id>`. The relay sees only public keys.
 */
import {
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  type KeyObject,
  randomBytes,
} from 'node:crypto';
import { EventEmitter } from 'node:events';
import WebSocket from 'ws';
import { WzpError } from '../errors/index.js';
import {
  type BodyOf,
  decodeSignal,
  encodeSignal,
  fingerprint,
  GOOD,
  type HangupReason,
  Identity,
  type OutgoingSignal,
  type QualityProfile,
  rawPublicKey,
  type SignalMessage,
  signCallAnswer,
  signCallOffer,
  signRegisterPresence,
  verifyCallAnswer,
  verifyCallOffer,
} from '../signal/index.js';

export interface HubClientOptions {
  /** ws://host:port/v2/hub */
  url: string;
  identity?: Identity;
  alias?: string | null;
  /** Fingerprints to see and be seen by (presence visibility "contacts"). */
  contacts?: string[];
  /** Access token with the `call` grant, when the relay requires auth. */
  token?: string;
  timeoutMs?: number;
}

/** A call that was set up: where to meet and with which key. */
export interface CallSetupInfo {
  callId: string;
  /** Room to join: `call-<id>`. */
  room: string;
  /** Signalling URL of the relay that hosts the room. */
  relayUrl: string;
  peerFingerprint: string;
  /** The call's end-to-end room key (32 bytes). */
  roomKey: Buffer;
  acceptMode: 'AcceptTrusted' | 'AcceptGeneric' | null;
}

/** An incoming call, to accept or reject. */
export interface IncomingCall {
  offer: BodyOf<'DirectCallOffer'>;
  callerFingerprint: string;
  callerAlias: string | null;
  accept(mode?: 'AcceptTrusted' | 'AcceptGeneric'): Promise<CallSetupInfo>;
  reject(): void;
}

export interface HubClientEvents {
  presence: [BodyOf<'PresenceList'>['users']];
  incoming: [IncomingCall];
  hangup: [BodyOf<'Hangup'>];
  relayError: [BodyOf<'Error'>];
  signal: [SignalMessage];
  close: [];
}

/** A call ended before it was set up. */
export class CallEndedError extends WzpError {
  constructor(
    readonly reason: HangupReason,
    readonly detail: string | null,
  ) {
    super(
      'CALL_NOT_FOUND',
      `call ended: ${typeof reason === 'string' ? reason : JSON.stringify(reason)}${detail ? ` (${detail})` : ''}`,
    );
  }
}

interface Pending {
  callId: string;
  target: string;
  ephemeral: KeyObject;
  resolve: (s: CallSetupInfo) => void;
  reject: (e: Error) => void;
  answer: BodyOf<'DirectCallAnswer'> | null;
  lastError: string | null;
  rang: boolean;
  onRinging?: () => void;
}

export class HubClient extends EventEmitter<HubClientEvents> {
  readonly identity: Identity;
  presence: BodyOf<'PresenceList'>['users'] = [];
  private readonly pending = new Map<string, Pending>();
  private readonly incoming = new Map<
    string,
    {
      offer: BodyOf<'DirectCallOffer'>;
      ephemeral: KeyObject | null;
      resolve?: (s: CallSetupInfo) => void;
      reject?: (e: Error) => void;
    }
  >();

  private constructor(
    private readonly ws: WebSocket,
    identity: Identity,
    private readonly alias: string | null = null,
  ) {
    super();
    this.identity = identity;
    ws.on('message', (data) => this.onMessage(data as Buffer));
    ws.on('close', () => {
      for (const p of this.pending.values()) {
        p.reject(new WzpError('TRANSPORT_CLOSED', 'hub connection closed'));
      }
      this.pending.clear();
      this.emit('close');
    });
    ws.on('error', () => {});
  }

  get fingerprint(): string {
    return this.identity.fingerprint;
  }

  /** Opens the hub connection and registers; resolves after RegisterPresenceAck. */
  static async connect(options: HubClientOptions): Promise<HubClient> {
    const identity = options.identity ?? Identity.generate();
    const timeoutMs = options.timeoutMs ?? 5000;
    const ws = new WebSocket(options.url);
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(
        () => reject(new WzpError('TRANSPORT_TIMEOUT', 'hub connect timeout')),
        timeoutMs,
      );
      ws.once('open', () => {
        clearTimeout(t);
        resolve();
      });
      ws.once('error', (err) => {
        clearTimeout(t);
        reject(new WzpError('TRANSPORT_CLOSED', `cannot reach the hub: ${err.message}`));
      });
    });
    const client = new HubClient(ws, identity, options.alias ?? null);
    const acked = new Promise<void>((resolve, reject) => {
      const t = setTimeout(
        () => reject(new WzpError('TRANSPORT_TIMEOUT', 'no RegisterPresenceAck')),
        timeoutMs,
      );
      const onSignal = (m: SignalMessage): void => {
        if (m.type === 'RegisterPresenceAck') {
          clearTimeout(t);
          client.off('signal', onSignal);
          if (m.body.success) {
            resolve();
          } else {
            reject(new WzpError('HUB_BAD_REGISTRATION', m.body.error ?? 'registration refused'));
          }
        } else if (m.type === 'Error') {
          clearTimeout(t);
          client.off('signal', onSignal);
          reject(new WzpError(isCode(m.body.code), m.body.message));
        }
      };
      client.on('signal', onSignal);
      ws.once('close', () => reject(new WzpError('TRANSPORT_CLOSED', 'hub closed the connection')));
    });
    if (options.token !== undefined) {
      client.send({ type: 'AuthToken', body: { token: options.token } });
    }
    client.send({
      type: 'RegisterPresence',
      body: {
        identity_pub: identity.publicKey,
        signature: signRegisterPresence(identity),
        alias: options.alias ?? null,
        contacts: options.contacts ?? [],
      },
    });
    try {
      await acked;
    } catch (err) {
      ws.terminate();
      throw err;
    }
    return client;
  }

  send(msg: OutgoingSignal): void {
    if (this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(encodeSignal(msg));
    }
  }

  /**
   * Calls `target` (a fingerprint). Resolves with the CallSetup once the
   * callee accepts; rejects with CallEndedError on Hangup (Busy, Declined,
   * Timeout, …) or a typed refusal.
   */
  call(
    target: string,
    options: { profiles?: QualityProfile[]; onRinging?: () => void; callId?: string } = {},
  ): { callId: string; setup: Promise<CallSetupInfo> } {
    const callId = options.callId ?? randomBytes(12).toString('base64url');
    const { privateKey, publicKey } = generateKeyPairSync('x25519');
    const eph = rawPublicKey(publicKey);
    const setup = new Promise<CallSetupInfo>((resolve, reject) => {
      this.pending.set(callId, {
        callId,
        target,
        ephemeral: privateKey,
        resolve,
        reject,
        answer: null,
        lastError: null,
        rang: false,
        ...(options.onRinging !== undefined ? { onRinging: options.onRinging } : {}),
      });
    });
    this.send({
      type: 'DirectCallOffer',
      body: {
        caller_fingerprint: this.fingerprint,
        caller_alias: this.alias,
        target_fingerprint: target,
        call_id: callId,
        identity_pub: this.identity.publicKey,
        ephemeral_pub: eph,
        signature: signCallOffer(this.identity, eph),
        supported_profiles: options.profiles ?? [GOOD],
      },
    });
    return { callId, setup };
  }

  /** Hangs up (or cancels) a call. */
  hangup(callId: string, reason: HangupReason = 'Normal'): void {
    this.send({ type: 'Hangup', body: { reason, call_id: callId } });
    const p = this.pending.get(callId);
    if (p !== undefined) {
      this.pending.delete(callId);
      p.reject(new CallEndedError(reason, 'hung up locally'));
    }
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) {
      return;
    }
    await new Promise<void>((resolve) => {
      this.ws.once('close', () => resolve());
      this.ws.close(1000);
      setTimeout(() => {
        this.ws.terminate();
        resolve();
      }, 1000).unref();
    });
  }

  private onMessage(data: Buffer): void {
    let msg: SignalMessage;
    try {
      msg = decodeSignal(data);
    } catch {
      return;
    }
    this.emit('signal', msg);
    switch (msg.type) {
      case 'PresenceList':
        this.presence = msg.body.users;
        this.emit('presence', msg.body.users);
        return;
      case 'DirectCallOffer':
        this.onOffer(msg.body);
        return;
      case 'CallRinging': {
        const p = this.pending.get(msg.body.call_id);
        if (p !== undefined && !p.rang) {
          p.rang = true;
          p.onRinging?.();
        }
        return;
      }
      case 'DirectCallAnswer': {
        const p = this.pending.get(msg.body.call_id);
        if (p !== undefined) {
          p.answer = msg.body;
        }
        return;
      }
      case 'CallSetup':
        this.onSetup(msg.body);
        return;
      case 'Hangup': {
        const id = msg.body.call_id;
        const p = id === undefined ? undefined : this.pending.get(id);
        if (p !== undefined && id !== undefined) {
          this.pending.delete(id);
          p.reject(new CallEndedError(msg.body.reason, p.lastError));
        }
        const inc = id === undefined ? undefined : this.incoming.get(id);
        if (inc !== undefined && id !== undefined) {
          this.incoming.delete(id);
          inc.reject?.(new CallEndedError(msg.body.reason, null));
        }
        this.emit('hangup', msg.body);
        return;
      }
      case 'Error':
        for (const p of this.pending.values()) {
          p.lastError = msg.body.code;
        }
        this.emit('relayError', msg.body);
        return;
      default:
    }
  }

  private onOffer(offer: BodyOf<'DirectCallOffer'>): void {
    if (
      fingerprint(offer.identity_pub) !== offer.caller_fingerprint ||
      !verifyCallOffer(offer.identity_pub, offer.ephemeral_pub, offer.signature)
    ) {
      // Not who it claims to be: refuse without revealing anything.
      this.send({
        type: 'DirectCallAnswer',
        body: { call_id: offer.call_id, accept_mode: 'Reject' },
      });
      return;
    }
    const entry: {
      offer: BodyOf<'DirectCallOffer'>;
      ephemeral: KeyObject | null;
      resolve?: (s: CallSetupInfo) => void;
      reject?: (e: Error) => void;
    } = { offer, ephemeral: null };
    this.incoming.set(offer.call_id, entry);
    const call: IncomingCall = {
      offer,
      callerFingerprint: offer.caller_fingerprint,
      callerAlias: offer.caller_alias,
      accept: (mode = 'AcceptTrusted') => {
        const { privateKey, publicKey } = generateKeyPairSync('x25519');
        entry.ephemeral = privateKey;
        const eph = rawPublicKey(publicKey);
        const setup = new Promise<CallSetupInfo>((resolve, reject) => {
          entry.resolve = resolve;
          entry.reject = reject;
        });
        this.send({
          type: 'DirectCallAnswer',
          body: {
            call_id: offer.call_id,
            accept_mode: mode,
            identity_pub: this.identity.publicKey,
            ephemeral_pub: eph,
            signature: signCallAnswer(this.identity, eph),
            chosen_profile: offer.supported_profiles[0] ?? GOOD,
          },
        });
        return setup;
      },
      reject: () => {
        this.incoming.delete(offer.call_id);
        this.send({
          type: 'DirectCallAnswer',
          body: { call_id: offer.call_id, accept_mode: 'Reject' },
        });
      },
    };
    this.emit('incoming', call);
  }

  private onSetup(s: BodyOf<'CallSetup'>): void {
    const p = this.pending.get(s.call_id);
    if (p !== undefined) {
      this.pending.delete(s.call_id);
      if (
        s.peer_fingerprint !== p.target ||
        fingerprint(s.peer_identity_pub) !== p.target ||
        !verifyCallAnswer(s.peer_identity_pub, s.peer_ephemeral_pub, s.peer_signature)
      ) {
        p.reject(new WzpError('CALL_BAD_ANSWER', "the callee's keys do not verify"));
        this.hangup(s.call_id, 'Error');
        return;
      }
      p.resolve({
        callId: s.call_id,
        room: s.room,
        relayUrl: s.relay_addr,
        peerFingerprint: s.peer_fingerprint,
        roomKey: callRoomKey(
          p.ephemeral,
          s.peer_ephemeral_pub,
          s.call_id,
          this.fingerprint,
          p.target,
        ),
        acceptMode: p.answer?.accept_mode === 'Reject' ? null : (p.answer?.accept_mode ?? null),
      });
      return;
    }
    const inc = this.incoming.get(s.call_id);
    if (inc === undefined || inc.ephemeral === null) {
      return;
    }
    this.incoming.delete(s.call_id);
    inc.resolve?.({
      callId: s.call_id,
      room: s.room,
      relayUrl: s.relay_addr,
      peerFingerprint: s.peer_fingerprint,
      roomKey: callRoomKey(
        inc.ephemeral,
        s.peer_ephemeral_pub,
        s.call_id,
        inc.offer.caller_fingerprint,
        this.fingerprint,
      ),
      acceptMode: null,
    });
  }
}

/** The call's room key (see the module comment). */
export function callRoomKey(
  own: KeyObject,
  peerPub: Uint8Array,
  callId: string,
  callerFp: string,
  calleeFp: string,
): Buffer {
  const peer = createPublicKey({
    key: { kty: 'OKP', crv: 'X25519', x: Buffer.from(peerPub).toString('base64url') },
    format: 'jwk',
  });
  const shared = diffieHellman({ privateKey: own, publicKey: peer });
  return Buffer.from(hkdfSync('sha256', shared, callId, `wzp-call-key${callerFp}${calleeFp}`, 32));
}

function isCode(code: string): ConstructorParameters<typeof WzpError>[0] {
  return code as ConstructorParameters<typeof WzpError>[0];
}
