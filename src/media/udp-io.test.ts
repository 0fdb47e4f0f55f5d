/**
 * Both I/O paths over real UDP sockets on 127.0.0.1: fan-out to N
 * receivers, prefix + buffer, destinations that fail, oversize, the EAGAIN
 * hand-over to the send queue, the batched receive (recvmmsg) against
 * dgram's, and the add-on inside worker threads. The native cases are
 * skipped (with the reason in their name) when the add-on did not build.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { readdirSync, readlinkSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createUdpIo,
  DgramUdpIo,
  loadNativeAddon,
  NATIVE_ADDON_PATH,
  type NativeAddon,
  NativeUdpIo,
  RECV_SLOTS,
  socketFd,
  type UdpDestination,
  type UdpIo,
  type UdpIoPath,
} from './udp-io.js';

const native = loadNativeAddon();
const NATIVE_SKIP = native.addon === null ? ` (skipped: add-on ${native.reason})` : '';

const sockets: Socket[] = [];
afterEach(async () => {
  await Promise.all(
    sockets.splice(0).map((s) => new Promise<void>((resolve) => s.close(() => resolve()))),
  );
});

function bound(): Promise<Socket> {
  const s = createSocket('udp4');
  sockets.push(s);
  return new Promise((resolve) => s.bind(0, '127.0.0.1', () => resolve(s)));
}

interface Receiver {
  socket: Socket;
  port: number;
  got: Buffer[];
}

async function receivers(n: number): Promise<Receiver[]> {
  const out: Receiver[] = [];
  for (let i = 0; i < n; i++) {
    const socket = await bound();
    const r: Receiver = { socket, port: socket.address().port, got: [] };
    socket.on('message', (m) => r.got.push(m));
    out.push(r);
  }
  return out;
}

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, 5));
  }
}

const settle = () => new Promise((r) => setTimeout(r, 100));

async function makeIo(path: UdpIoPath, addon?: NativeAddon): Promise<{ io: UdpIo; s: Socket }> {
  const s = await bound();
  if (path === 'dgram') {
    return { io: new DgramUdpIo(s, 'udp4'), s };
  }
  return { io: new NativeUdpIo(addon ?? (native.addon as NativeAddon), s, 'udp4', socketFd(s)), s };
}

const dests = (rs: Receiver[]): UdpDestination[] =>
  rs.map((r) => ({ port: r.port, address: '127.0.0.1' }));

const PATHS: { path: UdpIoPath; skip: boolean; label: string }[] = [
  { path: 'dgram', skip: false, label: 'dgram' },
  { path: 'native', skip: native.addon === null, label: `native${NATIVE_SKIP}` },
];

describe.each(PATHS)('udp io: $label', ({ path, skip }) => {
  it.skipIf(skip)('fans one buffer out to 40 receivers, each gets it once', async () => {
    const rs = await receivers(40);
    const { io } = await makeIo(path);
    const body = Buffer.from('fan-out body');
    io.sendMany(null, body, dests(rs), rs.length);
    await until(() => rs.every((r) => r.got.length === 1), 'every receiver');
    await settle();
    for (const r of rs) {
      expect(r.got).toEqual([body]);
    }
    expect(io.stats.sent).toBe(40);
    expect(io.stats.errors.size).toBe(0);
    if (path === 'native') {
      // One sendmmsg for the whole fan-out.
      expect(io.stats.syscalls).toBe(1);
    }
  });

  it.skipIf(skip)('sends prefix ‖ buffer, honours count, skips unbound destinations', async () => {
    const rs = await receivers(4);
    const { io } = await makeIo(path);
    const list: UdpDestination[] = [
      ...dests(rs.slice(0, 2)),
      { port: 9, address: null },
      ...dests(rs.slice(2)),
    ];
    // count = 4: the last receiver is beyond it and gets nothing.
    io.sendMany(Buffer.from([0x02, 0, 1]), Buffer.from('abc'), list, 4);
    io.send([Buffer.from('x'), Buffer.from('yz')], rs[3]?.port as number, '127.0.0.1');
    await until(
      () => rs.slice(0, 3).every((r) => r.got.length === 1) && rs[3]?.got.length === 1,
      'receivers',
    );
    await settle();
    for (const r of rs.slice(0, 3)) {
      expect(r.got).toEqual([Buffer.from([0x02, 0, 1, 0x61, 0x62, 0x63])]);
    }
    expect(rs[3]?.got).toEqual([Buffer.from('xyz')]);
    expect(io.stats.sent).toBe(4);
  });

  it.skipIf(skip)(
    'counts a refused destination by errno and still delivers to the others',
    async () => {
      const rs = await receivers(3);
      const { io } = await makeIo(path);
      const list: UdpDestination[] = [
        ...dests(rs.slice(0, 1)),
        // Broadcast without SO_BROADCAST: the kernel says EACCES.
        { port: rs[0]?.port as number, address: '255.255.255.255' },
        // Port 0: EINVAL.
        { port: 0, address: '127.0.0.1' },
        ...dests(rs.slice(1)),
      ];
      io.sendMany(null, Buffer.from('m'), list, list.length);
      await until(() => rs.every((r) => r.got.length === 1), 'the good receivers');
      await until(() => io.stats.errors.get('EACCES') === 1, 'the EACCES count');
      expect(io.stats.sent).toBe(3);
      expect(Object.fromEntries(io.stats.errors)).toEqual({ EACCES: 1, EINVAL: 1 });
    },
  );

  it.skipIf(skip)('drops an oversize datagram, counted once per destination', async () => {
    const rs = await receivers(3);
    const { io } = await makeIo(path);
    io.sendMany(Buffer.alloc(7), Buffer.alloc(65507 - 6), dests(rs), 3);
    io.send(Buffer.alloc(70_000), rs[0]?.port as number, '127.0.0.1');
    // The largest legal datagram still goes.
    io.sendMany(Buffer.alloc(7), Buffer.alloc(65507 - 7), dests(rs), 3);
    await until(() => rs.every((r) => r.got.length === 1), 'the legal datagram');
    await settle();
    expect(rs.map((r) => r.got[0]?.length)).toEqual([65507, 65507, 65507]);
    expect(io.stats.errors.get('oversize')).toBe(4);
    expect(io.stats.sent).toBe(3);
  });
});

describe('udp io: native specifics', () => {
  it.skipIf(native.addon === null)(
    `hands what EAGAIN left to the send queue in order, then resumes sendmmsg${NATIVE_SKIP}`,
    async () => {
      const real = native.addon as NativeAddon;
      // The real add-on on a real socket, told to stop after 3 destinations
      // as it does when the kernel answers EAGAIN (loopback never fills up).
      let limit = 3;
      const eagainAfter: NativeAddon = {
        ABI: real.ABI,
        RECORD_SIZE: real.RECORD_SIZE,
        parseAddress: (t, b, o) => real.parseAddress(t, b, o),
        sendMany: (fd, p, b, rec, n, out) => real.sendMany(fd, p, b, rec, Math.min(n, limit), out),
        META_SIZE: real.META_SIZE,
        META_TEXT: real.META_TEXT,
        recvStart: real.recvStart,
        recvClose: real.recvClose,
        sendSocketOpen: real.sendSocketOpen,
        sendSocketClose: real.sendSocketClose,
      };
      const rs = await receivers(8);
      const { io } = await makeIo('native', eagainAfter);
      io.sendMany(null, Buffer.from('first'), dests(rs), 8);
      expect(io.stats.queued).toBe(5);
      // While queued datagrams wait, the next batch goes behind them (dgram).
      io.sendMany(null, Buffer.from('second'), dests(rs), 8);
      expect(io.stats.syscalls).toBe(1);
      await until(() => rs.every((r) => r.got.length === 2), 'both batches');
      for (const r of rs) {
        expect(r.got.map(String)).toEqual(['first', 'second']);
      }
      await until(() => io.stats.sent === 16, 'send callbacks');
      limit = 100;
      io.sendMany(null, Buffer.from('third'), dests(rs), 8);
      expect(io.stats.syscalls).toBe(2);
      await until(() => rs.every((r) => r.got.length === 3), 'the third batch');
      expect(io.stats.queued).toBe(5);
      expect(io.stats.errors.size).toBe(0);
    },
  );

  it.skipIf(native.addon === null)(
    `add-on: reports the kernel's errno per destination and goes on${NATIVE_SKIP}`,
    async () => {
      const addon = native.addon as NativeAddon;
      const rs = await receivers(2);
      const s = await bound();
      const size = addon.RECORD_SIZE;
      const rec = Buffer.alloc(size * 3);
      const ports = [rs[0]?.port as number, 0, rs[1]?.port as number];
      for (let i = 0; i < 3; i++) {
        expect(addon.parseAddress('127.0.0.1', rec, i * size)).toBe(4);
        rec.writeUInt16BE(ports[i] as number, i * size + 2);
      }
      expect(addon.parseAddress('::1', Buffer.alloc(size), 0)).toBe(6);
      expect(addon.parseAddress('not-an-ip', Buffer.alloc(size), 0)).toBe(0);
      const out = new Int32Array(4 + 6);
      const handled = addon.sendMany(socketFd(s), null, Buffer.from('e'), rec, 3, out);
      // 3 handled; 1 failed, 2 sent, in 3 calls (ok, EINVAL, ok); the pair (index 1, EINVAL).
      expect(handled).toBe(3);
      expect([...out.slice(0, 6)]).toEqual([1, 2, 3, 1, 1, 22]);
      await until(() => rs.every((r) => r.got.length === 1), 'receivers');
      // Bad arguments are a negative result, not a throw.
      expect(addon.sendMany(socketFd(s), null, Buffer.from('e'), rec, 4, out)).toBe(-1);
    },
  );

  it.skipIf(native.addon === null)(
    `counts a non-IP address and a bad port per destination${NATIVE_SKIP}`,
    async () => {
      const rs = await receivers(2);
      const { io } = await makeIo('native');
      const list = [...dests(rs), { port: 0, address: '127.0.0.1' }, { port: 1, address: 'nope' }];
      io.sendMany(null, Buffer.from('q'), list, list.length);
      await until(() => rs.every((r) => r.got.length === 1), 'receivers');
      expect(Object.fromEntries(io.stats.errors)).toEqual({ EINVAL: 1, bad_address: 1 });
      expect(io.stats.sent).toBe(2);
    },
  );

  it.skipIf(native.addon === null)(`sends over IPv6 and IPv4-mapped${NATIVE_SKIP}`, async () => {
    const s6 = createSocket('udp6');
    sockets.push(s6);
    await new Promise<void>((resolve) => s6.bind(0, '::', () => resolve()));
    const r6 = createSocket('udp6');
    sockets.push(r6);
    await new Promise<void>((resolve) => r6.bind(0, '::1', () => resolve()));
    const got: string[] = [];
    r6.on('message', (m) => got.push(String(m)));
    const [r4] = await receivers(1);
    const io = new NativeUdpIo(native.addon as NativeAddon, s6, 'udp6', socketFd(s6));
    io.send(Buffer.from('six'), r6.address().port, '::1');
    io.send(Buffer.from('four'), r4?.port as number, '127.0.0.1');
    await until(() => got.length === 1 && r4?.got.length === 1, 'both');
    expect(got).toEqual(['six']);
    expect(String(r4?.got[0])).toBe('four');
  });

  it.skipIf(native.addon === null)(
    `loads and sends inside a worker thread${NATIVE_SKIP}`,
    async () => {
      const [r] = await receivers(1);
      const code = `
      const { workerData, parentPort } = require('node:worker_threads');
      const dgram = require('node:dgram');
      const addon = require(workerData.path);
      const s = dgram.createSocket('udp4');
      s.bind(0, '127.0.0.1', () => {
        const sym = Object.getOwnPropertySymbols(s).find((x) => x.description === 'state symbol');
        const fd = s[sym].handle.fd;
        const rec = Buffer.alloc(addon.RECORD_SIZE * 2);
        for (let i = 0; i < 2; i++) {
          addon.parseAddress('127.0.0.1', rec, i * addon.RECORD_SIZE);
          rec.writeUInt16BE(workerData.port, i * addon.RECORD_SIZE + 2);
        }
        const out = new Int32Array(8);
        const n = addon.sendMany(fd, Buffer.from('w:'), Buffer.from('hi'), rec, 2, out);
        s.close(() => parentPort.postMessage({ n, sent: out[1], calls: out[2] }));
      });`;
      const worker = new Worker(code, {
        eval: true,
        workerData: { path: NATIVE_ADDON_PATH, port: r?.port },
      });
      try {
        const result = await new Promise((resolve, reject) => {
          worker.once('message', resolve);
          worker.once('error', reject);
        });
        expect(result).toEqual({ n: 2, sent: 2, calls: 1 });
        await until(() => r?.got.length === 2, 'the worker datagrams');
        expect(r?.got.map(String)).toEqual(['w:hi', 'w:hi']);
      } finally {
        await worker.terminate();
      }
    },
  );
});

describe('udp io: selection', () => {
  it('dgram when asked, native or dgram under auto depending on the add-on', async () => {
    const s = await bound();
    expect(createUdpIo('dgram', s, 'udp4').io.path).toBe('dgram');
    const auto = createUdpIo('auto', s, 'udp4');
    expect(auto.io.path).toBe(native.addon === null ? 'dgram' : 'native');
    if (native.addon === null) {
      expect(() => createUdpIo('native', s, 'udp4')).toThrow(
        expect.objectContaining({ code: 'UDP_IO_NATIVE_UNAVAILABLE' }),
      );
    } else {
      expect(createUdpIo('native', s, 'udp4').io.path).toBe('native');
      expect(socketFd(s)).toBeGreaterThan(2);
    }
  });
});

/** What a receive handler saw: copies (the native ring is rewritten by the next batch). */
interface Seen {
  data: Buffer;
  address: string;
  port: number;
  family: string;
  size: number;
}

