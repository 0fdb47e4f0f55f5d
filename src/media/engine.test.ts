/**
 * The media hot path over real UDP sockets on 127.0.0.1: binding, fan-out,
 * byte-identical forwarding, late-joiner MINI expansion, drops by reason,
 * NAT rebinding, PING/PONG and trunk batching.
 */
import { randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import {
  confirmOf,
  createHeader,
  decodeCompactFrame,
  decodeTrunk,
  encodeBind,
  encodePing,
  FrameType,
  MiniCompressor,
  MiniContext,
} from '../wire/index.js';
import {
  MediaEngine,
  RESYNC_DEFAULTS,
  type ResyncOptions,
  type TrunkingOptions,
} from './engine.js';
import { Session } from './session.js';
import { UdpEndpoint } from './udp-endpoint.js';

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

async function peer(): Promise<Peer> {
  const socket = createSocket('udp4');
  const inbox: Buffer[] = [];
  socket.on('message', (m) => inbox.push(m));
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
  cleanups.push(() => new Promise<void>((r) => socket.close(() => r())));
  return { socket, port: socket.address().port, inbox };
}

async function until(cond: () => boolean, what: string, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The engine's clock: real time plus what a test skips ahead. */
const clock = {
  offset: 0,
  now(): number {
    return performance.now() + this.offset;
  },
};

async function relay(trunking: Partial<TrunkingOptions> = {}, resync: Partial<ResyncOptions> = {}) {
  let engine: MediaEngine | null = null;
  const endpoint = new UdpEndpoint({
    host: '127.0.0.1',
    port: 0,
    onDatagram: (msg, rinfo) => engine?.onDatagram(msg, rinfo),
  });
  const port = await endpoint.start();
  engine = new MediaEngine({
    send: (data, p, a) => endpoint.send(data, p, a),
    trunking: { enabled: false, maxEntries: 10, mtu: 1200, flushMs: 5, ...trunking },
    resync,
    now: () => clock.now(),
  });
  cleanups.push(async () => {
    engine?.close();
    await endpoint.close();
  });
  const room = { name: 'r', snapshot: [] as { sink: Session }[] };
  let nextId = 1;
  const join = (
    opts: { canPublish?: boolean; canSubscribe?: boolean } = {},
    where: { name: string; snapshot: { sink: Session }[] } = room,
  ): Session => {
    const id = nextId++;
    const s = new Session({
      id,
      tag: id,
      fingerprint: `fp${id}`,
      alias: null,
      room: where,
      bindToken: randomBytes(16),
      signal: { send() {}, close() {} },
      observer: { observe: () => false },
      canPublish: opts.canPublish ?? true,
      canSubscribe: opts.canSubscribe ?? true,
      nowMs: performance.now(),
    });
    where.snapshot = [...where.snapshot, { sink: s }];
    (engine as MediaEngine).register(s);
    return s;
  };
  return { engine: engine as MediaEngine, port, room, join };
}

async function bind(p: Peer, relayPort: number, s: Session): Promise<void> {
  const before = p.inbox.length;
  p.socket.send(encodeBind(s.bindToken), relayPort, '127.0.0.1');
  await until(() => p.inbox.length > before, 'BIND_CHALLENGE');
  const challenge = p.inbox.pop() as Buffer;
  expect(challenge[0]).toBe(FrameType.BindChallenge);
  expect(challenge).toHaveLength(33);
  p.socket.send(confirmOf(challenge), relayPort, '127.0.0.1');
  await until(() => p.inbox.length > before, 'BIND_ACK');
  const ack = p.inbox.pop() as Buffer;
  expect(ack[0]).toBe(FrameType.BindAck);
  expect(ack.subarray(1).equals(s.bindToken)).toBe(true);
}

function audio(seq: number) {
  return createHeader({ seq, timestamp: seq * 20, fecRatio: 20 });
}

describe('MediaEngine over UDP', () => {
  it('fans out to every other bound participant byte-identically, never echoing', async () => {
    const r = await relay();
    const peers = await Promise.all([peer(), peer(), peer()]);
    const sessions = peers.map(() => r.join());
    for (let i = 0; i < 3; i++) {
      await bind(peers[i] as Peer, r.port, sessions[i] as Session);
    }
    const comp = new MiniCompressor();
    const frames = [0, 1, 2].map((i) => comp.encode(audio(i), Buffer.from(`payload-${i}`)));
    for (const f of frames) {
      peers[0]?.socket.send(f, r.port, '127.0.0.1');
    }
    await until(
      () => (peers[1]?.inbox.length ?? 0) >= 3 && (peers[2]?.inbox.length ?? 0) >= 3,
      'fan-out',
    );
    for (const p of [peers[1], peers[2]] as Peer[]) {
      p.inbox.forEach((dgram, i) => {
        expect(dgram[0]).toBe(FrameType.Trunk);
        const entries = decodeTrunk(dgram, 1);
        expect(entries).toHaveLength(1);
        expect(entries[0]?.tag).toBe(sessions[0]?.tag);
        expect(Buffer.from(entries[0]?.data ?? []).equals(frames[i] as Buffer)).toBe(true);
      });
    }
    await new Promise((res) => setTimeout(res, 50));
    expect(peers[0]?.inbox).toHaveLength(0);
    expect(r.engine.stats.packetsForwarded).toBe(6);
  });

  it('expands MINI frames to FULL for a late joiner, then sends MINI', async () => {
    const r = await relay();
    const a = await peer();
    const b = await peer();
    const sa = r.join();
    const sb = r.join();
    await bind(a, r.port, sa);
    await bind(b, r.port, sb);
    const comp = new MiniCompressor();
    const sent: Buffer[] = [];
    for (let i = 0; i < 3; i++) {
      sent.push(comp.encode(audio(i), Buffer.from(`p${i}`)));
      a.socket.send(sent[i] as Buffer, r.port, '127.0.0.1');
    }
    await until(() => b.inbox.length >= 3, 'first frames');
    const c = await peer();
    const sc = r.join();
    await bind(c, r.port, sc);
    for (let i = 3; i < 6; i++) {
      sent.push(comp.encode(audio(i), Buffer.from(`p${i}`)));
      a.socket.send(sent[i] as Buffer, r.port, '127.0.0.1');
    }
    await until(() => c.inbox.length >= 3 && b.inbox.length >= 6, 'late joiner frames');
    const ctx = new MiniContext();
    const got = c.inbox.map((d) => decodeTrunk(d, 1)[0]?.data as Uint8Array);
    expect(got[0]?.[0]).toBe(FrameType.Full);
    expect(got[1]?.[0]).toBe(FrameType.Mini);
    got.forEach((data, i) => {
      const f = decodeCompactFrame(Buffer.from(data), ctx);
      expect(f.header.seq).toBe(3 + i);
      expect(f.header.timestamp).toBe((3 + i) * 20);
      expect(f.payload.toString()).toBe(`p${3 + i}`);
    });
    // The early receiver got every frame unchanged.
    b.inbox.forEach((d, i) => {
      expect(Buffer.from(decodeTrunk(d, 1)[0]?.data ?? []).equals(sent[i] as Buffer)).toBe(true);
    });
  });

  it('drops and counts unbound, garbage and unknown-type datagrams without disturbing others', async () => {
    const r = await relay();
    const a = await peer();
    const b = await peer();
    const stranger = await peer();
    const sa = r.join();
    const sb = r.join();
    await bind(a, r.port, sa);
    await bind(b, r.port, sb);
    const comp = new MiniCompressor();
    stranger.socket.send(comp.encode(audio(0), Buffer.from('x')), r.port, '127.0.0.1');
    a.socket.send(Buffer.from([0x00, 0x02, 0x00]), r.port, '127.0.0.1'); // truncated FULL
    a.socket.send(Buffer.from([0x7f, 1, 2, 3]), r.port, '127.0.0.1'); // unknown type
    a.socket.send(Buffer.from([0x01, 0, 0, 20, 0, 1, 9]), r.port, '127.0.0.1'); // MINI, no baseline
    a.socket.send(encodeBind(randomBytes(16)), r.port, '127.0.0.1'); // unknown token
    a.socket.send(Buffer.from([FrameType.Bind, 1, 2]), r.port, '127.0.0.1'); // short BIND
    const good = new MiniCompressor().encode(audio(7), Buffer.from('good'));
    a.socket.send(good, r.port, '127.0.0.1');
    await until(() => b.inbox.length >= 1, 'good frame');
    await until(() => r.engine.stats.datagramsIn >= 9, 'all datagrams');
    const d = r.engine.stats.dropped;
    expect(d.unbound).toBe(1);
    expect(d.malformed).toBe(1);
    expect(r.engine.stats.malformedByCode.get('WIRE_TRUNCATED')).toBe(1);
    expect(d.unknown_frame_type).toBe(1);
    expect(d.no_baseline).toBe(1);
    expect(d.bind_unknown_token).toBe(1);
    expect(d.bind_too_short).toBe(1);
    expect(d.bad_control).toBe(0);
    expect(Buffer.from(decodeTrunk(b.inbox[0] as Buffer, 1)[0]?.data ?? []).equals(good)).toBe(
      true,
    );
    expect(stranger.inbox).toHaveLength(0);
  });

  it('moves a session on a BIND from a new address (NAT rebinding) and answers PING', async () => {
    const r = await relay();
    const a1 = await peer();
    const a2 = await peer();
    const b = await peer();
    const sa = r.join();
    const sb = r.join();
    await bind(a1, r.port, sa);
    await bind(b, r.port, sb);
    await bind(a2, r.port, sa);
    expect(r.engine.stats.rebinds).toBe(1);
    const comp = new MiniCompressor();
    a1.socket.send(new MiniCompressor().encode(audio(0), Buffer.from('old')), r.port, '127.0.0.1');
    a2.socket.send(comp.encode(audio(1), Buffer.from('new')), r.port, '127.0.0.1');
    await until(() => b.inbox.length >= 1, 'media from new address');
    b.socket.send(new MiniCompressor().encode(audio(2), Buffer.from('to-a')), r.port, '127.0.0.1');
    await until(() => a2.inbox.length >= 1, 'media to new address');
    expect(a1.inbox).toHaveLength(0);
    a2.socket.send(encodePing(0x0102030405060708n), r.port, '127.0.0.1');
    await until(() => a2.inbox.length >= 2, 'PONG');
    const pong = a2.inbox[1] as Buffer;
    expect(pong[0]).toBe(FrameType.Pong);
    expect(pong.readBigUInt64BE(1)).toBe(0x0102030405060708n);
    expect(r.engine.stats.dropped.unbound).toBe(1);
  });

  it('respects publish/subscribe grants', async () => {
    const r = await relay();
    const a = await peer();
    const b = await peer();
    const c = await peer();
    const sa = r.join({ canPublish: false });
    const sb = r.join();
    const sc = r.join({ canSubscribe: false });
    await bind(a, r.port, sa);
    await bind(b, r.port, sb);
    await bind(c, r.port, sc);
    a.socket.send(new MiniCompressor().encode(audio(0), Buffer.from('a')), r.port, '127.0.0.1');
    b.socket.send(new MiniCompressor().encode(audio(0), Buffer.from('b')), r.port, '127.0.0.1');
    await until(() => a.inbox.length >= 1, 'b to a');
    await new Promise((res) => setTimeout(res, 50));
    expect(b.inbox).toHaveLength(0);
    expect(c.inbox).toHaveLength(0);
    expect(r.engine.stats.dropped.not_permitted).toBe(1);
  });

  it('batches entries per receiver with trunking: 10 entries, MTU, 5 ms deadline', async () => {
    const r = await relay({ enabled: true, maxEntries: 10, mtu: 1200, flushMs: 5 });
    const a = await peer();
    const b = await peer();
    const sa = r.join();
    const sb = r.join();
    await bind(a, r.port, sa);
    await bind(b, r.port, sb);
    const comp = new MiniCompressor();
    const sent: Buffer[] = [];
    for (let i = 0; i < 25; i++) {
      sent.push(comp.encode(audio(i), Buffer.alloc(40, i)));
      a.socket.send(sent[i] as Buffer, r.port, '127.0.0.1');
    }
    await until(
      () => b.inbox.reduce((n, d) => n + decodeTrunk(d, 1).length, 0) >= 25,
      'all entries',
    );
    const entries = b.inbox.flatMap((d) => {
      expect(d[0]).toBe(FrameType.Trunk);
      expect(d.length).toBeLessThanOrEqual(1200);
      const e = decodeTrunk(d, 1);
      expect(e.length).toBeLessThanOrEqual(10);
      return e;
    });
    // Frames 10 and 20 of the sender are anchors (resync_anchor_frames = 10): FULL.
    expectForwarded(
      entries.map((e) => Buffer.from(e.data)),
      sent,
      RESYNC_DEFAULTS.anchorFrames,
    );
    expect(b.inbox.length).toBeLessThan(25);
  });

  it('anchored FULL: every K-th frame of a sender goes FULL to every receiver, the rest unchanged', async () => {
    const r = await relay({}, { anchorFrames: 4 });
    const a = await peer();
    const b = await peer();
    const c = await peer();
    const sa = r.join();
    for (const [p, s] of [
      [a, sa],
      [b, r.join()],
      [c, r.join()],
    ] as const) {
      await bind(p, r.port, s);
    }
    const comp = new MiniCompressor();
    const sent: Buffer[] = [];
    for (let i = 0; i < 12; i++) {
      sent.push(comp.encode(audio(i), Buffer.alloc(30, i)));
      a.socket.send(sent[i] as Buffer, r.port, '127.0.0.1');
    }
    await until(() => b.inbox.length >= 12 && c.inbox.length >= 12, 'all frames');
    for (const p of [b, c]) {
      expectForwarded(
        p.inbox.map((d) => Buffer.from(decodeTrunk(d, 1)[0]?.data ?? [])),
        sent,
        4,
      );
    }
    // Frames 4, 8, 12 (one expansion each, shared by both receivers).
    expect(r.engine.stats.fullAnchor).toBe(6);
  });

  it('ResyncRequest: the sender goes FULL to that receiver only, for fullMs', async () => {
    const r = await relay({}, { anchorFrames: 0, fullMs: 1000 });
    const a = await peer();
    const b = await peer();
    const c = await peer();
    const sa = r.join();
    const sb = r.join();
    await bind(a, r.port, sa);
    await bind(b, r.port, sb);
    await bind(c, r.port, r.join());
    const comp = new MiniCompressor();
    let seq = 0;
    const sendSome = async (n: number): Promise<void> => {
      const want = b.inbox.length + n;
      for (let i = 0; i < n; i++) {
        a.socket.send(comp.encode(audio(seq), Buffer.alloc(30, seq)), r.port, '127.0.0.1');
        seq++;
      }
      await until(() => b.inbox.length >= want && c.inbox.length >= want, 'frames');
    };
    const types = (p: Peer, from: number) =>
      p.inbox.slice(from).map((d) => (decodeTrunk(d, 1)[0]?.data[0] === 0 ? 'F' : 'M'));
    await sendSome(3);
    expect(types(b, 0).join('')).toBe('FMM');
    expect(r.engine.resync(sb, 999)).toBe(false);
    expect(r.engine.resync(sb, sb.tag)).toBe(false);
    expect(r.engine.resync(sb, sa.tag)).toBe(true);
    await sendSome(4);
    expect(types(b, 3).join('')).toBe('FFFF');
    expect(types(c, 3).join('')).toBe('MMMM');
    clock.offset += 1001; // the window ends
    await sendSome(2);
    expect(types(b, 7).join('')).toBe('MM');
    expect(r.engine.stats.resyncs).toBe(1);
    expect(r.engine.stats.fullChain).toBe(1);
    expect(r.engine.stats.fullResync).toBe(3);
  });
});

describe('audio fan-out plan (cached per sender, rebuilt on change)', () => {
  /** A sends MINI audio to B and C; `frames(p)` is what peer p got, decoded in order. */
  async function call() {
    const r = await relay();
    const [a, b, c] = await Promise.all([peer(), peer(), peer()]);
    const sa = r.join();
    const sb = r.join();
    const sc = r.join();
    await bind(a, r.port, sa);
    await bind(b, r.port, sb);
    await bind(c, r.port, sc);
    const comp = new MiniCompressor();
    let seq = 0;
    /** Sends n frames from A, then waits until `to` got them all (and 30 ms more). */
    const send = async (n: number, to: Peer[]): Promise<void> => {
      const want = to.map((p) => p.inbox.length + n);
      for (let i = 0; i < n; i++) {
        a.socket.send(comp.encode(audio(seq), Buffer.from(`s${seq}`)), r.port, '127.0.0.1');
        seq++;
      }
      await until(() => to.every((p, i) => p.inbox.length >= (want[i] as number)), 'frames');
      await new Promise((res) => setTimeout(res, 30));
    };
    const got = (p: Peer): number[] => {
      const ctx = new MiniContext();
      return p.inbox.map(
        (d) => decodeCompactFrame(Buffer.from(decodeTrunk(d, 1)[0]?.data ?? []), ctx).header.seq,
      );
    };
    return { r, a, b, c, sa, sb, sc, send, got };
  }

  it('a SubscriptionUpdate mid-stream stops, then resumes, that receiver only (FULL on resume)', async () => {
    const t = await call();
    await t.send(3, [t.b, t.c]);
    t.r.engine.subscription(t.sb, { tag: t.sa.tag, audio: false });
    await t.send(3, [t.c]);
    expect(t.got(t.b)).toEqual([0, 1, 2]);
    const chainBefore = t.r.engine.stats.fullChain;
    t.r.engine.subscription(t.sb, { tag: null, audio: true }); // defaults: no effect on the override
    await t.send(1, [t.c]);
    expect(t.b.inbox).toHaveLength(3);
    t.r.engine.subscription(t.sb, { tag: t.sa.tag, audio: true });
    await t.send(2, [t.b, t.c]);
    expect(t.got(t.b)).toEqual([0, 1, 2, 7, 8]);
    expect(t.got(t.c)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    // B missed frame 6: its first frame after resuming came FULL, the next MINI.
    const last = t.b.inbox.map((d) => decodeTrunk(d, 1)[0]?.data[0]);
    expect(last.slice(3)).toEqual([FrameType.Full, FrameType.Mini]);
    expect(t.r.engine.stats.fullChain).toBe(chainBefore + 1);
  });

  it('a revoked subscribe grant takes effect at the next packet, and a restored one too', async () => {
    const t = await call();
    await t.send(2, [t.b, t.c]);
    t.sc.canSubscribe = false;
    await t.send(2, [t.b]);
    t.sc.canSubscribe = true;
    await t.send(2, [t.b, t.c]);
    expect(t.got(t.c)).toEqual([0, 1, 4, 5]);
    expect(t.got(t.b)).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('a receiver that left gets nothing and keeps no flow, before the room snapshot changes', async () => {
    const t = await call();
    await t.send(2, [t.b, t.c]);
    t.r.engine.unregister(t.sc); // still in room.snapshot: the room publishes its change later
    await t.send(2, [t.b]);
    expect(t.c.inbox).toHaveLength(2);
    expect(t.sa.av.down.has(t.sc)).toBe(false);
    expect(t.sa.av.down.has(t.sb)).toBe(true);
    t.r.room.snapshot = t.r.room.snapshot.filter((e) => e.sink !== t.sc);
    await t.send(1, [t.b]);
    expect(t.got(t.b)).toEqual([0, 1, 2, 3, 4]);
    expect(t.c.inbox).toHaveLength(2);
  });

  it('follows a receiver to its new address (NAT rebinding) mid-stream', async () => {
    const t = await call();
    await t.send(2, [t.b, t.c]);
    const b2 = await peer();
    await bind(b2, t.r.port, t.sb);
    await t.send(2, [b2, t.c]);
    expect(t.b.inbox).toHaveLength(2);
    // The same client on a new socket: its MINI chain goes on unbroken.
    expect(b2.inbox.map((x) => decodeTrunk(x, 1)[0]?.data[0])).toEqual([
      FrameType.Mini,
      FrameType.Mini,
    ]);
    expect(t.got({ ...b2, inbox: [...t.b.inbox, ...b2.inbox] })).toEqual([0, 1, 2, 3]);
    expect(t.got(t.c)).toEqual([0, 1, 2, 3]);
  });

  it('a subscription change drops the plans of its own room only', async () => {
    const r = await relay();
    const other = { name: 'r2', snapshot: [] as { sink: Session }[] };
    const [a, b, x, y] = await Promise.all([peer(), peer(), peer(), peer()]);
    const sa = r.join();
    const sb = r.join();
    const sx = r.join({}, other);
    const sy = r.join({}, other);
    await bind(a, r.port, sa);
    await bind(b, r.port, sb);
    await bind(x, r.port, sx);
    await bind(y, r.port, sy);
    const ca = new MiniCompressor();
    const cx = new MiniCompressor();
    let seq = 0;
    const both = async (): Promise<void> => {
      const want = [b.inbox.length + 1, y.inbox.length + 1];
      a.socket.send(ca.encode(audio(seq), Buffer.from('a')), r.port, '127.0.0.1');
      x.socket.send(cx.encode(audio(seq), Buffer.from('x')), r.port, '127.0.0.1');
      seq++;
      await until(() => b.inbox.length >= (want[0] as number), 'a frame at b');
      if (sy.av.rx.prefsFor(sx.tag).audio) {
        await until(() => y.inbox.length >= (want[1] as number), 'a frame at y');
      } else {
        await new Promise((res) => setTimeout(res, 30));
      }
    };
    await both();
    const planA = sa.fanout;
    const planX = sx.fanout;
    expect(planA?.receivers).toEqual([sb]);
    expect(planX?.receivers).toEqual([sy]);
    r.engine.subscription(sy, { tag: sx.tag, audio: false }); // room r2
    expect(sa.fanout).toBe(planA);
    expect(sx.fanout).toBeNull();
    await both();
    expect(sa.fanout).toBe(planA); // room r's sender kept its plan
    expect(sx.fanout?.receivers).toEqual([]);
    expect(y.inbox).toHaveLength(1);
    expect(b.inbox).toHaveLength(2);
    // Dropping a flow of a sender drops that sender's plan only.
    sa.av.forget(sb);
    expect(sa.fanout).toBeNull();
    expect(sx.fanout).not.toBeNull();
  });

  it('a joiner after the plan was built gets the next frame, FULL, then MINI', async () => {
    const t = await call();
    await t.send(2, [t.b, t.c]);
    const d = await peer();
    const sd = t.r.join();
    await bind(d, t.r.port, sd);
    await t.send(2, [t.b, t.c, d]);
    expect(t.got(d)).toEqual([2, 3]);
    expect(d.inbox.map((x) => decodeTrunk(x, 1)[0]?.data[0])).toEqual([
      FrameType.Full,
      FrameType.Mini,
    ]);
    expect(t.r.engine.stats.packetsForwarded).toBe(2 * 2 + 3 * 2);
  });
});

/**
 * `got` is what a receiver got of `sent` in order: byte-identical, except that
 * the sender's frames whose number (1-based) is a multiple of `anchor` came
 * FULL when they were MINI, with the same header and payload.
 */
function expectForwarded(got: Buffer[], sent: Buffer[], anchor: number): void {
  expect(got).toHaveLength(sent.length);
  const ctxSent = new MiniContext();
  const ctxGot = new MiniContext();
  sent.forEach((s, k) => {
    const want = decodeCompactFrame(s, ctxSent);
    const have = decodeCompactFrame(got[k] as Buffer, ctxGot);
    expect(have.header).toEqual(want.header);
    expect(Buffer.from(have.payload)).toEqual(Buffer.from(want.payload));
    if (anchor > 0 && (k + 1) % anchor === 0 && s[0] === FrameType.Mini) {
      expect(got[k]?.[0]).toBe(FrameType.Full);
    } else {
      expect(got[k]).toEqual(s);
    }
  });
}
