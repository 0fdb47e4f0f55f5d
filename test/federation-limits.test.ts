/**
 * Federation limits and link rules with in-process relays on 127.0.0.1:
 * hop limit, per-peer and per-room rates, signalling rate and bad frames
 * on a link, one link per pair, FEDERATION_NOT_CONFIGURED.
 */
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { WzpClient } from '../src/client/index.js';
import type { RelayConfigInput } from '../src/config/index.js';
import { dialHandshake, PeerDirectory } from '../src/federation/index.js';
import { decodeSignal, encodeSignal, Identity, type SignalMessage } from '../src/signal/index.js';
import { createHeader } from '../src/wire/index.js';
import { collect, sleep, startRelay, type TestRelay, until } from './helpers.js';

const relays: TestRelay[] = [];
afterEach(async () => {
  for (const r of relays.splice(0).reverse()) {
    await r.close();
  }
});

const hex = (id: Identity) => id.publicKey.toString('hex');
const fedUrl = (r: TestRelay) => r.url.replace('/v2/signal', '/v2/federation');

async function relayWith(
  identity: Identity,
  overrides: Partial<RelayConfigInput>,
): Promise<TestRelay> {
  const r = await startRelay(
    { log_level: 'warn', global_rooms: ['g'], federation_heartbeat_ms: 200, ...overrides },
    identity,
  );
  relays.push(r);
  return r;
}

async function linked(r: TestRelay, n: number): Promise<void> {
  await until(
    () => [...(r.relay.federation?.links.values() ?? [])].filter((l) => l.udpReady).length === n,
    `${n} ready links`,
    5000,
  );
}

function send(c: WzpClient, n: number, from = 1): void {
  for (let i = 0; i < n; i++) {
    c.sendMedia(
      createHeader({ seq: from + i, timestamp: (from + i) * 20, codecId: 2 }),
      Buffer.from('x'),
    );
  }
}

describe('federation limits', () => {
  it('hop limit: with max hops 1 the middle relay delivers but does not forward', async () => {
    const [ia, ib, ic] = [Identity.generate(), Identity.generate(), Identity.generate()];
    const c = await relayWith(ic, { peers: [{ label: 'B', public_key: hex(ib) }] });
    const b = await relayWith(ib, {
      peers: [
        { label: 'A', public_key: hex(ia) },
        { label: 'C', public_key: hex(ic), url: fedUrl(c) },
      ],
    });
    const a = await relayWith(ia, {
      federation_max_hops: 1,
      peers: [{ label: 'B', public_key: hex(ib), url: fedUrl(b) }],
    });
    await linked(b, 2);
    const ca = await a.connect('g');
    const cb = await b.connect('g');
    const cc = await c.connect('g');
    await until(() => [ca, cb, cc].every((x) => x.lastRoomUpdate?.count === 3), 'presence');
    const gotB = collect(cb);
    const gotC = collect(cc);
    send(ca, 10);
    await until(() => gotB.length === 10, 'B to get A');
    await sleep(200);
    expect(gotC).toHaveLength(0);
    expect(b.relay.federation?.stats.dropped.hop_limit).toBe(10);
    // C's own media still reaches A through B (C's hop limit is the default).
    const gotA = collect(ca);
    send(cc, 5);
    await until(() => gotA.length === 5, 'A to get C through B');
  });

  it('per-peer and per-room rates drop and count the excess without touching local rooms', async () => {
    const [ia, ib] = [Identity.generate(), Identity.generate()];
    const b = await relayWith(ib, {
      federation_peer_pps: 50,
      peers: [{ label: 'A', public_key: hex(ia) }],
      media_policing: 'off',
    });
    // The sender floods on purpose (to exceed the federation rates): no local media policing on A.
    const a = await relayWith(ia, {
      peers: [{ label: 'B', public_key: hex(ib), url: fedUrl(b) }],
      media_policing: 'off',
    });
    await linked(a, 1);
    const sender = await a.connect('g');
    const receiver = await b.connect('g');
    await until(() => receiver.lastRoomUpdate?.count === 2, 'presence');
    // A local room on B carries on untouched.
    const l1 = await b.connect('local');
    const l2 = await b.connect('local');
    const gotLocal = collect(l2);
    const got = collect(receiver);
    send(sender, 300);
    // Paced: with two media workers the local room's worker forwards in parallel
    // with the flood, faster than this process reads a 300-datagram burst.
    for (let k = 0; k < 300; k += 30) {
      send(l1, 30, k + 1);
      await sleep(2);
    }
    await until(() => gotLocal.length === 300, 'every local packet');
    await sleep(200);
    const stats = b.relay.federation?.stats;
    expect(got.length).toBeGreaterThan(0);
    expect(got.length).toBeLessThan(300);
    expect((stats?.rateLimitedPeer ?? 0) + got.length).toBe(300);
    const metrics = await (await fetch(`${b.httpUrl}/metrics`)).text();
    expect(metrics).toMatch(/wzp_federation_packets_rate_limited_total\{scope="peer"\} [1-9]/);
  });

  it('per-room rate', async () => {
    const [ia, ib] = [Identity.generate(), Identity.generate()];
    const b = await relayWith(ib, {
      federation_room_pps: 20,
      peers: [{ label: 'A', public_key: hex(ia) }],
    });
    const a = await relayWith(ia, { peers: [{ label: 'B', public_key: hex(ib), url: fedUrl(b) }] });
    await linked(a, 1);
    const sender = await a.connect('g');
    const receiver = await b.connect('g');
    await until(() => receiver.lastRoomUpdate?.count === 2, 'presence');
    const got = collect(receiver);
    send(sender, 100);
    await until(
      () => (b.relay.federation?.stats.rateLimitedRoom ?? 0) + got.length === 100,
      'all counted',
    );
    expect(b.relay.federation?.stats.rateLimitedRoom).toBeGreaterThan(0);
  });
});

