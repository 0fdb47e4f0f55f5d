/**
 * Return-path validation of UDP binds (protocol/BINDING.md §4.5), as in QUIC
 * path validation: the relay sends media to an address only after that
 * address proved it receives the relay's datagrams.
 *
 * Challenges are stateless: `challenge = issue time (u32, 100 ms units) ‖
 * HMAC-SHA256(secret, time ‖ token ‖ port ‖ address)[0..12]`, with a secret
 * drawn at start. A BIND_CONFIRM is valid when its MAC matches the source it
 * arrives from and its time is at most `challengeTtlMs` old, so a BIND costs
 * no per-BIND state and a challenge seen on one address is useless from any
 * other. Limits:
 * - a session provokes at most `challengeRate` challenges per second (burst
 *   2×): a spoofed BIND with a valid token reflects at most that many 33-byte
 *   datagrams towards a victim, never more bytes than it sent;
 * - a source IP that sends BINDs or CONFIRMs with unknown tokens faster than
 *   `unknownRate` per second (burst 2×) has every bind datagram dropped until
 *   its bucket refills, before any token lookup. The table of such sources is
 *   bounded (`maxSources`, oldest forgotten first).
 *
 * Touched by the event loop only; time is passed in.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { TokenBucket } from '../util/token-bucket.js';
import {
  BIND_CHALLENGE_OFFSET,
  BIND_CHALLENGE_SIZE,
  BIND_TOKEN_OFFSET,
  BIND_TOKEN_SIZE,
  FrameType,
  writeBindChallengeUnchecked,
} from '../wire/index.js';

export interface BindGuardOptions {
  /** How long a challenge stays valid (ms). */
  challengeTtlMs: number;
  /** Challenges per second per session (burst 2×). */
  challengeRate: number;
  /** Unknown-token bind datagrams per second per source IP (burst 2×). */
  unknownRate: number;
  /** Most source IPs remembered by the unknown-token limiter. */
  maxSources?: number;
  /** HMAC key (tests); 32 random bytes by default. */
  secret?: Buffer;
}

export type ConfirmResult = 'ok' | 'expired' | 'bad_challenge';

const TIME_UNIT_MS = 100;
const MAC_SIZE = BIND_CHALLENGE_SIZE - 4;

interface SourceLimit {
  bucket: TokenBucket;
  blockedUntil: number;
}

export class BindGuard {
  private readonly secret: Buffer;
  private readonly ttlUnits: number;
  private readonly challengeRate: number;
  private readonly unknownRate: number;
  private readonly maxSources: number;
  private readonly sources = new Map<string, SourceLimit>();
  private readonly challengeBuckets = new WeakMap<object, TokenBucket>();
  private readonly challenge = Buffer.alloc(BIND_CHALLENGE_SIZE);
  private readonly timeBytes = Buffer.alloc(4);
  private readonly portBytes = Buffer.alloc(2);

  constructor(options: BindGuardOptions) {
    this.secret = options.secret ?? randomBytes(32);
    this.ttlUnits = Math.max(1, Math.ceil(options.challengeTtlMs / TIME_UNIT_MS));
    this.challengeRate = options.challengeRate;
    this.unknownRate = options.unknownRate;
    this.maxSources = options.maxSources ?? 65_536;
  }

  /** Sources currently tracked by the unknown-token limiter. */
  get trackedSources(): number {
    return this.sources.size;
  }

  /** True when bind datagrams from this IP are dropped before any lookup. */
  blocked(address: string, nowMs: number): boolean {
    const s = this.sources.get(address);
    return s !== undefined && nowMs < s.blockedUntil;
  }

  /** Records a bind datagram with an unknown token; false when the source is over its limit. */
  noteUnknown(address: string, nowMs: number): boolean {
    let s = this.sources.get(address);
    if (s === undefined) {
      if (this.sources.size >= this.maxSources) {
        const oldest = this.sources.keys().next().value;
        if (oldest !== undefined) {
          this.sources.delete(oldest);
        }
      }
      s = {
        bucket: new TokenBucket(this.unknownRate, this.unknownRate * 2, nowMs),
        blockedUntil: 0,
      };
      this.sources.set(address, s);
    }
    if (s.bucket.take(nowMs)) {
      return true;
    }
    // Empty: drop everything from this source until one token has refilled.
    s.blockedUntil = nowMs + 1000 / this.unknownRate;
    return false;
  }

  /** Takes a challenge token for `owner` (a session or a link); false when over its rate. */
  allowChallenge(owner: object, nowMs: number): boolean {
    let b = this.challengeBuckets.get(owner);
    if (b === undefined) {
      b = new TokenBucket(this.challengeRate, this.challengeRate * 2, nowMs);
      this.challengeBuckets.set(owner, b);
    }
    return b.take(nowMs);
  }

  /**
   * Builds the BIND_CHALLENGE answering the BIND in `bind` (its token) for
   * the source `address:port`.
   */
  challengeFor(bind: Buffer, address: string, port: number, nowMs: number): Buffer {
    const t = Math.floor(nowMs / TIME_UNIT_MS) >>> 0;
    const ch = this.challenge;
    ch.writeUInt32BE(t, 0);
    this.mac(t, bind, address, port).copy(ch, 4, 0, MAC_SIZE);
    const out = Buffer.allocUnsafe(BIND_CHALLENGE_OFFSET + BIND_CHALLENGE_SIZE);
    writeBindChallengeUnchecked(FrameType.BindChallenge, bind, BIND_TOKEN_OFFSET, ch, out, 0);
    return out;
  }

  /** Checks a BIND_CONFIRM (length already checked) against its source. */
  verify(confirm: Buffer, address: string, port: number, nowMs: number): ConfirmResult {
    const t = confirm.readUInt32BE(BIND_CHALLENGE_OFFSET);
    const now = Math.floor(nowMs / TIME_UNIT_MS) >>> 0;
    const age = (now - t) >>> 0;
    if (age > this.ttlUnits) {
      // Also catches a time from the future (a forged challenge): age wraps huge.
      return this.macMatches(confirm, t, address, port) ? 'expired' : 'bad_challenge';
    }
    return this.macMatches(confirm, t, address, port) ? 'ok' : 'bad_challenge';
  }

  private macMatches(confirm: Buffer, t: number, address: string, port: number): boolean {
    const mac = this.mac(t, confirm, address, port);
    const off = BIND_CHALLENGE_OFFSET + 4;
    return timingSafeEqual(mac.subarray(0, MAC_SIZE), confirm.subarray(off, off + MAC_SIZE));
  }

  private mac(t: number, datagram: Buffer, address: string, port: number): Buffer {
    this.timeBytes.writeUInt32BE(t, 0);
    this.portBytes.writeUInt16BE(port & 0xffff, 0);
    return createHmac('sha256', this.secret)
      .update(this.timeBytes)
      .update(datagram.subarray(BIND_TOKEN_OFFSET, BIND_TOKEN_OFFSET + BIND_TOKEN_SIZE))
      .update(this.portBytes)
      .update(address)
      .digest();
  }
}
