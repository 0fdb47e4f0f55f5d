/**
 * WebSocket media (/v2/media): the UDP binding's datagrams over a
 * WebSocket, one per binary message. Real relay, real WebSocket and UDP
 * clients in the same room.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { Identity } from '../src/signal/index.js';
import { confirmOf, createHeader, encodeBind, encodePing, FrameType } from '../src/wire/index.js';
import { collect, expandAnchors, sleep, startRelay, type TestRelay, until } from './helpers.js';

let current: TestRelay | null = null;
afterEach(async () => {
  await current?.close();
  current = null;
});

async function relay(overrides: Parameters<typeof startRelay>[0] = {}): Promise<TestRelay> {
  current = await startRelay(overrides);
  return current;
}

const audio = (seq: number) => createHeader({ seq, timestamp: seq * 20, fecRatio: 20 });

function mediaUrl(r: TestRelay): string {
  return r.url.replace('/v2/signal', '/v2/media');
}

async function rawMedia(r: TestRelay): Promise<{ ws: WebSocket; got: Buffer[] }> {
  const ws = new WebSocket(mediaUrl(r));
  const got: Buffer[] = [];
  ws.on('message', (d: Buffer) => got.push(d));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return { ws, got };
}

/** How the relay has the participant `tag` of `room` bound, from /v2/rooms. */
async function binding(
  r: TestRelay,
  room: string,
  tag: number,
): Promise<{ bound: boolean; transport: string | null }> {
  const json = (await (await fetch(`${r.httpUrl}/v2/rooms`)).json()) as {
    rooms: { name: string; participants: { tag: number; bound: boolean; transport: string }[] }[];
  };
  const p = json.rooms.find((x) => x.name === room)?.participants.find((x) => x.tag === tag);
  return { bound: p?.bound ?? false, transport: p?.transport ?? null };
}

