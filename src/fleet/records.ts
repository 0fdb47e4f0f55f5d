/**
 * The two kinds of record a fleet keeps in its directory, their canonical
 * signed form, and who is trusted to write them (docs/fleet.md).
 *
 * - A **relay entry** says: relay `id` (SHA-256(public key)[0..8]) with this
 *   Ed25519 key is alive at these URLs, with this load, since boot `epoch`.
 * - A **room claim** says: room `room` lives on relay `owner` at `epoch`.
 * - A **presence record** says: the person whose fingerprint hashes to
 *   `user` is registered on the hub of relay `relay` (direct calls,
 *   docs/calls.md). The directory holds only the hash, so reading it does
 *   not list who uses the fleet.
 *
 * Every record is signed. With an operator fleet key (`fleet_key`) the
 * relays sign with it and a record is trusted iff the fleet signature
 * verifies; without one, each relay signs with its own identity and a record
 * is trusted iff its signer is this relay or a configured `[[peers]]` key.
 * A record is also refused when its timestamp is older than the TTL plus
 * the clock-skew allowance, so an old signed record cannot be replayed into
 * the directory later. Whoever can write to Redis without a trusted key can
 * delete or garble records (a denial of service), but can neither add a
 * relay nor point a room at one.
 */
import { createHash } from 'node:crypto';
import type { PeerConfig } from '../config/index.js';
import { fingerprint, Identity, verifyEd25519 } from '../signal/index.js';

const RELAY_CONTEXT = 'wzp-fleet-v1 relay\n';
const CLAIM_CONTEXT = 'wzp-fleet-v1 claim\n';
const PRESENCE_CONTEXT = 'wzp-fleet-v1 presence\n';

/** Clock difference tolerated between relays when checking record freshness. */
export const CLOCK_SKEW_MS = 5000;

/** Origin relay id: SHA-256(public key)[0..8] as 16 hex characters (as in federation). */
export function fleetRelayId(publicKey: Uint8Array): string {
  return createHash('sha256').update(publicKey).digest().subarray(0, 8).toString('hex');
}

export interface RelayEntry {
  id: string;
  label: string;
  /** ws(s):// URL clients use (`/v2/signal`). */
  signalUrl: string;
  /** udp://host:port of the media socket. */
  mediaUrl: string;
  /** ws(s):// URL of federation links (`/v2/federation`). */
  federationUrl: string;
  /** Operator HTTP base URL, informational. */
  httpUrl: string | null;
  /** 64 hex: the relay's Ed25519 identity key (what its federation handshake proves). */
  publicKey: string;
  /** Sessions / max_sessions, 0..1 (placement picks the smallest). */
  load: number;
  /** Sessions on the relay. */
  sessions: number;
  /** Boot epoch: ms timestamp of this relay process's start. */
  epoch: number;
  /** True while the relay drains: never chosen as a new home. */
  draining: boolean;
  /** Wall-clock ms when written. */
  ts: number;
}

export interface RoomClaim {
  room: string;
  /** Relay id of the home. */
  owner: string;
  /** Increases by at least one every time the room changes home. */
  epoch: number;
  ts: number;
}

export interface PresenceRecord {
  /** `presenceKey(fingerprint)`: 32 hex characters. */
  user: string;
  /** Relay id of the relay whose hub the person is registered on. */
  relay: string;
  ts: number;
}

/**
 * The directory key of a person's presence: SHA-256 of
 * `"wzp-presence\n" ‖ fingerprint`, first 16 bytes, hex.
 */
export function presenceKey(fp: string): string {
  return createHash('sha256')
    .update(`wzp-presence\n${fp.toLowerCase()}`)
    .digest()
    .subarray(0, 16)
    .toString('hex');
}

interface Signed {
  /** Hex public key of the signer (own-key mode), or "fleet". */
  signer: string;
  sig: string;
}

function relayFields(e: RelayEntry): unknown[] {
  return [
    e.id,
    e.label,
    e.signalUrl,
    e.mediaUrl,
    e.federationUrl,
    e.httpUrl,
    e.publicKey,
    e.load,
    e.sessions,
    e.epoch,
    e.draining,
    e.ts,
  ];
}

function claimFields(c: RoomClaim): unknown[] {
  return [c.room, c.owner, c.epoch, c.ts];
}

function presenceFields(p: PresenceRecord): unknown[] {
  return [p.user, p.relay, p.ts];
}

function message(context: string, fields: unknown[], signer: string): Buffer {
  return Buffer.from(`${context}${signer}\n${JSON.stringify(fields)}`, 'utf8');
}

export type VerifyFailure = 'malformed' | 'untrusted' | 'bad_signature' | 'stale' | 'mismatch';

