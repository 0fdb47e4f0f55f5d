/**
 * The directory: where a fleet of relays keeps its relay registry and its
 * room → home claims. Values are opaque signed strings (records.ts); the
 * directory only stores them with TTLs and offers the atomic operations
 * placement needs. Two implementations: `MemoryDirectory` (one relay, the
 * default, and tests) and `RedisDirectory` (redis-directory.ts).
 *
 * Control plane only: nothing here is ever called per datagram.
 */

/** How long a room's epoch counter outlives its last claim. */
export const EPOCH_TTL_MS = 24 * 3600 * 1000;

export type CasResult =
  | { ok: true }
  /** `current`: what the room key holds now; `maxEpoch`: the room's epoch counter. */
  | { ok: false; current: string | null; maxEpoch: number };

export interface Directory {
  readonly kind: 'memory' | 'redis';
  /** False while the backing store cannot be reached. */
  readonly connected: boolean;
  /** Starts connecting; resolves once connected or after the first failure (it keeps retrying). */
  connect(): Promise<void>;
  /** Writes (or refreshes) a relay entry with a TTL, and lists the id. */
  register(id: string, raw: string, ttlMs: number): Promise<void>;
  /** Removes a relay entry (graceful shutdown). */
  deregister(id: string): Promise<void>;
  /** Every listed relay id with its entry (null: listed but expired). */
  relays(): Promise<Map<string, string | null>>;
  /** The claim of a room, if any. */
  getClaim(room: string): Promise<string | null>;
  /** Increments and returns the room's epoch counter (INCR). */
  nextEpoch(room: string): Promise<number>;
  /** Claims a room that has no claim (SET NX PX). True when this write won. */
  claim(room: string, raw: string, epoch: number, ttlMs: number): Promise<boolean>;
  /**
   * Compare-and-set: writes `raw` iff the room's claim is exactly `expect`
   * (null: absent) and `epoch` is not below the room's epoch counter; one
   * atomic step (a Lua script in Redis).
   */
  cas(
    room: string,
    expect: string | null,
    raw: string,
    epoch: number,
    ttlMs: number,
  ): Promise<CasResult>;
  /** Deletes the claim iff it is exactly `expect`. */
  release(room: string, expect: string): Promise<boolean>;
  /** Writes (or refreshes) presence records, `[user, raw]` each, with a TTL (one round trip). */
  setPresence(records: readonly (readonly [string, string])[], ttlMs: number): Promise<void>;
  /** The presence record of a user key, if any. */
  getPresence(user: string): Promise<string | null>;
  /** Deletes a presence record iff it is exactly `expect`. */
  clearPresence(user: string, expect: string): Promise<boolean>;
  close(): Promise<void>;
}

interface Timed {
  value: string;
  expiresAt: number;
}

/** In-process directory: a fleet of one (or of relays in one process, in tests). */
export class MemoryDirectory implements Directory {
  readonly kind = 'memory' as const;
  readonly connected = true;
  private readonly entries = new Map<string, Timed>();
  private readonly listed = new Set<string>();
  private readonly claims = new Map<string, Timed>();
  private readonly epochs = new Map<string, Timed>();
  private readonly presence = new Map<string, Timed>();
  private readonly now: () => number;

  constructor(options: { now?: () => number } = {}) {
    this.now = options.now ?? Date.now;
  }

  private read(map: Map<string, Timed>, key: string): string | null {
    const t = map.get(key);
    if (t === undefined) {
      return null;
    }
    if (t.expiresAt <= this.now()) {
      map.delete(key);
      return null;
    }
    return t.value;
  }

  async connect(): Promise<void> {}

  async register(id: string, raw: string, ttlMs: number): Promise<void> {
    this.entries.set(id, { value: raw, expiresAt: this.now() + ttlMs });
    this.listed.add(id);
  }

  async deregister(id: string): Promise<void> {
    this.entries.delete(id);
    this.listed.delete(id);
  }

  async relays(): Promise<Map<string, string | null>> {
    const out = new Map<string, string | null>();
    for (const id of this.listed) {
      out.set(id, this.read(this.entries, id));
    }
    return out;
  }

  async getClaim(room: string): Promise<string | null> {
    return this.read(this.claims, room);
  }

  async nextEpoch(room: string): Promise<number> {
    const next = Number(this.read(this.epochs, room) ?? '0') + 1;
    this.epochs.set(room, { value: String(next), expiresAt: this.now() + EPOCH_TTL_MS });
    return next;
  }

  async claim(room: string, raw: string, epoch: number, ttlMs: number): Promise<boolean> {
    if (this.read(this.claims, room) !== null) {
      return false;
    }
    this.claims.set(room, { value: raw, expiresAt: this.now() + ttlMs });
    this.bumpEpoch(room, epoch);
    return true;
  }

  async cas(
    room: string,
    expect: string | null,
    raw: string,
    epoch: number,
    ttlMs: number,
  ): Promise<CasResult> {
    const current = this.read(this.claims, room);
    const maxEpoch = Number(this.read(this.epochs, room) ?? '0');
    if (current !== expect || epoch < maxEpoch) {
      return { ok: false, current, maxEpoch };
    }
    this.claims.set(room, { value: raw, expiresAt: this.now() + ttlMs });
    this.bumpEpoch(room, epoch);
    return { ok: true };
  }

  private bumpEpoch(room: string, epoch: number): void {
    const maxEpoch = Number(this.read(this.epochs, room) ?? '0');
    this.epochs.set(room, {
      value: String(Math.max(maxEpoch, epoch)),
      expiresAt: this.now() + EPOCH_TTL_MS,
    });
  }

  async release(room: string, expect: string): Promise<boolean> {
    if (this.read(this.claims, room) !== expect) {
      return false;
    }
    this.claims.delete(room);
    return true;
  }

  async setPresence(records: readonly (readonly [string, string])[], ttlMs: number): Promise<void> {
    for (const [user, raw] of records) {
      this.presence.set(user, { value: raw, expiresAt: this.now() + ttlMs });
    }
  }

  async getPresence(user: string): Promise<string | null> {
    return this.read(this.presence, user);
  }

  async clearPresence(user: string, expect: string): Promise<boolean> {
    if (this.read(this.presence, user) !== expect) {
      return false;
    }
    this.presence.delete(user);
    return true;
  }

  async close(): Promise<void> {}
}
