#!/usr/bin/env node
// Soak (issue 12 item 9): a `wzp relay` child process on loopback under N
// minutes of join/leave churn plus hostile traffic, printing the relay's
// heap, RSS and open file descriptors every 10 s and their trend at the end.
//
//   npm run soak                       # 1 minute
//   npm run soak -- --minutes 3        # or SOAK_MINUTES=3
//
// Load, all on 127.0.0.1 and bounded in time:
// - a legitimate 3-person room streaming 50 audio frames/s each (its delivery is reported);
// - churn: a participant joins a churn room every 250 ms and leaves 1–3 s later;
// - every second: one attack of the corpus (fixtures/attacks, src/conformance/attacks.ts) on a
//   fresh connection before its handshake, 40 fast-check signalling frames from a joined
//   attacker, 300 hostile datagrams (the datagram corpus and fast-check) from 3 strangers;
// - every 10 s: attack 7 (a fresh participant sending 1 KB Opus24k frames at ~470/s for 2 s).
// Exits 1 if the relay died or the legitimate room fell under 99 % delivery.
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Encoder } from '@msgpack/msgpack';
import fc from 'fast-check';

const ROOT = new URL('..', import.meta.url).pathname;
const { WzpClient } = await import(join(ROOT, 'dist', 'client', 'index.js'));
const { createHeader } = await import(join(ROOT, 'dist', 'wire', 'index.js'));
const { DATAGRAM_ATTACKS, SIGNALLING_ATTACKS, RawPeer, fullAudioFrame } = await import(
  join(ROOT, 'dist', 'conformance', 'attacks.js')
);

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: process.env.SOAK_MINUTES ?? '1' },
    interval: { type: 'string', default: '10' },
  },
});
const minutes = Number(values.minutes);
const intervalS = Number(values.interval);
if (!(minutes > 0 && minutes <= 120)) {
  console.error('--minutes must be in (0, 120]');
  process.exit(2);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ── the relay ─────────────────────────────────────────────────────────────
const dataDir = mkdtempSync(join(tmpdir(), 'wzp-soak-'));
const env = {
  ...process.env,
  WZP_DATA_DIR: dataDir,
  WZP_LOG_LEVEL: 'info',
  WZP_UDP_HOST: '127.0.0.1',
  WZP_UDP_PORT: '0',
  WZP_SIGNAL_HOST: '127.0.0.1',
  WZP_SIGNAL_PORT: '0',
  WZP_HTTP_HOST: '127.0.0.1',
  WZP_HTTP_PORT: '0',
};
const proc = spawn(process.execPath, [join(ROOT, 'dist', 'cli', 'wzp.js'), 'relay'], {
  env,
  stdio: ['ignore', 'pipe', 'pipe'],
});
let started = null;
let logBytes = 0;
let buf = '';
proc.stdout.on('data', (d) => {
  logBytes += d.length;
  if (started !== null) {
    return;
  }
  buf += d.toString();
  for (const line of buf.split('\n')) {
    try {
      const j = JSON.parse(line);
      if (j.msg === 'relay started') {
        started = j;
      }
    } catch {}
  }
});
proc.stderr.on('data', (d) => process.stderr.write(d));
let exited = null;
proc.on('exit', (code, signal) => {
  exited = { code, signal };
});
for (let i = 0; started === null && exited === null && i < 600; i++) {
  await sleep(50);
}
if (started === null) {
  console.error('relay did not start', exited);
  process.exit(1);
}
const pid = started.pid;
const signalPort = Number(started.signal.split(':')[2]?.split('/')[0]);
const url = `ws://127.0.0.1:${signalPort}/v2/signal`;
const metricsUrl = `${started.http}/metrics`;
const status = () => readFileSync(`/proc/${pid}/status`, 'utf8');
const rssMb = () => Number(/VmRSS:\s+(\d+)/.exec(status())?.[1] ?? Number.NaN) / 1024;
const fds = () => readdirSync(`/proc/${pid}/fd`).length;
const metricValue = (text, key) => {
  const line = text.split('\n').find((l) => l.startsWith(`${key} `));
  return line === undefined ? 0 : Number(line.slice(key.length + 1));
};
async function sample(t) {
  const m = await (await fetch(metricsUrl)).text();
  return {
    t,
    heapMb: metricValue(m, 'wzp_nodejs_heap_size_used_bytes') / 2 ** 20,
    rssMb: rssMb(),
    fds: fds(),
    sessions: metricValue(m, 'wzp_relay_active_sessions'),
  };
}

// ── the legitimate room ───────────────────────────────────────────────────
const legit = [];
for (let i = 0; i < 3; i++) {
  legit.push(await WzpClient.connect({ signalUrl: url, room: 'legit', alias: `legit-${i}` }));
}
const udpPort = legit[0].answer.udp_port;
let legitReceived = 0;
for (const c of legit) {
  c.on('media', () => {
    legitReceived++;
  });
}
let legitSeq = 0;
const payload = Buffer.alloc(60, 0x55);
const legitTimer = setInterval(() => {
  for (const c of legit) {
    c.sendMedia(createHeader({ seq: legitSeq, timestamp: legitSeq * 20, fecRatio: 20 }), payload);
  }
  legitSeq++;
}, 20);

// ── churn ─────────────────────────────────────────────────────────────────
let joins = 0;
let joinFailures = 0;
const live = new Set();
const churnTimer = setInterval(() => {
  if (live.size >= 16) {
    return;
  }
  const p = WzpClient.connect({ signalUrl: url, room: `churn-${joins % 4}`, timeoutMs: 10_000 });
  joins++;
  live.add(p);
  p.then(
    async (c) => {
      await sleep(1000 + Math.random() * 2000);
      await c.close(Math.random() < 0.5).catch(() => {});
      live.delete(p);
    },
    () => {
      joinFailures++;
      live.delete(p);
    },
  );
}, 250);

// ── hostile traffic ───────────────────────────────────────────────────────
const enc = new Encoder();
const fuzzFrame = fc.oneof(
  fc.uint8Array({ maxLength: 2048 }),
  fc.jsonValue({ depthSize: 'small' }).map((v) => enc.encode(v)),
  fc
    .tuple(
      fc.constantFrom('Ping', 'CallOffer', 'Hangup', 'SubscriptionUpdate', 'Nope'),
      fc.jsonValue(),
    )
    .map(([t, b]) => enc.encode({ [t]: b })),
);
const fuzzDatagram = fc.oneof(
  fc.uint8Array({ maxLength: 1400 }),
  fc
    .tuple(fc.constantFrom(0x00, 0x01, 0x10, 0x14, 0x15, 0xff), fc.uint8Array({ maxLength: 64 }))
    .map(([t, rest]) => Uint8Array.from([t, ...rest])),
);
const strangers = [];
for (let i = 1; i <= 3; i++) {
  const s = createSocket('udp4');
  s.on('error', () => {});
  await new Promise((r) => s.bind(0, `127.0.9.${i}`, () => r()));
  strangers.push(s);
}
let attacker = null;
let attackTick = 0;
const hostile = { signalFrames: 0, corpus: 0, datagrams: 0, floods: 0, attackerRejoins: 0 };
const hostileTimer = setInterval(() => {
  attackTick++;
  const a = SIGNALLING_ATTACKS[attackTick % SIGNALLING_ATTACKS.length];
  const p = new RawPeer(url);
  p.open().then(
    () => {
      p.send(a.frame());
      hostile.corpus++;
      setTimeout(() => p.close(), 500);
    },
    () => {},
  );
  if (attacker === null || !attacker.isOpen) {
    const next = new RawPeer(url);
    attacker = next;
    hostile.attackerRejoins++;
    next.join('fuzz').catch(() => next.close());
  } else {
    for (const f of fc.sample(fuzzFrame, 40)) {
      attacker.send(f);
      hostile.signalFrames++;
    }
    // Keep what it received bounded (the replies are not needed).
    attacker.received.length = 0;
  }
  const dgrams = fc.sample(fuzzDatagram, 300 - DATAGRAM_ATTACKS.length);
  for (const d of DATAGRAM_ATTACKS) {
    dgrams.push(d.datagram());
  }
  for (const [i, d] of dgrams.entries()) {
    strangers[i % 3].send(d, udpPort, '127.0.0.1');
  }
  hostile.datagrams += dgrams.length;
  if (attackTick % 10 === 5) {
    void flood();
  }
}, 1000);

/** Attack 7: a fresh participant sending 1 KB Opus24k frames at ~470/s for 2 s. */
async function flood() {
  const c = await WzpClient.connect({ signalUrl: url, room: 'legit-flood' }).catch(() => null);
  if (c === null) {
    return;
  }
  hostile.floods++;
  const frame = fullAudioFrame(1000);
  for (let i = 0; i < 94; i++) {
    for (let k = 0; k < 10; k++) {
      c.sendDatagram(frame);
    }
    await sleep(21);
  }
  await c.close(false).catch(() => {});
}

// ── sampling ──────────────────────────────────────────────────────────────
const t0 = performance.now();
const samples = [];
const row = (s) =>
  console.log(
    `${String(Math.round(s.t)).padStart(5)} s  heap ${s.heapMb.toFixed(1).padStart(6)} MB  rss ${s.rssMb.toFixed(1).padStart(6)} MB  fds ${String(s.fds).padStart(4)}  sessions ${String(s.sessions).padStart(3)}`,
  );
console.log(
  `soak: ${minutes} min against relay pid ${pid} (${process.versions.node}); sample every ${intervalS} s`,
);
await sleep(2000);
samples.push(await sample(0));
row(samples[0]);
const endAt = t0 + minutes * 60_000;
while (performance.now() < endAt && exited === null) {
  await sleep(Math.min(intervalS * 1000, Math.max(0, endAt - performance.now())));
  if (exited !== null) {
    break;
  }
  const s = await sample((performance.now() - t0) / 1000);
  samples.push(s);
  row(s);
}

// ── stop and report ───────────────────────────────────────────────────────
clearInterval(hostileTimer);
clearInterval(churnTimer);
clearInterval(legitTimer);
await sleep(500);
const expected = legitSeq * 3 * 2;
const delivery = expected === 0 ? 1 : legitReceived / expected;
// Settled: churn drained, attackers gone.
attacker?.close();
await Promise.allSettled([...live]);
await sleep(3000);
const settled = exited === null ? await sample((performance.now() - t0) / 1000) : null;
for (const c of legit) {
  await c.close(false).catch(() => {});
}
for (const s of strangers) {
  s.close();
}

/** Least-squares slope of y over t, per minute. */
function slope(pts, key) {
  const n = pts.length;
  if (n < 2) {
    return 0;
  }
  const mt = pts.reduce((a, p) => a + p.t, 0) / n;
  const my = pts.reduce((a, p) => a + p[key], 0) / n;
  let num = 0;
  let den = 0;
  for (const p of pts) {
    num += (p.t - mt) * (p[key] - my);
    den += (p.t - mt) ** 2;
  }
  return den === 0 ? 0 : (num / den) * 60;
}
// The trend is taken over the second half (after warm-up and JIT).
const half = samples.slice(Math.floor(samples.length / 2));
const first = samples[0];
const last = samples[samples.length - 1];
const summary = {
  minutes,
  relay_alive: exited === null,
  legit_delivery_pct: Math.round(delivery * 10_000) / 100,
  joins,
  join_failures: joinFailures,
  hostile,
  relay_log_mb: Math.round((logBytes / 2 ** 20) * 10) / 10,
  rss_mb: { first: first.rssMb, max: Math.max(...samples.map((s) => s.rssMb)), last: last.rssMb },
  rss_growth_mb: Math.round((last.rssMb - first.rssMb) * 10) / 10,
  rss_trend_mb_per_min_second_half: Math.round(slope(half, 'rssMb') * 100) / 100,
  heap_mb: {
    first: first.heapMb,
    max: Math.max(...samples.map((s) => s.heapMb)),
    last: last.heapMb,
  },
  heap_trend_mb_per_min_second_half: Math.round(slope(half, 'heapMb') * 100) / 100,
  fds: { first: first.fds, max: Math.max(...samples.map((s) => s.fds)), last: last.fds },
  settled:
    settled === null
      ? null
      : {
          rssMb: settled.rssMb,
          heapMb: settled.heapMb,
          fds: settled.fds,
          sessions: settled.sessions,
        },
};
for (const k of ['rss_mb', 'heap_mb']) {
  for (const f of ['first', 'max', 'last']) {
    summary[k][f] = Math.round(summary[k][f] * 10) / 10;
  }
}
if (summary.settled !== null) {
  summary.settled.rssMb = Math.round(summary.settled.rssMb * 10) / 10;
  summary.settled.heapMb = Math.round(summary.settled.heapMb * 10) / 10;
}
console.log(JSON.stringify(summary, null, 2));
if (exited === null) {
  proc.kill('SIGTERM');
  const t = setTimeout(() => proc.kill('SIGKILL'), 8000);
  await new Promise((r) => proc.once('exit', r));
  clearTimeout(t);
}
rmSync(dataDir, { recursive: true, force: true });
process.exit(summary.relay_alive && delivery >= 0.99 ? 0 : 1);
