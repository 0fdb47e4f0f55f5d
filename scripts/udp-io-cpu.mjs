#!/usr/bin/env node
/**
 * Small local measurement of the two media send paths (docs/benchmarks.md,
 * "Native UDP I/O"): CPU µs of the relay process per delivered packet in a
 * 1×50 room (every participant sends, every packet goes to 49 receivers),
 * udp_io = "dgram" against udp_io = "native", alternating, a few short
 * repeats. The relay runs pinned to CPU 0, the C load generator of
 * bench/forwarding (recvmmsg, one-way latency) on CPU 1.
 *
 * usage: npm run build && node scripts/udp-io-cpu.mjs [pps_per_sender=40] [seconds=3] [repeats=3]
 * (the shared bench is bench:forwarding; this is a short run for a shared machine)
 */
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  compileC,
  cpuPct,
  cpuUs,
  freePort,
  pin,
  pinSelf,
  procSample,
  ROOT,
  runLoadgen,
  spread,
} from '../bench/lib.mjs';
import { WzpClient } from '../dist/client/index.js';

const PPS = Number(process.argv[2] ?? 40);
const SECONDS = Number(process.argv[3] ?? 3);
const REPEATS = Number(process.argv[4] ?? 3);
const SIZE = 50;
const PAYLOAD = 100;
const WZP = join(ROOT, 'dist', 'cli', 'wzp.js');

const loadgen = compileC('loadgen', 'loadgen.c');
if (loadgen === null) {
  console.error('no C compiler: cannot build the load generator');
  process.exit(1);
}
pinSelf(1);

async function startRelay(udpIo) {
  const [sig, http] = [await freePort(), await freePort()];
  const env = {
    ...process.env,
    WZP_UDP_HOST: '127.0.0.1',
    WZP_UDP_PORT: '0',
    WZP_SIGNAL_HOST: '127.0.0.1',
    WZP_SIGNAL_PORT: String(sig),
    WZP_HTTP_HOST: '127.0.0.1',
    WZP_HTTP_PORT: String(http),
    WZP_LOG_LEVEL: 'warn',
    WZP_SESSION_TIMEOUT_MS: '600000',
    WZP_SIGNAL_RATE_PER_SEC: '10000',
    WZP_DATA_DIR: mkdtempSync(join(tmpdir(), 'wzp-udpio-')),
    WZP_UDP_BUFFER_BYTES: String(4 << 20),
    WZP_UDP_IO: udpIo,
  };
  const [cmd, argv] = pin(0, process.execPath, [WZP, 'relay']);
  const proc = spawn(cmd, argv, { env, stdio: ['ignore', 'ignore', 'inherit'] });
  const httpUrl = `http://127.0.0.1:${http}`;
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${httpUrl}/readyz`)).ok) {
        break;
      }
    } catch {}
    if (i > 400 || proc.exitCode !== null) {
      proc.kill('SIGKILL');
      throw new Error(`relay (${udpIo}) did not become ready`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const metrics = await (await fetch(`${httpUrl}/metrics`)).text();
  const path = /wzp_relay_udp_io\{path="(\w+)"\} 1/.exec(metrics)?.[1];
  if (path !== udpIo) {
    proc.kill('SIGKILL');
    throw new Error(`asked for ${udpIo}, the relay runs ${path}`);
  }
  const clients = [];
  const lines = [];
  for (let m = 0; m < SIZE; m++) {
    const c = new WzpClient({ signalUrl: `ws://127.0.0.1:${sig}/v2/signal`, room: 'udpio' });
    const answer = await c.handshake();
    clients.push(c);
    lines.push(`0 ${Buffer.from(answer.bind_token).toString('hex')} ${answer.udp_port}`);
  }
  return {
    proc,
    lines,
    port: Number(lines[0]?.split(' ')[2]),
    async stop() {
      await Promise.all(clients.map((c) => c.close(false).catch(() => {})));
      proc.kill('SIGTERM');
      await new Promise((r) => proc.once('exit', r));
    },
  };
}

/** The load generator gives up on a BIND not acknowledged within 1 s; a loaded machine retries. */
async function load(t, seconds) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await runLoadgen(
        loadgen,
        ['wzp', String(t.port), String(PPS), String(seconds), String(PAYLOAD)],
        t.lines,
      );
    } catch (err) {
      if (attempt >= 3) {
        throw err;
      }
    }
  }
}

async function idle(pid) {
  for (let i = 0; i < 50; i++) {
    const a = procSample(pid);
    await new Promise((r) => setTimeout(r, 100));
    const pct = cpuPct(a, procSample(pid));
    if (pct === null || pct < 10) {
      return;
    }
  }
}

const results = { dgram: [], native: [] };
for (let rep = 0; rep < REPEATS; rep++) {
  for (const udpIo of rep % 2 === 0 ? ['dgram', 'native'] : ['native', 'dgram']) {
    const t = await startRelay(udpIo);
    try {
      // A short warm-up (JIT, socket buffers), then the measured step.
      await load(t, 1);
      await idle(t.proc.pid);
      const before = procSample(t.proc.pid);
      const r = await load(t, SECONDS);
      const after = procSample(t.proc.pid);
      const us = cpuUs(before, after);
      const row = {
        udpIo,
        outPps: Math.round(r.outPps),
        lossPct: Number(r.lossPct.toFixed(2)),
        cpuPct: Math.round(cpuPct(before, after) ?? 0),
        cpuUsPerPkt: us !== null && r.received > 0 ? us / r.received : null,
        p50us: r.p50_us ?? r.p50,
        p99us: r.p99_us ?? r.p99,
      };
      results[udpIo].push(row);
      console.log(JSON.stringify(row));
    } finally {
      await t.stop();
    }
  }
}
for (const udpIo of ['dgram', 'native']) {
  const s = spread(results[udpIo].map((r) => r.cpuUsPerPkt));
  console.log(
    `${udpIo}: CPU µs per delivered packet median ${s.median?.toFixed(2)} (min ${s.min?.toFixed(2)}, max ${s.max?.toFixed(2)}, n ${s.n})`,
  );
}
const d = spread(results.dgram.map((r) => r.cpuUsPerPkt)).median;
const n = spread(results.native.map((r) => r.cpuUsPerPkt)).median;
if (d !== null && n !== null) {
  console.log(`native / dgram = ${(n / d).toFixed(2)}`);
}
process.exit(0);
