/**
 * A fleet of real relay processes sharing a real redis-server
 * (docs/fleet.md): placement and redirects, one home under concurrent
 * creation, a relay joining later, forged directory records, Redis
 * restarting, a frozen home fenced out, and a killed home re-homed.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ReceivedMedia } from '../src/client/index.js';
import { WzpClient } from '../src/client/index.js';
import { FleetTrust, fleetRelayId } from '../src/fleet/index.js';
import { Identity } from '../src/signal/index.js';
import { Cluster, type ClusterRelay, metricValue } from './cluster.js';
import { sleep, until } from './helpers.js';
import { exchange, type Member, roomSize } from './members.js';
import { NO_REDIS_REASON, REDIS_BIN, TestRedis } from './redis.js';

const REFRESH_MS = 300;
const TTL_MS = 1200;

const clients: WzpClient[] = [];

async function join(relay: ClusterRelay, room: string, name: string): Promise<Member> {
  const client = await WzpClient.connect({ signalUrl: relay.url, room, alias: name });
  clients.push(client);
  const got: ReceivedMedia[] = [];
  client.on('media', (m) => got.push(m));
  return { name, client, got, seq: 0 };
}

interface FleetJson {
  directory: { connected: boolean };
  relays: { relay_id: string; label: string; load: number }[];
  rooms: { homed: { room: string; epoch: number }[]; bridged: { room: string }[] };
}

async function fleetOf(r: ClusterRelay): Promise<FleetJson> {
  const res = await fetch(`${r.httpUrl}/v2/fleet`);
  return (await res.json()) as FleetJson;
}

async function seesRelays(relays: ClusterRelay[], labels: string[], ms = 8000): Promise<void> {
  const want = [...labels].sort().join(',');
  const end = Date.now() + ms;
  for (;;) {
    const views = await Promise.all(relays.map((r) => fleetOf(r).catch(() => null)));
    const got = views.map((v) => (v?.relays.map((e) => e.label).sort() ?? []).join(','));
    if (got.every((g) => g === want)) {
      return;
    }
    if (Date.now() > end) {
      throw new Error(`relays see [${got.join(' | ')}], want ${want}`);
    }
    await sleep(50);
  }
}

function labelOf(cluster: Cluster, url: string): string {
  for (const r of cluster.relays.values()) {
    if (r.url === url) {
      return r.name;
    }
  }
  return `?${url}`;
}

/** Connects with retries (a redirect to a dead relay fails until the directory notices). */
async function rejoin(
  relay: ClusterRelay,
  room: string,
  name: string,
  ms: number,
): Promise<Member> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      return await join(relay, room, name);
    } catch (err) {
      if (Date.now() > end) {
        throw err;
      }
      await sleep(50);
    }
  }
}

