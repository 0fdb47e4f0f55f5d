/**
 * The fleet directory against a real redis-server (and the in-memory one):
 * the atomic operations, signed records, and Fleet placement, re-homing and
 * fencing between several Fleet instances sharing one directory.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Directory,
  Fleet,
  type FleetHooks,
  FleetTrust,
  fleetRelayId,
  MemoryDirectory,
  presenceKey,
  RedisDirectory,
  type RelayEntry,
} from '../src/fleet/index.js';
import { createLogger } from '../src/log/index.js';
import { Identity } from '../src/signal/index.js';
import { sleep, until } from './helpers.js';
import { NO_REDIS_REASON, REDIS_BIN, TestRedis } from './redis.js';

const log = createLogger({ level: 'silent' });

let redis: TestRedis | null = null;
const prefixes: string[] = [];

beforeAll(async () => {
  if (REDIS_BIN !== null) {
    redis = await TestRedis.start();
  }
});

afterAll(async () => {
  await redis?.stop();
});

function newPrefix(): string {
  const p = `t${randomBytes(4).toString('hex')}:`;
  prefixes.push(p);
  return p;
}

type Factory = { name: string; make: (prefix: string) => Promise<Directory> };

const factories: Factory[] = [
  { name: 'memory', make: async () => new MemoryDirectory() },
  {
    name: 'redis',
    make: async (prefix) => {
      const d = new RedisDirectory({ url: (redis as TestRedis).url, prefix });
      await d.connect();
      return d;
    },
  },
];

describe.each(factories)('$name directory', ({ name, make }) => {
  const skip = name === 'redis' && REDIS_BIN === null;
  if (skip) {
    it.skip(`skipped: ${NO_REDIS_REASON}`, () => {});
    return;
  }

  it('registers with a TTL; an expired entry reads as null', async () => {
    const d = await make(newPrefix());
    await d.register('aaaaaaaaaaaaaaaa', 'x', 150);
    expect((await d.relays()).get('aaaaaaaaaaaaaaaa')).toBe('x');
    await sleep(300);
    expect((await d.relays()).get('aaaaaaaaaaaaaaaa') ?? null).toBeNull();
    await d.close();
  });

  it('presence: written in one batch with a TTL, removed only by the writer of that record', async () => {
    const d = await make(newPrefix());
    const u1 = presenceKey('fp-one');
    const u2 = presenceKey('fp-two');
    await d.setPresence(
      [
        [u1, 'r1'],
        [u2, 'r2'],
      ],
      200,
    );
    expect(await d.getPresence(u1)).toBe('r1');
    expect(await d.getPresence(u2)).toBe('r2');
    // A newer record (another relay took the person over) is not removed by the old writer.
    await d.setPresence([[u1, 'r1-newer']], 200);
    expect(await d.clearPresence(u1, 'r1')).toBe(false);
    expect(await d.getPresence(u1)).toBe('r1-newer');
    expect(await d.clearPresence(u1, 'r1-newer')).toBe(true);
    expect(await d.getPresence(u1)).toBeNull();
    await sleep(350);
    expect(await d.getPresence(u2)).toBeNull();
    await d.close();
  });

  it('claims once (SET NX PX) and compare-and-sets with an epoch floor', async () => {
    const d = await make(newPrefix());
    const e1 = await d.nextEpoch('r');
    const e2 = await d.nextEpoch('r');
    expect(e2).toBe(e1 + 1);
    expect(await d.claim('r', 'A1', e2, 5000)).toBe(true);
    expect(await d.claim('r', 'B1', e2, 5000)).toBe(false);
    expect(await d.getClaim('r')).toBe('A1');
    // Refresh by the holder.
    expect(await d.cas('r', 'A1', 'A1b', e2, 5000)).toEqual({ ok: true });
    // Wrong expectation: refused, tells what is there.
    const wrong = await d.cas('r', 'A1', 'A2', e2, 5000);
    expect(wrong).toEqual({ ok: false, current: 'A1b', maxEpoch: e2 });
    // Take-over at a higher epoch, then the old owner is fenced even when the key is gone.
    const e3 = await d.nextEpoch('r');
    expect((await d.cas('r', 'A1b', 'B3', e3, 5000)).ok).toBe(true);
    expect(await d.release('r', 'A1b')).toBe(false);
    expect(await d.release('r', 'B3')).toBe(true);
    const stale = await d.cas('r', null, 'A-again', e2, 5000);
    expect(stale).toEqual({ ok: false, current: null, maxEpoch: e3 });
    expect((await d.cas('r', null, 'B-again', e3, 5000)).ok).toBe(true);
    await d.close();
  });

  it('two claims of a new room at the same moment: exactly one wins', async () => {
    const d = await make(newPrefix());
    const results = await Promise.all(
      Array.from({ length: 8 }, async (_, i) => {
        const e = await d.nextEpoch('same');
        return d.claim('same', `owner${i}`, e, 5000);
      }),
    );
    expect(results.filter(Boolean)).toHaveLength(1);
    await d.close();
  });
});

// ── signed records ─────────────────────────────────────────────────────────

function entryOf(identity: Identity, label: string): RelayEntry {
  return {
    id: fleetRelayId(identity.publicKey),
    label,
    signalUrl: 'ws://127.0.0.1:1/v2/signal',
    mediaUrl: 'udp://127.0.0.1:2',
    federationUrl: 'ws://127.0.0.1:1/v2/federation',
    httpUrl: null,
    publicKey: identity.publicKey.toString('hex'),
    load: 0,
    sessions: 0,
    epoch: 1,
    draining: false,
    ts: Date.now(),
  };
}

describe('fleet records', () => {
  const fleetKey = randomBytes(32);
  const a = Identity.generate();
  const b = Identity.generate();

  it('with a fleet key: trusted iff signed by it and fresh', () => {
    const ta = new FleetTrust({ identity: a, fleetKey, peers: [], ttlMs: 1000 });
    const tb = new FleetTrust({ identity: b, fleetKey, peers: [], ttlMs: 1000 });
    const forger = new FleetTrust({
      identity: b,
      fleetKey: randomBytes(32),
      peers: [],
      ttlMs: 1000,
    });
    const e = entryOf(b, 'b');
    expect(ta.decodeRelay(e.id, tb.encodeRelay(e))).toEqual({ ok: true, record: e });
    expect(ta.decodeRelay(e.id, forger.encodeRelay(e))).toEqual({
      ok: false,
      why: 'bad_signature',
    });
    // Own-key signatures are not enough in fleet mode unless the key is a peer.
    const own = new FleetTrust({ identity: b, fleetKey: null, peers: [], ttlMs: 1000 });
    expect(ta.decodeRelay(e.id, own.encodeRelay(e))).toEqual({ ok: false, why: 'untrusted' });
    // Tampering with a signed field.
    const tampered = JSON.parse(tb.encodeRelay(e)) as Record<string, unknown>;
    tampered.signalUrl = 'ws://evil.example:1/v2/signal';
    expect(ta.decodeRelay(e.id, JSON.stringify(tampered))).toEqual({
      ok: false,
      why: 'bad_signature',
    });
    // Stored under another id, or an id that is not its key's.
    expect(ta.decodeRelay('0000000000000000', tb.encodeRelay(e))).toEqual({
      ok: false,
      why: 'mismatch',
    });
    // Replayed long after it was written.
    const old = { ...e, ts: Date.now() - 60_000 };
    expect(ta.decodeRelay(e.id, tb.encodeRelay(old))).toEqual({ ok: false, why: 'stale' });
    expect(ta.decodeRelay(e.id, 'not json')).toEqual({ ok: false, why: 'malformed' });
    const claim = { room: 'r', owner: e.id, epoch: 3, ts: Date.now() };
    expect(ta.decodeClaim('r', tb.encodeClaim(claim))).toEqual({ ok: true, record: claim });
    expect(ta.decodeClaim('other', tb.encodeClaim(claim))).toEqual({ ok: false, why: 'mismatch' });
    expect(ta.decodeClaim('r', forger.encodeClaim(claim))).toEqual({
      ok: false,
      why: 'bad_signature',
    });
  });

  it('presence records: hashed user key, signed, fresh, and in own-key mode only by the relay named', () => {
    const user = presenceKey(a.fingerprint);
    expect(user).toMatch(/^[0-9a-f]{32}$/);
    expect(user).not.toContain(a.fingerprint.replace(/:/g, '').slice(0, 8));
    const fleetKey = randomBytes(32);
    const ta = new FleetTrust({ identity: a, fleetKey, peers: [], ttlMs: 1000 });
    const tb = new FleetTrust({ identity: b, fleetKey, peers: [], ttlMs: 1000 });
    const rec = { user, relay: fleetRelayId(b.publicKey), ts: Date.now() };
    const known = () => null;
    expect(ta.decodePresence(user, tb.encodePresence(rec), known)).toEqual({
      ok: true,
      record: rec,
    });
    expect(ta.decodePresence(presenceKey('other'), tb.encodePresence(rec), known)).toEqual({
      ok: false,
      why: 'mismatch',
    });
    const stale = { ...rec, ts: Date.now() - 10_000 };
    expect(ta.decodePresence(user, tb.encodePresence(stale), known)).toEqual({
      ok: false,
      why: 'stale',
    });
    // Without a fleet key: b's record must be signed by b, and b must be a live relay.
    const peers = [{ label: 'b', public_key: b.publicKey.toString('hex') }];
    const oa = new FleetTrust({ identity: a, fleetKey: null, peers, ttlMs: 1000 });
    const ob = new FleetTrust({ identity: b, fleetKey: null, peers: [], ttlMs: 1000 });
    const bKey = (id: string) => (id === rec.relay ? b.publicKey.toString('hex') : null);
    expect(oa.decodePresence(user, ob.encodePresence(rec), bKey).ok).toBe(true);
    expect(oa.decodePresence(user, ob.encodePresence(rec), known)).toEqual({
      ok: false,
      why: 'untrusted',
    });
    // a (trusted) may not publish presence on b's behalf.
    const oaSelf = new FleetTrust({ identity: a, fleetKey: null, peers, ttlMs: 1000 });
    expect(oa.decodePresence(user, oaSelf.encodePresence(rec), bKey)).toEqual({
      ok: false,
      why: 'untrusted',
    });
  });

  it('without a fleet key: trusted iff signed by a [[peers]] key (or by this relay)', () => {
    const peers = [{ label: 'b', public_key: b.publicKey.toString('hex') }];
    const ta = new FleetTrust({ identity: a, fleetKey: null, peers, ttlMs: 1000 });
    const tb = new FleetTrust({ identity: b, fleetKey: null, peers: [], ttlMs: 1000 });
    const c = Identity.generate();
    const tc = new FleetTrust({ identity: c, fleetKey: null, peers: [], ttlMs: 1000 });
    expect(ta.decodeRelay(entryOf(b, 'b').id, tb.encodeRelay(entryOf(b, 'b'))).ok).toBe(true);
    expect(ta.decodeRelay(entryOf(c, 'c').id, tc.encodeRelay(entryOf(c, 'c')))).toEqual({
      ok: false,
      why: 'untrusted',
    });
    // b may not vouch for c's entry.
    expect(ta.decodeRelay(entryOf(c, 'c').id, tb.encodeRelay(entryOf(c, 'c')))).toEqual({
      ok: false,
      why: 'untrusted',
    });
    // A peer given by fingerprint.
    const byFp = new FleetTrust({
      identity: a,
      fleetKey: null,
      peers: [{ label: 'c', fingerprint: c.fingerprint }],
      ttlMs: 1000,
    });
    expect(byFp.decodeRelay(entryOf(c, 'c').id, tc.encodeRelay(entryOf(c, 'c'))).ok).toBe(true);
  });
});

// ── Fleet instances sharing a directory ───────────────────────────────────────

interface Member {
  fleet: Fleet;
  identity: Identity;
  rooms: Map<string, number>;
  fenced: string[];
  sessions: number;
}

async function member(
  directory: Directory,
  label: string,
  fleetKey: Buffer,
  mode: 'redirect' | 'bridge' = 'redirect',
  onDown: 'refuse' | 'local' = 'refuse',
): Promise<Member> {
  const identity = Identity.generate();
  const m: Member = {
    fleet: null as unknown as Fleet,
    identity,
    rooms: new Map(),
    fenced: [],
    sessions: 0,
  };
  const hooks: FleetHooks = {
    self: () => ({
      label,
      signalUrl: `ws://${label}.test:1/v2/signal`,
      mediaUrl: `udp://${label}.test:2`,
      federationUrl: `ws://${label}.test:1/v2/federation`,
      httpUrl: null,
      sessions: m.sessions,
      maxSessions: 100,
      draining: false,
    }),
    participants: (room) => m.rooms.get(room) ?? 0,
    localParticipants: (room) => m.rooms.get(room) ?? 0,
    fenced: (room) => {
      m.fenced.push(room);
      m.rooms.delete(room);
    },
    bridge: () => {},
    unbridge: () => {},
    homed: () => {},
  };
  m.fleet = new Fleet({
    directory,
    trust: new FleetTrust({ identity, fleetKey, peers: [], ttlMs: 600 }),
    log,
    hooks,
    mode,
    onDown,
    refreshMs: 150,
    ttlMs: 600,
    directoryUrl: 'test',
  });
  await m.fleet.start();
  return m;
}

describe.each(factories)('Fleet over the $name directory', ({ name, make }) => {
  if (name === 'redis' && REDIS_BIN === null) {
    it.skip(`skipped: ${NO_REDIS_REASON}`, () => {});
    return;
  }
  const fleetKey = randomBytes(32);

  it('places a new room once, on the least-loaded relay, and redirects the others', async () => {
    const prefix = newPrefix();
    const shared = name === 'memory' ? await make(prefix) : null;
    const dir = async () => shared ?? make(prefix);
    const a = await member(await dir(), 'a', fleetKey);
    const b = await member(await dir(), 'b', fleetKey);
    const c = await member(await dir(), 'c', fleetKey);
    a.sessions = 50;
    b.sessions = 10;
    c.sessions = 30;
    await Promise.all([a.fleet.tick(), b.fleet.tick(), c.fleet.tick()]);
    await Promise.all([a.fleet.tick(), b.fleet.tick(), c.fleet.tick()]);
    expect(a.fleet.relays()).toHaveLength(3);
    const places = await Promise.all([a, b, c].map((m) => m.fleet.place('room1')));
    expect(places.map((p) => p.kind).sort()).toEqual(['local', 'redirect', 'redirect']);
    for (const p of places) {
      if (p.kind === 'redirect') {
        expect(p.home.label).toBe('b');
      }
    }
    expect(b.fleet.isHome('room1')).toBe(true);
    for (const m of [a, b, c]) {
      await m.fleet.stop();
    }
  });

  it('re-homes the room of a dead relay with epoch + 1; the frozen home is fenced', async () => {
    const prefix = newPrefix();
    const shared = name === 'memory' ? await make(prefix) : null;
    const dir = async () => shared ?? make(prefix);
    const a = await member(await dir(), 'a', fleetKey);
    const b = await member(await dir(), 'b', fleetKey);
    b.sessions = 90; // a is preferred
    await Promise.all([a.fleet.tick(), b.fleet.tick()]);
    expect((await a.fleet.place('r')).kind).toBe('local');
    a.rooms.set('r', 2);
    const epoch1 = (a.fleet.json() as { rooms: { homed: { epoch: number }[] } }).rooms.homed[0]
      ?.epoch as number;
    expect((await b.fleet.place('r')).kind).toBe('redirect');
    // Freeze a: no refresh for longer than the TTL.
    (a.fleet as unknown as { stopped: boolean }).stopped = true;
    await sleep(1000);
    await b.fleet.tick();
    expect(b.fleet.relays().map((e) => e.label)).toEqual(['b']);
    expect((await b.fleet.place('r')).kind).toBe('local');
    const homed = (b.fleet.json() as { rooms: { homed: { room: string; epoch: number }[] } }).rooms
      .homed;
    expect(homed[0]?.epoch).toBeGreaterThan(epoch1);
    b.rooms.set('r', 1);
    // a resumes: its refresh meets the newer epoch and closes its copy.
    (a.fleet as unknown as { stopped: boolean }).stopped = false;
    await a.fleet.tick();
    await until(() => a.fenced.includes('r'), 'a fenced', 3000);
    expect(a.fleet.isHome('r')).toBe(false);
    expect(b.fleet.isHome('r')).toBe(true);
    await a.fleet.stop();
    await b.fleet.stop();
  });

  it('ignores a forged registry entry and a forged claim', async () => {
    const prefix = newPrefix();
    const shared = name === 'memory' ? await make(prefix) : null;
    const d = shared ?? (await make(prefix));
    const a = await member(d, 'a', fleetKey);
    const evil = Identity.generate();
    const forger = new FleetTrust({
      identity: evil,
      fleetKey: randomBytes(32),
      peers: [],
      ttlMs: 600,
    });
    const forged = entryOf(evil, 'evil');
    await d.register(forged.id, forger.encodeRelay(forged), 5000);
    await d.cas(
      'stolen',
      null,
      forger.encodeClaim({ room: 'stolen', owner: forged.id, epoch: 99, ts: Date.now() }),
      99,
      5000,
    );
    await a.fleet.tick();
    expect(a.fleet.relays().map((e) => e.label)).toEqual(['a']);
    const p = await a.fleet.place('stolen');
    expect(p.kind).toBe('local');
    expect(a.fleet.stats.rejected.bad_signature).toBeGreaterThanOrEqual(2);
    await a.fleet.stop();
  });
});

describe('Fleet while Redis is down', () => {
  if (REDIS_BIN === null) {
    it.skip(`skipped: ${NO_REDIS_REASON}`, () => {});
    return;
  }

  it('refuses or serves locally, keeps its rooms, and reconciles when Redis returns', async () => {
    const own = await TestRedis.start();
    try {
      const fleetKey = randomBytes(32);
      const mk = async () => {
        const d = new RedisDirectory({ url: own.url, prefix: 'x:', commandTimeoutMs: 300 });
        await d.connect();
        return d;
      };
      const refuse = await member(await mk(), 'refuse', fleetKey, 'redirect', 'refuse');
      const local = await member(await mk(), 'local', fleetKey, 'redirect', 'local');
      expect((await refuse.fleet.place('kept')).kind).toBe('local');
      refuse.rooms.set('kept', 1);
      await own.stop(true);
      await until(() => !refuse.fleet.directoryUp && !local.fleet.directoryUp, 'down', 3000);
      await expect(refuse.fleet.place('new')).rejects.toMatchObject({
        code: 'FLEET_DIRECTORY_UNAVAILABLE',
      });
      expect((await local.fleet.place('outage')).kind).toBe('unplaced');
      local.rooms.set('outage', 1);
      // Existing rooms stay.
      expect(refuse.fleet.isHome('kept')).toBe(true);
      await own.startProcess();
      await until(() => refuse.fleet.directoryUp && local.fleet.directoryUp, 'up again', 5000);
      await until(() => local.fleet.isHome('outage'), 'outage room reconciled', 3000);
      await refuse.fleet.tick();
      // Redis came back empty: the home wrote its claim back with its epoch.
      const raw = new Redis(own.url);
      try {
        expect(await raw.get('x:room:kept')).not.toBeNull();
        expect(await raw.get('x:room:outage')).not.toBeNull();
      } finally {
        raw.disconnect();
      }
      expect(refuse.fenced).toEqual([]);
      await refuse.fleet.stop();
      await local.fleet.stop();
    } finally {
      await own.stop();
    }
  });
});
