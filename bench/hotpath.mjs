// bench/hotpath: the JavaScript cost of the media hot path alone, in process,
// with no sockets: MediaEngine.onDatagram → decode → policing (observe, as
// bench:forwarding runs it) → quality observation → fan-out, for R rooms of S
// participants sending audio MINI frames round-robin. The fan-out ends in a
// sendMany that only counts (what the native add-on's call costs is not here),
// so this is the part of bench:forwarding's *user µs / pkt* that our own code
// decides, measured without the kernel's noise.
//
//   npm run bench:hotpath [-- --scenarios 10x10,1x50,50x3] [-- --repeats 7] [-- --inputs 200000]
//
// Per scenario: a warm-up pass (discarded), then REPEATS passes of INPUTS input
// datagrams each; reports the median and range of ns of CPU (this thread) per
// input datagram and per delivered packet, and the heap bytes retained per
// input over a pass (after a forced full collection on both sides).
import { cpus } from 'node:os';
import { MediaEngine } from '../dist/media/engine.js';
import { SessionObserver } from '../dist/media/quality-observer.js';
import { RoomState } from '../dist/media/room-state.js';
import { Session } from '../dist/media/session.js';
import {
  confirmOf,
  createHeader,
  encodeBind,
  FrameType,
  MiniCompressor,
} from '../dist/wire/index.js';

const args = process.argv.slice(2);
const opt = (name) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const SCENARIOS = (opt('--scenarios') ?? '10x10,1x50,50x3').split(',').map((s) => {
  const [rooms, size] = s.split('x').map(Number);
  return { name: s, rooms, size };
});
const REPEATS = Number(opt('--repeats') ?? 7);
const INPUTS = Number(opt('--inputs') ?? 200_000);
// Frames generated per sender (then replayed: each replay starts with a FULL frame).
const FRAMES_PER_SENDER = 400;
const PAYLOAD = 100;

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
        frames.push(
          comp.encode(createHeader({ seq: f, timestamp: f * 960, fecRatio: 20 }), payload),
        );
      }
      senders.push({ rinfo, frames });
    }
  }
  const step = 20 / sc.size; // ms of clock per input: every sender at 50 frames/s
  let frame = 0;
  const pass = (inputs) => {
    const nS = senders.length;
    for (let i = 0; i < inputs; i++) {
      const s = senders[i % nS];
      const msg = s.frames[frame % FRAMES_PER_SENDER];
      s.rinfo.size = msg.length;
      engine.onDatagram(msg, s.rinfo);
      if (i % nS === nS - 1) {
        frame++;
      }
      clock += step / sc.rooms;
    }
  };
  return { engine, pass, delivered: () => delivered };
}

const rows = [];
for (const sc of SCENARIOS) {
  const h = setup(sc);
  h.pass(INPUTS); // warm-up (JIT), discarded
  const perInput = [];
  const perPkt = [];
  const heap = [];
  for (let rep = 0; rep < REPEATS; rep++) {
    globalThis.gc();
    const heap0 = process.memoryUsage().heapUsed;
    const d0 = h.delivered();
    const t0 = threadCpuNs();
    h.pass(INPUTS);
    const ns = threadCpuNs() - t0;
    const out = h.delivered() - d0;
    globalThis.gc();
    heap.push((process.memoryUsage().heapUsed - heap0) / INPUTS);
    perInput.push(ns / INPUTS);
    perPkt.push(ns / Math.max(1, out));
  }
  const dropped = Object.entries(h.engine.stats.dropped).filter(([, v]) => v > 0);
  rows.push({ sc, perInput, perPkt, heap, dropped });
  console.error(
    `  ${sc.name}: ${fmt(median(perInput))} ns/input, ${fmt(median(perPkt), 1)} ns/delivered packet` +
      (dropped.length > 0 ? ` (dropped: ${dropped.map(([k, v]) => `${k} ${v}`).join(', ')})` : ''),
  );
}

const range = (xs, d) => `${fmt(Math.min(...xs), d)}–${fmt(Math.max(...xs), d)}`;
console.log(
  `**Hot path, JavaScript only** (bench/hotpath.mjs: in process, no sockets; ${REPEATS} passes of ${fmt(INPUTS)} input datagrams after a warm-up pass; CPU of this thread; median and range)\n`,
);
console.log(
  '| scenario | ns per input datagram | ns per delivered packet | heap Δ B per input | drops |',
);
console.log('| --- | ---: | ---: | ---: | --- |');
for (const r of rows) {
  console.log(
    `| ${r.sc.name} | ${fmt(median(r.perInput))} (${range(r.perInput, 0)}) | ${fmt(median(r.perPkt), 1)} (${range(r.perPkt, 1)}) | ${fmt(median(r.heap), 3)} | ${r.dropped.length === 0 ? 'none' : r.dropped.map(([k, v]) => `${k} ${v}`).join(', ')} |`,
  );
}
console.log(`\n_${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version}._`);