describe.skipIf(REDIS_BIN === null)('fleet of relay processes (redirect mode)', () => {
  let redis: TestRedis;
  let cluster: Cluster;
  const fleetKey = randomBytes(32);
  let a: ClusterRelay;
  let b: ClusterRelay;
  let c: ClusterRelay;

  const toml = (url: string): string =>
    [
      `directory_url = "${url}"`,
      `fleet_key = "${fleetKey.toString('hex')}"`,
      'fleet_mode = "redirect"',
      `fleet_refresh_ms = ${REFRESH_MS}`,
      `fleet_ttl_ms = ${TTL_MS}`,
      '',
    ].join('\n');

  beforeAll(async () => {
    redis = await TestRedis.start();
    cluster = new Cluster({ globalRooms: [] });
    a = await cluster.add('a');
    b = await cluster.add('b');
    c = await cluster.add('c');
    for (const r of [a, b, c]) {
      r.extraToml = toml(redis.url);
    }
    await Promise.all([cluster.start('a', 25_000), cluster.start('b', 25_000)]);
    await seesRelays([a, b], ['a', 'b']);
  }, 60_000);

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((x) => x.close(false).catch(() => {})));
    // Let the relays notice the leaves and release the rooms.
    await sleep(50);
  });

  afterAll(async () => {
    await cluster?.close();
    await redis?.stop();
  });

  it('redirects a client that reached another relay to the room home; media flows once', async () => {
    const m1 = await join(a, 'r1', 'm1');
    expect(m1.client.relayUrl).toBe(a.url);
    const m2 = await join(b, 'r1', 'm2');
    expect(m2.client.relayUrl).toBe(a.url);
    await roomSize([m1, m2], 2);
    await exchange([m1, m2], 40);
    expect(metricValue(await cluster.metrics('b'), 'wzp_fleet_redirects_total')).toBeGreaterThan(0);
    expect((await fleetOf(a)).rooms.homed.map((h) => h.room)).toContain('r1');
  });

  it('two clients creating the same room through different relays at once get one home', async () => {
    for (let round = 0; round < 3; round++) {
      const room = `same-${round}`;
      const [x, y] = await Promise.all([join(a, room, 'x'), join(b, room, 'y')]);
      expect(x.client.relayUrl).toBe(y.client.relayUrl);
      await roomSize([x, y], 2);
      const homes = (await Promise.all([fleetOf(a), fleetOf(b)])).filter((f) =>
        f.rooms.homed.some((h) => h.room === room),
      );
      expect(homes).toHaveLength(1);
    }
  });

  it('ignores a registry entry and a claim written to Redis without the fleet key', async () => {
    const raw = new Redis(redis.url);
    try {
      const evil = Identity.generate();
      const id = fleetRelayId(evil.publicKey);
      const forger = new FleetTrust({
        identity: evil,
        fleetKey: randomBytes(32),
        peers: [],
        ttlMs: TTL_MS,
      });
      const entry = {
        id,
        label: 'evil',
        signalUrl: 'ws://127.0.0.1:9/v2/signal',
        mediaUrl: 'udp://127.0.0.1:9',
        federationUrl: 'ws://127.0.0.1:9/v2/federation',
        httpUrl: null,
        publicKey: evil.publicKey.toString('hex'),
        load: 0,
        sessions: 0,
        epoch: 1,
        draining: false,
        ts: Date.now(),
      };
      const forgedEntry = forger.encodeRelay(entry);
      const unsigned = JSON.stringify({ v: 1, ...entry, signer: 'fleet', sig: '00'.repeat(64) });
      await raw.set(`wzp:fleet:relay:${id}`, forgedEntry, 'PX', 60_000);
      await raw.set('wzp:fleet:relay:0123456789abcdef', unsigned, 'PX', 60_000);
      await raw.sadd('wzp:fleet:relays', id, '0123456789abcdef');
      const claim = forger.encodeClaim({ room: 'stolen', owner: id, epoch: 1000, ts: Date.now() });
      await raw.set('wzp:fleet:room:stolen', claim, 'PX', 60_000);
      await sleep(REFRESH_MS * 3);
      for (const r of [a, b]) {
        expect((await fleetOf(r)).relays.map((e) => e.label).sort()).toEqual(['a', 'b']);
        expect(
          metricValue(await cluster.metrics(r.name), 'wzp_fleet_records_rejected_total', {
            why: 'bad_signature',
          }),
        ).toBeGreaterThan(0);
      }
      const m = await join(a, 'stolen', 'm');
      expect([a.url, b.url]).toContain(m.client.relayUrl);
      await raw.del(`wzp:fleet:relay:${id}`, 'wzp:fleet:relay:0123456789abcdef');
    } finally {
      raw.disconnect();
    }
  });

  it('a relay started later joins the fleet without configuration changes', async () => {
    // Load a and b so that the newcomer is the least loaded.
    await join(a, 'load-a', 'la');
    await join(b, 'load-b', 'lb');
    await cluster.start('c', 25_000);
    await seesRelays([a, b, c], ['a', 'b', 'c']);
    await sleep(REFRESH_MS * 2); // loads refreshed
    const m = await join(a, 'for-c', 'm');
    expect(labelOf(cluster, m.client.relayUrl)).toBe('c');
    const n = await join(b, 'for-c', 'n');
    expect(n.client.relayUrl).toBe(c.url);
    await roomSize([m, n], 2);
    await exchange([m, n], 20);
  });

  it('keeps serving while Redis restarts, refuses new rooms meanwhile, then reconciles', async () => {
    const m1 = await join(a, 'r5', 'm1');
    const m2 = await join(b, 'r5', 'm2');
    const home = m1.client.relayUrl;
    expect(m2.client.relayUrl).toBe(home);
    await roomSize([m1, m2], 2);
    await redis.stop(true);
    const homeRelay = cluster.get(labelOf(cluster, home));
    const other = [a, b, c].find((r) => r !== homeRelay) as ClusterRelay;
    const end = Date.now() + 5000;
    while ((await fleetOf(other)).directory.connected && Date.now() < end) {
      await sleep(50);
    }
    await exchange([m1, m2], 20);
    await expect(
      WzpClient.connect({ signalUrl: other.url, room: 'during-outage' }),
    ).rejects.toMatchObject({ code: 'FLEET_DIRECTORY_UNAVAILABLE' });
    await redis.startProcess();
    await seesRelays([a, b, c], ['a', 'b', 'c'], 10_000);
    // The home wrote its claim back: a newcomer through another relay meets the room.
    await sleep(REFRESH_MS * 2);
    const m3 = await join(other, 'r5', 'm3');
    expect(m3.client.relayUrl).toBe(home);
    await roomSize([m1, m2, m3], 3);
    await exchange([m1, m2, m3], 10);
    const connect = await WzpClient.connect({ signalUrl: other.url, room: 'after-outage' });
    clients.push(connect);
  });

  it('a frozen home that resumes after its room moved closes its stale copy', async () => {
    const m1 = await join(a, 'r6', 'm1');
    expect(m1.client.relayUrl).toBe(a.url);
    const hangups: unknown[] = [];
    m1.client.on('hangup', (h) => hangups.push(h.reason));
    await cluster.stop('a', 'SIGSTOP');
    try {
      await seesRelays([b, c], ['b', 'c'], TTL_MS + REFRESH_MS + 3000);
      const m3 = await join(b, 'r6', 'm3');
      expect(m3.client.relayUrl).not.toBe(a.url);
    } finally {
      a.proc?.kill('SIGCONT');
    }
    const t0 = Date.now();
    await until(() => hangups.length > 0, 'Hangup at the stale copy', REFRESH_MS + 4000);
    expect(hangups[0]).toEqual({
      PolicyViolation: { code: 'FLEET_ROOM_MOVED', reason: expect.any(String) },
    });
    expect(Date.now() - t0).toBeLessThan(REFRESH_MS + 4000);
    await seesRelays([a, b, c], ['a', 'b', 'c']);
    const again = await join(a, 'r6', 'm1b');
    expect(again.client.relayUrl).not.toBe(a.url);
    await until(() => (again.client.lastRoomUpdate?.count ?? 0) === 2, 'm1 meets m3 again');
  });

  it('re-homes the room of a killed home within TTL plus one poll; clients meet again', async () => {
    const m1 = await join(b, 'r7', 'm1');
    const m2 = await join(c, 'r7', 'm2');
    await roomSize([m1, m2], 2);
    const home = cluster.get(labelOf(cluster, m1.client.relayUrl));
    const entry = [a, b, c].find((r) => r !== home) as ClusterRelay;
    await cluster.stop(home.name, 'SIGKILL');
    const t0 = Date.now();
    const [n1, n2] = await Promise.all([
      rejoin(entry, 'r7', 'n1', 15_000),
      rejoin(entry, 'r7', 'n2', 15_000),
    ]);
    await roomSize([n1, n2], 2);
    const elapsed = Date.now() - t0;
    console.info(`[fleet] clients met again ${elapsed} ms after SIGKILL of the home`);
    // TTL plus one poll, plus the time to connect and the machine's noise.
    expect(elapsed).toBeLessThan(TTL_MS + REFRESH_MS + 2500);
    expect(n1.client.relayUrl).toBe(n2.client.relayUrl);
    expect(n1.client.relayUrl).not.toBe(home.url);
    await exchange([n1, n2], 20);
    const homes = await Promise.all([a, b, c].filter((r) => r !== home).map((r) => fleetOf(r)));
    const homed = homes.flatMap((f) => f.rooms.homed.filter((h) => h.room === 'r7'));
    expect(homed).toHaveLength(1);
  });
});

