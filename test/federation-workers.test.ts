/**
 * Federation media inside the media workers (docs/federation.md,
 * "Federation media in the media workers"), with real relays, worker
 * threads and UDP: a federated relay with two workers keeps a local room
 * on the other worker (another udp_port) while global-room media crosses
 * the link exactly once; a crash of worker 0 (federation media) ends only
 * its sessions, and the links push their state to the replacement.
 */
import { createSocket, type Socket } from 'node:dgram';
import { existsSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import type { WzpClient } from '../src/client/index.js';
import { WzpClient as Client } from '../src/client/index.js';
import { Identity } from '../src/signal/index.js';
import { createHeader } from '../src/wire/index.js';
import { BIN, Cluster, metricValue } from './cluster.js';
import { collect, sleep, startRelay, type TestRelay, until, untilAsync } from './helpers.js';
import { exchange, type Member, roomSize } from './members.js';

let cluster: Cluster | null = null;
const relays: TestRelay[] = [];
const clients: WzpClient[] = [];
const sockets: Socket[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close(false).catch(() => {})));
  for (const s of sockets.splice(0)) {
    s.close();
  }
  await cluster?.close();
  cluster = null;
  await Promise.all(relays.splice(0).map((r) => r.close()));
});

const audio = (seq: number) => createHeader({ seq, timestamp: seq * 20, codecId: 2 });

async function member(url: string, room: string, name: string): Promise<Member> {
  const client = await Client.connect({ signalUrl: url, room, alias: name });
  clients.push(client);
  return { name, client, got: collect(client), seq: 0 };
}

describe.skipIf(!existsSync(BIN))('federation media in the media workers (relay processes)', () => {
  it('a local room goes to the other worker; global-room media crosses the link exactly once', async () => {
    const c = new Cluster({ globalRooms: ['g'], mediaWorkers: 2 });
    cluster = c;
    await c.add('A');
    await c.add('B');
    c.link('A', 'B');
    await c.startAll();
    await c.linksUp();
    const a = await member(c.get('A').url, 'g', 'a');
    const b = await member(c.get('B').url, 'g', 'b');
    const l1 = await member(c.get('A').url, 'local', 'l1');
    const l2 = await member(c.get('A').url, 'local', 'l2');
    await roomSize([a, b], 2);
    await roomSize([l1, l2], 2);
    const globalPort = a.client.answer?.udp_port;
    const localPort = l1.client.answer?.udp_port;
    // The global room is on worker 0 (the port links BIND to); the local room on the other.
    expect(l2.client.answer?.udp_port).toBe(localPort);
    expect(localPort).not.toBe(globalPort);
    const peersB = await c.peers('B');
    expect(peersB.peers[0]?.udp_ready).toBe(true);
    await Promise.all([exchange([a, b], 40), exchange([l1, l2], 40)]);
    // Nothing of the local room crossed, nothing of the global room reached it.
    expect(a.got.every((m) => m.payload.toString().startsWith('b:'))).toBe(true);
    expect(l2.got.every((m) => m.payload.toString().startsWith('l1:'))).toBe(true);
    const m = await c.metrics('A');
    expect(metricValue(m, 'wzp_media_worker_sessions', { worker: '1' })).toBe(2);
    expect(
      metricValue(m, 'wzp_federation_packets_forwarded_total', { peer: 'B', direction: 'out' }),
    ).toBe(40);
    expect(
      metricValue(m, 'wzp_federation_packets_forwarded_total', { peer: 'B', direction: 'in' }),
    ).toBe(40);
    expect(metricValue(m, 'wzp_federation_packets_deduped_total')).toBe(0);
  });
});

/** Two in-process relays with two media workers each; A dials B. Resolves once the link carries media. */
async function linkedPair(): Promise<{ ra: TestRelay; rb: TestRelay }> {
  const idA = Identity.generate();
  const idB = Identity.generate();
  const fast = {
    log_level: 'info' as const,
    global_rooms: ['g'],
    federation_heartbeat_ms: 200,
    federation_dead_ms: 3000,
    federation_backoff_initial_ms: 100,
    federation_backoff_max_ms: 1000,
  };
  // B only accepts A; A dials B.
  const rb = await startRelay(
    {
      ...fast,
      media_workers: 2,
      peers: [{ label: 'A', public_key: idA.publicKey.toString('hex') }],
    },
    idB,
  );
  relays.push(rb);
  const fedB = `ws://127.0.0.1:${rb.relay.ports.signalPort}/v2/federation`;
  const ra = await startRelay(
    {
      ...fast,
      media_workers: 2,
      peers: [{ label: 'B', url: fedB, public_key: idB.publicKey.toString('hex') }],
    },
    idA,
  );
  relays.push(ra);
  const udpReady = async (r: TestRelay): Promise<boolean> => {
    const p = (await (await fetch(`${r.httpUrl}/v2/peers`)).json()) as {
      peers: { status: string; udp_ready?: boolean }[];
    };
    return p.peers[0]?.status === 'up' && p.peers[0]?.udp_ready === true;
  };
  const linkUp = async (what: string) => {
    const end = Date.now() + 10_000;
    while (!((await udpReady(ra)) && (await udpReady(rb)))) {
      if (Date.now() > end) {
        throw new Error(`timed out waiting for ${what}`);
      }
      await sleep(50);
    }
  };
  await linkUp('the link');
  return { ra, rb };
}

