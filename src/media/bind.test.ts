/**
 * Return-path validation of BINDs: the stateless challenge (unit), and the
 * attacks of issue 12 item 4 replayed against the engine over real UDP
 * sockets on 127.0.0.1 (a BIND carried from the victim's own socket is what
 * a spoofed source looks like to the relay; test/hostile-media.test.ts does
 * the same with a raw socket against a relay process).
 */
import { randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import {
  BIND_CHALLENGE_OFFSET,
  confirmOf,
  createHeader,
  encodeBind,
  encodeBindChallenge,
  FrameType,
  MiniCompressor,
} from '../wire/index.js';
import { BindGuard } from './bind.js';
import { MediaEngine } from './engine.js';
import { Session } from './session.js';
import { UdpEndpoint } from './udp-endpoint.js';

describe('BindGuard (stateless challenges)', () => {
  const guard = () =>
    new BindGuard({ challengeTtlMs: 5000, challengeRate: 10, unknownRate: 20, maxSources: 4 });
  const token = randomBytes(16);
  const bind = encodeBind(token);

  it('accepts its own challenge echoed from the same source only', () => {
    const g = guard();
    const ch = g.challengeFor(bind, '127.0.0.1', 4000, 1000);
    expect(ch).toHaveLength(33);
    expect(ch[0]).toBe(FrameType.BindChallenge);
    expect(ch.subarray(1, 17).equals(token)).toBe(true);
    const confirm = confirmOf(ch);
    expect(g.verify(confirm, '127.0.0.1', 4000, 1500)).toBe('ok');
    expect(g.verify(confirm, '127.0.0.1', 4001, 1500)).toBe('bad_challenge');
    expect(g.verify(confirm, '127.0.0.2', 4000, 1500)).toBe('bad_challenge');
    // Another relay (another secret) does not accept it.
    expect(guard().verify(confirm, '127.0.0.1', 4000, 1500)).toBe('bad_challenge');
  });

  it('binds the token: a challenge for one token does not confirm another', () => {
    const g = guard();
    const ch = g.challengeFor(bind, '127.0.0.1', 4000, 1000);
    const other = encodeBindChallenge(
      randomBytes(16),
      ch.subarray(BIND_CHALLENGE_OFFSET),
      FrameType.BindConfirm,
    );
    expect(g.verify(other, '127.0.0.1', 4000, 1000)).toBe('bad_challenge');
  });

  it('expires challenges after the TTL and rejects forged times', () => {
    const g = guard();
    const confirm = confirmOf(g.challengeFor(bind, '10.0.0.1', 9, 10_000));
    expect(g.verify(confirm, '10.0.0.1', 9, 14_900)).toBe('ok');
    expect(g.verify(confirm, '10.0.0.1', 9, 15_200)).toBe('expired');
    const forged = Buffer.from(confirm);
    forged.writeUInt32BE(forged.readUInt32BE(BIND_CHALLENGE_OFFSET) + 1, BIND_CHALLENGE_OFFSET);
    expect(g.verify(forged, '10.0.0.1', 9, 10_000)).toBe('bad_challenge');
    const flipped = Buffer.from(confirm);
    flipped[32] = (flipped[32] as number) ^ 1;
    expect(g.verify(flipped, '10.0.0.1', 9, 10_000)).toBe('bad_challenge');
  });

  it('limits unknown tokens per source IP, bounded in memory', () => {
    const g = guard();
    let allowed = 0;
    for (let i = 0; i < 100; i++) {
      if (g.noteUnknown('198.51.100.7', 0)) {
        allowed++;
      }
    }
    expect(allowed).toBe(40); // burst 2 × 20/s
    expect(g.blocked('198.51.100.7', 10)).toBe(true);
    expect(g.blocked('198.51.100.8', 10)).toBe(false);
    expect(g.blocked('198.51.100.7', 60)).toBe(false); // one token refilled after 50 ms
    for (let i = 0; i < 10; i++) {
      g.noteUnknown(`203.0.113.${i}`, 0);
    }
    expect(g.trackedSources).toBe(4);
  });

  it('limits challenges per owner', () => {
    const g = guard();
    const owner = {};
    let n = 0;
    for (let i = 0; i < 50; i++) {
      if (g.allowChallenge(owner, 0)) {
        n++;
      }
    }
    expect(n).toBe(20);
    expect(g.allowChallenge({}, 0)).toBe(true);
    expect(g.allowChallenge(owner, 200)).toBe(true);
  });
});

// ── the engine over UDP ───────────────────────────────────────────────────

interface Peer {
  socket: Socket;
  port: number;
  inbox: Buffer[];
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) {
    await cleanups.pop()?.();
  }
});