export type Verified<T> = { ok: true; record: T } | { ok: false; why: VerifyFailure };

export interface TrustOptions {
  identity: Identity;
  /** Operator fleet key (Ed25519 seed), when configured. */
  fleetKey: Buffer | null;
  /** `[[peers]]` entries: keys trusted without a fleet key. */
  peers: readonly PeerConfig[];
  /** Record TTL (freshness bound = TTL + CLOCK_SKEW_MS). */
  ttlMs: number;
  now?: () => number;
}

/** Signs this relay's records and verifies everybody's. */
export class FleetTrust {
  readonly identity: Identity;
  readonly selfId: string;
  private readonly fleet: Identity | null;
  private readonly peerKeys: Set<string>;
  private readonly peerFingerprints: Set<string>;
  private readonly ttlMs: number;
  private readonly now: () => number;

  constructor(options: TrustOptions) {
    this.identity = options.identity;
    this.selfId = fleetRelayId(options.identity.publicKey);
    this.fleet = options.fleetKey === null ? null : Identity.fromSeed(options.fleetKey);
    this.peerKeys = new Set(
      options.peers.flatMap((p) =>
        p.public_key === undefined ? [] : [p.public_key.toLowerCase()],
      ),
    );
    this.peerFingerprints = new Set(
      options.peers.flatMap((p) =>
        p.fingerprint === undefined ? [] : [p.fingerprint.toLowerCase()],
      ),
    );
    this.ttlMs = options.ttlMs;
    this.now = options.now ?? Date.now;
  }

  /** "fleet" or "peers": how records are signed. */
  get mode(): 'fleet' | 'peers' {
    return this.fleet === null ? 'peers' : 'fleet';
  }

  /** Public key of the fleet key, hex (null without one). */
  get fleetPublicKey(): string | null {
    return this.fleet?.publicKey.toString('hex') ?? null;
  }

  /** True when `publicKey` may sign records without the fleet key. */
  trustsKey(publicKey: string): boolean {
    const hex = publicKey.toLowerCase();
    if (hex === this.identity.publicKey.toString('hex')) {
      return true;
    }
    if (this.peerKeys.has(hex)) {
      return true;
    }
    return (
      this.peerFingerprints.size > 0 &&
      /^[0-9a-f]{64}$/.test(hex) &&
      this.peerFingerprints.has(fingerprint(Buffer.from(hex, 'hex')))
    );
  }

  encodeRelay(entry: RelayEntry): string {
    return JSON.stringify({ v: 1, ...entry, ...this.sign(RELAY_CONTEXT, relayFields(entry)) });
  }

  encodeClaim(claim: RoomClaim): string {
    return JSON.stringify({ v: 1, ...claim, ...this.sign(CLAIM_CONTEXT, claimFields(claim)) });
  }

  encodePresence(record: PresenceRecord): string {
    return JSON.stringify({
      v: 1,
      ...record,
      ...this.sign(PRESENCE_CONTEXT, presenceFields(record)),
    });
  }

  private sign(context: string, fields: unknown[]): Signed {
    if (this.fleet !== null) {
      return {
        signer: 'fleet',
        sig: this.fleet.sign(message(context, fields, 'fleet')).toString('hex'),
      };
    }
    const signer = this.identity.publicKey.toString('hex');
    return { signer, sig: this.identity.sign(message(context, fields, signer)).toString('hex') };
  }

  /** Parses and verifies a relay entry stored under `id`. Never throws. */
  decodeRelay(id: string, raw: string): Verified<RelayEntry> {
    const o = parseObject(raw);
    if (o === null || o.v !== 1) {
      return { ok: false, why: 'malformed' };
    }
    const e = relayEntryOf(o);
    if (e === null) {
      return { ok: false, why: 'malformed' };
    }
    if (e.id !== id || fleetRelayId(Buffer.from(e.publicKey, 'hex')) !== e.id) {
      return { ok: false, why: 'mismatch' };
    }
    const why = this.check(RELAY_CONTEXT, relayFields(e), o, e.ts, e.publicKey);
    return why === null ? { ok: true, record: e } : { ok: false, why };
  }

  /** Parses and verifies a room claim stored for `room`. Never throws. */
  decodeClaim(room: string, raw: string): Verified<RoomClaim> {
    const o = parseObject(raw);
    if (o === null || o.v !== 1) {
      return { ok: false, why: 'malformed' };
    }
    const { room: r, owner, epoch, ts } = o;
    if (
      typeof r !== 'string' ||
      typeof owner !== 'string' ||
      !/^[0-9a-f]{16}$/.test(owner) ||
      !isCount(epoch) ||
      !isCount(ts)
    ) {
      return { ok: false, why: 'malformed' };
    }
    if (r !== room) {
      return { ok: false, why: 'mismatch' };
    }
    const claim: RoomClaim = { room: r, owner, epoch, ts };
    const why = this.check(CLAIM_CONTEXT, claimFields(claim), o, ts, null);
    return why === null ? { ok: true, record: claim } : { ok: false, why };
  }

