/**
 * Media workers with real worker threads, UDP sockets and WebSockets:
 * placement of rooms on workers, isolation between them, a killed or
 * throwing worker ending only its own sessions, /metrics and /readyz while
 * a worker's loop is stuck, and counters that do not move between scrapes.
 */
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import type { WzpClient } from '../src/client/index.js';
import type { DatagramPath } from '../src/media/datagram-path.js';
import { STATS_PUBLISH_MS } from '../src/media/host.js';
import { ownedBytes, SLOT } from '../src/media/protocol.js';
import { createHeader, encodeBind } from '../src/wire/index.js';
import { metricValue } from './cluster.js';
import { collect, sleep, startRelay, type TestRelay, until } from './helpers.js';

let current: TestRelay | null = null;
afterEach(async () => {
  await current?.close();
  current = null;
});

async function relay(overrides: Parameters<typeof startRelay>[0] = {}): Promise<TestRelay> {
  current = await startRelay({ log_level: 'info', ...overrides });
  return current;
}

const audio = (seq: number) => createHeader({ seq, timestamp: seq * 20, fecRatio: 20 });

/** Like `until`, for a condition that must await. */
async function eventually(cond: () => Promise<boolean>, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    }
    await sleep(10);
  }
}

async function metrics(r: TestRelay): Promise<string> {
  return (await fetch(`${r.httpUrl}/metrics`)).text();
}

function send(c: WzpClient, label: string, n: number): void {
  for (let seq = 0; seq < n; seq++) {
    c.sendMedia(audio(seq), Buffer.from(`${label}:${seq}`));
  }
}

