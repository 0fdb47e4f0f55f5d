/**
 * The relay end to end: real WebSocket signalling and real UDP media on
 * 127.0.0.1, clients from src/client.
 */
import { encode } from '@msgpack/msgpack';
import { afterEach, describe, expect, it } from 'vitest';
import { mintToken } from '../src/auth/token.js';
import { WzpClient } from '../src/client/index.js';
import { isWzpError } from '../src/errors/index.js';
import { DEGRADED, GOOD, Identity, type SignalMessage, STUDIO_48K } from '../src/signal/index.js';
import { createHeader, MediaType, qualityFromPathStats } from '../src/wire/index.js';
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

async function metrics(r: TestRelay): Promise<string> {
  return (await fetch(`${r.httpUrl}/metrics`)).text();
}

function metric(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? Number.NaN : Number(line.split(' ')[1]);
}

describe('relay: join and fan-out', () => {
  it('forwards byte-identical frames to every other participant and never echoes', async () => {
    const r = await relay();
    const [a, b, c] = [
      await r.connect('room1'),
      await r.connect('room1'),
      await r.connect('room1'),
    ] as [WzpClient, WzpClient, WzpClient];
    await until(() => a.lastRoomUpdate?.count === 3, 'RoomUpdate with 3');
    expect(new Set([a.tag, b.tag, c.tag]).size).toBe(3);
    const got = [collect(a), collect(b), collect(c)];
    const sent: Buffer[][] = [[], [], []];
    const clients = [a, b, c];
    for (let seq = 0; seq < 20; seq++) {
      clients.forEach((cl, i) => {
        sent[i]?.push(cl.sendMedia(audio(seq), Buffer.from(`c${i}-p${seq}`)));
      });
      await sleep(1);
    }
    await until(() => got.every((g) => g.length >= 40), 'all frames');
    await sleep(50);
    clients.forEach((cl, i) => {
      const mine = got[i] ?? [];
      expect(mine).toHaveLength(40);
      expect(mine.some((m) => m.senderTag === cl.tag)).toBe(false);
      for (const [j, other] of clients.entries()) {
        if (j === i) {
          continue;
        }
        const fromOther = mine.filter((m) => m.senderTag === other.tag);
        // Byte-identical, except the anchored FULL of every 10th frame (BINDING.md §4.6).
        expect(fromOther.map((m) => m.frame)).toEqual(expandAnchors(sent[j] ?? [], 10));
        expect(fromOther.map((m) => m.payload.toString())).toEqual(
          Array.from({ length: 20 }, (_, s) => `c${j}-p${s}`),
        );
      }
    });
    const m = await metrics(r);
    expect(metric(m, 'wzp_relay_packets_forwarded_total')).toBe(120);
    expect(metric(m, 'wzp_relay_active_sessions')).toBe(3);
    expect(metric(m, 'wzp_relay_active_rooms')).toBe(1);
  });

  it('a late joiner decodes MINI frames from its first packet', async () => {
    const r = await relay();
    const a = await r.connect('late');
    const b = await r.connect('late');
    const gotB = collect(b);
    for (let seq = 0; seq < 10; seq++) {
      a.sendMedia(audio(seq), Buffer.from(`p${seq}`));
    }
    await until(() => gotB.length === 10, 'early receiver');
    const c = await r.connect('late');
    const gotC = collect(c);
    for (let seq = 10; seq < 20; seq++) {
      a.sendMedia(audio(seq), Buffer.from(`p${seq}`));
      await sleep(1);
    }
    await until(() => gotC.length === 10, 'late joiner frames');
    expect(gotC[0]?.frameType).toBe('full');
    // MINI from then on, but the sender's 20th frame is an anchored FULL (BINDING.md §4.6).
    expect(gotC.slice(1).map((m) => m.frameType)).toEqual([
      ...Array.from({ length: 8 }, () => 'mini'),
      'full',
    ]);
    expect(gotC.map((m) => m.header.seq)).toEqual(Array.from({ length: 10 }, (_, i) => 10 + i));
    expect(gotC.map((m) => m.header.timestamp)).toEqual(
      Array.from({ length: 10 }, (_, i) => (10 + i) * 20),
    );
    expect(gotC.map((m) => m.payload.toString())).toEqual(
      Array.from({ length: 10 }, (_, i) => `p${10 + i}`),
    );
    // The early receiver kept getting the frames unchanged (MINI), but for the anchor.
    expect(gotB.slice(10).map((m) => m.frameType)).toEqual([
      ...Array.from({ length: 9 }, () => 'mini'),
      'full',
    ]);
  });

  it('keeps rooms apart', async () => {
    const r = await relay();
    const a = await r.connect('x');
    const b = await r.connect('y');
    const gotB = collect(b);
    const c = await r.connect('x');
    const gotC = collect(c);
    a.sendMedia(audio(0), Buffer.from('to-x'));
    await until(() => gotC.length === 1, 'same room');
    await sleep(30);
    expect(gotB).toHaveLength(0);
  });
});

