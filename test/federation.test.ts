/**
 * Federation with real relay processes on 127.0.0.1: line, triangle and
 * full-mesh topologies, exactly-once delivery, refused keys, spoofed
 * datagrams, link death and recovery.
 */
import { createSocket } from 'node:dgram';
import { existsSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import type { ReceivedMedia } from '../src/client/index.js';
import { WzpClient } from '../src/client/index.js';
import { relayId } from '../src/federation/index.js';
import {
  createHeader,
  encodeFederationFrame,
  FrameType,
  type MediaHeader,
  roomHash,
} from '../src/wire/index.js';
import { BIN, Cluster, metricValue } from './cluster.js';
import { sleep, until } from './helpers.js';
import { exchange, type Member, roomSize } from './members.js';

let cluster: Cluster | null = null;
const clients: WzpClient[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close(false).catch(() => {})));
  await cluster?.close();
  cluster = null;
});

function header(seq: number, streamId = 0): MediaHeader {
  return createHeader({ seq, timestamp: seq * 20, streamId, codecId: 2 });
}

async function join(c: Cluster, relay: string, room = 'g'): Promise<Member> {
  const client = await WzpClient.connect({ signalUrl: c.get(relay).url, room, alias: relay });
  clients.push(client);
  const got: ReceivedMedia[] = [];
  client.on('media', (m) => got.push(m));
  return { name: relay, client, got, seq: 0 };
}

async function build(names: string[], edges: [string, string][], options = {}): Promise<Cluster> {
  const c = new Cluster(options);
  cluster = c;
  for (const n of names) {
    await c.add(n);
  }
  for (const [a, b] of edges) {
    c.link(a, b);
  }
  await c.startAll();
  await c.linksUp();
  return c;
}

