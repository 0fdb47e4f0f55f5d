#!/usr/bin/env node
/**
 * The receive path alone (docs/benchmarks.md, "Native UDP I/O"): CPU µs of
 * this process per received datagram at a fixed offered rate, through
 * src/media/udp-io.ts's two receive paths, alternating: dgram (a 'message'
 * event with a new Buffer, rinfo and address string per datagram) and native
 * (the add-on's recvmmsg, one JS call per batch of views). The handler does
 * what every relay handler does first (reads the type byte, length, source
 * address and port); the cost above it is the path's. A child process on the
 * other CPU sends 100-byte datagrams from 50 sources at the fixed rate.
 *
 * usage: npm run build && node scripts/udp-io-recv-cpu.mjs [pps=40000] [seconds=3] [repeats=5]
 */
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { pin, pinSelf } from '../bench/lib.mjs';
import { createUdpIo } from '../dist/media/udp-io.js';

const PPS = Number(process.argv[2] ?? 40_000);
const SECONDS = Number(process.argv[3] ?? 3);
const REPEATS = Number(process.argv[4] ?? 5);
const SOURCES = 50;
const pinned = pinSelf(0);

// The sender: 50 sockets, every millisecond-ish as many datagrams as the rate asks.
const senderCode = `
const d = require('node:dgram');
const [port, pps, seconds, sources] = process.argv.slice(1).map(Number);
const socks = [];
let ready = 0;
for (let i = 0; i < sources; i++) {
  const s = d.createSocket('udp4');
  s.bind(0, '127.0.0.1', () => { if (++ready === sources) go(); });
  socks.push(s);
}
const body = Buffer.alloc(100, 1);
function go() {
  const t0 = performance.now();
  let sent = 0;
  const total = pps * seconds;
  const tick = () => {
    const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * pps));
    while (sent < due) { socks[sent % sources].send(body, port, '127.0.0.1'); sent++; }
    if (sent < total) setImmediate(tick); else setTimeout(() => { process.stdout.write(sent + '\\n'); process.exit(0); }, 200);
  };
  tick();
}`;

async function run(path) {
  const socket = createSocket('udp4');
  let got = 0;
  let sink = 0;
  const onDatagram = (msg, rinfo) => {
    got++;
    sink += (msg[0] ?? 0) + msg.length + rinfo.port + rinfo.address.length;
  };
  socket.on('message', onDatagram);
  await new Promise((r) => socket.bind(0, '127.0.0.1', r));
  socket.setRecvBufferSize(4 << 20);
  const { io } = createUdpIo(path, socket, 'udp4', { onDatagram, onError: () => {} });
  if (io.receivePath !== path) {
    throw new Error(`asked for ${path}, receiving on ${io.receivePath}`);
  }
  const [cmd, argv] = pin(1, process.execPath, [
    '-e',
    senderCode,
    String(socket.address().port),
    String(PPS),
    String(SECONDS),
    String(SOURCES),
  ]);
  const t0 = process.cpuUsage();
  const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'inherit'] });
  const sent = await new Promise((resolve) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.once('exit', () => resolve(Number(out.trim())));
  });
  const cpu = process.cpuUsage(t0);
  io.close();
  await new Promise((r) => socket.close(r));
  return {
    path,
    usPerDatagram: (cpu.user + cpu.system) / got,
    userUs: cpu.user / got,
    sysUs: cpu.system / got,
    sent,
    received: got,
    batches: io.stats.recvBatches,
    sink: sink > 0,
  };
}

const PATHS = ['dgram', 'native'];
const rows = { dgram: [], native: [] };
await run('native');
await run('dgram');
for (let rep = 0; rep < REPEATS; rep++) {
  for (const path of rep % 2 === 0 ? PATHS : [...PATHS].reverse()) {
    const r = await run(path);
    rows[path].push(r);
    console.log(JSON.stringify(r));
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const show = (path) => {
  const xs = rows[path];
  const v = xs.map((r) => r.usPerDatagram);
  return `${median(v).toFixed(3)} µs (${Math.min(...v).toFixed(3)}–${Math.max(...v).toFixed(3)}; user ${median(xs.map((r) => r.userUs)).toFixed(3)}, system ${median(xs.map((r) => r.sysUs)).toFixed(3)})`;
};
const ratios = rows.native.map((r, i) => r.usPerDatagram / (rows.dgram[i]?.usPerDatagram ?? 1));
console.log(
  `receive path at ${PPS} datagrams/s from ${SOURCES} sources${pinned ? ' (pinned: this process CPU 0, sender CPU 1)' : ''}: dgram ${show('dgram')}, native ${show('native')} per datagram (median of ${REPEATS}); native/dgram = ${(median(rows.native.map((r) => r.usPerDatagram)) / median(rows.dgram.map((r) => r.usPerDatagram))).toFixed(2)} (per-repeat ${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)})`,
);
process.exit(0);
