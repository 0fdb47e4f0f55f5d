#!/usr/bin/env node
/**
 * The send path alone (docs/benchmarks.md, "Native UDP I/O"): CPU µs of this
 * process per datagram when one 107-byte datagram (7-byte trunk prefix +
 * 100-byte frame) goes to 49 receivers, through src/media/udp-io.ts's dgram
 * and native senders, alternating. The receivers are sockets of another
 * process that never reads (the kernel drops what overflows; the send cost
 * is the same). One fan-out per event-loop turn, as the relay does it.
 *
 * usage: npm run build && node scripts/udp-io-send-cpu.mjs [fanouts=5000] [repeats=3]
 */
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createUdpIo } from '../dist/media/udp-io.js';

const FANOUTS = Number(process.argv[2] ?? 5000);
const REPEATS = Number(process.argv[3] ?? 3);
const N = 49;

// 49 receiving sockets in a child process that never reads them.
const child = spawn(
  process.execPath,
  [
    '-e',
    `const d=require('node:dgram');const ports=[];let n=0;
     for(let i=0;i<${N};i++){const s=d.createSocket('udp4');s.bind(0,'127.0.0.1',()=>{s.setRecvBufferSize(1<<16);s.pause?.();
       ports.push(s.address().port);if(++n===${N})process.stdout.write(JSON.stringify(ports)+'\\n')});}`,
  ],
  { stdio: ['ignore', 'pipe', 'inherit'] },
);
const ports = await new Promise((resolve) => {
  let out = '';
  child.stdout.on('data', (d) => {
    out += d;
    if (out.includes('\n')) {
      resolve(JSON.parse(out));
    }
  });
});
const destinations = ports.map((port) => ({ port, address: '127.0.0.1' }));
const prefix = Buffer.alloc(7, 2);
const frame = Buffer.alloc(100, 1);

async function run(path) {
  const socket = createSocket('udp4');
  await new Promise((r) => socket.bind(0, '127.0.0.1', r));
  socket.setSendBufferSize(4 << 20);
  // `dgram-nocb`: plain socket.send without a callback (no error counting), for reference.
  const io =
    path === 'dgram-nocb'
      ? {
          stats: { errors: new Map(), syscalls: 0 },
          sendMany(p, b, ds, n) {
            for (let i = 0; i < n; i++) {
              socket.send([p, b], ds[i].port, ds[i].address);
            }
          },
        }
      : createUdpIo(path, socket, 'udp4').io;
  const turn = () => new Promise((r) => setImmediate(r));
  for (let i = 0; i < 2000; i++) {
    io.sendMany(prefix, frame, destinations, N);
    await turn();
  }
  const t0 = process.cpuUsage();
  const w0 = performance.now();
  for (let i = 0; i < FANOUTS; i++) {
    io.sendMany(prefix, frame, destinations, N);
    await turn();
  }
  const cpu = process.cpuUsage(t0);
  const wall = performance.now() - w0;
  await new Promise((r) => socket.close(r));
  const datagrams = FANOUTS * N;
  return {
    path,
    usPerDatagram: (cpu.user + cpu.system) / datagrams,
    userUs: cpu.user / datagrams,
    sysUs: cpu.system / datagrams,
    datagramsPerSecond: Math.round(datagrams / (wall / 1000)),
    errors: Object.fromEntries(io.stats.errors),
    syscalls: io.stats.syscalls,
  };
}

const PATHS = ['dgram', 'native', 'dgram-nocb'];
const rows = { dgram: [], native: [], 'dgram-nocb': [] };
for (let rep = 0; rep < REPEATS; rep++) {
  for (const path of rep % 2 === 0 ? PATHS : [...PATHS].reverse()) {
    const r = await run(path);
    rows[path].push(r.usPerDatagram);
    console.log(JSON.stringify(r));
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const d = median(rows.dgram);
const n = median(rows.native);
const raw = median(rows['dgram-nocb']);
console.log(
  `send path, 1 datagram to ${N} receivers: dgram ${d.toFixed(3)} µs/datagram (plain socket.send without callback ${raw.toFixed(3)}), native ${n.toFixed(3)} µs/datagram (median of ${REPEATS}), native/dgram = ${(n / d).toFixed(2)}`,
);
child.kill();
process.exit(0);