describe('relay: handshake rejections', () => {
  async function rejected(options: Parameters<typeof WzpClient.connect>[0]): Promise<unknown> {
    try {
      await WzpClient.connect(options);
    } catch (err) {
      return err;
    }
    throw new Error('handshake unexpectedly succeeded');
  }

  it('answers a wrong or missing protocol_version with the typed Hangup and closes', async () => {
    const r = await relay();
    const seen: SignalMessage[] = [];
    const client = new WzpClient({ signalUrl: r.url, room: 'v', protocolVersion: 1 });
    client.on('signal', (m) => seen.push(m));
    await expect(client.handshake()).rejects.toSatisfy((e) =>
      isWzpError(e, 'PROTOCOL_VERSION_MISMATCH'),
    );
    expect(seen[0]).toEqual({
      type: 'Hangup',
      body: { version: 1, reason: { ProtocolVersionMismatch: { server_supported: [2] } } },
    });
    await client.close(false);
    const missing = await rejected({ signalUrl: r.url, room: 'v', protocolVersion: null });
    expect(isWzpError(missing, 'PROTOCOL_VERSION_MISMATCH')).toBe(true);
  });

  it('refuses a bad signature with BAD_SIGNATURE', async () => {
    const r = await relay();
    const client = new WzpClient({ signalUrl: r.url, room: 'sig' });
    const errors: string[] = [];
    client.on('relayError', (e) => errors.push(e.code));
    // Sign with one identity, present another's public key.
    const liar = Identity.generate();
    (client as unknown as { identity: Identity }).identity.sign = (data: Uint8Array) =>
      liar.sign(data);
    await expect(client.handshake()).rejects.toSatisfy((e) => isWzpError(e, 'BAD_SIGNATURE'));
    expect(errors).toEqual(['BAD_SIGNATURE']);
    await client.close(false);
  });

  it('requires a valid token granting the room when auth is configured', async () => {
    const secret = 'integration-secret-0123456789';
    const r = await relay({ auth_secret: secret });
    const none = await rejected({ signalUrl: r.url, room: 'a' });
    expect(isWzpError(none, 'AUTH_FAILED')).toBe(true);
    const wrongRoom = await rejected({
      signalUrl: r.url,
      room: 'a',
      token: await mintToken({ secret, room: 'b' }),
    });
    expect(isWzpError(wrongRoom, 'AUTH_FAILED')).toBe(true);
    const bad = await rejected({ signalUrl: r.url, room: 'a', token: 'x.y.z' });
    expect(isWzpError(bad, 'AUTH_FAILED')).toBe(true);
    const ok = await r.connect('a', { token: await mintToken({ secret, room: 'a' }) });
    expect(ok.tag).toBe(1);
    const m = await metrics(r);
    expect(m).toContain('wzp_relay_auth_attempts_total{result="fail"} 3');
    expect(m).toContain('wzp_relay_auth_attempts_total{result="ok"} 1');
  });

  it('negotiates the profile from the offer and refuses joins over the room limit', async () => {
    const r = await relay({ max_participants_per_room: 2 });
    const a = await r.connect('full', { profiles: [DEGRADED, STUDIO_48K, GOOD] });
    expect(a.answer?.chosen_profile.codec).toBe('Opus48k');
    await r.connect('full');
    const third = await rejected({ signalUrl: r.url, room: 'full' });
    expect(isWzpError(third, 'ROOM_FULL')).toBe(true);
  });
});