describe.skipIf(!existsSync(BIN))('federation (relay processes)', () => {
  it('line A–B–C: every packet exactly once at every participant, remote ones labelled', async () => {
    const c = await build(
      ['A', 'B', 'C'],
      [
        ['A', 'B'],
        ['B', 'C'],
      ],
    );
    const members = [await join(c, 'A'), await join(c, 'B'), await join(c, 'C')];
    await roomSize(members, 3);
    const update = members[0]?.client.lastRoomUpdate ?? { participants: [] };
    const labels = Object.fromEntries(update.participants.map((p) => [p.alias, p.relay_label]));
    expect(labels).toEqual({ A: null, B: 'B', C: 'C' });
    await exchange(members, 40);
    const peersB = await c.peers('B');
    expect(peersB.peers.map((p) => p.status)).toEqual(['up', 'up']);
  });

  it('triangle: exactly once, duplicates dropped by the replay windows', async () => {
    const c = await build(
      ['A', 'B', 'C'],
      [
        ['A', 'B'],
        ['B', 'C'],
        ['C', 'A'],
      ],
    );
    const members = [await join(c, 'A'), await join(c, 'B'), await join(c, 'C')];
    await roomSize(members, 3);
    await exchange(members, 40);
    let deduped = 0;
    for (const n of ['A', 'B', 'C']) {
      deduped += metricValue(await c.metrics(n), 'wzp_federation_packets_deduped_total');
      expect(
        metricValue(await c.metrics(n), 'wzp_federation_packets_dropped_total', { reason: 'loop' }),
      ).toBeGreaterThanOrEqual(0);
    }
    expect(deduped).toBeGreaterThan(0);
  });

  it('full mesh of 4 with trunking: exactly once everywhere', async () => {
    const names = ['A', 'B', 'C', 'D'];
    const edges: [string, string][] = [];
    for (let i = 0; i < names.length; i++) {
      for (let j = i + 1; j < names.length; j++) {
        edges.push([names[i] as string, names[j] as string]);
      }
    }
    const c = await build(names, edges, { trunking: true });
    const members = await Promise.all(names.map((n) => join(c, n)));
    await roomSize(members, 4);
    await exchange(members, 30);
    for (const n of names) {
      const p = await c.peers(n);
      expect(p.peers.filter((x) => x.status === 'up')).toHaveLength(3);
    }
  });

  it('refuses an unknown key and a wrong key, with the config to add in the log', async () => {
    const c = new Cluster();
    cluster = c;
    const a = await c.add('A');
    const b = await c.add('B');
    const d = await c.add('D');
    // A dials B, but B does not list A: B refuses (unknown peer).
    a.extraToml = `\n[[peers]]\nlabel = "B"\nurl = "${b.fedUrl}"\npublic_key = "${b.identity.publicKey.toString('hex')}"\n`;
    // D dials B with a wrong key for B: B knows D and answers, D refuses B's key.
    b.extraToml = `\n[[peers]]\nlabel = "D"\npublic_key = "${d.identity.publicKey.toString('hex')}"\n`;
    d.extraToml = `\n[[peers]]\nlabel = "B"\nurl = "${b.fedUrl}"\npublic_key = "${'ab'.repeat(32)}"\n`;
    await c.startAll();
    await until(
      () => b.output.some((l) => l.includes('FEDERATION_UNKNOWN_PEER')),
      'B to refuse A',
      5000,
    );
    const refusal = b.output.find((l) => l.includes('FEDERATION_UNKNOWN_PEER')) ?? '';
    expect(refusal).toContain(a.identity.publicKey.toString('hex'));
    expect(refusal).toContain('[[peers]]');
    await until(
      () => d.output.some((l) => l.includes('FEDERATION_WRONG_KEY')),
      'D to refuse B',
      5000,
    );
    expect(
      metricValue(await c.metrics('B'), 'wzp_federation_link_events_total', {
        event: 'refused_unknown_peer',
      }),
    ).toBeGreaterThan(0);
    expect(
      metricValue(await c.metrics('D'), 'wzp_federation_link_events_total', {
        event: 'refused_wrong_key',
      }),
    ).toBeGreaterThan(0);
    expect((await c.peers('A')).peers[0]?.status).toBe('down');
    expect((await c.peers('D')).peers[0]?.status).toBe('down');
  });

  it('drops spoofed FEDERATION datagrams from an unbound address', async () => {
    const c = await build(['A', 'B'], [['A', 'B']]);
    const a = await join(c, 'A');
    const b = await join(c, 'B');
    await roomSize([a, b], 2);
    const udpPort = a.client.answer?.udp_port as number;
    const spoof = createSocket('udp4');
    await new Promise<void>((r) => spoof.bind(0, '127.0.0.1', () => r()));
    // A well-formed entry claiming to come from B's participant.
    const frame = encodeFederationFrame([
      {
        hopLimit: 4,
        roomHash: roomHash('g'),
        origin: Buffer.from(relayId(c.get('B').identity.publicKey), 'hex'),
        senderTag: b.client.tag,
        packet: { header: header(9999), payload: Buffer.from('spoof'), quality: null },
      },
    ]);
    expect(frame[0]).toBe(FrameType.Federation);
    for (let i = 0; i < 20; i++) {
      spoof.send(frame, udpPort, '127.0.0.1');
    }
    await sleep(300);
    spoof.close();
    expect(a.got).toHaveLength(0);
    expect(
      metricValue(await c.metrics('A'), 'wzp_federation_packets_dropped_total', {
        reason: 'unbound',
      }),
    ).toBe(20);
  });

  it('a frozen relay is declared dead within the deadline; a restarted one is restored', async () => {
    const c = await build(
      ['A', 'B', 'C'],
      [
        ['A', 'B'],
        ['B', 'C'],
        ['C', 'A'],
      ],
      { deadMs: 1000, heartbeatMs: 150 },
    );
    const a = await join(c, 'A');
    const b = await join(c, 'B');
    const cc = await join(c, 'C');
    await roomSize([a, b, cc], 3);
    // Freeze C: its sockets stay open, only heartbeats stop.
    const t0 = Date.now();
    await c.stop('C', 'SIGSTOP');
    await roomSize([a, b], 2, 4000);
    const took = Date.now() - t0;
    expect(took).toBeLessThan(1000 + 1500);
    await exchange([a, b], 20);
    // Kill it for good, restart it with the same identity and ports.
    c.get('C').proc?.kill('SIGKILL');
    await sleep(100);
    await c.start('C');
    await c.linksUp();
    const c2 = await join(c, 'C');
    await roomSize([a, b, c2], 3);
    await exchange([a, b, c2], 20);
  });
});
