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
import { sleep, startRelay, type TestRelay, until, untilAsync } from './helpers.js';

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

/** The non-zero federation and drop counters of a metrics scrape, on one line. */
function fedLines(metrics: string): string {
  return metrics
    .split('\n')
    .filter(
      (l) =>
        /^wzp_(federation_packets|federation_layers|relay_datagrams_dropped)/.test(l) &&
        !/ 0$/.test(l),
    )
    .join(' | ');
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
      // The receiver first: when B learns of the sender it already has a local
      // receiver, so its first FederationLayerDemand admits video. (The other
      // order sends "no video" first, and A filters the first frames until the
      // raised demand arrives: see the layer-demand rise test below.)
      const b = await WzpClient.connect({ signalUrl: c.get('B').url, room: 'g' });
      extraClients.push(b);
      await until(() => b.lastRoomUpdate?.count === 1, 'the receiver joined at B', 8000);
      const a = await WzpClient.connect({ signalUrl: c.get('A').url, room: 'g' });
      extraClients.push(a);
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
      const videoAtB = count(gotB.media, MediaType.Video, 0);
      const wanted = (source.sent.video[0] as number) * 0.98;
      // On a miss, say where the frames went (first seq received, federation counters).
      const why =
        videoAtB >= wanted
          ? ''
          : `sent ${JSON.stringify(source.sent)}, B got audio ${count(gotB.media, MediaType.Audio)} video ${videoAtB}, first video seq ${
              gotB.media.find((m) => m.header.mediaType === MediaType.Video)?.header.seq
            }; A: ${fedLines(await c.metrics('A'))}; B: ${fedLines(await c.metrics('B'))}`;
      expect(videoAtB, why).toBeGreaterThanOrEqual(wanted);
      expect(gotA.directives).toEqual([]);
      expect(gotB.directives).toEqual([]);
      const { metricValue } = await import('./cluster.js');
      expect(metricValue(await c.metrics('B'), 'wzp_federation_packets_deduped_total')).toBe(0);
    },
    60_000,
  );
});

// ── keyframes, PLI, simulcast, subscriptions ──────────────────────────────

/** A camera: AvSource with the three simulcast layers at 1/10 of the reference rates, answering PLIs. */
function camera(
  client: WzpClient,
  options: { layers?: number[]; keyframeInterval?: number; audio?: boolean } = {},
): { source: AvSource; stop(): void; plis: { stream_id: number; tag: number | null }[] } {
  const source = new AvSource({
    audio: options.audio ?? false,
    layers: options.layers ?? [0, 1, 2],
    keyframeInterval: options.keyframeInterval ?? 1000,
    bitrateScale: 0.1,
  });
  const plis: { stream_id: number; tag: number | null }[] = [];
  client.on('signal', (m) => {
    if (m.type === 'PictureLossIndication') {
      plis.push({ stream_id: m.body.stream_id, tag: m.body.tag ?? null });
      source.requestKeyframe(m.body.stream_id);
    }
  });
  const run = runSource(source, (h, p) => client.sendMedia(h, p));
  return { source, stop: () => run.stop(), plis };
}

function videoOf(got: ReceivedMedia[], tag?: number): ReceivedMedia[] {
  return got.filter(
    (m) => m.header.mediaType === MediaType.Video && (tag === undefined || m.senderTag === tag),
  );
}

function layersOf(got: ReceivedMedia[]): number[] {
  return [...new Set(videoOf(got).map((m) => m.header.streamId))].sort();
}

interface RoomsJson {
  rooms: {
    participants: {
      tag: number;
      bytes_out: number;
      receiving: { tag: number; video_layer: number; bytes: number }[];
    }[];
  }[];
}

async function roomsJson(r: TestRelay): Promise<RoomsJson> {
  return (await (await fetch(`${r.httpUrl}/v2/rooms`)).json()) as RoomsJson;
}

