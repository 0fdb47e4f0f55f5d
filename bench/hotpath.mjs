// bench/hotpath: the JavaScript cost of the media hot path alone, in process,
// with no sockets: MediaEngine.onDatagram → decode → policing (observe, as
// bench:forwarding runs it) → quality observation → fan-out, for R rooms of S
// participants sending audio MINI frames round-robin. The fan-out ends in a
// sendMany that only counts (what the native add-on's call costs is not here),
// so this is the part of bench:forwarding's *user µs / pkt* that our own code
// decides, measured without the kernel's noise.
//
//   npm run bench:hotpath [-- --scenarios 10x10,1x50,50x3] [-- --repeats 7] [-- --inputs 200000]
//                         [-- --full] [-- --kernel-between] [-- --sleep-between 450]
//
// Per scenario: a warm-up pass (discarded), then REPEATS passes of INPUTS input
// datagrams each; reports the median and range of ns of CPU (this thread) per
// input datagram and per delivered packet, and the heap bytes retained per
// input over a pass (after a forced full collection on both sides).

import { createSocket } from 'node:dgram';
import { cpus } from 'node:os';
import { MediaEngine } from '../dist/media/engine.js';
import { SessionObserver } from '../dist/media/quality-observer.js';
import { RoomState } from '../dist/media/room-state.js';
import { Session } from '../dist/media/session.js';
import { loadNativeAddon, socketFd } from '../dist/media/udp-io.js';
import {
  confirmOf,
  createHeader,
  encodeBind,
  FrameType,
  MiniCompressor,
} from '../dist/wire/index.js';
import { checkArgs, flag, opt } from './args.mjs';

checkArgs(
  `npm run bench:hotpath [-- --scenarios 10x10,1x50,50x3] [-- --repeats 7] [-- --inputs 200000]
                      [-- --full] [-- --kernel-between] [-- --sleep-between US]`,
  {
    flags: ['--full', '--kernel-between'],
    options: ['--scenarios', '--repeats', '--inputs', '--sleep-between'],
  },
);
const SCENARIOS = (opt('--scenarios') ?? '10x10,1x50,50x3').split(',').map((s) => {
  const [rooms, size] = s.split('x').map(Number);
  return { name: s, rooms, size };
});
const REPEATS = Number(opt('--repeats') ?? 7);
const INPUTS = Number(opt('--inputs') ?? 200_000);
// Frames generated per sender (then replayed: each replay starts with a FULL frame).
const FRAMES_PER_SENDER = 400;
const PAYLOAD = 100;
// --kernel-between: after each input, the add-on really sends it to 9 loopback
// destinations (a socket nobody reads, so the kernel drops them at its full
// buffer: the passes are synchronous, so its loop never reads), as the relay's
// kernel work runs between two inputs. The engine's
// own time is then read per call (performance.now around onDatagram), which
// shows what a hot path costs when the kernel has just evicted it from the caches.
const KERNEL_BETWEEN = flag('--kernel-between');
// --sleep-between US: the thread sleeps US µs (a futex wait) after each input, as
// the relay's media thread sleeps between datagrams at low load; the engine's time
// per call then shows what an input costs after the CPU went idle (use a small
// --inputs: 200 000 inputs at 450 µs is 90 s a pass).
const SLEEP_US = Number(opt('--sleep-between') ?? 0);
const sleepCell = SLEEP_US > 0 ? new Int32Array(new SharedArrayBuffer(4)) : null;
// --full: FULL frames only, byte for byte what bench:forwarding's load generator
// sends (bench/forwarding/loadgen.c), instead of a client's MINI stream.
const FULL_ONLY = flag('--full');
const kernel = KERNEL_BETWEEN ? await kernelWork() : null;