async function peer(address = '127.0.0.1'): Promise<Peer> {
  const socket = createSocket('udp4');
  const inbox: Buffer[] = [];
  socket.on('message', (m) => inbox.push(m));
  await new Promise<void>((r) => socket.bind(0, address, () => r()));
  cleanups.push(() => new Promise<void>((r) => socket.close(() => r())));
  return { socket, port: socket.address().port, inbox };
}

async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, 5));
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function relay(now?: () => number) {
  let engine: MediaEngine | null = null;
  const endpoint = new UdpEndpoint({
    host: '127.0.0.1',
    port: 0,
    onDatagram: (msg, rinfo) => engine?.onDatagram(msg, rinfo),
  });
  const port = await endpoint.start();
  engine = new MediaEngine({
    send: (data, p, a) => endpoint.send(data, p, a),
    trunking: { enabled: false, maxEntries: 10, mtu: 1200, flushMs: 5 },
    ...(now === undefined ? {} : { now }),
  });
  cleanups.push(async () => {
    engine?.close();
    await endpoint.close();
  });
  let nextId = 1;
  const rooms = new Map<string, { name: string; snapshot: { sink: Session }[] }>();
  const join = (roomName = 'r'): Session => {
    let room = rooms.get(roomName);
    if (room === undefined) {
      room = { name: roomName, snapshot: [] };
      rooms.set(roomName, room);
    }
    const id = nextId++;
    const s = new Session({
      id,
      tag: id,
      fingerprint: `fp${id}`,
      alias: null,
      room,
      bindToken: randomBytes(16),
      signal: { send() {}, close() {} },
      observer: { observe: () => false },
      canPublish: true,
      canSubscribe: true,
      nowMs: performance.now(),
    });
    room.snapshot = [...room.snapshot, { sink: s }];
    (engine as MediaEngine).register(s);
    return s;
  };
  return { engine: engine as MediaEngine, port, join };
}

/** The reference client's bind: BIND, confirm the challenge of our own token, BIND_ACK. */
async function bind(p: Peer, relayPort: number, s: Session): Promise<void> {
  const before = p.inbox.length;
  p.socket.send(encodeBind(s.bindToken), relayPort, '127.0.0.1');
  await until(() => p.inbox.length > before, 'BIND_CHALLENGE');
  const ch = p.inbox.pop() as Buffer;
  expect(ch[0]).toBe(FrameType.BindChallenge);
  p.socket.send(confirmOf(ch), relayPort, '127.0.0.1');
  await until(() => p.inbox.length > before, 'BIND_ACK');
  const ack = p.inbox.pop() as Buffer;
  expect(ack[0]).toBe(FrameType.BindAck);
  expect(ack.subarray(1).equals(s.bindToken)).toBe(true);
}

const mediaBytes = (inbox: Buffer[]) =>
  inbox.filter((d) => d[0] === FrameType.Trunk).reduce((n, d) => n + d.length, 0);