describe('keyframe cache', () => {
  it('a late joiner gets the cached keyframe, as FULL frames, before any delta frame', async () => {
    current = await startRelay();
    const cam = await current.connect('kf');
    const early = await current.connect('kf');
    const gotEarly = watch(early);
    // One keyframe at the start only: a joiner can decode only thanks to the cache.
    const c = camera(cam, { layers: [0], keyframeInterval: 100_000 });
    await until(() => videoOf(gotEarly.media).length > 30, 'video at the early receiver', 8000);
    const keyPackets = videoOf(gotEarly.media).filter((m) => (m.header.flags & 0x20) !== 0);
    expect(keyPackets.length).toBeGreaterThan(0);
    const late = await current.connect('kf');
    const gotLate = watch(late);
    await until(() => videoOf(gotLate.media).length > keyPackets.length + 5, 'video at the joiner');
    c.stop();
    const v = videoOf(gotLate.media);
    const head = v.slice(0, keyPackets.length);
    expect(head.every((m) => (m.header.flags & 0x20) !== 0)).toBe(true);
    expect(head.every((m) => m.frameType === 'full')).toBe(true);
    expect(head.map((m) => m.header.seq)).toEqual(keyPackets.map((m) => m.header.seq));
    expect(v.slice(keyPackets.length).every((m) => (m.header.flags & 0x20) === 0)).toBe(true);
    expect(c.plis).toEqual([]);
    const text = await (await fetch(`${current.httpUrl}/metrics`)).text();
    expect(text).toMatch(/wzp_relay_keyframe_cache_hits_total 1\b/);
    expect(text).toMatch(/wzp_relay_keyframe_cache_bytes [1-9]/);
  });
});

describe('targeted PLI', () => {
  it('a PLI with a tag reaches that camera only; without a tag, every camera of the stream', async () => {
    current = await startRelay({ pli_suppress_ms: 200 });
    const x = await current.connect('pli2');
    const y = await current.connect('pli2');
    const viewer = await current.connect('pli2');
    const cx = camera(x, { layers: [0] });
    const cy = camera(y, { layers: [0] });
    await sleep(300);
    viewer.requestKeyframe(x.tag, 0);
    await until(() => cx.plis.length === 1, 'PLI at camera x');
    await sleep(150);
    expect(cy.plis).toEqual([]);
    expect(cx.plis[0]).toEqual({ stream_id: 0, tag: x.tag });
    await sleep(250);
    viewer.requestKeyframe(null, 0);
    await until(() => cx.plis.length === 2 && cy.plis.length === 1, 'untagged PLI at both');
    cx.stop();
    cy.stop();
  });
});