  /**
   * Parses and verifies a presence record stored for `user`. In own-key mode
   * it must be signed by the relay it names (a relay vouches only for its own
   * hub). Never throws.
   */
  decodePresence(
    user: string,
    raw: string,
    relayKey: (id: string) => string | null,
  ): Verified<PresenceRecord> {
    const o = parseObject(raw);
    if (o === null || o.v !== 1) {
      return { ok: false, why: 'malformed' };
    }
    const { user: u, relay, ts } = o;
    if (
      typeof u !== 'string' ||
      !/^[0-9a-f]{32}$/.test(u) ||
      typeof relay !== 'string' ||
      !/^[0-9a-f]{16}$/.test(relay) ||
      !isCount(ts)
    ) {
      return { ok: false, why: 'malformed' };
    }
    if (u !== user) {
      return { ok: false, why: 'mismatch' };
    }
    const record: PresenceRecord = { user: u, relay, ts };
    const ownKey = relayKey(relay);
    if (this.fleet === null && ownKey === null) {
      return { ok: false, why: 'untrusted' };
    }
    const why = this.check(PRESENCE_CONTEXT, presenceFields(record), o, ts, ownKey);
    return why === null ? { ok: true, record } : { ok: false, why };
  }

  /**
   * Checks signer, signature and freshness. `ownKey` is the key a relay entry
   * names: in own-key mode an entry must be signed by the relay it describes.
   */
  private check(
    context: string,
    fields: unknown[],
    o: Record<string, unknown>,
    ts: number,
    ownKey: string | null,
  ): VerifyFailure | null {
    const { signer, sig } = o;
    if (typeof signer !== 'string' || typeof sig !== 'string' || !/^[0-9a-f]{128}$/.test(sig)) {
      return 'malformed';
    }
    let key: Buffer;
    if (signer === 'fleet') {
      if (this.fleet === null) {
        return 'untrusted';
      }
      key = this.fleet.publicKey;
    } else {
      if (!/^[0-9a-f]{64}$/.test(signer) || !this.trustsKey(signer)) {
        return 'untrusted';
      }
      if (ownKey !== null && signer !== ownKey.toLowerCase()) {
        return 'untrusted';
      }
      key = Buffer.from(signer, 'hex');
    }
    if (!verifyEd25519(key, message(context, fields, signer), Buffer.from(sig, 'hex'))) {
      return 'bad_signature';
    }
    const now = this.now();
    if (ts < now - this.ttlMs - CLOCK_SKEW_MS || ts > now + CLOCK_SKEW_MS) {
      return 'stale';
    }
    return null;
  }
}

function parseObject(raw: string): Record<string, unknown> | null {
  if (raw.length > 16_384) {
    return null;
  }
  try {
    const o = JSON.parse(raw) as unknown;
    return typeof o === 'object' && o !== null && !Array.isArray(o)
      ? (o as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

const URL_RE = /^(wss?|udp|https?):\/\/[^\s]{1,500}$/;

function relayEntryOf(o: Record<string, unknown>): RelayEntry | null {
  const { id, label, signalUrl, mediaUrl, federationUrl, httpUrl, publicKey } = o;
  const { load, sessions, epoch, draining, ts } = o;
  if (
    typeof id !== 'string' ||
    !/^[0-9a-f]{16}$/.test(id) ||
    typeof label !== 'string' ||
    label.length > 64 ||
    typeof signalUrl !== 'string' ||
    !URL_RE.test(signalUrl) ||
    typeof mediaUrl !== 'string' ||
    !URL_RE.test(mediaUrl) ||
    typeof federationUrl !== 'string' ||
    !URL_RE.test(federationUrl) ||
    !(httpUrl === null || (typeof httpUrl === 'string' && URL_RE.test(httpUrl))) ||
    typeof publicKey !== 'string' ||
    !/^[0-9a-f]{64}$/.test(publicKey) ||
    typeof load !== 'number' ||
    !Number.isFinite(load) ||
    load < 0 ||
    !isCount(sessions) ||
    !isCount(epoch) ||
    typeof draining !== 'boolean' ||
    !isCount(ts)
  ) {
    return null;
  }
  return {
    id,
    label,
    signalUrl,
    mediaUrl,
    federationUrl,
    httpUrl,
    publicKey,
    load,
    sessions,
    epoch,
    draining,
    ts,
  };
}