/** A socket receiving on `path` (native: the add-on's recvmmsg; dgram: its 'message' event). */
async function receiving(
  path: UdpIoPath,
  type: 'udp4' | 'udp6' = 'udp4',
  host = '127.0.0.1',
): Promise<{ s: Socket; io: UdpIo; seen: Seen[]; errors: Error[] }> {
  const s = createSocket(type);
  sockets.push(s);
  const seen: Seen[] = [];
  const errors: Error[] = [];
  const onDatagram = (m: Buffer, r: RemoteInfo): void => {
    seen.push({
      data: Buffer.from(m),
      address: r.address,
      port: r.port,
      family: r.family,
      size: r.size,
    });
  };
  s.on('message', onDatagram);
  await new Promise<void>((resolve) => s.bind(0, host, () => resolve()));
  const { io } = createUdpIo(path, s, type, { onDatagram, onError: (e) => errors.push(e) });
  ios.push(io);
  return { s, io, seen, errors };
}

const ios: UdpIo[] = [];
afterEach(() => {
  for (const io of ios.splice(0)) {
    io.close();
  }
});

describe.each(PATHS)('udp io receive: $label', ({ path, skip }) => {
  it.skipIf(skip)(
    'delivers every datagram of two sources intact, with its source and size',
    async () => {
      const { s, io, seen } = await receiving(path);
      expect(io.receivePath).toBe(path);
      const port = s.address().port;
      const a = await bound();
      const b = await bound();
      // More than a batch at once, lengths 1..300 and one of the largest UDP payload.
      const n = 3 * RECV_SLOTS + 5;
      const expected = new Map<string, Buffer[]>();
      for (let i = 0; i < n; i++) {
        const from = i % 2 === 0 ? a : b;
        const body = Buffer.alloc(2 + ((i * 37) % 300), i & 0xff);
        body.writeUInt16BE(i, 0);
        const key = String(from.address().port);
        expected.set(key, [...(expected.get(key) ?? []), body]);
        from.send(body, port, '127.0.0.1');
      }
      const big = Buffer.alloc(65507, 0x5a);
      a.send(big, port, '127.0.0.1');
      await until(() => seen.length === n + 1, `${n + 1} datagrams`);
      for (const [key, bodies] of expected) {
        const got = seen.filter((x) => String(x.port) === key && x.size !== 65507);
        // One source's datagrams arrive in order on loopback.
        expect(got.map((x) => x.data)).toEqual(bodies);
        expect(got.every((x) => x.address === '127.0.0.1' && x.family === 'IPv4')).toBe(true);
        expect(got.every((x) => x.size === x.data.length)).toBe(true);
      }
      const last = seen.find((x) => x.size === 65507);
      expect(last?.data.equals(big)).toBe(true);
      if (path === 'native') {
        expect(io.stats.received).toBe(n + 1);
        // Fewer JS calls than datagrams is the point; each batch is at most RECV_SLOTS.
        expect(io.stats.recvBatches).toBeGreaterThanOrEqual(Math.ceil((n + 1) / RECV_SLOTS));
        expect(io.stats.recvBatches).toBeLessThanOrEqual(n + 1);
        expect(io.stats.recvSyscalls).toBeGreaterThanOrEqual(io.stats.recvBatches);
        expect(io.stats.truncated).toBe(0);
      }
    },
  );

  it.skipIf(skip)('reports IPv6 and IPv4-mapped sources as dgram does', async () => {
    const { s, seen } = await receiving(path, 'udp6', '::');
    const port = s.address().port;
    const s6 = createSocket('udp6');
    sockets.push(s6);
    await new Promise<void>((resolve) => s6.bind(0, '::1', () => resolve()));
    const s4 = await bound();
    s6.send('six', port, '::1');
    s4.send('four', port, '127.0.0.1');
    await until(() => seen.length === 2, 'both');
    const by = Object.fromEntries(seen.map((x) => [String(x.data), x]));
    expect(by.six).toMatchObject({ address: '::1', family: 'IPv6', port: s6.address().port });
    expect(by.four).toMatchObject({
      address: '::ffff:127.0.0.1',
      family: 'IPv6',
      port: s4.address().port,
    });
  });

  it.skipIf(skip)('stops at close (native: releases its descriptor)', async () => {
    const { s, io, seen } = await receiving(path);
    const port = s.address().port;
    // Descriptors open on this socket: dgram's, plus the add-on's dup(2) when native.
    const link = readlinkSync(`/proc/self/fd/${socketFd(s)}`);
    const onSocket = () =>
      readdirSync('/proc/self/fd').filter((f) => {
        try {
          return readlinkSync(`/proc/self/fd/${f}`) === link;
        } catch {
          return false;
        }
      }).length;
    expect(onSocket()).toBe(path === 'native' ? 2 : 1);
    const a = await bound();
    a.send('one', port, '127.0.0.1');
    await until(() => seen.length === 1, 'the first datagram');
    io.close();
    io.close();
    // The dup is closed once libuv has closed the add-on's poll handle.
    await until(() => onSocket() === 1, 'one descriptor on the socket');
    a.send('two', port, '127.0.0.1');
    await settle();
    // Native: nothing reads any more (dgram's own reading was stopped); dgram: close is a no-op.
    expect(seen.map((x) => String(x.data))).toEqual(path === 'native' ? ['one'] : ['one', 'two']);
  });
});

