/**
 * The browser's client of the direct-call hub (`/v2/hub`, protocol/BINDING.md
 * §9), the same protocol and key derivation as the Node `HubClient`
 * (src/client/hub.ts): register presence with a signed RegisterPresence,
 * receive the PresenceList of permitted contacts, call a fingerprint, ring,
 * answer or reject, and get the `CallSetup` with the room to join and the
 * call's end-to-end key.
 *
 * Call key (BINDING §9.5): a fresh X25519 pair per call (WebCrypto; the
 * private half is non-extractable), the public half signed by the identity
 * key; both sides verify the other's signature and fingerprint and derive
 * HKDF-SHA256(X25519(own, peer), salt = call_id,
 * info = "wzp-call-key" ‖ caller_fp ‖ callee_fp). The relay sees public keys only.
 *
 * Events: `presence` (detail: users), `incoming` (detail: IncomingBrowserCall),
 * `ringing` (detail: call id), `hangup` (detail: Hangup body), `relayerror`
 * (detail: Error body), `close`.
 */
import {
  type BrowserIdentity,
  callKeyPair,
  callRoomKey,
  fingerprintOf,
  signCallAnswer,
  signCallOffer,
  signRegisterPresence,
  verifyCallAnswer,
  verifyCallOffer,
} from './crypto.js';
import {
  type BodyOf,
  decodeSignal,
  encodeSignal,
  GOOD,
  type OutgoingSignal,
  type QualityProfile,
  type SignalMessage,
} from './protocol.js';
import { relayUrls, SignalError } from './transport.js';

export interface HubOptions {
  /** The relay: http(s):// or ws(s):// host and port of the signalling server. */
  url: string;
  identity: BrowserIdentity;
  alias?: string | null;
  /** Fingerprints to see and be seen by (presence visibility "contacts"). */
  contacts?: string[];
  /** Access token with the `call` grant, when the relay requires auth. */
  token?: string;
  timeoutMs?: number;
}

export type PresenceUser = BodyOf<'PresenceList'>['users'][number];
export type HangupBody = BodyOf<'Hangup'>;

/** A call that was set up: where to meet and with which key. */
export interface BrowserCallSetup {
  callId: string;
  /** `call-<id>`. */
  room: string;
  /** Signalling URL of the relay that hosts the room. */
  relayUrl: string;
  peerFingerprint: string;
  /** The call's end-to-end room key (32 bytes). */
  roomKey: Uint8Array;
}

export interface IncomingBrowserCall {
  callId: string;
  callerFingerprint: string;
  callerAlias: string | null;
  accept(mode?: 'AcceptTrusted' | 'AcceptGeneric'): Promise<BrowserCallSetup>;
  reject(): void;
}

export interface OutgoingBrowserCall {
  callId: string;
  target: string;
  /** Resolves on CallSetup; rejects with a `CallEnded` on Hangup (Busy, Declined, Timeout, …). */
  setup: Promise<BrowserCallSetup>;
}

/** The call ended before it was set up (Hangup), or its keys did not verify. */
export class CallEnded extends Error {
  constructor(
    readonly reason: HangupBody['reason'],
    readonly code: string | null,
  ) {
    super(
      `call ended: ${typeof reason === 'string' ? reason : JSON.stringify(reason)}${code === null ? '' : ` (${code})`}`,
    );
    this.name = 'CallEnded';
  }
}

interface Outgoing {
  target: string;
  ephemeral: CryptoKey;
  resolve: (s: BrowserCallSetup) => void;
  reject: (e: Error) => void;
  lastError: string | null;
}

interface Incoming {
  offer: BodyOf<'DirectCallOffer'>;
  ephemeral: CryptoKey | null;
  resolve: ((s: BrowserCallSetup) => void) | null;
  reject: ((e: Error) => void) | null;
}