async function kernelWork() {
  const { addon, reason } = loadNativeAddon();
  if (addon === null) {
    console.error(`--kernel-between needs the native add-on: ${reason}`);
    process.exit(2);
  }
  const bindUdp = () =>
    new Promise((resolve) => {
      const s = createSocket('udp4');
      s.bind(0, '127.0.0.1', () => resolve(s));
    });
  const tx = await bindUdp();
  const sink = await bindUdp();
  const rec = Buffer.alloc(addon.RECORD_SIZE * 9);
  for (let i = 0; i < 9; i++) {
    addon.parseAddress('127.0.0.1', rec, i * addon.RECORD_SIZE);
    rec.writeUInt16BE(sink.address().port, i * addon.RECORD_SIZE + 2);
  }
  const out = new Int32Array(4 + 18);
  const fd = socketFd(tx);
  return {
    send: (msg) => addon.sendMany(fd, null, msg, rec, 9, out),
    close: () => {
      tx.close();
      sink.close();
    },
  };
}

if (typeof globalThis.gc !== 'function') {
  console.error('bench:hotpath needs --expose-gc (npm run bench:hotpath passes it)');
  process.exit(2);
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const fmt = (v, d = 0) =>
  v.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
const threadCpuNs = () => {
  const u = process.threadCpuUsage?.() ?? process.cpuUsage();
  return (u.user + u.system) * 1000;
};

function setup(sc) {
  let clock = 0;
  let delivered = 0;
  const outbox = [];
  const engine = new MediaEngine({
    send: (data) => outbox.push(Buffer.isBuffer(data) ? Buffer.from(data) : Buffer.concat(data)),
    sendMany: (_prefix, _buf, destinations, count) => {
      // What a real implementation must read per destination.
      for (let i = 0; i < count; i++) {
        if (destinations[i].address !== null) {
          delivered++;
        }
      }
    },
    trunking: { enabled: false, maxEntries: 10, mtu: 1200, flushMs: 5 },
    policing: { mode: 'observe' },
    now: () => clock,
  });
  const senders = [];
  let id = 1;
  for (let r = 0; r < sc.rooms; r++) {
    const roomState = new RoomState();
    const room = { name: `room-${r}`, snapshot: [] };
    for (let p = 0; p < sc.size; p++) {
      const n = id++;
      const observer = new SessionObserver(roomState, clock);
      const token = Buffer.alloc(16);
      token.writeUInt32BE(n, 0);
      const s = new Session({
        id: n,
        tag: n,
        fingerprint: '',
        alias: null,
        room,
        bindToken: token,
        signal: { send() {}, close() {} },
        observer,
        canPublish: true,
        canSubscribe: true,
        nowMs: clock,
      });
      observer.attach(s);
      room.snapshot = [...room.snapshot, { sink: s }];
      engine.policer.configure(s, { audioCodec: 'Opus24k', frameMs: 20, videoKbps: null }, clock);
      engine.register(s);
      // Every participant behind its own address (as 100 hosts would be).
      const rinfo = {
        address: `10.${r >> 8}.${r & 255}.${p + 1}`,
        family: 'IPv4',
        port: 40000 + p,
        size: 0,
      };
      outbox.length = 0;
      engine.onDatagram(encodeBind(token), rinfo);
      const challenge = outbox.find((b) => b[0] === FrameType.BindChallenge);
      if (challenge === undefined) {
        throw new Error(`no BIND_CHALLENGE for session ${n}`);
      }
      engine.onDatagram(confirmOf(challenge), rinfo);
      if (engine.sessionAt(rinfo.address, rinfo.port) !== s) {
        throw new Error(`session ${n} did not bind`);
      }
      const comp = new MiniCompressor();
      const payload = Buffer.alloc(PAYLOAD, n & 255);
      const frames = [];
      for (let f = 0; f < FRAMES_PER_SENDER; f++) {
        if (FULL_ONLY) {
          const b = Buffer.alloc(17 + PAYLOAD, n & 255);
          b.set([0x00, 0x02, 0x00, 0x00, 0x02, 0x00, 0x00], 0);
          b.writeUInt32BE(f + 1, 7);
          b.writeUInt32BE((f + 1) * 20, 11);
          b[15] = 0;
          b[16] = 0;
          frames.push(b);
        } else {
          frames.push(
            comp.encode(createHeader({ seq: f, timestamp: f * 960, fecRatio: 20 }), payload),
          );
        }
      }
      senders.push({ rinfo, frames });
    }
  }
  const step = 20 / sc.size; // ms of clock per input: every sender at 50 frames/s
  let frame = 0;
  let engineMs = 0;
  const pass = (inputs) => {
    const nS = senders.length;
    for (let i = 0; i < inputs; i++) {
      const s = senders[i % nS];
      const msg = s.frames[frame % FRAMES_PER_SENDER];
      s.rinfo.size = msg.length;
      const t0 = performance.now();
      engine.onDatagram(msg, s.rinfo);
      engineMs += performance.now() - t0;
      if (kernel !== null) {
        kernel.send(msg);
      }
      if (sleepCell !== null) {
        Atomics.wait(sleepCell, 0, 0, SLEEP_US / 1000);
      }
      if (i % nS === nS - 1) {
        frame++;
      }
      clock += step / sc.rooms;
    }
  };
  return { engine, pass, delivered: () => delivered, engineMs: () => engineMs };
}

/** What a performance.now() pair costs (subtracted from the timed column). */
const TIMER_NS = (() => {
  let x = 0;
  const t0 = threadCpuNs();
  for (let i = 0; i < 1_000_000; i++) {
    const a = performance.now();
    x += performance.now() - a;
  }
  return (threadCpuNs() - t0) / 1_000_000 + x * 0;
})();

const rows = [];
for (const sc of SCENARIOS) {
  const h = setup(sc);
  h.pass(INPUTS); // warm-up (JIT), discarded
  const perInput = [];
  const perPkt = [];
  const timed = [];
  const heap = [];
  for (let rep = 0; rep < REPEATS; rep++) {
    globalThis.gc();
    const heap0 = process.memoryUsage().heapUsed;
    const d0 = h.delivered();
    const e0 = h.engineMs();
    const t0 = threadCpuNs();
    h.pass(INPUTS);
    const ns = threadCpuNs() - t0;
    const out = h.delivered() - d0;
    timed.push(((h.engineMs() - e0) * 1e6) / INPUTS - TIMER_NS);
    globalThis.gc();
    heap.push((process.memoryUsage().heapUsed - heap0) / INPUTS);
    perInput.push(ns / INPUTS);
    perPkt.push(ns / Math.max(1, out));
  }
  const dropped = Object.entries(h.engine.stats.dropped).filter(([, v]) => v > 0);
  rows.push({ sc, perInput, perPkt, timed, heap, dropped });
  console.error(
    `  ${sc.name}: ${fmt(median(perInput))} ns/input, ${fmt(median(perPkt), 1)} ns/delivered packet` +
      (dropped.length > 0 ? ` (dropped: ${dropped.map(([k, v]) => `${k} ${v}`).join(', ')})` : ''),
  );
}

const range = (xs, d) => `${fmt(Math.min(...xs), d)}–${fmt(Math.max(...xs), d)}`;
console.log(
  `**Hot path, JavaScript only** (bench/hotpath.mjs: in process${KERNEL_BETWEEN ? ', the add-on sending each input to 9 loopback destinations between inputs' : ', no sockets'}${SLEEP_US > 0 ? `, the thread asleep ${SLEEP_US} µs after each input` : ''}${FULL_ONLY ? ', FULL frames as the load generator sends them' : ''}; ${REPEATS} passes of ${fmt(INPUTS)} input datagrams after a warm-up pass; CPU of the thread (the process's on Node 20); median and range)\n`,
);
console.log(
  `| scenario | ns per input datagram | ns per delivered packet | engine ns per input, timed per call${KERNEL_BETWEEN ? ' (kernel work between inputs)' : ''}${SLEEP_US > 0 ? ' (asleep between inputs)' : ''} | heap Δ B per input | drops |`,
);
console.log('| --- | ---: | ---: | ---: | ---: | --- |');
for (const r of rows) {
  console.log(
    `| ${r.sc.name} | ${fmt(median(r.perInput))} (${range(r.perInput, 0)}) | ${fmt(median(r.perPkt), 1)} (${range(r.perPkt, 1)}) | ${fmt(median(r.timed))} (${range(r.timed, 0)}) | ${fmt(median(r.heap), 3)} | ${r.dropped.length === 0 ? 'none' : r.dropped.map(([k, v]) => `${k} ${v}`).join(', ')} |`,
  );
}
kernel?.close();
console.log(`\n_${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version}._`);