describe('udp io receive: native specifics', () => {
  it.skipIf(native.addon === null)(
    `a send queued after EAGAIN carries the bytes of its time, not the ring's next batch${NATIVE_SKIP}`,
    async () => {
      const real = native.addon as NativeAddon;
      const eagain: NativeAddon = { ...real, sendMany: () => 0 };
      const rs = await receivers(2);
      const { io } = await makeIo('native', eagain);
      const buf = Buffer.from('original');
      const prefix = Buffer.from('p:');
      io.sendMany(prefix, buf, dests(rs), 2);
      // What the ring does to a view at the next batch.
      buf.fill(0x58);
      prefix.fill(0x58);
      io.sendMany(null, buf, dests(rs), 2);
      await until(() => rs.every((r) => r.got.length === 2), 'both datagrams');
      for (const r of rs) {
        expect(r.got.map(String)).toEqual(['p:original', 'XXXXXXXX']);
      }
      expect(io.stats.queued).toBe(2);
    },
  );

  it.skipIf(native.addon === null)(
    `udp_io = "auto" takes over the receive; bad arguments are a negative result${NATIVE_SKIP}`,
    async () => {
      const addon = native.addon as NativeAddon;
      const s = await bound();
      const { io, reason } = createUdpIo('auto', s, 'udp4', {
        onDatagram: () => {},
        onError: () => {},
      });
      ios.push(io);
      expect(io.receivePath).toBe('native');
      expect(reason).toContain('recvmmsg');
      const meta = Buffer.alloc(addon.META_SIZE);
      const counters = new Float64Array(3);
      // Too small a ring for the slots, a bad fd: refused, nothing thrown.
      expect(addon.recvStart(socketFd(s), 2, 64, Buffer.alloc(64), meta, counters, () => {})).toBe(
        -1,
      );
      expect(addon.recvStart(-5, 1, 64, Buffer.alloc(64), meta, counters, () => {})).toBeLessThan(
        0,
      );
    },
  );

  it.skipIf(native.addon === null)(
    `receives inside a worker thread, and a worker ending with its receiver open exits cleanly${NATIVE_SKIP}`,
    async () => {
      const code = `
      const { workerData, parentPort } = require('node:worker_threads');
      const dgram = require('node:dgram');
      const addon = require(workerData.path);
      const s = dgram.createSocket('udp4');
      s.bind(0, '127.0.0.1', () => {
        const sym = Object.getOwnPropertySymbols(s).find((x) => x.description === 'state symbol');
        const handle = s[sym].handle;
        const ring = Buffer.allocUnsafeSlow(4 * 2048);
        const meta = Buffer.alloc(4 * addon.META_SIZE);
        const words = new Int32Array(meta.buffer, meta.byteOffset, meta.length / 4);
        const counters = new Float64Array(3);
        const got = [];
        const r = addon.recvStart(handle.fd, 4, 2048, ring, meta, counters, (n) => {
          for (let i = 0; i < n; i++) {
            const m = i * addon.META_SIZE / 4;
            got.push(ring.toString('latin1', i * 2048, i * 2048 + words[m]) + '@' + words[m + 1]);
          }
          if (got.length === 6) {
            if (workerData.close) addon.recvClose(r);
            parentPort.postMessage({ got, calls: counters[0] });
            if (workerData.throwAfter) throw new Error('handler threw');
          }
        });
        handle.recvStop();
        parentPort.postMessage({ port: s.address().port });
      });`;
      for (const mode of [{ close: true }, { close: false }, { close: false, throwAfter: true }]) {
        const sender = await bound();
        const worker = new Worker(code, {
          eval: true,
          workerData: { path: NATIVE_ADDON_PATH, ...mode },
        });
        const messages: { port?: number; got?: string[]; calls?: number }[] = [];
        const errors: Error[] = [];
        worker.on('message', (m) => messages.push(m));
        worker.on('error', (e) => errors.push(e));
        const exited = new Promise<number>((resolve) => worker.once('exit', resolve));
        try {
          await until(() => messages.length === 1, 'the worker socket');
          const port = messages[0]?.port as number;
          for (let i = 0; i < 6; i++) {
            sender.send(`w${i}`, port, '127.0.0.1');
          }
          await until(() => messages.length === 2, 'the worker datagrams');
          const p = sender.address().port;
          expect(messages[1]?.got).toEqual([0, 1, 2, 3, 4, 5].map((i) => `w${i}@${p}`));
          if (mode.throwAfter === true) {
            // The handler's exception is the worker's uncaught exception, as with dgram.
            await until(() => errors.length === 1, 'the worker error');
            expect(errors[0]?.message).toBe('handler threw');
          }
        } finally {
          // Without recvClose the add-on's cleanup hook closes the poll handle at teardown.
          await worker.terminate();
        }
        expect(typeof (await exited)).toBe('number');
        expect(errors.length).toBe(mode.throwAfter === true ? 1 : 0);
      }
    },
  );
});

