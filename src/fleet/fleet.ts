/**
 * The fleet: this relay's view of the directory and its part in it
 * (docs/fleet.md).
 *
 * - Every `refreshMs` (deadline timer) it writes its signed relay entry
 *   (TTL `ttlMs`), polls every entry (an entry that expired, or does not
 *   verify, is a dead or foreign relay: polling, not keyspace events, is the
 *   truth), and refreshes the claim of every room it is home of by
 *   compare-and-set. A refresh that finds a newer claim means the room moved
 *   while this relay was frozen or cut off: the relay closes its copy.
 * - `place(room)`, called before a join, says where a room lives: here, or
 *   on another relay (the client is redirected there, or the room is bridged
 *   to it over federation, per `mode`). A room without a live home is placed
 *   on the least-loaded relay, with the next epoch.
 * - While the directory is unreachable, rooms already here keep running; a
 *   new room is refused (`FLEET_DIRECTORY_UNAVAILABLE`) or served locally
 *   (`onDown = "local"`) and reconciled when the directory returns.
 *
 * - Presence (direct calls, docs/calls.md): the hub's registered identities
 *   are published as signed presence records (refreshed with the entry), so
 *   that `locate(fingerprint)` on any relay finds the one a callee is on.
 *
 * Control plane only: nothing here runs per datagram, and media never waits
 * for it.
 */
