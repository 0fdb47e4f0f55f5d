/**
 * Direct calls through the hub with real relay processes on 127.0.0.1:
 * register → offer → ringing → answer → both meet in `call-<id>` with an
 * end-to-end key only they can derive; reject, cancel, timeout, busy,
 * disconnect mid-call, forged registration, presence visibility, the offer
 * rate limit, and a callee registered on another relay.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import {
  type CallSetupInfo,
  HubClient,
  type IncomingCall,
  type ReceivedMedia,
  WzpClient,
} from '../src/client/index.js';
import { presenceKey } from '../src/fleet/index.js';
import {
  decodeSignal,
  encodeSignal,
  Identity,
  type SignalMessage,
  signRegisterPresence,
} from '../src/signal/index.js';
import { createHeader } from '../src/wire/index.js';
import { Cluster, metricValue } from './cluster.js';
import { until, untilAsync } from './helpers.js';
import { REDIS_BIN, TestRedis } from './redis.js';

let cluster: Cluster | null = null;
const hubs: HubClient[] = [];
const clients: WzpClient[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close(false).catch(() => {})));
  await Promise.all(hubs.splice(0).map((h) => h.close().catch(() => {})));
  await cluster?.close();
  cluster = null;
});

function hubUrl(c: Cluster, relay: string): string {
  return c.get(relay).url.replace('/v2/signal', '/v2/hub');
}

async function oneRelay(extraToml = ''): Promise<Cluster> {
  const c = new Cluster({ globalRooms: [] });
  cluster = c;
  const r = await c.add('a');
  r.topToml = extraToml;
  await c.start('a');
  return c;
}

async function register(
  c: Cluster,
  relay: string,
  alias: string,
  contacts: string[] = [],
  identity = Identity.generate(),
): Promise<HubClient> {
  const h = await HubClient.connect({ url: hubUrl(c, relay), alias, identity, contacts });
  hubs.push(h);
  return h;
}

function nextIncoming(h: HubClient): Promise<IncomingCall> {
  return new Promise((resolve) => h.once('incoming', resolve));
}

function nextHangup(h: HubClient): Promise<unknown> {
  return new Promise((resolve) => h.once('hangup', (b) => resolve(b.reason)));
}

/** Both parties join the call room with the call key; A's media reaches B decrypted. */
async function meet(a: CallSetupInfo, b: CallSetupInfo, aId: Identity, bId: Identity) {
  const ca = await WzpClient.connect({
    signalUrl: a.relayUrl,
    room: a.room,
    identity: aId,
    roomKey: a.roomKey,
  });
  clients.push(ca);
  const cb = await WzpClient.connect({
    signalUrl: b.relayUrl,
    room: b.room,
    identity: bId,
    roomKey: b.roomKey,
  });
  clients.push(cb);
  const got: ReceivedMedia[] = [];
  cb.on('media', (m) => got.push(m));
  await until(() => ca.lastRoomUpdate?.count === 2, 'both in the call room', 15_000);
  const payload = Buffer.from('hello over the call');
  for (let seq = 0; seq < 20; seq++) {
    ca.sendMedia(createHeader({ seq, timestamp: seq * 20 }), payload, null);
    await new Promise((r) => setTimeout(r, 10));
  }
  await until(() => got.length >= 18, `media through the call room (${got.length})`, 15_000);
  expect(got.every((m) => m.payload.equals(payload))).toBe(true);
  return { ca, cb };
}

async function fleetJson(c: Cluster, relay: string): Promise<unknown> {
  return (await fetch(`${c.get(relay).httpUrl}/v2/fleet`)).json();
}

/**
 * Alice (registered on `c`'s relay a) calls Bob (on relay b), Bob accepts:
 * it rang, the call room is on b, both derived one key, media flows, and the
 * caller's hang-up reaches Bob.
 */
async function callAcross(
  a: HubClient,
  b: HubClient,
  aId: Identity,
  bId: Identity,
  calleeRelayUrl: string,
): Promise<void> {
  const inc = nextIncoming(b);
  let rang = false;
  const placed = a.call(bId.fingerprint, { onRinging: () => (rang = true) });
  const [sa, sb] = await Promise.all([placed.setup, (await inc).accept()]);
  expect(rang).toBe(true);
  expect(sa.relayUrl).toBe(calleeRelayUrl);
  expect(sa.roomKey.equals(sb.roomKey)).toBe(true);
  await meet(sa, sb, aId, bId);
  const hang = nextHangup(b);
  a.hangup(sa.callId);
  expect(await hang).toBe('Normal');
}