describe('federation link rules', () => {
  it('one link per pair: a second concurrent handshake is refused, flooding and bad frames are answered', async () => {
    const fake = Identity.generate();
    const ib = Identity.generate();
    const b = await relayWith(ib, {
      federation_signal_rate_per_sec: 20,
      peers: [{ label: 'fake', public_key: hex(fake) }],
    });
    const dir = new PeerDirectory([{ label: 'B', public_key: hex(ib), url: fedUrl(b) }]);
    const peer = dir.peers[0];
    if (peer === undefined) {
      throw new Error('no peer');
    }
    const ctx = {
      identity: fake,
      label: 'fake',
      directory: dir,
      udpPort: 9,
      timeoutMs: 3000,
      maxFrameBytes: 1 << 20,
      budget: { bytesPerSec: 64 << 10, burstBytes: 2 << 20 },
    };
    const results = await Promise.allSettled([dialHandshake(peer, ctx), dialHandshake(peer, ctx)]);
    const ok = results.filter((r) => r.status === 'fulfilled');
    const refused = results.filter((r) => r.status === 'rejected');
    expect(ok.length).toBeGreaterThanOrEqual(1);
    // Either the second handshake was refused outright, or it completed and was then closed as duplicate.
    const sockets = ok.map((r) => (r as PromiseFulfilledResult<{ ws: WebSocket }>).value.ws);
    await sleep(300);
    const open = sockets.filter((ws) => ws.readyState === WebSocket.OPEN);
    expect(open).toHaveLength(1);
    if (refused.length > 0) {
      expect(((refused[0] as PromiseRejectedResult).reason as { code?: string }).code).toBe(
        'FEDERATION_DUPLICATE_LINK',
      );
    }
    expect(b.relay.federation?.links.size).toBe(1);
    const ws = open[0] as WebSocket;
    const got: SignalMessage[] = [];
    ws.on('message', (d) => got.push(decodeSignal(d as Buffer)));
    ws.send(Buffer.from([0xc1]));
    for (let i = 0; i < 200; i++) {
      ws.send(encodeSignal({ type: 'Ping', body: { timestamp_ms: i } }));
    }
    await sleep(300);
    const codes = got.flatMap((m) => (m.type === 'Error' ? [m.body.code] : []));
    expect(codes).toContain('SIGNAL_UNDECODABLE');
    expect(codes).toContain('SIGNAL_RATE_LIMITED');
    expect(got.filter((m) => m.type === 'Pong').length).toBeLessThan(200);
    expect(ws.readyState).toBe(WebSocket.OPEN);
    ws.close();
  });

  it('control frames: Error replies limited (burst 8, then 1/s, with the count), every refusal counted, over federation_signal_budget_bytes_per_sec the link is closed; before authentication the client limits apply', async () => {
    const fake = Identity.generate();
    const ib = Identity.generate();
    const budget = 256 << 10;
    const b = await relayWith(ib, {
      federation_signal_rate_per_sec: 10_000,
      federation_signal_budget_bytes_per_sec: budget,
      peers: [{ label: 'fake', public_key: hex(fake) }],
    });
    // A stranger on the federation path gets the client limits: 2000 items is too complex.
    const stranger = new WebSocket(fedUrl(b));
    await new Promise((r) => stranger.once('open', r));
    const strangerGot = new Promise<SignalMessage>((resolve) =>
      stranger.once('message', (d) => resolve(decodeSignal(d as Buffer))),
    );
    stranger.send(Buffer.concat([Buffer.from([0xdc, 0x07, 0xd0]), Buffer.alloc(2000)]));
    const refusal = await strangerGot;
    expect(refusal.type === 'Error' && refusal.body.code).toBe('SIGNAL_TOO_COMPLEX');
    await until(() => stranger.readyState === WebSocket.CLOSED, 'stranger closed', 5000);

    const dir = new PeerDirectory([{ label: 'B', public_key: hex(ib), url: fedUrl(b) }]);
    const peer = dir.peers[0];
    if (peer === undefined) {
      throw new Error('no peer');
    }
    const { ws } = await dialHandshake(peer, {
      identity: fake,
      label: 'fake',
      directory: dir,
      udpPort: 9,
      timeoutMs: 3000,
      maxFrameBytes: 1 << 20,
      budget: { bytesPerSec: 64 << 10, burstBytes: 2 << 20 },
    });
    const link = () => [...(b.relay.federation?.links.values() ?? [])][0];
    await until(() => link() !== undefined, 'link installed', 5000);
    const got: SignalMessage[] = [];
    ws.on('message', (d) => got.push(decodeSignal(d as Buffer)));
    // 2000 undecodable frames in about a second: at most the burst plus one a second answered,
    // the answers standing for all of them.
    const t0 = Date.now();
    for (let i = 0; i < 2000; i++) {
      ws.send(Buffer.from([0xc1]));
      if (i % 200 === 199) {
        await sleep(100);
      }
    }
    await until(() => (link()?.signalsRejected ?? 0) === 2000, '2000 refusals counted', 10_000);
    ws.send(Buffer.from([0xc1])); // one more, after the flood: carries the suppressed count
    await sleep(1100);
    ws.send(Buffer.from([0xc1]));
    await until(
      () => got.filter((m) => m.type === 'Error').length >= 9,
      'the burst and the count reply',
      5000,
    );
    const errors = got.flatMap((m) => (m.type === 'Error' ? [m.body] : []));
    const seconds = (Date.now() - t0) / 1000;
    expect(errors.length).toBeLessThanOrEqual(8 + Math.ceil(seconds) + 1);
    expect(errors.every((e) => e.code === 'SIGNAL_UNDECODABLE')).toBe(true);
    // Replies plus the counts they carry stand for every refusal.
    const represented = errors.reduce((n, e) => n + (e.count ?? 1), 0);
    expect(represented).toBeGreaterThanOrEqual(1990);
    expect(represented).toBeLessThanOrEqual(2002);
    expect(ws.readyState).toBe(WebSocket.OPEN);
    // Over the decode budget (burst: 2 of the largest frames, ~8.9 MB): 262 143-item frames
    // cost ~4.5 MB each; the third one closes the link with SIGNAL_OVER_BUDGET.
    const items = 262_143;
    const heavy = Buffer.concat([
      Buffer.from([0xdd, 0x00, (items >> 16) & 0xff, (items >> 8) & 0xff, items & 0xff]),
      Buffer.alloc(items),
    ]);
    const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
    for (let i = 0; i < 4 && ws.readyState === WebSocket.OPEN; i++) {
      ws.send(heavy);
    }
    await closed;
    expect(got.some((m) => m.type === 'Error' && m.body.code === 'SIGNAL_OVER_BUDGET')).toBe(true);
    await until(() => (b.relay.federation?.links.size ?? 1) === 0, 'link gone', 5000);
    const metrics = await (
      await fetch(`http://127.0.0.1:${b.relay.ports.httpPort}/metrics`)
    ).text();
    const line = metrics.split('\n').find((l) => l.includes('event="signal_rejected"'));
    expect(line).toBeDefined();
    expect(Number(line?.split(' ').pop())).toBeGreaterThanOrEqual(2003);
  });

  it('a relay without peers answers a link attempt with FEDERATION_NOT_CONFIGURED', async () => {
    const r = await startRelay({ log_level: 'warn' });
    relays.push(r);
    const ws = new WebSocket(fedUrl(r));
    const got = await new Promise<SignalMessage>((resolve, reject) => {
      ws.on('message', (d) => resolve(decodeSignal(d as Buffer)));
      ws.on('error', reject);
    });
    expect(got.type === 'Error' && got.body.code).toBe('FEDERATION_NOT_CONFIGURED');
    ws.close();
  });
});