import { WzpError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import type { Directory } from './directory.js';
import {
  type FleetTrust,
  presenceKey,
  type RelayEntry,
  type RoomClaim,
  type VerifyFailure,
} from './records.js';

export type FleetMode = 'redirect' | 'bridge';
export type DownPolicy = 'refuse' | 'local';

/** What this relay publishes about itself (the rest of the entry is filled in). */
export interface SelfInfo {
  label: string;
  signalUrl: string;
  mediaUrl: string;
  federationUrl: string;
  httpUrl: string | null;
  sessions: number;
  maxSessions: number;
  draining: boolean;
}

export interface FleetHooks {
  /** This relay's current URLs and load. */
  self(): SelfInfo;
  /** Participants (local and remote) of a room here; 0 when it does not exist. */
  participants(room: string): number;
  /** Local participants of a room here. */
  localParticipants(room: string): number;
  /** Our copy of the room is stale (it moved): close it with a Hangup. */
  fenced(room: string, newOwner: RelayEntry | null): void;
  /** Serve the room here bridged to `home` (open the link, make it global with `home`). */
  bridge(room: string, home: RelayEntry): void;
  /** Stop bridging the room. */
  unbridge(room: string): void;
  /** This relay became the room's home (accepts bridges from the fleet). */
  homed(room: string): void;
  /** A directory call took `seconds`; `ok` false when it failed. */
  latency?(op: string, seconds: number, ok: boolean): void;
}

export interface FleetOptions {
  directory: Directory;
  trust: FleetTrust;
  log: Logger;
  hooks: FleetHooks;
  mode: FleetMode;
  onDown: DownPolicy;
  refreshMs: number;
  ttlMs: number;
  /** Printable directory address (password removed). */
  directoryUrl: string;
  now?: () => number;
}

export type Placement =
  /** This relay is (or just became) the home. */
  | { kind: 'local' }
  /** The directory is down and `onDown = "local"`: served here, reconciled later. */
  | { kind: 'unplaced' }
  | { kind: 'redirect'; home: RelayEntry }
  | { kind: 'bridge'; home: RelayEntry };

interface Homed {
  raw: string;
  claim: RoomClaim;
  since: number;
}

export class FleetStats {
  redirects = 0;
  bridges = 0;
  claimsWon = 0;
  claimsLost = 0;
  rehomes = 0;
  fenced = 0;
  refused = 0;
  unplaced = 0;
  reconciled = 0;
  /** Callee lookups: found on a live relay, not found, or found here. */
  readonly lookups = { found: 0, missing: 0, self: 0 };
  readonly rejected: Record<VerifyFailure, number> = {
    malformed: 0,
    untrusted: 0,
    bad_signature: 0,
    stale: 0,
    mismatch: 0,
  };
  readonly errors = new Map<string, number>();
}

const MAX_PLACEMENT_ROUNDS = 4;

export class Fleet {
  readonly stats = new FleetStats();
  readonly selfId: string;
  readonly mode: FleetMode;
  private readonly directory: Directory;
  private readonly trust: FleetTrust;
  private readonly log: Logger;
  private readonly hooks: FleetHooks;
  private readonly onDown: DownPolicy;
  private readonly refreshMs: number;
  private readonly ttlMs: number;
  private readonly directoryUrl: string;
  private readonly now: () => number;
  private readonly bootEpoch: number;
  /** Verified live relays from the last poll (self included once registered). */
  private view = new Map<string, RelayEntry>();
  private lastPollAt = 0;
  private readonly homedRooms = new Map<string, Homed>();
  /** Rooms served here bridged to another home: room → home relay id. */
  private readonly bridgedRooms = new Map<string, string>();
  /** Rooms served here while the directory was down. */
  private readonly unplacedRooms = new Set<string>();
  private readonly locks = new Map<string, Promise<unknown>>();
  /** Presence published for the hub's users: fingerprint → the raw record last written. */
  private readonly presence = new Map<string, string>();
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> | null = null;
  private stopped = false;
  private up = true;
  private lastError: string | null = null;

  constructor(options: FleetOptions) {
    this.directory = options.directory;
    this.trust = options.trust;
    this.log = options.log.child({ component: 'fleet' });
    this.hooks = options.hooks;
    this.mode = options.mode;
    this.onDown = options.onDown;
    this.refreshMs = options.refreshMs;
    this.ttlMs = options.ttlMs;
    this.directoryUrl = options.directoryUrl;
    this.now = options.now ?? Date.now;
    this.selfId = options.trust.selfId;
    this.bootEpoch = this.now();
  }

  /** True while the last directory operation succeeded. */
  get directoryUp(): boolean {
    return this.up && this.directory.connected;
  }

  get homedCount(): number {
    return this.homedRooms.size;
  }

  get bridgedCount(): number {
    return this.bridgedRooms.size;
  }

  /** Verified live relays (self included). */
  relays(): RelayEntry[] {
    return [...this.view.values()];
  }

  /** The verified live entry of a relay, by id or hex public key. */
  relay(idOrKey: string): RelayEntry | undefined {
    const byId = this.view.get(idOrKey);
    if (byId !== undefined) {
      return byId;
    }
    for (const e of this.view.values()) {
      if (e.publicKey === idOrKey) {
        return e;
      }
    }
    return undefined;
  }

  /** True when this relay holds the room's claim. */
  isHome(room: string): boolean {
    return this.homedRooms.has(room);
  }

  /** The home a bridged room is bridged to. */
  bridgedHome(room: string): string | undefined {
    return this.bridgedRooms.get(room);
  }

  /** Registers, polls once (bounded by the directory's timeouts), then refreshes on a timer. */
  async start(): Promise<void> {
    await this.directory.connect();
    await this.tick();
    this.log.info(
      {
        relay_id: this.selfId,
        directory: this.directoryUrl,
        mode: this.mode,
        trust: this.trust.mode,
        relays: this.view.size,
        connected: this.directoryUp,
      },
      'fleet started',
    );
  }

  /** Stops refreshing, releases this relay's claims and deregisters (best effort). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    await this.ticking;
    try {
      await Promise.all([
        ...[...this.homedRooms].map(([room, h]) => this.directory.release(room, h.raw)),
        ...[...this.presence].map(([fp, raw]) =>
          this.directory.clearPresence(presenceKey(fp), raw),
        ),
      ]);
      this.presence.clear();
      await this.directory.deregister(this.selfId);
    } catch {
      // The TTLs clean up.
    }
    this.homedRooms.clear();
    await this.directory.close();
  }

  private schedule(): void {
    if (this.stopped) {
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.tick();
    }, this.refreshMs);
    this.timer.unref();
  }

  /** One refresh round: register, poll, refresh claims, reconcile rooms. Never throws. */
  tick(): Promise<void> {
    this.ticking ??= this.doTick().finally(() => {
      this.ticking = null;
      this.schedule();
    });
    return this.ticking;
  }

  private async doTick(): Promise<void> {
    try {
      await this.register();
      await this.poll();
      await this.refreshPresence();
      this.setUp(true, null);
    } catch (err) {
      this.setUp(false, (err as Error).message);
      return;
    }
    const rooms = new Set([
      ...this.homedRooms.keys(),
      ...this.bridgedRooms.keys(),
      ...this.unplacedRooms,
    ]);
    await Promise.all(
      [...rooms].map((room) =>
        this.locked(room, () => this.maintain(room)).catch((err: unknown) => {
          this.setUp(false, (err as Error).message);
        }),
      ),
    );
  }

  private setUp(up: boolean, error: string | null): void {
    if (up !== this.up) {
      if (up) {
        this.log.info({ directory: this.directoryUrl }, 'fleet directory reachable again');
      } else {
        this.log.warn({ directory: this.directoryUrl, err: error }, 'fleet directory unreachable');
      }
    }
    this.up = up;
    if (error !== null) {
      this.lastError = error;
    }
  }

  private async timed<T>(op: string, fn: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    try {
      const v = await fn();
      this.hooks.latency?.(op, (performance.now() - t0) / 1000, true);
      return v;
    } catch (err) {
      this.hooks.latency?.(op, (performance.now() - t0) / 1000, false);
      this.stats.errors.set(op, (this.stats.errors.get(op) ?? 0) + 1);
      throw err;
    }
  }

  private selfEntry(): RelayEntry {
    const s = this.hooks.self();
    return {
      id: this.selfId,
      label: s.label,
      signalUrl: s.signalUrl,
      mediaUrl: s.mediaUrl,
      federationUrl: s.federationUrl,
      httpUrl: s.httpUrl,
      publicKey: this.trust.identity.publicKey.toString('hex'),
      load: s.maxSessions > 0 ? Math.round((s.sessions / s.maxSessions) * 1e6) / 1e6 : 1,
      sessions: s.sessions,
      epoch: this.bootEpoch,
      draining: s.draining || this.stopped,
      ts: this.now(),
    };
  }

  private async register(): Promise<void> {
    const entry = this.selfEntry();
    await this.timed('register', () =>
      this.directory.register(this.selfId, this.trust.encodeRelay(entry), this.ttlMs),
    );
  }

  private async poll(): Promise<void> {
    const raw = await this.timed('poll', () => this.directory.relays());
    const next = new Map<string, RelayEntry>();
    for (const [id, value] of raw) {
      if (value === null) {
        continue;
      }
      const v = this.trust.decodeRelay(id, value);
      if (!v.ok) {
        this.reject(v.why, `relay ${id.slice(0, 16)}`);
        continue;
      }
      next.set(id, v.record);
    }
    for (const id of this.view.keys()) {
      if (!next.has(id) && id !== this.selfId) {
        this.log.warn({ relay: id, label: this.view.get(id)?.label }, 'fleet relay gone');
      }
    }
    for (const [id, e] of next) {
      if (!this.view.has(id) && id !== this.selfId) {
        this.log.info({ relay: id, label: e.label, url: e.signalUrl }, 'fleet relay joined');
      }
    }
    this.view = next;
    this.lastPollAt = this.now();
  }

  private reject(why: VerifyFailure, what: string): void {
    this.stats.rejected[why]++;
    if (this.stats.rejected[why] % 100 === 1) {
      this.log.warn({ why, what }, 'fleet directory record ignored');
    }
  }

  /** Runs `fn` after every earlier operation on the same room. */
  private locked<T>(room: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(room) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => {});
    this.locks.set(room, tail);
    void tail.then(() => {
      if (this.locks.get(room) === tail) {
        this.locks.delete(room);
      }
    });
    return run;
  }

  private decodeClaim(room: string, raw: string | null): RoomClaim | null {
    if (raw === null) {
      return null;
    }
    const v = this.trust.decodeClaim(room, raw);
    if (!v.ok) {
      this.reject(v.why, `claim of room ${JSON.stringify(room.slice(0, 64))}`);
      return null;
    }
    return v.record;
  }

  private claimFor(room: string, owner: string, epoch: number): { claim: RoomClaim; raw: string } {
    const claim: RoomClaim = { room, owner, epoch, ts: this.now() };
    return { claim, raw: this.trust.encodeClaim(claim) };
  }

  /** True when `id` is a live relay; re-polls once when it is unknown (it may be new). */
  private async alive(id: string): Promise<boolean> {
    if (id === this.selfId) {
      return true;
    }
    if (this.view.has(id)) {
      return true;
    }
    await this.poll();
    return this.view.has(id);
  }

  // ── placement ─────────────────────────────────────────────────────────────

  /**
   * Where `room` lives, claiming it when it has no live home.
   * @throws {WzpError} FLEET_DIRECTORY_UNAVAILABLE when the directory cannot
   *   be reached and `onDown = "refuse"`.
   */
  place(room: string): Promise<Placement> {
    return this.locked(room, () => this.doPlace(room));
  }

  private async doPlace(room: string): Promise<Placement> {
    if (this.homedRooms.has(room)) {
      return { kind: 'local' };
    }
    const bridgedTo = this.bridgedRooms.get(room);
    const bridgeHome = bridgedTo === undefined ? undefined : this.view.get(bridgedTo);
    if (bridgeHome !== undefined) {
      return { kind: 'bridge', home: bridgeHome };
    }
    if (this.unplacedRooms.has(room)) {
      return { kind: 'unplaced' };
    }
    try {
      const p = await this.resolve(room);
      this.setUp(true, null);
      return p;
    } catch (err) {
      if (err instanceof WzpError && err.code !== 'FLEET_DIRECTORY_UNAVAILABLE') {
        throw err;
      }
      this.setUp(false, (err as Error).message);
      if (this.onDown === 'local') {
        this.stats.unplaced++;
        this.unplacedRooms.add(room);
        this.log.warn({ room }, 'fleet directory unreachable: serving the room locally');
        return { kind: 'unplaced' };
      }
      this.stats.refused++;
      throw new WzpError(
        'FLEET_DIRECTORY_UNAVAILABLE',
        'the room directory is unreachable; new rooms cannot be placed now',
      );
    }
  }

  private async resolve(room: string): Promise<Placement> {
    for (let round = 0; round < MAX_PLACEMENT_ROUNDS; round++) {
      const raw = await this.timed('get_claim', () => this.directory.getClaim(room));
      const claim = this.decodeClaim(room, raw);
      if (claim !== null && (await this.alive(claim.owner))) {
        return this.follow(room, claim, raw as string);
      }
      // No claim, a claim we cannot trust, or a dead home: place it anew.
      const epoch = await this.timed('epoch', () => this.directory.nextEpoch(room));
      const home = this.chooseHome();
      const next = this.claimFor(room, home.id, epoch);
      const won =
        raw === null
          ? await this.timed('claim', () => this.directory.claim(room, next.raw, epoch, this.ttlMs))
          : (
              await this.timed('cas', () =>
                this.directory.cas(room, raw, next.raw, epoch, this.ttlMs),
              )
            ).ok;
      if (!won) {
        this.stats.claimsLost++;
        continue; // somebody else placed it first: follow theirs
      }
      this.stats.claimsWon++;
      if (claim !== null) {
        this.stats.rehomes++;
        this.log.info(
          { room, from: claim.owner, to: home.id, epoch },
          'room re-homed (its home is gone)',
        );
      } else {
        this.log.info({ room, home: home.id, label: home.label, epoch }, 'room placed');
      }
      return this.follow(room, next.claim, next.raw);
    }
    throw new WzpError('FLEET_DIRECTORY_UNAVAILABLE', `room ${room}: placement did not settle`);
  }

  /** The room lives where `claim` says (its owner is alive). */
  private follow(room: string, claim: RoomClaim, raw: string): Placement {
    if (claim.owner === this.selfId) {
      this.homedRooms.set(room, { raw, claim, since: this.now() });
      this.bridgedRooms.delete(room);
      this.hooks.homed(room);
      return { kind: 'local' };
    }
    const home = this.view.get(claim.owner) as RelayEntry;
    if (this.mode === 'redirect') {
      this.stats.redirects++;
      return { kind: 'redirect', home };
    }
    this.stats.bridges++;
    this.bridgedRooms.set(room, home.id);
    this.hooks.bridge(room, home);
    return { kind: 'bridge', home };
  }

  /**
   * Redirect mode: the least-loaded live relay (ties: this relay, then the
   * smallest id). Bridge mode: this relay, unless it is draining or full.
   */
  private chooseHome(): RelayEntry {
    const self = this.selfEntry();
    if (this.mode === 'bridge' && !self.draining && self.load < 1) {
      return self;
    }
    let best = self.draining || self.load >= 1 ? null : self;
    for (const e of this.view.values()) {
      if (e.id === this.selfId || e.draining || e.load >= 1) {
        continue;
      }
      if (
        best === null ||
        e.load < best.load ||
        (e.load === best.load && best.id !== this.selfId && e.id < best.id)
      ) {
        best = e;
      }
    }
    return best ?? self;
  }

  // ── upkeep of the rooms this relay serves ──────────────────────────────────

  private async maintain(room: string): Promise<void> {
    const homed = this.homedRooms.get(room);
    if (homed !== undefined) {
      await this.refreshHomed(room, homed);
      return;
    }
    if (this.bridgedRooms.has(room)) {
      await this.refreshBridged(room);
      return;
    }
    if (this.unplacedRooms.has(room)) {
      await this.reconcileUnplaced(room);
    }
  }

  private async refreshHomed(room: string, homed: Homed): Promise<void> {
    if (this.hooks.participants(room) === 0) {
      if (this.now() - homed.since < this.ttlMs) {
        return; // just placed: its first participant may still be on the way
      }
      this.homedRooms.delete(room);
      await this.timed('release', () => this.directory.release(room, homed.raw));
      this.log.debug({ room }, 'room released (empty)');
      return;
    }
    const next = this.claimFor(room, this.selfId, homed.claim.epoch);
    let expect: string | null = homed.raw;
    for (let i = 0; i < 3; i++) {
      const r = await this.timed('cas', () =>
        this.directory.cas(room, expect, next.raw, next.claim.epoch, this.ttlMs),
      );
      if (r.ok) {
        homed.raw = next.raw;
        homed.claim = next.claim;
        return;
      }
      const current = this.decodeClaim(room, r.current);
      if (
        current !== null &&
        current.owner === this.selfId &&
        current.epoch === homed.claim.epoch
      ) {
        expect = r.current; // our own claim, written by an earlier round
        continue;
      }
      if (
        (current !== null && current.epoch >= homed.claim.epoch) ||
        r.maxEpoch > homed.claim.epoch
      ) {
        this.fence(room, current);
        return;
      }
      // Absent (expired, or Redis restarted empty) or a record nobody can
      // trust: this relay still holds the newest epoch, so it writes it back.
      expect = r.current;
    }
  }

  private fence(room: string, current: RoomClaim | null): void {
    this.homedRooms.delete(room);
    this.stats.fenced++;
    const owner = current === null ? null : (this.view.get(current.owner) ?? null);
    this.log.warn(
      { room, new_owner: current?.owner ?? null, epoch: current?.epoch ?? null },
      'room moved to another relay: closing the stale copy here',
    );
    this.hooks.fenced(room, owner);
  }

  private async refreshBridged(room: string): Promise<void> {
    if (this.hooks.localParticipants(room) === 0) {
      this.bridgedRooms.delete(room);
      this.hooks.unbridge(room);
      return;
    }
    const raw = await this.timed('get_claim', () => this.directory.getClaim(room));
    const claim = this.decodeClaim(room, raw);
    if (
      claim !== null &&
      claim.owner === this.bridgedRooms.get(room) &&
      this.view.has(claim.owner)
    ) {
      return;
    }
    // The home moved or died: follow the new one, or take the room over.
    this.bridgedRooms.delete(room);
    const p = await this.resolve(room);
    if (p.kind === 'redirect') {
      // Cannot happen in bridge mode; keep serving locally bridged to it.
      this.bridgedRooms.set(room, p.home.id);
      this.hooks.bridge(room, p.home);
    }
  }

  private async reconcileUnplaced(room: string): Promise<void> {
    if (this.hooks.participants(room) === 0) {
      this.unplacedRooms.delete(room);
      return;
    }
    const raw = await this.timed('get_claim', () => this.directory.getClaim(room));
    const claim = this.decodeClaim(room, raw);
    if (claim !== null && claim.owner !== this.selfId && (await this.alive(claim.owner))) {
      // Another relay placed the room meanwhile: its copy wins.
      this.unplacedRooms.delete(room);
      this.stats.reconciled++;
      const home = this.view.get(claim.owner) as RelayEntry;
      if (this.mode === 'bridge') {
        this.bridgedRooms.set(room, home.id);
        this.hooks.bridge(room, home);
      } else {
        this.fence(room, claim);
      }
      return;
    }
    const epoch = await this.timed('epoch', () => this.directory.nextEpoch(room));
    const next = this.claimFor(room, this.selfId, epoch);
    const won =
      raw === null
        ? await this.timed('claim', () => this.directory.claim(room, next.raw, epoch, this.ttlMs))
        : (
            await this.timed('cas', () =>
              this.directory.cas(room, raw, next.raw, epoch, this.ttlMs),
            )
          ).ok;
    if (won) {
      this.unplacedRooms.delete(room);
      this.stats.reconciled++;
      this.homedRooms.set(room, { raw: next.raw, claim: next.claim, since: this.now() });
      this.hooks.homed(room);
      this.log.info({ room, epoch }, 'room served during the directory outage is homed here');
    }
  }

  // ── presence (direct calls) ───────────────────────────────────────────────

  /** Number of identities this relay publishes presence for. */
  get presenceCount(): number {
    return this.presence.size;
  }

  private presenceRecord(fp: string): string {
    return this.trust.encodePresence({
      user: presenceKey(fp),
      relay: this.selfId,
      ts: this.now(),
    });
  }

  /** A person registered on this relay's hub: publish where to find them (best effort, now). */
  announcePresence(fp: string): void {
    const raw = this.presenceRecord(fp);
    this.presence.set(fp, raw);
    if (this.stopped) {
      return;
    }
    void this.timed('presence', () =>
      this.directory.setPresence([[presenceKey(fp), raw]], this.ttlMs),
    ).catch(() => {
      // Written again on the next refresh.
    });
  }

  /** The person left this relay's hub: remove exactly the record this relay wrote. */
  withdrawPresence(fp: string): void {
    const raw = this.presence.get(fp);
    if (raw === undefined) {
      return;
    }
    this.presence.delete(fp);
    void this.timed('presence', () => this.directory.clearPresence(presenceKey(fp), raw)).catch(
      () => {
        // It expires with the TTL.
      },
    );
  }

  /** Rewrites every published presence record with a fresh timestamp (one refresh). */
  private async refreshPresence(): Promise<void> {
    if (this.presence.size === 0) {
      return;
    }
    const records: [string, string][] = [];
    for (const fp of this.presence.keys()) {
      const raw = this.presenceRecord(fp);
      this.presence.set(fp, raw);
      records.push([presenceKey(fp), raw]);
    }
    await this.timed('presence', () => this.directory.setPresence(records, this.ttlMs));
  }

  /**
   * The live relay another person is registered on, from the directory; null
   * when nobody published them, the record does not verify, its relay is not
   * live, or it is this relay. Never throws.
   */
  async locate(fp: string): Promise<RelayEntry | null> {
    const user = presenceKey(fp);
    let raw: string | null;
    try {
      raw = await this.timed('presence', () => this.directory.getPresence(user));
    } catch {
      this.stats.lookups.missing++;
      return null;
    }
    if (raw === null) {
      this.stats.lookups.missing++;
      return null;
    }
    const v = this.trust.decodePresence(user, raw, (id) => this.view.get(id)?.publicKey ?? null);
    if (!v.ok) {
      this.reject(v.why, 'presence record');
      this.stats.lookups.missing++;
      return null;
    }
    const relay = v.record.relay;
    if (relay === this.selfId) {
      this.stats.lookups.self++;
      return null;
    }
    const entry = this.view.get(relay);
    if (entry === undefined || entry.draining) {
      this.stats.lookups.missing++;
      return null;
    }
    this.stats.lookups.found++;
    return entry;
  }

  /** Forgets a room this relay no longer serves (closed locally). */
  forget(room: string): void {
    this.bridgedRooms.delete(room);
    this.unplacedRooms.delete(room);
  }

  // ── operator view ────────────────────────────────────────────────────────

  /** `/v2/fleet`: the directory as this relay sees it. */
  json(): unknown {
    const now = this.now();
    return {
      self: {
        relay_id: this.selfId,
        mode: this.mode,
        on_directory_down: this.onDown,
        trust: this.trust.mode,
        fleet_public_key: this.trust.fleetPublicKey,
        boot_epoch: this.bootEpoch,
      },
      directory: {
        kind: this.directory.kind,
        url: this.directoryUrl,
        connected: this.directoryUp,
        last_error: this.lastError,
        last_poll_ms_ago: this.lastPollAt === 0 ? null : now - this.lastPollAt,
        refresh_ms: this.refreshMs,
        ttl_ms: this.ttlMs,
      },
      relays: [...this.view.values()].map((e) => ({
        relay_id: e.id,
        label: e.label,
        self: e.id === this.selfId,
        signal_url: e.signalUrl,
        media_url: e.mediaUrl,
        federation_url: e.federationUrl,
        http_url: e.httpUrl,
        public_key: e.publicKey,
        load: e.load,
        sessions: e.sessions,
        epoch: e.epoch,
        draining: e.draining,
        age_ms: now - e.ts,
      })),
      rooms: {
        homed: [...this.homedRooms].map(([room, h]) => ({
          room,
          epoch: h.claim.epoch,
          participants: this.hooks.participants(room),
        })),
        bridged: [...this.bridgedRooms].map(([room, home]) => ({
          room,
          home,
          home_label: this.view.get(home)?.label ?? null,
        })),
        unplaced: [...this.unplacedRooms],
      },
      stats: {
        redirects: this.stats.redirects,
        bridges: this.stats.bridges,
        claims_won: this.stats.claimsWon,
        claims_lost: this.stats.claimsLost,
        rehomes: this.stats.rehomes,
        fenced: this.stats.fenced,
        refused: this.stats.refused,
        unplaced: this.stats.unplaced,
        reconciled: this.stats.reconciled,
        presence_published: this.presence.size,
        callee_lookups: { ...this.stats.lookups },
        records_rejected: { ...this.stats.rejected },
        errors: Object.fromEntries(this.stats.errors),
      },
    };
  }
}