describe('simulcast and subscriptions', () => {
  it('caps at max_layer 0, gives an uncapped receiver exactly one layer, and counts the bytes saved', async () => {
    current = await startRelay();
    const cam = await current.connect('sim');
    const capped = await current.connect('sim');
    const full = await current.connect('sim');
    capped.subscribe(null, { maxLayer: 0 });
    await sleep(100);
    const gotCapped = watch(capped);
    const gotFull = watch(full);
    const c = camera(cam, { keyframeInterval: 30 });
    await sleep(3000);
    c.stop();
    await sleep(100);
    expect(layersOf(gotCapped.media)).toEqual([0]);
    // One layer at a time: the layers come in runs that only go up (the relay learns of
    // the higher layers as their first packets arrive) and settle on the highest.
    const runs: number[] = [];
    for (const m of videoOf(gotFull.media)) {
      if (runs[runs.length - 1] !== m.header.streamId) {
        runs.push(m.header.streamId);
      }
    }
    expect(runs[runs.length - 1]).toBe(2);
    expect([...runs].sort()).toEqual(runs);
    expect(new Set(runs).size).toBe(runs.length);
    const v = videoOf(gotFull.media);
    expect(v.slice(Math.floor(v.length / 10)).every((m) => m.header.streamId === 2)).toBe(true);
    const rooms = await roomsJson(current);
    const p = rooms.rooms[0]?.participants ?? [];
    const bytesCapped = p.find((x) => x.tag === capped.tag)?.bytes_out ?? 0;
    const bytesFull = p.find((x) => x.tag === full.tag)?.bytes_out ?? 0;
    expect(bytesCapped).toBeGreaterThan(0);
    expect(bytesFull).toBeGreaterThan(bytesCapped * 5);
    const recv = p.find((x) => x.tag === full.tag)?.receiving[0];
    expect(recv).toMatchObject({ tag: cam.tag, video_layer: 2 });
    console.log(
      `simulcast bytes per receiver in 3 s: capped (layer 0) ${bytesCapped}, uncapped (layer 2) ${bytesFull}`,
    );
  });

  it('raising the cap switches the layer, starting on a keyframe the relay asked for', async () => {
    current = await startRelay();
    const cam = await current.connect('up');
    const rx = await current.connect('up');
    rx.subscribe(null, { maxLayer: 0 });
    await sleep(100);
    const got = watch(rx);
    // Keyframes only at the start and on request: the switch needs the relay's PLI.
    const c = camera(cam, { keyframeInterval: 100_000 });
    await until(() => videoOf(got.media).length > 20, 'layer 0');
    expect(layersOf(got.media)).toEqual([0]);
    const before = got.media.length;
    const t0 = performance.now();
    rx.subscribe(null, { maxLayer: 2 });
    await until(
      () => got.media.slice(before).some((m) => m.header.streamId === 2),
      'layer 2 after the cap was raised',
      5000,
    );
    const switchMs = performance.now() - t0;
    await sleep(300);
    c.stop();
    const after = videoOf(got.media.slice(before));
    const firstHigh = after.findIndex((m) => m.header.streamId === 2);
    const first = after[firstHigh] as ReceivedMedia;
    expect(first.header.flags & 0x20).toBe(0x20); // a keyframe
    expect(first.frameType).toBe('full');
    // Only layer 2 afterwards: never two layers at once.
    expect(after.slice(firstHigh).every((m) => m.header.streamId === 2)).toBe(true);
    expect(c.plis.some((p) => p.stream_id === 2 && p.tag === cam.tag)).toBe(true);
    expect(switchMs).toBeLessThan(3000);
  });

  it('remb_bps below the layer rate lowers the layer; the up move waits for the hold time', async () => {
    current = await startRelay();
    const cam = await current.connect('remb');
    const rx = await current.connect('remb');
    const got = watch(rx);
    const c = camera(cam, { keyframeInterval: 15 });
    await until(() => videoOf(got.media).some((m) => m.header.streamId === 2), 'layer 2');
    await sleep(700); // layer rates measured
    // Layer 2 runs at ~250 kbit/s, layer 1 at ~60: 120 kbit/s fits layer 1 only.
    rx.sendFeedback(120_000);
    const lowAt = got.media.length;
    await until(
      () => got.media.slice(lowAt).some((m) => m.header.streamId === 1),
      'layer 1 after the low REMB',
      3000,
    );
    const lowIdx = got.media.findIndex((m, i) => i >= lowAt && m.header.streamId === 1);
    // A frame boundary: the first layer-1 packet starts its frame.
    const firstLow = got.media[lowIdx] as ReceivedMedia;
    expect(firstLow.frameType).toBe('full');
    // Plenty of room again, but only for 1.5 s: the hold (3 s) keeps layer 1.
    const highAt = got.media.length;
    for (let i = 0; i < 3; i++) {
      rx.sendFeedback(2_000_000);
      await sleep(500);
    }
    expect(got.media.slice(highAt).filter((m) => m.header.streamId === 2)).toEqual([]);
    for (let i = 0; i < 6; i++) {
      rx.sendFeedback(2_000_000);
      await sleep(500);
    }
    await until(
      () => got.media.slice(highAt).some((m) => m.header.streamId === 2),
      'layer 2 after the hold',
      3000,
    );
    c.stop();
  });

  it('video: false stops one sender\u2019s video and keeps its audio', async () => {
    current = await startRelay();
    const cam = await current.connect('mute');
    const other = await current.connect('mute');
    const rx = await current.connect('mute');
    rx.subscribe(cam.tag, { video: false });
    await sleep(100);
    const got = watch(rx);
    const c1 = camera(cam, { layers: [0], keyframeInterval: 10, audio: true });
    const c2 = camera(other, { layers: [0], keyframeInterval: 10 });
    await sleep(1500);
    c1.stop();
    c2.stop();
    await sleep(100);
    expect(videoOf(got.media, cam.tag)).toEqual([]);
    expect(got.media.filter((m) => m.senderTag === cam.tag).length).toBeGreaterThan(40);
    expect(videoOf(got.media, other.tag).length).toBeGreaterThan(10);
  });
});

/**
 * Relay processes linked in a line (`names[0]` — … — last) sharing global room
 * `g`: a camera client on the first, a viewer capped at layer 0 on the last,
 * once every relay sees both.
 */
async function cappedViewerAcross(names: string[], ms: number) {
  const c = new Cluster({ globalRooms: ['g'] });
  cluster = c;
  for (const name of names) {
    await c.add(name);
  }
  for (let i = 1; i < names.length; i++) {
    c.link(names[i - 1] as string, names[i] as string);
  }
  await c.startAll();
  await c.linksUp();
  const cam = await WzpClient.connect({ signalUrl: c.get(names[0] as string).url, room: 'g' });
  const viewer = await WzpClient.connect({
    signalUrl: c.get(names.at(-1) as string).url,
    room: 'g',
    subscription: { maxLayer: 0 },
  });
  extraClients.push(cam, viewer);
  await until(
    () => cam.lastRoomUpdate?.count === 2 && viewer.lastRoomUpdate?.count === 2,
    'every relay to see both participants',
    ms,
  );
  return { c, cam, viewer };
}