describe('relay: bad input', () => {
  it('answers oversize, undecodable and unknown signalling with typed errors and stays up after the handshake', async () => {
    const r = await relay();
    const a = await r.connect('sig');
    const errors: string[] = [];
    a.on('relayError', (e) => errors.push(e.code));
    a.sendSignalFrame(Buffer.alloc((1 << 20) + 10, 0x90));
    a.sendSignalFrame(Buffer.from([0xc1, 0xc1]));
    a.sendSignalFrame(encode({ Teleport: { version: 1 } }));
    a.sendSignalFrame('text frame');
    a.sendSignalFrame(
      Buffer.concat([
        Buffer.from([0x81, 0xa4]),
        Buffer.from('Ping'),
        Buffer.from([0x81, 0xa9]),
        Buffer.from('__proto__'),
        Buffer.from([0x80]),
      ]),
    );
    a.sendSignal({ type: 'RoomUpdate', body: { version: 1, count: 0, participants: [] } });
    await until(() => errors.length === 6, 'six errors');
    expect(errors).toEqual([
      'SIGNAL_TOO_LARGE',
      'SIGNAL_UNDECODABLE',
      'SIGNAL_UNKNOWN_VARIANT',
      'SIGNAL_UNDECODABLE',
      'SIGNAL_FORBIDDEN_KEY',
      'SIGNAL_UNEXPECTED',
    ]);
    // Still connected: Ping gets a Pong.
    const pongs: number[] = [];
    a.on('signal', (m) => {
      if (m.type === 'Pong') {
        pongs.push(m.body.timestamp_ms);
      }
    });
    a.sendSignal({ type: 'Ping', body: { version: 1, timestamp_ms: 42 } });
    await until(() => pongs.length === 1, 'Pong');
    expect(pongs).toEqual([42]);
    const m = await metrics(r);
    expect(m).toContain('wzp_relay_signal_errors_total{code="SIGNAL_TOO_LARGE"} 1');
  });

  it('drops and counts garbage and unbound datagrams without disturbing the others', async () => {
    const r = await relay();
    const a = await r.connect('g');
    const b = await r.connect('g');
    const gotB = collect(b);
    const stranger = new WzpClient({ signalUrl: r.url, room: 'g' });
    // A socket that never bound: reuse the client's UDP plumbing via a raw send.
    const dgram = await import('node:dgram');
    const raw = dgram.createSocket('udp4');
    await new Promise<void>((res) => raw.bind(0, '127.0.0.1', () => res()));
    const port = r.relay.ports.udpPort;
    const frame = Buffer.concat([
      Buffer.from([0]),
      Buffer.from('0240000000000000000000000000000000000000', 'hex'),
    ]);
    raw.send(frame, port, '127.0.0.1');
    a.sendDatagram(Buffer.from([0x02, 0x40])); // a bare media packet is not a frame type clients send
    a.sendDatagram(Buffer.concat([Buffer.from([0x00, 0x03]), Buffer.alloc(15)])); // FULL with bad version
    a.sendDatagram(Buffer.from([0x01, 1, 0, 20, 0, 50, 1])); // MINI: truncated / no baseline
    a.sendDatagram(Buffer.from([0xee]));
    for (let seq = 0; seq < 5; seq++) {
      a.sendMedia(audio(seq), Buffer.from(`ok${seq}`));
    }
    await until(() => gotB.length === 5, 'valid media');
    await sleep(30);
    const m = await metrics(r);
    expect(m).toContain('wzp_relay_datagrams_dropped_total{reason="unbound"} 1');
    expect(m).toContain('wzp_relay_datagrams_dropped_total{reason="unknown_frame_type"} 2');
    expect(m).toContain('wzp_relay_datagrams_dropped_total{reason="malformed"} 2');
    expect(m).toContain('wzp_relay_malformed_datagrams_total{code="WIRE_BAD_VERSION"} 1');
    // Everything was sent: nothing waits in the media socket's user-space queue.
    expect(m).toContain('wzp_relay_udp_send_queue_datagrams 0');
    expect(m).toContain('wzp_relay_udp_send_queue_bytes 0');
    expect(gotB.map((x) => x.payload.toString())).toEqual(['ok0', 'ok1', 'ok2', 'ok3', 'ok4']);
    await new Promise<void>((res) => raw.close(() => res()));
    await stranger.close(false);
  });
});

