/**
 * The peer directory and the link handshake transcripts.
 *
 * Handshake (protocol/BINDING.md §8), dialer D, acceptor A, fresh 32-byte
 * nonces Nd and Na:
 *   D → A  FederationHello     { identity_pub: D, nonce: Nd, label }
 *   A → D  FederationChallenge { identity_pub: A, nonce: Na, signature: sig_A(accept) }
 *   D → A  FederationAuth      { signature: sig_D(dial) }
 *   both   FederationReady     { udp_port, bind_token }
 * accept = "wzp-fed-v1 accept" ‖ Nd ‖ Na ‖ D ‖ A,  dial = "wzp-fed-v1 dial" ‖ Na ‖ Nd ‖ D ‖ A.
 * Each side signs the other's fresh nonce together with both keys, so a
 * recorded transcript cannot be replayed and neither key can be swapped.
 */
import { createHash } from 'node:crypto';
import type { PeerConfig } from '../config/index.js';
import { fingerprint, type Identity, verifyEd25519 } from '../signal/index.js';

const ACCEPT_CONTEXT = Buffer.from('wzp-fed-v1 accept', 'utf8');
const DIAL_CONTEXT = Buffer.from('wzp-fed-v1 dial', 'utf8');

/** Origin relay id: SHA-256(public key)[0..8], as 16 hex characters. */
export function relayId(publicKey: Uint8Array): string {
  return createHash('sha256').update(publicKey).digest().subarray(0, 8).toString('hex');
}

export interface Peer {
  readonly label: string;
  /** ws(s) URL to dial, or null for an accept-only peer. */
  readonly url: string | null;
  /** Configured public key (null when only a fingerprint was configured). */
  readonly publicKey: Buffer | null;
  readonly fingerprint: string;
  /** Learned from the fleet directory (docs/fleet.md), not configured: dialed on demand. */
  readonly dynamic?: boolean;
}

export class PeerDirectory {
  private readonly list: Peer[];
  /**
   * Asked for a key that no peer has: returns a peer to add (a relay the
   * fleet directory vouches for), or undefined to refuse it.
   */
  resolver: ((publicKey: Buffer) => { label: string; url: string } | undefined) | null = null;

  constructor(configs: readonly PeerConfig[]) {
    this.list = configs.map((c) => {
      const publicKey = c.public_key === undefined ? null : Buffer.from(c.public_key, 'hex');
      return {
        label: c.label,
        url: c.url ?? null,
        publicKey,
        fingerprint:
          publicKey === null ? (c.fingerprint ?? '').toLowerCase() : fingerprint(publicKey),
      };
    });
  }

  /** Configured peers, then the ones learned from the fleet directory. */
  get peers(): readonly Peer[] {
    return this.list;
  }

  /** The peer a presented public key belongs to: configured, learned, or vouched for now. */
  byKey(publicKey: Uint8Array): Peer | undefined {
    const fp = fingerprint(publicKey);
    const known = this.list.find((p) =>
      p.publicKey !== null ? p.publicKey.equals(publicKey) : p.fingerprint === fp,
    );
    if (known !== undefined || this.resolver === null) {
      return known;
    }
    const vouched = this.resolver(Buffer.from(publicKey));
    return vouched === undefined ? undefined : this.addDynamic({ ...vouched, publicKey });
  }

  /**
   * The peer with this key, adding it as a dynamic peer when it is unknown
   * (a configured peer keeps its configuration).
   */
  addDynamic(p: { label: string; url: string; publicKey: Uint8Array }): Peer {
    const key = Buffer.from(p.publicKey);
    const fp = fingerprint(key);
    const i = this.list.findIndex((x) =>
      x.publicKey !== null ? x.publicKey.equals(key) : x.fingerprint === fp,
    );
    const existing = i < 0 ? undefined : this.list[i];
    if (existing !== undefined) {
      return existing;
    }
    const peer: Peer = {
      label: p.label,
      url: p.url,
      publicKey: key,
      fingerprint: fp,
      dynamic: true,
    };
    this.list.push(peer);
    return peer;
  }

  /** True when `publicKey` is what `peer`'s entry expects. */
  matches(peer: Peer, publicKey: Uint8Array): boolean {
    return peer.publicKey !== null
      ? peer.publicKey.equals(publicKey)
      : peer.fingerprint === fingerprint(publicKey);
  }
}

/** The TOML an operator adds to accept a relay with this key. */
export function peerConfigSnippet(label: string, publicKey: Uint8Array): string {
  return `[[peers]]\nlabel = ${JSON.stringify(label)}\npublic_key = "${Buffer.from(publicKey).toString('hex')}"`;
}

function transcript(
  context: Buffer,
  first: Uint8Array,
  second: Uint8Array,
  dialer: Uint8Array,
  acceptor: Uint8Array,
): Buffer {
  return Buffer.concat([context, first, second, dialer, acceptor]);
}

export function signAccept(
  acceptor: Identity,
  dialerNonce: Uint8Array,
  acceptorNonce: Uint8Array,
  dialerPub: Uint8Array,
): Buffer {
  return acceptor.sign(
    transcript(ACCEPT_CONTEXT, dialerNonce, acceptorNonce, dialerPub, acceptor.publicKey),
  );
}

export function verifyAccept(
  signature: Uint8Array,
  dialerNonce: Uint8Array,
  acceptorNonce: Uint8Array,
  dialerPub: Uint8Array,
  acceptorPub: Uint8Array,
): boolean {
  return verifyEd25519(
    acceptorPub,
    transcript(ACCEPT_CONTEXT, dialerNonce, acceptorNonce, dialerPub, acceptorPub),
    signature,
  );
}

export function signDial(
  dialer: Identity,
  acceptorNonce: Uint8Array,
  dialerNonce: Uint8Array,
  acceptorPub: Uint8Array,
): Buffer {
  return dialer.sign(
    transcript(DIAL_CONTEXT, acceptorNonce, dialerNonce, dialer.publicKey, acceptorPub),
  );
}

export function verifyDial(
  signature: Uint8Array,
  acceptorNonce: Uint8Array,
  dialerNonce: Uint8Array,
  dialerPub: Uint8Array,
  acceptorPub: Uint8Array,
): boolean {
  return verifyEd25519(
    dialerPub,
    transcript(DIAL_CONTEXT, acceptorNonce, dialerNonce, dialerPub, acceptorPub),
    signature,
  );
}