describe('direct calls on one relay', () => {
  it('register, offer, ringing, answer, CallSetup; media flows; a third identity cannot join', async () => {
    const c = await oneRelay();
    const aId = Identity.generate();
    const bId = Identity.generate();
    const a = await register(c, 'a', 'alice', [bId.fingerprint], aId);
    const b = await register(c, 'a', 'bob', [aId.fingerprint], bId);
    await until(() => a.presence.some((u) => u.fingerprint === bId.fingerprint), 'presence');

    const incoming = nextIncoming(b);
    let rang = false;
    const { setup } = a.call(bId.fingerprint, { onRinging: () => (rang = true) });
    const call = await incoming;
    expect(call.callerFingerprint).toBe(aId.fingerprint);
    const [sa, sb] = await Promise.all([setup, call.accept()]);
    expect(rang).toBe(true);
    expect(sa.room).toBe(`call-${sa.callId}`);
    expect(sb.room).toBe(sa.room);
    expect(sa.relayUrl).toBe(c.get('a').url);
    // Both derive the same key; the relay only saw public keys.
    expect(sa.roomKey.equals(sb.roomKey)).toBe(true);

    await meet(sa, sb, aId, bId);

    const intruder = WzpClient.connect({ signalUrl: sa.relayUrl, room: sa.room });
    await expect(intruder).rejects.toMatchObject({ code: 'CALL_NOT_PARTY' });
    // A party cannot take a second seat either (at most 2 participants).
    const twice = WzpClient.connect({ signalUrl: sa.relayUrl, room: sa.room, identity: aId });
    await expect(twice).rejects.toMatchObject({ code: 'CALL_NOT_PARTY' });
    // A room named call-* without a call record is refused.
    await expect(
      WzpClient.connect({ signalUrl: sa.relayUrl, room: 'call-nothing' }),
    ).rejects.toMatchObject({ code: 'CALL_NOT_FOUND' });

    const text = await c.metrics('a');
    expect(metricValue(text, 'wzp_calls_total', { outcome: 'answered' })).toBe(1);
    expect(metricValue(text, 'wzp_hub_registered')).toBe(2);
    expect(metricValue(text, 'wzp_call_ring_seconds_count')).toBe(1);
  }, 60_000);

  it('reject, cancel before answer, no answer (timeout), busy', async () => {
    const c = await oneRelay('call_ring_timeout_ms = 700');
    const aId = Identity.generate();
    const bId = Identity.generate();
    const cId = Identity.generate();
    const a = await register(c, 'a', 'alice', [], aId);
    const b = await register(c, 'a', 'bob', [], bId);
    const x = await register(c, 'a', 'carol', [], cId);

    // Reject → the caller gets Hangup Declined.
    let inc = nextIncoming(b);
    let placed = a.call(bId.fingerprint);
    (await inc).reject();
    await expect(placed.setup).rejects.toMatchObject({ reason: 'Declined' });

    // Cancel → the callee gets a Hangup for that call.
    inc = nextIncoming(b);
    placed = a.call(bId.fingerprint);
    await inc;
    const calleeHangup = nextHangup(b);
    a.hangup(placed.callId);
    await expect(placed.setup).rejects.toBeDefined();
    expect(await calleeHangup).toBe('Normal');

    // Nobody answers → Timeout on both sides.
    inc = nextIncoming(b);
    placed = a.call(bId.fingerprint);
    await inc;
    const timedOut = nextHangup(b);
    await expect(placed.setup).rejects.toMatchObject({ reason: 'Timeout' });
    expect(await timedOut).toBe('Timeout');

    // Busy: B is in an active call with C; A's offer gets Hangup Busy.
    inc = nextIncoming(b);
    const cb = x.call(bId.fingerprint);
    await (await inc).accept();
    await cb.setup;
    placed = a.call(bId.fingerprint);
    await expect(placed.setup).rejects.toMatchObject({ reason: 'Busy' });

    const text = await c.metrics('a');
    expect(metricValue(text, 'wzp_calls_total', { outcome: 'rejected' })).toBe(1);
    expect(metricValue(text, 'wzp_calls_total', { outcome: 'cancelled' })).toBe(1);
    expect(metricValue(text, 'wzp_calls_total', { outcome: 'timeout' })).toBe(1);
    expect(metricValue(text, 'wzp_calls_total', { outcome: 'busy' })).toBe(1);
  }, 60_000);

  it('disconnect mid-call: the peer gets a Hangup, and the call room closes', async () => {
    const c = await oneRelay();
    const aId = Identity.generate();
    const bId = Identity.generate();
    const a = await register(c, 'a', 'alice', [], aId);
    const b = await register(c, 'a', 'bob', [], bId);
    const inc = nextIncoming(b);
    const placed = a.call(bId.fingerprint);
    const [sa, sb] = await Promise.all([placed.setup, (await inc).accept()]);
    const { cb } = await meet(sa, sb, aId, bId);
    const roomHangup = new Promise((r) => cb.once('hangup', r));
    const hub = nextHangup(b);
    await a.close();
    expect(await hub).toBe('Normal');
    await roomHangup;
  }, 60_000);

  it('refuses a forged RegisterPresence signature', async () => {
    const c = await oneRelay();
    const id = Identity.generate();
    const other = Identity.generate();
    const ws = new WebSocket(hubUrl(c, 'a'));
    const got: SignalMessage[] = [];
    ws.on('message', (d) => got.push(decodeSignal(d as Buffer)));
    await new Promise((r) => ws.once('open', r));
    const closed = new Promise((r) => ws.once('close', r));
    ws.send(
      encodeSignal({
        type: 'RegisterPresence',
        // Signed by another key: must not verify for id.publicKey.
        body: { identity_pub: id.publicKey, signature: signRegisterPresence(other), alias: 'x' },
      }),
    );
    await closed;
    expect(got.find((m) => m.type === 'RegisterPresenceAck')?.body).toMatchObject({
      success: false,
    });
    expect(got.find((m) => m.type === 'Error')?.body).toMatchObject({
      code: 'HUB_BAD_REGISTRATION',
    });
    // Nothing was registered: calling that fingerprint finds no one.
    const caller = await register(c, 'a', 'caller');
    await expect(caller.call(id.fingerprint).setup).rejects.toBeDefined();
    const text = await c.metrics('a');
    expect(metricValue(text, 'wzp_hub_rejections_total', { code: 'HUB_BAD_REGISTRATION' })).toBe(1);
    expect(metricValue(text, 'wzp_hub_registered')).toBe(1);
  }, 60_000);

  it('presence visibility: mutual contacts by default, everyone, nobody', async () => {
    let c = await oneRelay();
    const [aId, bId, xId] = [Identity.generate(), Identity.generate(), Identity.generate()];
    const a = await register(c, 'a', 'alice', [bId.fingerprint, xId.fingerprint], aId);
    const b = await register(c, 'a', 'bob', [aId.fingerprint], bId);
    // x lists nobody: a lists x, but the contact is not mutual.
    const x = await register(c, 'a', 'x', [], xId);
    await until(() => a.presence.length === 1, 'a sees b');
    expect(a.presence.map((u) => u.fingerprint)).toEqual([bId.fingerprint]);
    expect(b.presence.map((u) => u.fingerprint)).toEqual([aId.fingerprint]);
    expect(x.presence).toEqual([]);
    // b leaves: a's list updates.
    await b.close();
    await until(() => a.presence.length === 0, 'a sees b leave');
    await Promise.all(hubs.splice(0).map((h) => h.close()));
    await cluster?.close();

    c = await oneRelay('presence_visibility = "everyone"');
    const e1 = await register(c, 'a', 'e1');
    await register(c, 'a', 'e2');
    await until(() => e1.presence.length === 1, 'everyone sees everyone');
    await Promise.all(hubs.splice(0).map((h) => h.close()));
    await cluster?.close();

    c = await oneRelay('presence_visibility = "nobody"');
    const n1 = await register(c, 'a', 'n1', []);
    const n2 = await register(c, 'a', 'n2', [n1.fingerprint]);
    await new Promise((r) => setTimeout(r, 200));
    expect(n1.presence).toEqual([]);
    expect(n2.presence).toEqual([]);
    // Calling by fingerprint still works.
    const inc = nextIncoming(n1);
    n2.call(n1.fingerprint).setup.catch(() => {});
    expect((await inc).callerFingerprint).toBe(n2.fingerprint);
  }, 60_000);

  it('holds the offer flood limit', async () => {
    const c = await oneRelay('call_offers_per_minute = 3\ncall_max_concurrent = 100');
    const a = await register(c, 'a', 'alice');
    const b = await register(c, 'a', 'bob');
    b.on('incoming', (call) => call.reject());
    const codes: string[] = [];
    a.on('relayError', (e) => codes.push(e.code));
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, () => a.call(b.fingerprint).setup),
    );
    expect(results.every((r) => r.status === 'rejected')).toBe(true);
    await until(() => codes.includes('CALL_OFFER_RATE'), 'rate-limit errors');
    const text = await c.metrics('a');
    expect(metricValue(text, 'wzp_hub_rejections_total', { code: 'CALL_OFFER_RATE' })).toBe(7);
    expect(metricValue(text, 'wzp_calls_total', { outcome: 'rejected' })).toBe(3);
  }, 60_000);
});