describe('WebSocket media path', () => {
  it('a WebSocket client and a UDP client in one room exchange byte-identical frames, E2EE across both', async () => {
    const r = await relay();
    const roomKey = Buffer.alloc(32, 7);
    const ws = await r.connect('mixed', { mediaTransport: 'websocket', roomKey, alias: 'ws' });
    const udp = await r.connect('mixed', { roomKey, alias: 'udp' });
    await until(() => ws.lastRoomUpdate?.count === 2 && udp.lastRoomUpdate?.count === 2, 'both');
    expect(ws.localPort).toBe(0);
    const gotWs = collect(ws);
    const gotUdp = collect(udp);
    const sentWs: Buffer[] = [];
    const sentUdp: Buffer[] = [];
    for (let seq = 0; seq < 60; seq++) {
      sentWs.push(ws.sendMedia(audio(seq), Buffer.from(`from-ws-${seq}`)));
      sentUdp.push(udp.sendMedia(audio(seq), Buffer.from(`from-udp-${seq}`)));
      if (seq % 10 === 0) {
        await sleep(2);
      }
    }
    await until(() => gotWs.length === 60 && gotUdp.length === 60, 'all frames', 5000);
    // Byte-identical, but for the anchored FULL every 10th frame (BINDING.md §4.6).
    expect(gotUdp.map((m) => m.frame)).toEqual(expandAnchors(sentWs));
    expect(gotWs.map((m) => m.frame)).toEqual(expandAnchors(sentUdp));
    expect(gotUdp.map((m) => m.payload.toString())).toEqual(
      Array.from({ length: 60 }, (_, i) => `from-ws-${i}`),
    );
    expect(gotWs.map((m) => m.payload.toString())).toEqual(
      Array.from({ length: 60 }, (_, i) => `from-udp-${i}`),
    );
    // MINI frames travel over the WebSocket too.
    expect(gotUdp.filter((m) => m.frameType === 'mini').length).toBeGreaterThan(40);
    // PING over the WebSocket is answered with PONG.
    expect(await ws.ping()).toBeGreaterThanOrEqual(0);
    const rooms = (await (await fetch(`${r.httpUrl}/v2/rooms`)).json()) as {
      rooms: { participants: { alias: string; transport: string }[] }[];
    };
    const transports = Object.fromEntries(
      (rooms.rooms[0]?.participants ?? []).map((p) => [p.alias, p.transport]),
    );
    expect(transports).toEqual({ ws: 'websocket', udp: 'udp' });
    const m = await (await fetch(`${r.httpUrl}/metrics`)).text();
    expect(m).toContain('wzp_relay_ws_media_connections 1');
    expect(m).toMatch(/wzp_relay_ws_media_datagrams_total\{direction="in"\} (6[2-9]|[7-9]\d)/);
  });

  it('works with trunking: batches to a WebSocket receiver are one message each', async () => {
    const r = await relay({ trunking: true });
    const a = await r.connect('t', { mediaTransport: 'websocket' });
    const b = await r.connect('t', { mediaTransport: 'websocket' });
    const c = await r.connect('t');
    await until(() => a.lastRoomUpdate?.count === 3, 'three');
    const gotA = collect(a);
    for (let seq = 0; seq < 30; seq++) {
      b.sendMedia(audio(seq), Buffer.from(`b${seq}`));
      c.sendMedia(audio(seq), Buffer.from(`c${seq}`));
    }
    await until(() => gotA.length === 60, 'both senders', 5000);
    expect(gotA.filter((m) => m.senderTag === b.tag).map((m) => m.payload.toString())).toEqual(
      Array.from({ length: 30 }, (_, i) => `b${i}`),
    );
    expect(r.relay.mediaCounter('trunkEntries')).toBeGreaterThan(
      r.relay.mediaCounter('trunkFrames'),
    );
  });

  it('a BIND over the WebSocket moves a UDP session there; closing the socket unbinds it', async () => {
    const r = await relay();
    const a = await r.connect('move');
    // FULL frames only: `a` misses frames while its media is on the WebSocket.
    const b = await r.connect('move', { miniFrames: false });
    await until(() => b.lastRoomUpdate?.count === 2, 'two');
    expect(await binding(r, 'move', a.tag)).toEqual({ bound: true, transport: 'udp' });
    const { ws, got } = await rawMedia(r);
    ws.send(encodeBind(a.answer?.bind_token as Uint8Array));
    // Return-path validation (BINDING §4.5) runs on the WebSocket path too.
    await until(() => got.length === 1, 'BIND_CHALLENGE');
    expect(got[0]?.[0]).toBe(FrameType.BindChallenge);
    expect(await binding(r, 'move', a.tag)).toEqual({ bound: true, transport: 'udp' });
    ws.send(confirmOf(got[0] as Buffer));
    await until(() => got.length === 2, 'BIND_ACK');
    expect(got[1]?.[0]).toBe(FrameType.BindAck);
    expect(await binding(r, 'move', a.tag)).toEqual({ bound: true, transport: 'websocket' });
    expect(r.relay.mediaCounter('rebinds')).toBe(1);
    // Media to the session now arrives on the WebSocket, not on its old UDP socket.
    const gotA = collect(a);
    b.sendMedia(audio(1), Buffer.from('hello'));
    await until(() => got.length === 3, 'trunk on the WebSocket');
    expect(got[2]?.[0]).toBe(FrameType.Trunk);
    expect(gotA).toHaveLength(0);
    ws.close();
    const end = Date.now() + 3000;
    while ((await binding(r, 'move', a.tag)).bound && Date.now() < end) {
      await sleep(10);
    }
    expect(await binding(r, 'move', a.tag)).toEqual({ bound: false, transport: null });
    // The UDP client can bind again.
    await a.rebind();
    b.sendMedia(audio(2), Buffer.from('again'));
    await until(() => gotA.length === 1, 'media on UDP again');
  });

  it('drops above the bufferedAmount bound for a receiver that does not read; others are unaffected', async () => {
    const max = 64 << 10;
    // 1100-byte audio payloads far above the Opus24k policy: policing would drop them before
    // the path this test measures.
    const r = await relay({ ws_media_max_buffered_bytes: max, media_policing: 'off' });
    const slow = await r.connect('bp', { alias: 'slow' });
    const fast = await r.connect('bp', { alias: 'fast' });
    const sender = await r.connect('bp', { alias: 'sender' });
    await until(() => sender.lastRoomUpdate?.count === 3, 'three');
    // A raw WebSocket takes over the slow session and stops reading.
    const { ws, got } = await rawMedia(r);
    ws.send(encodeBind(slow.answer?.bind_token as Uint8Array));
    await until(() => got.length === 1, 'BIND_CHALLENGE');
    ws.send(confirmOf(got[0] as Buffer));
    await until(() => got.length === 2, 'BIND_ACK');
    ws.pause();
    const gotFast = collect(fast);
    const payload = Buffer.alloc(1100, 1);
    const path = [...r.relay.mediaPaths][0];
    let maxBuffered = 0;
    // More than the loopback TCP buffers can hold (a few MB), so the socket's own queue fills.
    const total = 8000;
    for (let seq = 0; seq < total; seq++) {
      sender.sendMedia(audio(seq), payload);
      // Paced so that the fast receiver (in this same thread as the sender) keeps up with the
      // media worker, which forwards on its own thread.
      if (seq % 20 === 19) {
        await sleep(2);
        maxBuffered = Math.max(maxBuffered, path?.bufferedAmount ?? 0);
      }
    }
    // All in one process on a loaded machine: some sender→relay UDP loss is possible, so the
    // fast receiver is compared with what the relay received.
    const received = () => r.relay.mediaCounter('mediaIn');
    await until(() => received() >= total * 0.8, 'relay received', 15_000);
    await until(() => gotFast.length >= received() * 0.98, 'fast receiver', 15_000);
    const stats = r.relay.wsMediaStats;
    expect(stats.droppedBackpressure).toBeGreaterThan(received() / 4);
    await sleep(200);
    // + BIND_CHALLENGE and BIND_ACK.
    expect(stats.datagramsOut + stats.droppedBackpressure).toBe(received() + 2);
    // Bounded: at most the bound plus one datagram (and its frame header) is queued.
    expect(maxBuffered).toBeLessThanOrEqual(max + 1200);
    expect(path?.dropped).toBe(stats.droppedBackpressure);
    const m = await (await fetch(`${r.httpUrl}/metrics`)).text();
    const scraped = Number(
      /wzp_relay_ws_media_dropped_total\{reason="backpressure"\} (\d+)/.exec(m)?.[1],
    );
    expect(scraped).toBeGreaterThan(received() / 4);
    expect(scraped).toBeLessThanOrEqual(stats.droppedBackpressure);
    ws.resume();
    ws.terminate();
  });

  it('counts bad input: text frames, unbound media, unknown tokens; closes a socket that never binds', async () => {
    const r = await relay({ handshake_timeout_ms: 400 });
    const { ws, got } = await rawMedia(r);
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    ws.send('not a datagram');
    ws.send(encodePing(1n));
    ws.send(Buffer.from([0x00, 1, 2, 3]));
    ws.send(encodeBind(Buffer.alloc(16, 3)));
    ws.send(Buffer.from([0x03, 0, 0]));
    await until(() => r.relay.mediaCounter('datagramsIn') === 4, 'four datagrams');
    expect(r.relay.wsMediaStats.droppedBadFrame).toBe(1);
    expect(r.relay.mediaDropped('unbound')).toBe(2);
    expect(r.relay.mediaDropped('bind_unknown_token')).toBe(1);
    expect(r.relay.mediaDropped('unknown_frame_type')).toBe(1);
    expect(got).toHaveLength(0);
    expect(await closed).toBe(4008);
    expect(r.relay.wsMediaStats.bindTimeouts).toBe(1);
    await until(() => r.relay.mediaPaths.size === 0, 'forgotten');
  });

  it('a rejoin with the same identity and room key uses a fresh session key (no nonce reuse)', async () => {
    const r = await relay();
    const roomKey = Buffer.alloc(32, 5);
    const identity = Identity.generate();
    const rx = await r.connect('rejoin', { roomKey });
    const got = collect(rx);
    const first = await r.connect('rejoin', { roomKey, identity });
    await until(() => rx.lastRoomUpdate?.count === 2, 'joined');
    const f1 = first.sendMedia(audio(0), Buffer.from('same words'));
    await until(() => got.length === 1, 'first');
    await first.close();
    const second = await r.connect('rejoin', { roomKey, identity, mediaTransport: 'websocket' });
    await until(() => rx.lastRoomUpdate?.count === 2 && got.length === 1, 'rejoined');
    const f2 = second.sendMedia(audio(0), Buffer.from('same words'));
    await until(() => got.length === 2, 'second');
    expect(first.keySalt.equals(second.keySalt)).toBe(false);
    // Same header (seq 0), same plaintext: the ciphertexts differ because the keys do.
    expect(f1.subarray(25).equals(f2.subarray(25))).toBe(false);
    expect(got.map((m) => m.payload.toString())).toEqual(['same words', 'same words']);
  });
});
