/**
 * Both send paths over real UDP sockets on 127.0.0.1: fan-out to N
 * receivers, prefix + buffer, destinations that fail, oversize, the EAGAIN
 * hand-over to the send queue, and the add-on inside a worker thread. The
 * native cases are skipped (with the reason in their name) when the add-on
 * did not build.
 */
import { createSocket, type Socket } from 'node:dgram';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createUdpIo,
  DgramUdpIo,
  loadNativeAddon,
  NATIVE_ADDON_PATH,
  type NativeAddon,
  NativeUdpIo,
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