describe('direct calls across relays', () => {
  it('finds a callee registered on another relay; media meets on the callee relay', async () => {
    const c = new Cluster({ globalRooms: [] });
    cluster = c;
    await c.add('a');
    await c.add('m');
    await c.add('b');
    // a — m — b: the offer crosses a relay that has neither party.
    c.link('a', 'm');
    c.link('m', 'b');
    await c.startAll();
    await c.linksUp();
    const aId = Identity.generate();
    const bId = Identity.generate();
    const a = await register(c, 'a', 'alice', [], aId);
    const b = await register(c, 'b', 'bob', [], bId);
    await callAcross(a, b, aId, bId, c.get('b').url);
    const textM = await c.metrics('m');
    expect(
      metricValue(textM, 'wzp_call_signals_forwarded_total', { result: 'transit' }),
    ).toBeGreaterThan(2);
  }, 60_000);

  it('a callee registered nowhere: the caller gets CALL_NOT_FOUND and a Hangup', async () => {
    const c = new Cluster({ globalRooms: [] });
    cluster = c;
    const r = await c.add('a');
    r.topToml = 'call_route_timeout_ms = 500';
    await c.add('b');
    c.link('a', 'b');
    await c.startAll();
    await c.linksUp();
    const a = await register(c, 'a', 'alice');
    const codes: string[] = [];
    a.on('relayError', (e) => codes.push(e.code));
    await expect(a.call(Identity.generate().fingerprint).setup).rejects.toMatchObject({
      reason: 'Normal',
    });
    expect(codes).toContain('CALL_NOT_FOUND');
  }, 60_000);
});