/** A call id: 12 random bytes as base64url (BINDING §9.3 allows 1–64 of [A-Za-z0-9_-]). */
function newCallId(): string {
  const b = globalThis.crypto.getRandomValues(new Uint8Array(12));
  return btoa(String.fromCharCode(...b))
    .replace(/\+/g, '-')
    .replace(/\//g, '_')
    .replace(/=+$/, '');
}

export class HubConnection extends EventTarget {
  presence: PresenceUser[] = [];
  private readonly outgoing = new Map<string, Outgoing>();
  private readonly incoming = new Map<string, Incoming>();
  private closed = false;

  private constructor(
    private readonly ws: WebSocket,
    readonly identity: BrowserIdentity,
    readonly alias: string | null,
  ) {
    super();
  }

  get fingerprint(): string {
    return this.identity.fingerprint;
  }

  get open(): boolean {
    return !this.closed && this.ws.readyState === WebSocket.OPEN;
  }

  /** Opens `/v2/hub` and registers; resolves after a successful RegisterPresenceAck. */
  static async connect(o: HubOptions): Promise<HubConnection> {
    const timeoutMs = o.timeoutMs ?? 8000;
    const ws = new WebSocket(relayUrls(o.url).hub);
    ws.binaryType = 'arraybuffer';
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => {
        ws.close();
        reject(new SignalError('TRANSPORT_TIMEOUT', 'cannot reach the hub'));
      }, timeoutMs);
      ws.onopen = () => {
        clearTimeout(t);
        resolve();
      };
      ws.onerror = () => {
        clearTimeout(t);
        reject(new SignalError('TRANSPORT_CLOSED', 'cannot reach the hub'));
      };
    });
    const hub = new HubConnection(ws, o.identity, o.alias ?? null);
    const acked = new Promise<void>((resolve, reject) => {
      const t = setTimeout(
        () => reject(new SignalError('TRANSPORT_TIMEOUT', 'no RegisterPresenceAck')),
        timeoutMs,
      );
      ws.onmessage = (ev: MessageEvent<ArrayBuffer>) => {
        let msg: SignalMessage;
        try {
          msg = decodeSignal(new Uint8Array(ev.data));
        } catch {
          return;
        }
        if (msg.type === 'RegisterPresenceAck') {
          clearTimeout(t);
          if (msg.body.success) {
            ws.onmessage = (e: MessageEvent<ArrayBuffer>) => hub.onMessage(e.data);
            resolve();
          } else {
            reject(new SignalError('HUB_BAD_REGISTRATION', msg.body.error ?? 'refused'));
          }
        } else if (msg.type === 'Error') {
          clearTimeout(t);
          reject(new SignalError(msg.body.code, msg.body.message));
        } else if (msg.type === 'PresenceList') {
          // It may come before the ack: keep it.
          hub.presence = msg.body.users;
        }
      };
      ws.onclose = () => {
        clearTimeout(t);
        reject(new SignalError('TRANSPORT_CLOSED', 'the hub closed the connection'));
      };
    });
    if (o.token !== undefined) {
      hub.send({ type: 'AuthToken', body: { token: o.token } });
    }
    hub.send({
      type: 'RegisterPresence',
      body: {
        identity_pub: o.identity.publicKey,
        signature: await signRegisterPresence(o.identity),
        alias: o.alias ?? null,
        contacts: o.contacts ?? [],
      },
    });
    try {
      await acked;
    } catch (err) {
      ws.close();
      throw err;
    }
    ws.onclose = () => hub.onClosed();
    return hub;
  }

  send(msg: OutgoingSignal): void {
    if (this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(encodeSignal(msg) as Uint8Array<ArrayBuffer>);
    }
  }

  /** Calls `target` (a fingerprint). */
  async call(
    target: string,
    options: { profiles?: QualityProfile[] } = {},
  ): Promise<OutgoingBrowserCall> {
    const callId = newCallId();
    const eph = await callKeyPair();
    const setup = new Promise<BrowserCallSetup>((resolve, reject) => {
      this.outgoing.set(callId, {
        target,
        ephemeral: eph.privateKey,
        resolve,
        reject,
        lastError: null,
      });
    });
    // Nobody may be waiting on `setup` yet when it rejects.
    setup.catch(() => {});
    this.send({
      type: 'DirectCallOffer',
      body: {
        caller_fingerprint: this.fingerprint,
        caller_alias: this.alias,
        target_fingerprint: target,
        call_id: callId,
        identity_pub: this.identity.publicKey,
        ephemeral_pub: eph.publicKey,
        signature: await signCallOffer(this.identity, eph.publicKey),
        supported_profiles: options.profiles ?? [GOOD],
      },
    });
    return { callId, target, setup };
  }

  /** Cancels (before the answer) or ends (after it) a call. */
  hangup(callId: string, reason: HangupBody['reason'] = 'Normal'): void {
    this.send({ type: 'Hangup', body: { reason, call_id: callId } });
    const o = this.outgoing.get(callId);
    if (o !== undefined) {
      this.outgoing.delete(callId);
      o.reject(new CallEnded(reason, 'hung up here'));
    }
    this.incoming.delete(callId);
  }

  close(): void {
    this.closed = true;
    this.ws.close(1000);
  }

  private onClosed(): void {
    this.closed = true;
    for (const o of this.outgoing.values()) {
      o.reject(new CallEnded('Error', 'hub connection closed'));
    }
    this.outgoing.clear();
    for (const i of this.incoming.values()) {
      i.reject?.(new CallEnded('Error', 'hub connection closed'));
    }
    this.incoming.clear();
    this.dispatchEvent(new CustomEvent('close'));
  }

  private onMessage(data: ArrayBuffer): void {
    let msg: SignalMessage;
    try {
      msg = decodeSignal(new Uint8Array(data));
    } catch {
      return;
    }
    switch (msg.type) {
      case 'PresenceList':
        this.presence = msg.body.users;
        this.dispatchEvent(new CustomEvent('presence', { detail: msg.body.users }));
        return;
      case 'DirectCallOffer':
        void this.onOffer(msg.body);
        return;
      case 'CallRinging':
        if (this.outgoing.has(msg.body.call_id)) {
          this.dispatchEvent(new CustomEvent('ringing', { detail: msg.body.call_id }));
        }
        return;
      case 'CallSetup':
        void this.onSetup(msg.body);
        return;
      case 'Hangup': {
        const id = msg.body.call_id;
        if (id !== undefined) {
          const o = this.outgoing.get(id);
          if (o !== undefined) {
            this.outgoing.delete(id);
            o.reject(new CallEnded(msg.body.reason, o.lastError));
          }
          const i = this.incoming.get(id);
          if (i !== undefined) {
            this.incoming.delete(id);
            i.reject?.(new CallEnded(msg.body.reason, null));
          }
        }
        this.dispatchEvent(new CustomEvent('hangup', { detail: msg.body }));
        return;
      }
      case 'Error':
        for (const o of this.outgoing.values()) {
          o.lastError = msg.body.code;
        }
        this.dispatchEvent(new CustomEvent('relayerror', { detail: msg.body }));
        return;
      default:
    }
  }

  private async onOffer(offer: BodyOf<'DirectCallOffer'>): Promise<void> {
    const genuine =
      (await fingerprintOf(offer.identity_pub)) === offer.caller_fingerprint &&
      (await verifyCallOffer(offer.identity_pub, offer.ephemeral_pub, offer.signature));
    if (!genuine) {
      // Not who it claims to be: refuse without revealing anything.
      this.send({
        type: 'DirectCallAnswer',
        body: { call_id: offer.call_id, accept_mode: 'Reject' },
      });
      return;
    }
    const entry: Incoming = { offer, ephemeral: null, resolve: null, reject: null };
    this.incoming.set(offer.call_id, entry);
    const call: IncomingBrowserCall = {
      callId: offer.call_id,
      callerFingerprint: offer.caller_fingerprint,
      callerAlias: offer.caller_alias,
      accept: async (mode = 'AcceptTrusted') => {
        if (this.incoming.get(offer.call_id) !== entry) {
          throw new CallEnded('Normal', 'the call is over');
        }
        const eph = await callKeyPair();
        entry.ephemeral = eph.privateKey;
        const setup = new Promise<BrowserCallSetup>((resolve, reject) => {
          entry.resolve = resolve;
          entry.reject = reject;
        });
        this.send({
          type: 'DirectCallAnswer',
          body: {
            call_id: offer.call_id,
            accept_mode: mode,
            identity_pub: this.identity.publicKey,
            ephemeral_pub: eph.publicKey,
            signature: await signCallAnswer(this.identity, eph.publicKey),
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
    this.dispatchEvent(new CustomEvent('incoming', { detail: call }));
  }

  private async onSetup(s: BodyOf<'CallSetup'>): Promise<void> {
    const o = this.outgoing.get(s.call_id);
    if (o !== undefined) {
      this.outgoing.delete(s.call_id);
      const ok =
        s.peer_fingerprint === o.target &&
        (await fingerprintOf(s.peer_identity_pub)) === o.target &&
        (await verifyCallAnswer(s.peer_identity_pub, s.peer_ephemeral_pub, s.peer_signature));
      if (!ok) {
        o.reject(new CallEnded('Error', 'CALL_BAD_ANSWER'));
        this.hangup(s.call_id, 'Error');
        return;
      }
      o.resolve({
        callId: s.call_id,
        room: s.room,
        relayUrl: s.relay_addr,
        peerFingerprint: s.peer_fingerprint,
        roomKey: await callRoomKey(
          o.ephemeral,
          s.peer_ephemeral_pub,
          s.call_id,
          this.fingerprint,
          o.target,
        ),
      });
      return;
    }
    const i = this.incoming.get(s.call_id);
    if (i === undefined || i.ephemeral === null) {
      return;
    }
    this.incoming.delete(s.call_id);
    // The caller's keys were verified when the offer came; CallSetup must name the same caller.
    if (
      s.peer_fingerprint !== i.offer.caller_fingerprint ||
      (await fingerprintOf(s.peer_identity_pub)) !== i.offer.caller_fingerprint ||
      !sameBytes(s.peer_ephemeral_pub, i.offer.ephemeral_pub)
    ) {
      i.reject?.(new CallEnded('Error', 'CALL_BAD_OFFER'));
      this.hangup(s.call_id, 'Error');
      return;
    }
    i.resolve?.({
      callId: s.call_id,
      room: s.room,
      relayUrl: s.relay_addr,
      peerFingerprint: s.peer_fingerprint,
      roomKey: await callRoomKey(
        i.ephemeral,
        s.peer_ephemeral_pub,
        s.call_id,
        i.offer.caller_fingerprint,
        this.fingerprint,
      ),
    });
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