describe('relay: quality', () => {
  it('broadcasts a QualityDirective after three degraded reports, and the upgrade when the weakest leaves', async () => {
    const r = await relay();
    const a = await r.connect('q');
    const b = await r.connect('q');
    const directivesA: string[] = [];
    a.on('qualityDirective', (d) => directivesA.push(`${d.recommended_profile.codec}:${d.reason}`));
    const bad = qualityFromPathStats(8, 50, 10); // 8 % loss → Degraded
    for (let seq = 0; seq < 2; seq++) {
      b.sendMedia(audio(seq), Buffer.from('x'), bad);
    }
    await sleep(50);
    expect(directivesA).toEqual([]);
    b.sendMedia(audio(2), Buffer.from('x'), bad);
    await until(() => directivesA.length === 1, 'downgrade directive');
    expect(directivesA[0]).toBe('Opus6k:weakest link: Degraded');
    await b.close();
    await until(() => directivesA.length === 2, 'upgrade directive after the weakest left');
    expect(directivesA[1]).toBe('Opus24k:weakest link: Good');
    const rooms = (await (await fetch(`${r.httpUrl}/v2/rooms`)).json()) as {
      rooms: { name: string; tier: string; participants: { tier: string; streams: unknown[] }[] }[];
    };
    expect(rooms.rooms[0]?.tier).toBe('Good');
  });

  it('degrades a sender from the loss the relay measures itself (no reports needed)', async () => {
    const r = await relay();
    const a = await r.connect('lossy');
    const b = await r.connect('lossy');
    const directives: string[] = [];
    a.on('qualityDirective', (d) => directives.push(d.reason ?? ''));
    // b sends every 5th packet only (80 % loss), spread over > 3 evaluation intervals.
    let seq = 0;
    const start = Date.now();
    while (directives.length === 0 && Date.now() - start < 6000) {
      b.sendMedia(audio(seq), Buffer.from('x'));
      seq += 5;
      await sleep(40);
    }
    expect(directives[0]).toBe('weakest link: Catastrophic');
    const rooms = (await (await fetch(`${r.httpUrl}/v2/rooms`)).json()) as {
      rooms: { participants: { tag: number; streams: { stats: { lossPct: number } }[] }[] }[];
    };
    const bStats = rooms.rooms[0]?.participants.find((p) => p.tag === b.tag)?.streams[0]?.stats;
    expect(bStats?.lossPct).toBeGreaterThan(70);
  });
});