describe.skipIf(REDIS_BIN === null)('direct calls in a fleet (shared directory)', () => {
  let redis: TestRedis | null = null;
  afterEach(async () => {
    await redis?.stop();
    redis = null;
  });

  it('finds a callee through the directory on a relay with no configured link; presence goes with the hub connection', async () => {
    redis = await TestRedis.start();
    const fleetKey = randomBytes(32).toString('hex');
    const c = new Cluster({ globalRooms: [] });
    cluster = c;
    for (const name of ['a', 'b']) {
      const r = await c.add(name);
      r.extraToml = [
        `directory_url = "${redis.url}"`,
        `fleet_key = "${fleetKey}"`,
        'fleet_refresh_ms = 300',
        'fleet_ttl_ms = 1500',
        'call_route_timeout_ms = 3000',
        '',
      ].join('\n');
    }
    // No [[peers]]: the two relays know each other only from the directory.
    await c.startAll();
    const raw = new Redis(redis.url);
    try {
      const aId = Identity.generate();
      const bId = Identity.generate();
      const a = await register(c, 'a', 'alice', [], aId);
      const b = await register(c, 'b', 'bob', [], bId);
      await untilAsync(
        async () => (await raw.get(`wzp:fleet:presence:${presenceKey(bId.fingerprint)}`)) !== null,
        "bob's presence in the directory",
        10_000,
      );
      // The directory holds a hash, not the fingerprint.
      const keys = await raw.keys('wzp:fleet:presence:*');
      expect(keys.join(' ')).not.toContain(bId.fingerprint);
      // Both relays must see each other before a lookup can trust b's record.
      await untilAsync(
        async () => {
          const f = (await fleetJson(c, 'a')) as { relays: unknown[] };
          return f.relays.length === 2;
        },
        'relay a to see relay b',
        10_000,
      );
      await callAcross(a, b, aId, bId, c.get('b').url);
      const textA = await c.metrics('a');
      expect(metricValue(textA, 'wzp_call_signals_forwarded_total', { result: 'directory' })).toBe(
        1,
      );
      const fleetA = (await fleetJson(c, 'a')) as {
        stats: { callee_lookups: { found: number } };
      };
      expect(fleetA.stats.callee_lookups.found).toBe(1);
      // Bob leaves the hub: his record goes at once (not only by TTL).
      await b.close();
      await untilAsync(
        async () => (await raw.get(`wzp:fleet:presence:${presenceKey(bId.fingerprint)}`)) === null,
        "bob's presence removed",
        5000,
      );
      // A callee nobody published: refused without waiting for a route timeout.
      const t0 = Date.now();
      await expect(a.call(bId.fingerprint).setup).rejects.toMatchObject({ reason: 'Normal' });
      expect(Date.now() - t0).toBeLessThan(2500);
    } finally {
      raw.disconnect();
    }
  }, 90_000);

  it('ignores a forged presence record (not signed by the fleet key)', async () => {
    redis = await TestRedis.start();
    const c = new Cluster({ globalRooms: [] });
    cluster = c;
    const r = await c.add('a');
    r.extraToml = [
      `directory_url = "${redis.url}"`,
      `fleet_key = "${randomBytes(32).toString('hex')}"`,
      'fleet_refresh_ms = 300',
      'call_route_timeout_ms = 1000',
      '',
    ].join('\n');
    await c.startAll();
    const raw = new Redis(redis.url);
    try {
      const victim = Identity.generate();
      const user = presenceKey(victim.fingerprint);
      await raw.set(
        `wzp:fleet:presence:${user}`,
        JSON.stringify({
          v: 1,
          user,
          relay: '00112233aabbccdd',
          ts: Date.now(),
          signer: 'fleet',
          sig: '00'.repeat(64),
        }),
      );
      const a = await register(c, 'a', 'alice');
      await expect(a.call(victim.fingerprint).setup).rejects.toMatchObject({ reason: 'Normal' });
      const f = (await fleetJson(c, 'a')) as {
        stats: { callee_lookups: { missing: number }; records_rejected: { bad_signature: number } };
      };
      expect(f.stats.callee_lookups.missing).toBe(1);
      expect(f.stats.records_rejected.bad_signature).toBeGreaterThanOrEqual(1);
    } finally {
      raw.disconnect();
    }
  }, 60_000);
});