describe.skipIf(REDIS_BIN === null)('fleet of relay processes (bridge mode)', () => {
  let redis: TestRedis;
  let cluster: Cluster;
  const fleetKey = randomBytes(32);
  let a: ClusterRelay;
  let b: ClusterRelay;
  let c: ClusterRelay;
  const IDLE_MS = 1500;

  beforeAll(async () => {
    redis = await TestRedis.start();
    cluster = new Cluster({ globalRooms: [] });
    a = await cluster.add('a');
    b = await cluster.add('b');
    c = await cluster.add('c');
    for (const r of [a, b, c]) {
      r.extraToml = [
        `directory_url = "${redis.url}"`,
        `fleet_key = "${fleetKey.toString('hex')}"`,
        'fleet_mode = "bridge"',
        `fleet_refresh_ms = ${REFRESH_MS}`,
        `fleet_ttl_ms = ${TTL_MS}`,
        `fleet_link_idle_ms = ${IDLE_MS}`,
        '',
      ].join('\n');
    }
    await Promise.all([a, b, c].map((r) => cluster.start(r.name, 25_000)));
    await seesRelays([a, b, c], ['a', 'b', 'c']);
  }, 60_000);

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((x) => x.close(false).catch(() => {})));
  });

  afterAll(async () => {
    await cluster?.close();
    await redis?.stop();
  });

  /** Waits until each relay's links interested in `room` (UDP bound) are the given peers. */
  async function bridged(room: string, want: Record<string, string[]>): Promise<void> {
    const end = Date.now() + 8000;
    for (;;) {
      const got: Record<string, string[]> = {};
      for (const name of Object.keys(want)) {
        const p = (await cluster.peers(name)) as unknown as {
          global_rooms: { name: string; peers: string[] }[];
        };
        got[name] = (p.global_rooms.find((g) => g.name === room)?.peers ?? []).sort();
      }
      if (Object.entries(want).every(([n, w]) => got[n]?.join(',') === [...w].sort().join(','))) {
        return;
      }
      if (Date.now() > end) {
        throw new Error(
          `room ${room} bridged as ${JSON.stringify(got)}, want ${JSON.stringify(want)}`,
        );
      }
      await sleep(50);
    }
  }

  it('bridges the room between the relays clients reached, media exactly once, idle links close', async () => {
    const m1 = await join(a, 'br', 'm1');
    const m2 = await join(b, 'br', 'm2');
    const m3 = await join(c, 'br', 'm3');
    // Nobody was redirected: each stays on the relay it reached.
    expect([m1, m2, m3].map((m) => m.client.relayUrl)).toEqual([a.url, b.url, c.url]);
    await roomSize([m1, m2, m3], 3);
    const labels = (m: Member) =>
      (m.client.lastRoomUpdate?.participants ?? []).map((p) => p.relay_label ?? '-').sort();
    expect(labels(m1)).toEqual(['-', 'b', 'c']);
    // Presence travels before the links' UDP paths are bound: wait for both.
    await bridged('br', { a: ['b', 'c'], b: ['a'], c: ['a'] });
    await exchange([m1, m2, m3], 30);
    // A star around the home: b and c link to a, not to each other.
    const fa = await fleetOf(a);
    expect(fa.rooms.homed.map((h) => h.room)).toEqual(['br']);
    expect((await fleetOf(b)).rooms.bridged.map((x) => x.room)).toEqual(['br']);
    const peersB = await cluster.peers('b');
    expect(peersB.peers.filter((p) => p.status === 'up').map((p) => p.label)).toEqual(['a']);
    expect(metricValue(await cluster.metrics('b'), 'wzp_fleet_bridges_total')).toBeGreaterThan(0);
    // Everyone leaves: the links carry nothing and close after fleet_link_idle_ms.
    const t0 = Date.now();
    await Promise.all(clients.splice(0).map((x) => x.close(true)));
    const end = Date.now() + IDLE_MS + 6000;
    for (;;) {
      const ups = await Promise.all(
        [a, b, c].map(
          async (r) => (await cluster.peers(r.name)).peers.filter((p) => p.status === 'up').length,
        ),
      );
      if (ups.every((n) => n === 0)) {
        break;
      }
      if (Date.now() > end) {
        throw new Error(`links still up: ${ups.join(',')}`);
      }
      await sleep(100);
    }
    expect(Date.now() - t0).toBeGreaterThanOrEqual(IDLE_MS - 50);
    expect(
      metricValue(await cluster.metrics('a'), 'wzp_federation_link_events_total', {
        event: 'idle_closed',
      }) +
        metricValue(await cluster.metrics('b'), 'wzp_federation_link_events_total', {
          event: 'idle_closed',
        }),
    ).toBeGreaterThan(0);
    // A new bridged room opens a link again on demand.
    const n1 = await join(b, 'br2', 'n1');
    const n2 = await join(c, 'br2', 'n2');
    await roomSize([n1, n2], 2);
    await bridged('br2', { b: ['c'], c: ['b'] });
    await exchange([n1, n2], 20);
  });

  it('when the home dies, a bridging relay takes the room over and the other re-bridges to it', async () => {
    const m1 = await join(a, 'hd', 'm1');
    const m2 = await join(b, 'hd', 'm2');
    const m3 = await join(c, 'hd', 'm3');
    await roomSize([m1, m2, m3], 3);
    expect((await fleetOf(a)).rooms.homed.map((h) => h.room)).toContain('hd');
    await cluster.stop('a', 'SIGKILL');
    const t0 = Date.now();
    // Without reconnecting, m2 and m3 meet again through the new home.
    await until(
      () => m2.client.lastRoomUpdate?.count === 1 && m3.client.lastRoomUpdate?.count === 1,
      "the dead home's participants gone",
      5000,
    );
    await roomSize([m2, m3], 2, TTL_MS + REFRESH_MS + 6000);
    const elapsed = Date.now() - t0;
    console.info(`[fleet] bridged room re-homed ${elapsed} ms after SIGKILL of its home`);
    expect(elapsed).toBeLessThan(TTL_MS + REFRESH_MS + 4000);
    const [fb, fc] = await Promise.all([fleetOf(b), fleetOf(c)]);
    const homes = [fb, fc].filter((f) => f.rooms.homed.some((h) => h.room === 'hd'));
    expect(homes).toHaveLength(1);
    const newHome = homes[0] === fb ? 'b' : 'c';
    const other = newHome === 'b' ? 'c' : 'b';
    await bridged('hd', { [newHome]: [other], [other]: [newHome] });
    await exchange([m2, m3], 20);
  });
});

describe.skipIf(REDIS_BIN !== null)('fleet of relay processes', () => {
  it.skip(`skipped: ${NO_REDIS_REASON}`, () => {});
});