describe('relay: session lifecycle', () => {
  it('removes a participant on WebSocket close and on silence, updating the room', async () => {
    const r = await relay({ session_timeout_ms: 400 });
    const a = await r.connect('life');
    const b = await r.connect('life');
    const c = await r.connect('life');
    const counts: number[] = [];
    a.on('roomUpdate', (u) => counts.push(u.count));
    // b closes its WebSocket without Hangup.
    await b.close(false);
    await until(() => counts.includes(2), 'update after close');
    // Keep a alive with datagrams; c stays silent and times out.
    const hangups: unknown[] = [];
    c.on('hangup', (h) => hangups.push(h.reason));
    const keepAlive = setInterval(() => void a.ping().catch(() => {}), 100);
    try {
      await until(() => counts.includes(1), 'update after silence timeout', 3000);
    } finally {
      clearInterval(keepAlive);
    }
    expect(hangups).toEqual(['Timeout']);
    const m = await metrics(r);
    expect(m).toContain('wzp_relay_sessions_ended_total{reason="ws_close"} 1');
    expect(m).toContain('wzp_relay_sessions_ended_total{reason="timeout"} 1');
  });

  it('keeps the session across NAT rebinding', async () => {
    const r = await relay();
    const a = await r.connect('nat');
    const b = await r.connect('nat');
    const gotB = collect(b);
    const gotA = collect(a);
    a.sendMedia(audio(0), Buffer.from('before'));
    await until(() => gotB.length === 1, 'before rebinding');
    const oldPort = a.localPort;
    await a.rebind();
    expect(a.localPort).not.toBe(oldPort);
    a.sendMedia(audio(1), Buffer.from('after'));
    b.sendMedia(audio(0), Buffer.from('to-a'));
    await until(() => gotB.length === 2 && gotA.length === 1, 'after rebinding');
    expect(gotB[1]?.payload.toString()).toBe('after');
    expect(gotA[0]?.payload.toString()).toBe('to-a');
    expect(await metrics(r)).toContain('wzp_relay_binds_total{kind="rebind"} 1');
  });

  it('routes PictureLossIndication to the stream owner with 200 ms suppression', async () => {
    const r = await relay();
    const sender = await r.connect('pli');
    const viewer = await r.connect('pli');
    const plis: number[] = [];
    sender.on('signal', (m) => {
      if (m.type === 'PictureLossIndication') {
        plis.push(m.body.stream_id);
      }
    });
    const video = createHeader({
      mediaType: MediaType.Video,
      codecId: 9,
      streamId: 2,
      seq: 1,
      timestamp: 33,
    });
    sender.sendMedia(video, Buffer.from('frame'));
    await until(() => r.relay.mediaCounter('mediaIn') === 1, 'video packet');
    viewer.sendSignal({ type: 'PictureLossIndication', body: { version: 1, stream_id: 2 } });
    viewer.sendSignal({ type: 'PictureLossIndication', body: { version: 1, stream_id: 2 } });
    await until(() => plis.length === 1, 'first PLI');
    await sleep(250);
    viewer.sendSignal({ type: 'PictureLossIndication', body: { version: 1, stream_id: 2 } });
    await until(() => plis.length === 2, 'PLI after the window');
    const m = await metrics(r);
    expect(m).toContain('wzp_relay_pli_total{result="suppressed"} 1');
    expect(m).toContain('wzp_relay_pli_total{result="forwarded"} 2');
  });

  it('encrypts payloads end to end: the relay forwards ciphertext, receivers decrypt', async () => {
    const r = await relay();
    const roomKey = Buffer.alloc(32, 9);
    const a = await r.connect('e2e', { roomKey });
    const b = await r.connect('e2e', { roomKey });
    await until(() => b.lastRoomUpdate?.count === 2 && a.lastRoomUpdate?.count === 2, 'both known');
    const gotB = collect(b);
    const frame = a.sendMedia(
      audio(5),
      Buffer.from('secret words'),
      qualityFromPathStats(0, 10, 1),
    );
    await until(() => gotB.length === 1, 'encrypted frame');
    expect(frame.includes(Buffer.from('secret words'))).toBe(false);
    expect(gotB[0]?.payload.toString()).toBe('secret words');
    expect(gotB[0]?.quality?.lossPct).toBe(0);
  });
});

describe('relay: operator endpoints', () => {
  it('serves /healthz, /readyz, /v2/rooms and /metrics', async () => {
    const r = await relay();
    await r.connect('ops', { alias: 'alice' });
    expect((await fetch(`${r.httpUrl}/healthz`)).status).toBe(200);
    expect((await fetch(`${r.httpUrl}/readyz`)).status).toBe(200);
    const rooms = (await (await fetch(`${r.httpUrl}/v2/rooms`)).json()) as {
      rooms: { name: string; participants: { alias: string; tag: number }[] }[];
    };
    expect(rooms.rooms[0]?.name).toBe('ops');
    expect(rooms.rooms[0]?.participants[0]).toMatchObject({ alias: 'alice', tag: 1 });
    expect((await fetch(`${r.httpUrl}/nope`)).status).toBe(404);
    const m = await metrics(r);
    expect(m).toContain('wzp_relay_handshake_duration_seconds_count 1');
    expect(m).toContain('wzp_relay_fanout_recipients_bucket');
  });

  it('shuts down gracefully: Hangup Shutdown to everyone, readiness 503 while draining', async () => {
    const r = await relay();
    const a = await r.connect('bye');
    const reasons: unknown[] = [];
    a.on('hangup', (h) => reasons.push(h.reason));
    const stopping = r.relay.stop();
    await stopping;
    await until(() => reasons.length === 1, 'Hangup');
    expect(reasons).toEqual(['Shutdown']);
  });
});