/** Whether a plain socket (no SO_REUSEPORT) can bind `port` now: no socket holds it. */
async function portFree(type: 'udp4' | 'udp6', port: number, host: string): Promise<boolean> {
  const probe = createSocket(type);
  const ok = await new Promise<boolean>((resolve) => {
    probe.once('error', () => resolve(false));
    probe.bind(port, host, () => resolve(true));
  });
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return ok;
}

/** portFree, retried for up to 2 s (descriptors close a loop turn after their handles). */
async function portFreeWithin(type: 'udp4' | 'udp6', port: number, host: string): Promise<boolean> {
  const end = Date.now() + 2000;
  for (;;) {
    if (await portFree(type, port, host)) {
      return true;
    }
    if (Date.now() > end) {
      return false;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('udp io: the send-only socket (native)', () => {
  it.skipIf(native.addon === null)(
    `sends from the media port while every datagram to it still reaches the media socket; close frees the port${NATIVE_SKIP}`,
    async () => {
      for (const [type, host, to] of [
        ['udp4', '127.0.0.1', '127.0.0.1'],
        ['udp6', '::', '::ffff:127.0.0.1'],
      ] as const) {
        const { s, io, seen } = await receiving('native', type, host);
        expect((io as NativeUdpIo).sendSocket).toBe(true);
        const port = s.address().port;
        // 24 sources (the kernel would hash them over both sockets without
        // the steering program), 10 datagrams each.
        const sources: Socket[] = [];
        for (let i = 0; i < 24; i++) {
          sources.push(await bound());
        }
        for (let k = 0; k < 10; k++) {
          for (const [i, src] of sources.entries()) {
            src.send(`${i}:${k}`, port, '127.0.0.1');
          }
        }
        await until(() => seen.length === 240, '240 datagrams on the media socket');
        expect(io.stats.received).toBe(240);
        // A fan-out leaves from the media port (the send socket shares it).
        const rs = await receivers(3);
        const from: number[] = [];
        for (const r of rs) {
          r.socket.on('message', (_m, rinfo) => from.push(rinfo.port));
        }
        io.sendMany(
          null,
          Buffer.from('out'),
          rs.map((r) => ({ port: r.port, address: to })),
          3,
        );
        await until(() => rs.every((r) => r.got.length === 1), 'the fan-out');
        expect(from).toEqual([port, port, port]);
        expect(io.stats.syscalls).toBe(1);
        io.close();
        await new Promise<void>((resolve) => s.close(() => resolve()));
        sockets.splice(sockets.indexOf(s), 1);
        // Neither the media socket (its dup closes with libuv's poll handle, a
        // loop turn later) nor the send socket holds the port any more.
        expect(await portFreeWithin(type, port, host)).toBe(true);
      }
    },
  );

  it.skipIf(native.addon === null)(
    `is off with WZP_NATIVE_SEND_SOCKET=0, and the start reason says which${NATIVE_SKIP}`,
    async () => {
      const s = await bound();
      const receive = { onDatagram: () => {}, onError: () => {} };
      const on = createUdpIo('native', s, 'udp4', receive);
      ios.push(on.io);
      expect(on.reason).toContain('send-only socket');
      on.io.close();
      const s2 = await bound();
      process.env.WZP_NATIVE_SEND_SOCKET = '0';
      try {
        const off = createUdpIo('native', s2, 'udp4', receive);
        ios.push(off.io);
        expect((off.io as NativeUdpIo).sendSocket).toBe(false);
        expect(off.reason).toContain('WZP_NATIVE_SEND_SOCKET=0');
      } finally {
        delete process.env.WZP_NATIVE_SEND_SOCKET;
      }
    },
  );

  it.skipIf(native.addon === null)(
    `a worker thread ending without closing it frees the port (the add-on's cleanup hook)${NATIVE_SKIP}`,
    async () => {
      const code = `
      const { workerData, parentPort } = require('node:worker_threads');
      const dgram = require('node:dgram');
      const addon = require(workerData.path);
      const s = dgram.createSocket('udp4');
      s.bind(0, '127.0.0.1', () => {
        const sym = Object.getOwnPropertySymbols(s).find((x) => x.description === 'state symbol');
        const fd = addon.sendSocketOpen(s[sym].handle.fd);
        parentPort.postMessage({ port: s.address().port, fd });
      });`;
      const worker = new Worker(code, { eval: true, workerData: { path: NATIVE_ADDON_PATH } });
      const first = await new Promise<{ port: number; fd: number }>((resolve) =>
        worker.once('message', resolve),
      );
      expect(first.fd).toBeGreaterThan(2);
      expect(await portFree('udp4', first.port, '127.0.0.1')).toBe(false);
      await worker.terminate();
      expect(await portFreeWithin('udp4', first.port, '127.0.0.1')).toBe(true);
    },
  );
});