describe('federation media in the media workers (in-process relays)', () => {
  it('a RoomUpdate listing a remote participant comes once worker 0 forwards to it', async () => {
    const { ra, rb } = await linkedPair();
    const a1 = await member(ra.url, 'g', 'a1');
    await roomSize([a1], 1);
    // A's worker 0 is busy when B's participant arrives: its join and the
    // room's link interest wait in the worker's queue, and so does the RoomUpdate.
    const blockMs = 800;
    const t0 = Date.now();
    ra.relay.media.inject(0, { type: 'block', ms: blockMs });
    const b1 = await member(rb.url, 'g', 'b1');
    await roomSize([a1, b1], 2);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(blockMs);
    // a1 starts sending on the RoomUpdate: b1 gets it from the first packet.
    for (let seq = 1; seq <= 20; seq++) {
      a1.client.sendMedia(audio(seq), Buffer.from(`a1:${seq}`));
    }
    await until(() => b1.got.length >= 20, `20 packets at b1 (${b1.got.length})`);
    expect(b1.got.map((g) => g.payload.toString())).toEqual(
      Array.from({ length: 20 }, (_, i) => `a1:${i + 1}`),
    );
  });

  it('a crash of worker 0 ends only its sessions; the links push their state to the replacement', async () => {
    const { ra, rb } = await linkedPair();
    const a1 = await member(ra.url, 'g', 'a1');
    const b1 = await member(rb.url, 'g', 'b1');
    const l1 = await member(ra.url, 'local', 'l1');
    const l2 = await member(ra.url, 'local', 'l2');
    expect(ra.relay.media.workerOfRoom('g')).toBe(0);
    expect(ra.relay.media.workerOfRoom('local')).toBe(1);
    await roomSize([a1, b1], 2);
    await exchange([a1, b1], 20);
    const port0 = ra.relay.media.portOf(0);

    const hangups: [string, unknown][] = [];
    const errors: string[] = [];
    for (const m of [a1, l1, l2]) {
      m.client.on('hangup', (h) => hangups.push([m.name, h.reason]));
      m.client.on('relayError', (e) => errors.push(e.code));
    }
    await ra.relay.media.kill(0);
    await until(() => hangups.length === 1, 'the Hangup of worker 0 session');
    expect(hangups).toEqual([['a1', 'Error']]);
    expect(errors).toEqual(['MEDIA_WORKER_FAILED']);
    // B sees A's participant leave; the local room on worker 1 never noticed.
    await roomSize([b1], 1);
    await exchange([l1, l2], 20);

    await until(() => ra.relay.media.workers().every((w) => w.ready), 'replacement ready', 5000);
    // The replacement took worker 0's port back: the link stays up, no reconnect.
    expect(ra.relay.media.portOf(0)).toBe(port0);
    const a2 = await member(ra.url, 'g', 'a2');
    await roomSize([a2, b1], 2);
    await exchange([a2, b1], 30);
    expect(hangups).toHaveLength(1);
    const m = await (await fetch(`${ra.httpUrl}/metrics`)).text();
    expect(metricValue(m, 'wzp_media_worker_restarts_total', { worker: '0' })).toBe(1);
    expect(metricValue(m, 'wzp_federation_link_events_total', { event: 'up' })).toBe(1);
    expect(metricValue(m, 'wzp_federation_packets_deduped_total')).toBe(0);
    // Counters continue across the replacement (20 + 30 entries each way).
    expect(
      metricValue(m, 'wzp_federation_packets_forwarded_total', { peer: 'B', direction: 'in' }),
    ).toBe(50);
    expect(
      metricValue(m, 'wzp_federation_packets_forwarded_total', { peer: 'B', direction: 'out' }),
    ).toBe(50);
  });

  it('a replacement of worker 0 that cannot take its port back closes the links; the peers learn the new port', async () => {
    const { ra, rb } = await linkedPair();
    const a1 = await member(ra.url, 'g', 'a1');
    const b1 = await member(rb.url, 'g', 'b1');
    await roomSize([a1, b1], 2);
    await exchange([a1, b1], 10);
    const port0 = ra.relay.media.portOf(0);
    await ra.relay.media.kill(0);
    // Someone else takes the port before the replacement starts (it waits 50 ms).
    const squatter = createSocket('udp4');
    sockets.push(squatter);
    await new Promise<void>((resolve, reject) => {
      squatter.once('error', reject);
      squatter.bind(port0, '127.0.0.1', () => resolve());
    });
    // While worker 0 is down, a handshake would be told the port it takes back, never 0.
    expect(ra.relay.advertisedUdpPort).toBe(port0);
    await until(() => ra.relay.media.workers().every((w) => w.ready), 'replacement ready', 8000);
    const port1 = ra.relay.media.portOf(0);
    expect(port1).not.toBe(port0);
    expect(ra.relay.advertisedUdpPort).toBe(port1);
    // The links were closed (1012) and A dialled again: B now sends to the new port.
    await untilAsync(
      async () =>
        metricValue(
          await (await fetch(`${ra.httpUrl}/metrics`)).text(),
          'wzp_federation_link_events_total',
          {
            event: 'up',
          },
        ) === 2,
      'the link up again',
      10_000,
    );
    const a2 = await member(ra.url, 'g', 'a2');
    await roomSize([a2, b1], 2);
    expect(a2.client.answer?.udp_port).toBe(port1);
    await exchange([a2, b1], 20);
  });
});