describe('return-path validation in the engine', () => {
  it('a BIND alone binds nothing: media flows only after BIND_CONFIRM', async () => {
    const r = await relay();
    const a = await peer();
    const b = await peer();
    const sa = r.join();
    const sb = r.join();
    await bind(b, r.port, sb);
    a.socket.send(encodeBind(sa.bindToken, 33), r.port, '127.0.0.1');
    await until(() => a.inbox.length === 1, 'challenge');
    expect(a.inbox[0]).toHaveLength(33); // never larger than the 33-byte BIND
    expect(sa.address).toBeNull();
    b.socket.send(
      new MiniCompressor().encode(audioHeader(0), Buffer.from('x')),
      r.port,
      '127.0.0.1',
    );
    await sleep(100);
    expect(mediaBytes(a.inbox)).toBe(0);
    a.socket.send(confirmOf(a.inbox[0] as Buffer), r.port, '127.0.0.1');
    await until(() => a.inbox.length === 2, 'BIND_ACK');
    expect(sa.address).toBe('127.0.0.1');
    // Idempotent: the same confirm again is acknowledged again, nothing moves.
    a.socket.send(confirmOf(a.inbox[0] as Buffer), r.port, '127.0.0.1');
    await until(() => a.inbox.length === 3, 'second BIND_ACK');
    expect(r.engine.stats.binds).toBe(2);
    expect(r.engine.stats.rebinds).toBe(0);
  });

  it('attack 4a: a BIND of the attacker token from the victim address redirects 0 bytes', async () => {
    const r = await relay();
    const attacker = await peer();
    const talker = await peer(); // in the attacker's room, sends a lot
    const victim = await peer(); // in another room
    const victimMate = await peer();
    const sAtt = r.join('x');
    const sTalk = r.join('x');
    const sVic = r.join('y');
    const sMate = r.join('y');
    await bind(attacker, r.port, sAtt);
    await bind(talker, r.port, sTalk);
    await bind(victim, r.port, sVic);
    await bind(victimMate, r.port, sMate);
    // The "spoofed" BIND: the attacker's token, from the victim's address, repeated.
    for (let i = 0; i < 5; i++) {
      victim.socket.send(encodeBind(sAtt.bindToken), r.port, '127.0.0.1');
    }
    await until(() => victim.inbox.length >= 5, 'challenges at the victim');
    const comp = new MiniCompressor();
    const mate = new MiniCompressor();
    for (let i = 0; i < 50; i++) {
      talker.socket.send(comp.encode(audioHeader(i), Buffer.alloc(100, 1)), r.port, '127.0.0.1');
      victimMate.socket.send(mate.encode(audioHeader(i), Buffer.alloc(60, 2)), r.port, '127.0.0.1');
    }
    await until(() => attacker.inbox.length >= 50, 'the attacker still gets its own room');
    await until(
      () => victim.inbox.filter((d) => d[0] === FrameType.Trunk).length >= 50,
      'the victim keeps its media',
    );
    await sleep(100);
    // Everything the victim got from the attacker's room: the 33-byte challenges, no media.
    const fromX = victim.inbox.filter(
      (d) => d[0] === FrameType.Trunk && d.readUInt16BE(3) !== sMate.tag,
    );
    expect(fromX).toHaveLength(0);
    expect(victim.inbox.filter((d) => d[0] === FrameType.BindChallenge)).toHaveLength(5);
    expect(sAtt.port).toBe(attacker.port);
    expect(sVic.port).toBe(victim.port);
    expect(r.engine.stats.bindChallenges).toBe(4 + 5);
  });

  it('attack 4b: another session cannot take a bound address without validation', async () => {
    const r = await relay();
    const victim = await peer();
    const mate = await peer();
    const attacker = await peer();
    const sVic = r.join('y');
    const sMate = r.join('y');
    const sAtt = r.join('x');
    await bind(victim, r.port, sVic);
    await bind(mate, r.port, sMate);
    await bind(attacker, r.port, sAtt);
    // The attacker got a real challenge at its own address and replays it from the victim's.
    attacker.socket.send(encodeBind(sAtt.bindToken), r.port, '127.0.0.1');
    await until(() => attacker.inbox.some((d) => d[0] === FrameType.BindChallenge), 'challenge');
    const ch = attacker.inbox.find((d) => d[0] === FrameType.BindChallenge) as Buffer;
    victim.socket.send(encodeBind(sAtt.bindToken), r.port, '127.0.0.1');
    victim.socket.send(confirmOf(ch), r.port, '127.0.0.1');
    await until(() => r.engine.stats.dropped.bind_bad_challenge === 1, 'replayed confirm refused');
    expect(r.engine.sessionAt('127.0.0.1', victim.port)).toBe(sVic);
    // The attacker leaves; the victim's media is untouched throughout.
    r.engine.unregister(sAtt);
    const comp = new MiniCompressor();
    for (let i = 0; i < 20; i++) {
      mate.socket.send(comp.encode(audioHeader(i), Buffer.from(`m${i}`)), r.port, '127.0.0.1');
    }
    await until(
      () => victim.inbox.filter((d) => d[0] === FrameType.Trunk).length === 20,
      'victim media',
    );
  });

  it('keeps the old address until a rebind validates; expired challenges move nothing', async () => {
    let clock = 1_000_000;
    const r = await relay(() => clock);
    const a1 = await peer();
    const a2 = await peer();
    const b = await peer();
    const sa = r.join();
    const sb = r.join();
    await bind(a1, r.port, sa);
    await bind(b, r.port, sb);
    a2.socket.send(encodeBind(sa.bindToken), r.port, '127.0.0.1');
    await until(() => a2.inbox.length === 1, 'challenge at the new address');
    const comp = new MiniCompressor();
    b.socket.send(comp.encode(audioHeader(0), Buffer.from('still-old')), r.port, '127.0.0.1');
    await until(() => a1.inbox.length === 1, 'old address keeps receiving');
    clock += 6000; // past the 5 s TTL
    a2.socket.send(confirmOf(a2.inbox[0] as Buffer), r.port, '127.0.0.1');
    await until(() => r.engine.stats.dropped.bind_expired === 1, 'expired confirm');
    expect(sa.port).toBe(a1.port);
    await bind(a2, r.port, sa);
    expect(sa.port).toBe(a2.port);
    expect(r.engine.stats.rebinds).toBe(1);
    b.socket.send(comp.encode(audioHeader(1), Buffer.from('new')), r.port, '127.0.0.1');
    await until(() => a2.inbox.some((d) => d[0] === FrameType.Trunk), 'media at the new address');
    expect(a1.inbox).toHaveLength(1);
  });

  it('drops short BINDs and rate-limits unknown-token BINDs per source', async () => {
    const r = await relay();
    const guesser = await peer('127.0.0.2'); // another source IP than the legitimate client
    const a = await peer();
    const sa = r.join();
    guesser.socket.send(
      Buffer.concat([Buffer.from([FrameType.Bind]), sa.bindToken]),
      r.port,
      '127.0.0.1',
    );
    for (let i = 0; i < 300; i++) {
      guesser.socket.send(encodeBind(randomBytes(16)), r.port, '127.0.0.1');
      if (i % 25 === 24) {
        await sleep(2); // stay inside the loopback receive buffer
      }
    }
    await until(() => r.engine.stats.datagramsIn >= 301, 'all guesses', 5000);
    const d = r.engine.stats.dropped;
    expect(d.bind_too_short).toBe(1);
    expect(d.bind_unknown_token + d.bind_rate_limited).toBe(300);
    expect(d.bind_rate_limited).toBeGreaterThanOrEqual(200);
    expect(guesser.inbox).toHaveLength(0);
    // A legitimate client from another source is unaffected.
    await bind(a, r.port, sa);
  });
});

function audioHeader(seq: number) {
  return createHeader({ seq, timestamp: seq * 20, fecRatio: 20 });
}
