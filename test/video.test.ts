/**
 * Audio and video together through real relays (in-process relays with
 * real UDP and WebSocket sockets, and relay processes for federation):
 * stream identity, keyframe cache, targeted PLI, simulcast, subscriptions
 * and resync.
 */
import { existsSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { type ReceivedMedia, WzpClient } from '../src/client/index.js';
import { AvSource, runSource } from '../src/client/media-source.js';
import { MediaType } from '../src/wire/index.js';
import { BIN, Cluster } from './cluster.js';
import { sleep, startRelay, type TestRelay, until } from './helpers.js';

let current: TestRelay | null = null;
let cluster: Cluster | null = null;
const extraClients: WzpClient[] = [];
afterEach(async () => {
  await Promise.all(extraClients.splice(0).map((c) => c.close(false).catch(() => {})));
  await current?.close();
  current = null;
  await cluster?.close();
  cluster = null;
});

interface Received {
  media: ReceivedMedia[];
  directives: string[];
}

function watch(client: WzpClient): Received {
  const r: Received = { media: [], directives: [] };
  client.on('media', (m) => r.media.push(m));
  client.on('qualityDirective', (d) => r.directives.push(d.reason ?? ''));
  return r;
}

function count(got: ReceivedMedia[], mediaType: number, streamId?: number): number {
  return got.filter(
    (m) =>
      m.header.mediaType === mediaType &&
      (streamId === undefined || m.header.streamId === streamId),
  ).length;
}

/** Sends audio + one video layer on stream_id 0 for `ms` from `sender`. */
async function sendAv(sender: WzpClient, ms: number): Promise<AvSource> {
  // About 100 video packets/s against 50 audio packets/s: the two seq counters drift apart.
  const source = new AvSource({
    audio: true,
    layers: [0],
    keyframeInterval: 30,
    layerSpecs: [{ streamId: 0, bitrateBps: 600_000, fps: 24 }],
  });
  const run = runSource(source, (h, p) => sender.sendMedia(h, p));
  await sleep(ms);
  run.stop();
  return source;
}

describe('stream identity: audio and video on stream_id 0', () => {
  it('delivers both, measures no loss and sends no downgrade directive (local)', async () => {
    current = await startRelay();
    const a = await current.connect('av');
    const b = await current.connect('av');
    const gotA = watch(a);
    const gotB = watch(b);
    // Longer than three 1 s loss evaluations: a false-loss bug downgrades within this time.
    const source = await sendAv(a, 4200);
    await until(
      () => count(gotB.media, MediaType.Audio) >= source.sent.audio * 0.98,
      'audio at the receiver',
    );
    await sleep(200);
    expect(count(gotB.media, MediaType.Audio)).toBeGreaterThanOrEqual(source.sent.audio * 0.98);
    expect(count(gotB.media, MediaType.Video, 0)).toBeGreaterThanOrEqual(
      (source.sent.video[0] as number) * 0.98,
    );
    expect(source.sent.audio).toBeGreaterThan(150);
    expect(source.sent.video[0]).toBeGreaterThan(60);
    expect(gotA.directives).toEqual([]);
    expect(gotB.directives).toEqual([]);
    const rooms = (await (await fetch(`${current.httpUrl}/v2/rooms`)).json()) as {
      rooms: {
        tier: string;
        participants: {
          tag: number;
          tier: string;
          streams: { media_type: string; stream_id: number; stats: { lossPct: number } }[];
        }[];
      }[];
    };
    const room = rooms.rooms[0];
    expect(room?.tier).toBe('Good');
    const pa = room?.participants.find((p) => p.tag === a.tag);
    expect(pa?.tier).toBe('Good');
    const streams = (pa?.streams ?? []).map((s) => `${s.media_type}:${s.stream_id}`).sort();
    expect(streams).toEqual(['audio:0', 'video:0']);
    for (const s of pa?.streams ?? []) {
      expect(s.stats.lossPct).toBe(0);
    }
  });

  it.skipIf(!existsSync(BIN))(
    'delivers both across a federation link, none deduplicated (relay processes)',
    async () => {
      const c = new Cluster({ globalRooms: ['g'] });
      cluster = c;
      await c.add('A');
      await c.add('B');
      c.link('A', 'B');
      await c.startAll();
      await c.linksUp();
      const a = await WzpClient.connect({ signalUrl: c.get('A').url, room: 'g' });
      const b = await WzpClient.connect({ signalUrl: c.get('B').url, room: 'g' });
      extraClients.push(a, b);
      await until(
        () => a.lastRoomUpdate?.count === 2 && b.lastRoomUpdate?.count === 2,
        'both relays see both participants',
        8000,
      );
      const gotA = watch(a);
      const gotB = watch(b);
      const source = await sendAv(a, 4200);
      await until(
        () => count(gotB.media, MediaType.Audio) >= source.sent.audio * 0.98,
        'audio across the link',
        5000,
      );
      await sleep(200);
      expect(count(gotB.media, MediaType.Video, 0)).toBeGreaterThanOrEqual(
        (source.sent.video[0] as number) * 0.98,
      );
      expect(gotA.directives).toEqual([]);
      expect(gotB.directives).toEqual([]);
      const { metricValue } = await import('./cluster.js');
      expect(metricValue(await c.metrics('B'), 'wzp_federation_packets_deduped_total')).toBe(0);
    },
  );
});