describe('federation: layers no receiver needs stay off the link', () => {
  it.skipIf(!existsSync(BIN))(
    'a viewer capped at layer 0 pulls only layer 0 across the link; raising the cap pulls layer 2 (relay processes)',
    async () => {
      const { c, cam, viewer } = await cappedViewerAcross(['A', 'B'], 8000);
      const { metricValue } = await import('./cluster.js');
      const got = watch(viewer);
      const inAtB = async () =>
        metricValue(await c.metrics('B'), 'wzp_federation_packets_forwarded_total', {
          peer: 'A',
          direction: 'in',
        });
      const before = await inAtB();
      const cm = camera(cam, { keyframeInterval: 15 });
      try {
        await sleep(2500);
        const sent = cm.source.sent.video;
        const crossed = (await inAtB()) - before;
        console.log(
          `layer demand: video sent per layer ${sent.join('/')}, entries crossed the link ${crossed}`,
        );
        // Layer 0 crosses (all of it but what is in flight); layers 1 and 2 (~80 % of the packets) do not.
        expect(crossed).toBeGreaterThanOrEqual((sent[0] as number) * 0.9);
        expect(crossed).toBeLessThan((sent[0] as number) * 1.1 + 5);
        expect(
          metricValue(await c.metrics('A'), 'wzp_federation_layers_filtered_total'),
        ).toBeGreaterThan((sent[1] as number) + (sent[2] as number) - 20);
        expect(layersOf(got.media)).toEqual([0]);
        // Raising the cap raises the demand: layer 2 crosses and reaches the viewer.
        const plisBefore = cm.plis.length;
        viewer.subscribe(null, { maxLayer: 2 });
        await until(
          () => videoOf(got.media).some((m) => m.header.streamId === 2),
          'layer 2 at the viewer after raising the cap',
          8000,
        );
        // A saw the link's demand rise from 0 to 2 and asked the camera for a
        // keyframe of each newly admitted layer: 1 as well, which no viewer
        // switched to (so no other PLI asks for it).
        await until(
          () => cm.plis.slice(plisBefore).some((p) => p.stream_id === 1),
          'a keyframe request for layer 1 after the rise',
          5000,
        );
        expect(
          metricValue(await c.metrics('A'), 'wzp_federation_layer_demand_rises_total'),
        ).toBeGreaterThanOrEqual(1);
      } finally {
        cm.stop();
      }
    },
    60_000,
  );

  it.skipIf(!existsSync(BIN))(
    'through a transit relay: A–B–C, a capped viewer on C keeps layers 1 and 2 off both links',
    async () => {
      const { c, cam, viewer } = await cappedViewerAcross(['A', 'B', 'C'], 10_000);
      const { metricValue } = await import('./cluster.js');
      await sleep(300); // C's demand reaches A through B
      const inFrom = async (at: string, peer: string) =>
        metricValue(await c.metrics(at), 'wzp_federation_packets_forwarded_total', {
          peer,
          direction: 'in',
        });
      const before = [await inFrom('B', 'A'), await inFrom('C', 'B')];
      const got = watch(viewer);
      const cm = camera(cam, { keyframeInterval: 15 });
      try {
        await sleep(2500);
        const sent = cm.source.sent.video;
        const crossedAB = (await inFrom('B', 'A')) - (before[0] as number);
        const crossedBC = (await inFrom('C', 'B')) - (before[1] as number);
        console.log(
          `transit demand: sent per layer ${sent.join('/')}, crossed A→B ${crossedAB}, B→C ${crossedBC}`,
        );
        for (const crossed of [crossedAB, crossedBC]) {
          expect(crossed).toBeGreaterThanOrEqual((sent[0] as number) * 0.9);
          expect(crossed).toBeLessThan((sent[0] as number) * 1.1 + 5);
        }
        expect(layersOf(got.media)).toEqual([0]);
      } finally {
        cm.stop();
      }
      // B keeps C's demand for the camera while it is there, and drops it when it leaves.
      const demandsAtB = async () =>
        (await c.peers('B')).peers.find((p) => p.label === 'C')?.layer_demands;
      expect(await demandsAtB()).toBe(1);
      await cam.close(true);
      await untilAsync(async () => (await demandsAtB()) === 0, "C's demand gone at B", 8000);
    },
    60_000,
  );
});