describe('media workers', () => {
  it('places rooms on the least-loaded worker, on its own port, and keeps rooms apart', async () => {
    const r = await relay({ media_workers: 2 });
    expect(r.relay.ports.udpPorts).toHaveLength(2);
    expect(new Set(r.relay.ports.udpPorts).size).toBe(2);
    const a1 = await r.connect('one');
    const a2 = await r.connect('one');
    const b1 = await r.connect('two');
    const b2 = await r.connect('two');
    const portA = a1.answer?.udp_port;
    const portB = b1.answer?.udp_port;
    // Sticky: both participants of a room on one worker; the second room on the other.
    expect(a2.answer?.udp_port).toBe(portA);
    expect(b2.answer?.udp_port).toBe(portB);
    expect(portA).not.toBe(portB);
    expect(r.relay.ports.udpPorts.sort()).toEqual([portA, portB].sort());
    const got = [collect(a1), collect(a2), collect(b1), collect(b2)];
    send(a1, 'a1', 10);
    send(b1, 'b1', 10);
    await until(() => got[1]?.length === 10 && got[3]?.length === 10, 'media in both rooms');
    await sleep(100);
    expect(got[1]?.map((m) => m.payload.toString().split(':')[0])).toEqual(Array(10).fill('a1'));
    expect(got[3]?.map((m) => m.payload.toString().split(':')[0])).toEqual(Array(10).fill('b1'));
    expect(got[0]).toHaveLength(0);
    expect(got[2]).toHaveLength(0);
    // A datagram of room one's session sent to room two's port is nobody's there.
    const stray = createSocket('udp4');
    await new Promise<void>((res) => stray.bind(0, '127.0.0.1', () => res()));
    stray.send(encodeBind(Buffer.from(a1.answer?.bind_token ?? [])), portB ?? 0, '127.0.0.1');
    await eventually(
      async () =>
        metricValue(await metrics(r), 'wzp_relay_datagrams_dropped_total', {
          reason: 'bind_unknown_token',
        }) === 1,
      'stray BIND counted',
    );
    await new Promise<void>((res) => stray.close(() => res()));
    const m = await metrics(r);
    expect(metricValue(m, 'wzp_media_worker_sessions', { worker: '0' })).toBe(2);
    expect(metricValue(m, 'wzp_media_worker_sessions', { worker: '1' })).toBe(2);
    expect(metricValue(m, 'wzp_relay_packets_forwarded_total')).toBe(20);
    expect(metricValue(m, 'wzp_media_worker_packets_total', { worker: '0' })).toBeGreaterThan(10);
    expect(metricValue(m, 'wzp_media_worker_packets_total', { worker: '1' })).toBeGreaterThan(10);
    const rooms = (await (await fetch(`${r.httpUrl}/v2/rooms`)).json()) as {
      rooms: { name: string; worker: number; participants: { packets_in: number }[] }[];
    };
    const byName = Object.fromEntries(rooms.rooms.map((x) => [x.name, x]));
    expect(byName.one?.worker).not.toBe(byName.two?.worker);
    expect(byName.one?.participants.map((p) => p.packets_in).sort()).toEqual([0, 10]);
    // A third room goes to the less loaded worker once room one has shrunk.
    await a2.close();
    await until(() => a1.lastRoomUpdate?.count === 1, 'room one shrank');
    const c1 = await r.connect('three');
    expect(c1.answer?.udp_port).toBe(portA);
  });

  it('a killed worker ends only its sessions, with a typed Hangup, and is replaced', async () => {
    const r = await relay({ media_workers: 2 });
    const a1 = await r.connect('doomed');
    const a2 = await r.connect('doomed');
    const b1 = await r.connect('safe');
    const b2 = await r.connect('safe');
    const doomed = r.relay.media.workerOfRoom('doomed');
    expect(doomed).toBeGreaterThanOrEqual(0);
    expect(r.relay.media.workerOfRoom('safe')).not.toBe(doomed);
    const hangups: unknown[] = [];
    const errors: string[] = [];
    for (const c of [a1, a2, b1, b2]) {
      c.on('hangup', (h) => hangups.push([c.tag, c.answer?.udp_port, h.reason]));
      c.on('relayError', (e) => errors.push(e.code));
    }
    await r.relay.media.kill(doomed);
    await until(() => hangups.length === 2, 'two hangups');
    const port = a1.answer?.udp_port;
    expect(hangups).toEqual([
      [a1.tag, port, 'Error'],
      [a2.tag, port, 'Error'],
    ]);
    expect(errors).toEqual(['MEDIA_WORKER_FAILED', 'MEDIA_WORKER_FAILED']);
    // The other room never noticed.
    const gotB2 = collect(b2);
    send(b1, 'b1', 20);
    await until(() => gotB2.length === 20, 'media in the surviving room');
    // The replacement serves new sessions.
    await until(() => r.relay.media.workers().every((w) => w.ready), 'replacement ready');
    const c1 = await r.connect('doomed');
    const c2 = await r.connect('doomed');
    const gotC2 = collect(c2);
    send(c1, 'c1', 5);
    await until(() => gotC2.length === 5, 'media through the replacement');
    expect((await fetch(`${r.httpUrl}/readyz`)).status).toBe(200);
    const m = await metrics(r);
    expect(metricValue(m, 'wzp_media_worker_restarts_total', { worker: String(doomed) })).toBe(1);
    expect(metricValue(m, 'wzp_relay_sessions_ended_total', { reason: 'error' })).toBe(2);
    expect(metricValue(m, 'wzp_relay_active_sessions')).toBe(4);
    expect(r.logs.some((l) => l.msg?.toString().startsWith('media worker failed'))).toBe(true);
  });

  it('a worker that throws is treated the same way', async () => {
    const r = await relay({ media_workers: 1 });
    const a = await r.connect('x');
    const reasons: unknown[] = [];
    a.on('hangup', (h) => reasons.push(h.reason));
    r.relay.media.inject(0, { type: 'crash', message: 'injected fault' });
    await until(() => reasons.length === 1, 'Hangup');
    expect(reasons).toEqual(['Error']);
    const failed = r.logs.find((l) => l.msg?.toString().startsWith('media worker failed'));
    expect(failed?.reason).toContain('injected fault');
    await until(() => r.relay.media.workers()[0]?.ready === true, 'replacement');
    const b = await r.connect('x');
    const c = await r.connect('x');
    const got = collect(c);
    send(b, 'b', 3);
    await until(() => got.length === 3, 'media after recovery');
  });

  it('serves /metrics while a worker is stuck; /readyz fails until it recovers', async () => {
    const r = await relay({ media_workers: 2, media_worker_stall_ms: 300 });
    const a = await r.connect('busy');
    const b = await r.connect('busy');
    const got = collect(b);
    send(a, 'a', 5);
    await until(() => got.length === 5, 'media');
    // A worker's shared counters trail its traffic by at most STATS_PUBLISH_MS:
    // let them catch up before the loop blocks, since a blocked loop publishes nothing.
    await sleep(STATS_PUBLISH_MS * 3);
    const stuck = r.relay.media.workerOfRoom('busy');
    r.relay.media.inject(stuck, { type: 'block', ms: 2500 });
    await eventually(
      async () => (await fetch(`${r.httpUrl}/readyz`)).status === 503,
      '/readyz 503',
      2000,
    );
    const t0 = performance.now();
    const m = await metrics(r);
    const scrapeMs = performance.now() - t0;
    // The stuck worker cannot answer anything, yet the scrape is served.
    expect(scrapeMs).toBeLessThan(1000);
    expect(metricValue(m, 'wzp_media_worker_stuck', { worker: String(stuck) })).toBe(1);
    expect(metricValue(m, 'wzp_relay_packets_forwarded_total')).toBe(5);
    expect(r.logs.some((l) => l.msg?.toString().startsWith('media worker stuck'))).toBe(true);
    await eventually(
      async () => (await fetch(`${r.httpUrl}/readyz`)).status === 200,
      '/readyz 200 after recovery',
      5000,
    );
    expect(r.logs.some((l) => l.msg === 'media worker recovered')).toBe(true);
    // Nothing was lost: the packets queued meanwhile are forwarded.
    send(a, 'a', 5);
    await until(() => got.length === 10, 'media after recovery');
  });

  it('reports event-loop delay with sessions (10 ms monitor) and without (heartbeat lateness)', async () => {
    const r = await relay({ media_workers: 1 });
    // Read from the shared stats directly: a value lasts one heartbeat period
    // (250 ms), which a /metrics scrape under test load can outlast.
    const delayMax = () => r.relay.media.stat(0, SLOT.loopDelayMax);
    const pollUntil = (cond: () => boolean, what: string) =>
      eventually(async () => cond(), what).catch((e: Error) => {
        throw new Error(`${e.message} (loop delay max ${delayMax()} s)`);
      });
    // No session: the 10 ms monitor is off. The worker sleeps between
    // heartbeats (4 a second), not 100 times a second for the monitor.
    const wakeUps = () => r.relay.media.stat(0, SLOT.ctxSwitchesVoluntary);
    await pollUntil(() => wakeUps() > 0, 'a first heartbeat');
    if (process.platform === 'linux') {
      const w0 = wakeUps();
      await sleep(2000);
      const idlePerSecond = (wakeUps() - w0) / 2;
      expect(idlePerSecond).toBeGreaterThan(0);
      expect(idlePerSecond).toBeLessThan(40);
    }
    // The heartbeat (250 ms) sees a block longer than its period by at least the difference.
    await pollUntil(() => delayMax() < 0.02, 'a quiet idle worker');
    r.relay.media.inject(0, { type: 'block', ms: 400 });
    await pollUntil(() => delayMax() >= 0.14, 'an idle worker blocked 400 ms');
    // With sessions the monitor runs: a block shorter than the heartbeat
    // period, which the heartbeat alone would miss most of the time, shows.
    const a = await r.connect('loop');
    const b = await r.connect('loop');
    const got = collect(b);
    send(a, 'a', 3);
    await until(() => got.length === 3, 'media');
    if (process.platform === 'linux') {
      const w0 = wakeUps();
      await sleep(1000);
      // The 10 ms monitor runs (about 100 wake-ups a second, fewer under load here).
      expect(wakeUps() - w0).toBeGreaterThan(50);
    }
    for (let i = 0; i < 3; i++) {
      await pollUntil(() => delayMax() < 0.02, 'a quiet busy worker');
      // Just after a heartbeat: Node's histogram reset also forgets its last
      // tick, so a block within one resolution (10 ms) of it goes unseen.
      await sleep(30);
      r.relay.media.inject(0, { type: 'block', ms: 80 });
      await pollUntil(() => delayMax() >= 0.06, `an 80 ms block (${i})`);
    }
    const m = await metrics(r);
    for (const stat of ['p99', 'max']) {
      expect(m).toMatch(
        new RegExp(
          `^wzp_media_worker_event_loop_delay_seconds\\{worker="0",stat="${stat}"\\} `,
          'm',
        ),
      );
    }
    if (process.platform === 'linux') {
      expect(
        metricValue(m, 'wzp_media_worker_context_switches_total', {
          worker: '0',
          kind: 'voluntary',
        }),
      ).toBeGreaterThan(0);
    }
  });

  it('bridged counters do not change between scrapes', async () => {
    const r = await relay({ media_workers: 2 });
    const a = await r.connect('count');
    const b = await r.connect('count');
    const got = collect(b);
    send(a, 'a', 7);
    await until(() => got.length === 7, 'media');
    const raw = createSocket('udp4');
    await new Promise<void>((res) => raw.bind(0, '127.0.0.1', () => res()));
    for (let i = 0; i < 10; i++) {
      raw.send(encodeBind(randomBytes(16)), r.relay.ports.udpPort, '127.0.0.1');
    }
    raw.send(Buffer.from([0xee]), r.relay.ports.udpPort, '127.0.0.1');
    a.sendDatagram(Buffer.concat([Buffer.from([0x00, 0x03]), Buffer.alloc(15)]));
    await eventually(
      async () =>
        metricValue(await metrics(r), 'wzp_relay_datagrams_dropped_total', {
          reason: 'bind_unknown_token',
        }) === 10,
      '10 unknown-token BINDs',
    );
    await sleep(100);
    await new Promise<void>((res) => raw.close(() => res()));
    // Every counter of the relay, the media workers and federation, except CPU time.
    const counters = (text: string) =>
      text
        .split('\n')
        .filter(
          (l) =>
            /^wzp_(relay|federation|media_worker)_[a-z_]+_total[{ ]/.test(l) &&
            !l.startsWith('wzp_media_worker_cpu'),
        );
    const scrapes = [await metrics(r), await metrics(r), await metrics(r)].map(counters);
    expect(scrapes[0]).toContain(
      'wzp_relay_datagrams_dropped_total{reason="bind_unknown_token"} 10',
    );
    expect(scrapes[0]).toContain(
      'wzp_relay_datagrams_dropped_total{reason="unknown_frame_type"} 1',
    );
    expect(scrapes[0]).toContain('wzp_relay_malformed_datagrams_total{code="WIRE_BAD_VERSION"} 1');
    expect(scrapes[0]).toContain('wzp_relay_binds_total{kind="bind"} 2');
    expect(scrapes[0]).toContain('wzp_relay_packets_forwarded_total 7');
    expect(scrapes[1]).toEqual(scrapes[0]);
    expect(scrapes[2]).toEqual(scrapes[0]);
  });

  it('datagrams cross threads as exact copies, in one message per worker per event-loop turn', async () => {
    // A 100-byte Buffer from Node's pool is a view into 8 KiB: cloned as is, it crosses as 8 KiB.
    const pooled = Buffer.from(Buffer.alloc(100, 7));
    expect(pooled.buffer.byteLength).toBeGreaterThan(100);
    const own = ownedBytes(pooled);
    expect(own.buffer.byteLength).toBe(100);
    expect(Buffer.from(own).equals(pooled)).toBe(true);
    const joined = ownedBytes([Buffer.from('ab'), Buffer.from('cde')]);
    expect(joined.buffer.byteLength).toBe(5);
    expect(Buffer.from(joined).toString()).toBe('abcde');

    const r = await relay({ media_workers: 1 });
    const pool = r.relay.media;
    const path: DatagramPath = {
      kind: 'websocket',
      rinfo: { address: 'ws-test-path', port: 0, family: 'IPv4', size: 0 },
      send: () => {},
      attached: () => {},
    };
    const before = pool.workers()[0]?.messages ?? 0;
    const inBefore = pool.stat(0, SLOT.datagramsIn);
    // 200 datagrams of a stream path in one turn of the main thread (an unbound path: the
    // worker drops and counts them).
    for (let i = 0; i < 200; i++) {
      pool.pathDatagram(path, Buffer.from(Buffer.alloc(60, i)));
    }
    await until(
      () => pool.stat(0, SLOT.datagramsIn) >= inBefore + 200,
      'the worker counted all 200',
    );
    const w = pool.workers()[0];
    // One batch for the 200 (a heartbeat-free direction: nothing else was posted meanwhile;
    // one more message of slack for any control command of the relay itself).
    expect((w?.messages ?? 0) - before).toBeLessThanOrEqual(2);
    expect(w?.commands ?? 0).toBeGreaterThanOrEqual(200);
    pool.pathClosed(path);
  });
});