describe('wzp listen / wzp call', () => {
  it('a listener answers a caller; both stream through the call room', async () => {
    const { spawn } = await import('node:child_process');
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { BIN } = await import('./cluster.js');
    const { loadOrCreateIdentity } = await import('../src/server/identity-store.js');
    const c = await oneRelay();
    const dir = mkdtempSync(join(tmpdir(), 'wzp-call-cli-'));
    try {
      const callee = loadOrCreateIdentity(join(dir, 'bob')).identity;
      const base = c.get('a').url.replace('/v2/signal', '');
      const run = (args: string[]) => {
        const proc = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
        const lines: string[] = [];
        proc.stdout.on('data', (d: Buffer) => lines.push(...String(d).split('\n').filter(Boolean)));
        const done = new Promise<number>((r) => proc.once('exit', (code) => r(code ?? -1)));
        return { proc, lines, done };
      };
      const listener = run(['listen', base, '--identity-dir', join(dir, 'bob'), '--seconds', '30']);
      await until(
        () => listener.lines.some((l) => l.includes('"registered"')),
        'listener up',
        15_000,
      );
      const caller = run([
        'call',
        base,
        callee.fingerprint,
        '--identity-dir',
        join(dir, 'alice'),
        '--seconds',
        '2',
      ]);
      expect(await caller.done).toBe(0);
      const events = caller.lines.map((l) => JSON.parse(l) as { event: string; received?: number });
      expect(events.map((e) => e.event)).toEqual(
        expect.arrayContaining([
          'registered',
          'calling',
          'ringing',
          'answered',
          'in_call',
          'call_ended',
        ]),
      );
      expect(events.find((e) => e.event === 'call_ended')?.received).toBeGreaterThan(20);
      await until(
        () => listener.lines.some((l) => l.includes('"call_ended"')),
        'listener saw the call end',
        15_000,
      );
      listener.proc.kill('SIGINT');
      await listener.done;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
