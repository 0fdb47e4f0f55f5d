// bench/forwarding: what our relay costs per forwarded packet, its latency
// and its maximum rate, against a raw node:dgram fan-out relay and a C sendto
// relay, measured the same way for every relay.
//
//   npm run bench:forwarding [-- --quick] [-- --scenarios 50x3,10x10,1x50]
//                            [-- --kinds wzp,node-raw] [-- --repeats 5] [-- --ramps 3]
//                            [-- --no-control-plane]
//
// Fairness rules (issue 10): every relay under test is a child process pinned
// to CPU 0; the C load generator (bench/forwarding/loadgen.c), this harness and
// the control-plane driver share CPU 1. No instrument touches one relay and not
// the others during a measured step: the only probes inside a step are two
// /proc reads (CPU ticks, RSS) before and after it, for every relay alike.
// Whatever reads a relay's own endpoints (its configuration, heap) does so only
// between steps, with the relay idle.
//
// Per scenario (all of its relays run side by side, idle when not measured):
//   1. warm-up: one step per relay, discarded (JIT, first-use allocations);
//   2. max-rate ramps, alternating relays (A B C A B C …), RAMPS times: the
//      per-sender rate grows ×1.5 per step until more than 1 % of deliveries
//      are lost twice in a row, then two bisection steps;
//   3. fixed load: 50 % of the lowest median maximum of the scenario's relays,
//      the same offered load for every relay, REPEATS alternating steps each:
//      CPU µs per delivered packet (utime + stime from /proc, all threads) and
//      one-way latency p50/p99/p99.9;
//   4. 1x50 only, control-plane load: the fixed-load steps again, with
//      /metrics scraped every second and 20 joins + 20 leaves per second in
//      other rooms (bench/forwarding/control-load.mjs) for every relay that
//      has those endpoints; raw relays have no control plane and run plain.
//
// Relay variants are just environment (WZP_MEDIA_WORKERS, WZP_UDP_IO, …); a
// variant the relay does not support (no such option in `wzp relay --help`,
// or the relay refuses to start with it) is skipped with the reason.

import { execFile, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { WzpClient } from '../dist/client/index.js';
import { checkArgs, flag, opt } from './args.mjs';
import {
  compileAddon,
  compileC,
  cpuPct,
  cpuUs,
  ctxSwitches,
  freePort,
  hasTaskset,
  inspectHeap,
  inspectorUrl,
  OUT,
  pin,
  pinSelf,
  procSample,
  ROOT,
  runLoadgen,
  spread,
  startProfile,
  threadDelta,
  threadSample,
} from './lib.mjs';

checkArgs(
  `npm run bench:forwarding [-- --quick] [-- --scenarios 50x3,10x10,1x50]
                         [-- --kinds wzp-native,c-raw,…] [-- --repeats N] [-- --ramps N]
                         [-- --no-control-plane]
Environment diagnostics (BENCH_FIXED_OUT, BENCH_IDLE_SPIN, BENCH_PERF_DIR, …): bench/forwarding.mjs and docs/benchmarks.md.`,
  {
    flags: ['--quick', '--no-control-plane'],
    options: ['--scenarios', '--kinds', '--repeats', '--ramps'],
  },
);
const QUICK = flag('--quick');
// Skips 1x50's control-plane phase (a shorter run that compares the I/O paths only).
const NO_CONTROL = flag('--no-control-plane');
const only = opt('--scenarios')?.split(',') ?? null;
const onlyKinds = opt('--kinds')?.split(',') ?? null;
const REPEATS = Number(opt('--repeats') ?? (QUICK ? 2 : 5));
const RAMPS = Number(opt('--ramps') ?? (QUICK ? 1 : 3));
const RAMP_S = QUICK ? 1 : 2;
const FIXED_S = QUICK ? 2 : 3;
const WARMUP_S = QUICK ? 1 : 3;
const WARMUP_OUT_PPS = 8_000;
const GROWTH = 1.5;
const REFINE_STEPS = QUICK ? 1 : 2;
const PAYLOAD = 100;
// Sends the load generator is more than this late for (it did not run: the
// control-plane driver or the harness had its core) are skipped, not sent in
// one burst, so its own stalls do not become the relay's queueing delay; the
// same for every relay, and counted (*sends skipped*). BENCH_GEN_MAX_LATE_US=0:
// every late send goes out at once (the instrument before 2026-12-03 evening).
const GEN_MAX_LATE_US = Number(process.env.BENCH_GEN_MAX_LATE_US ?? 1000);
// BENCH_THREADS=1: logs every measured step's per-thread CPU ticks and context
// switches (read from /proc at the step's edges, as the CPU probe; every relay alike).
const THREADS = process.env.BENCH_THREADS === '1';
const START_OUT_PPS = 16_000;
const MAX_STEPS = 14;
const MIN_STEPS_DOWN = 6;
const FIXED_FRACTION = 0.5;
// Socket buffer of every relay under test (our default udp_buffer_bytes): the
// same for all, since a larger buffer trades loss for queueing delay.
const BUFFER_BYTES = 512 << 10;
// Extra node flags for our relay (e.g. BENCH_RELAY_NODE_FLAGS=--trace-gc to see collections).
const RELAY_NODE_FLAGS = (process.env.BENCH_RELAY_NODE_FLAGS ?? '').split(' ').filter(Boolean);
// The same for the node-raw baseline (e.g. --cpu-prof to compare profiles; bench/profile-summary.mjs).
// Diagnostic: BENCH_PROFILE_DIR=dir profiles every thread of each Node relay
// during its first fixed-load step (through the inspector; that step is then
// not comparable and the run says so) and writes dir/<scenario>-<relay>-<thread>.cpuprofile.
const PROFILE_DIR = process.env.BENCH_PROFILE_DIR ?? null;
// Diagnostic: BENCH_PERF_DIR=dir runs `perf record -e cpu-clock -g` on every relay
// (Node and C alike, all threads) during its first fixed-load step, into
// dir/<scenario>-<relay>.perf.data (read with `perf report -i …`).
const PERF_DIR = process.env.BENCH_PERF_DIR ?? null;
// Diagnostic: BENCH_IDLE_SPIN=1 runs bench/forwarding/idlespin.c, a SCHED_IDLE busy
// loop, on CPU 0 for the whole run, under every relay alike. On a virtual machine
// an idle vCPU halts and a relay's wake-up then waits for the hypervisor: with the
// spinner the latency columns measure the relays instead. Kernel CPU per packet
// rises for every relay (each wake-up preempts the spinner), so CPU is not
// comparable with a run without it.
const IDLE_SPIN = process.env.BENCH_IDLE_SPIN === '1';
// Diagnostic: BENCH_FIXED_OUT=N sets the fixed load to N delivered packets/s for
// every relay (instead of 50 % of the lowest maximum), e.g. to see fixed costs at low load.
const FIXED_OUT = process.env.BENCH_FIXED_OUT ? Number(process.env.BENCH_FIXED_OUT) : null;
// Diagnostic: the control-plane phase's load (issue 10: 20 joins and 20 leaves
// per second, /metrics every 1000 ms). BENCH_CONTROL_JOINS=0 runs scrapes only;
// a huge BENCH_CONTROL_SCRAPE_MS, churn only. Other values are not the issue's scenario.
const CONTROL_JOINS = Number(process.env.BENCH_CONTROL_JOINS ?? 20);
const CONTROL_SCRAPE_MS = Number(process.env.BENCH_CONTROL_SCRAPE_MS ?? 1000);
const RAW_NODE_FLAGS = (process.env.BENCH_RAW_NODE_FLAGS ?? '').split(' ').filter(Boolean);
const WZP_BIN = join(ROOT, 'dist', 'cli', 'wzp.js');
// Both Node relays run with an inspector (idle, no session attached during a
// step) so that the heap can be read after a forced collection between steps.
const INSPECT = '--inspect=127.0.0.1:0';

const LOADGEN = compileC('loadgen', 'loadgen.c');
if (LOADGEN === null) {
  console.error('bench:forwarding needs a C compiler (cc) for its load generator; install gcc.');
  process.exit(2);
}
const C_RELAY = compileC('fwd-relay', 'relay.c');
const HOSTGAP = compileC('hostgap', 'hostgap.c');
const WAKECOST = compileC('wakecost', 'wakecost.c');
const NATIVE_FWD = onlyKinds?.includes('node-raw-c')
  ? compileAddon('nativefwd', 'nativefwd.c')
  : null;
const IDLESPIN = IDLE_SPIN ? compileC('idlespin', 'idlespin.c') : null;
const pinned = pinSelf(1);
const log = (line) => process.stderr.write(`${line}\n`);
const fmt = (v, d = 0) =>
  v === null || v === undefined || !Number.isFinite(v)
    ? '—'
    : Number(v).toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
const sp = (s, d = 0) =>
  s === null || s === undefined || s.median === null
    ? '—'
    : s.n > 1
      ? `${fmt(s.median, d)} (${fmt(s.min, d)}–${fmt(s.max, d)})`
      : fmt(s.median, d);

// ── relay variants ────────────────────────────────────────────────────────────
const relayHelp = execFileSync(process.execPath, [WZP_BIN, 'relay', '--help'], {
  encoding: 'utf8',
});
const FEATURES = {
  workers: relayHelp.includes('--media-workers'),
  udpIo: relayHelp.includes('--udp-io'),
};
// The relay under test has one core (CPU 0), so its media runs in one worker
// unless a variant says otherwise.
const oneWorker = FEATURES.workers ? { WZP_MEDIA_WORKERS: '1' } : {};
const VARIANTS = {
  wzp: {
    family: 'wzp',
    env: { ...oneWorker },
    about: FEATURES.workers ? 'our relay, defaults, media_workers = 1' : 'our relay, defaults',
  },
  'wzp-w2': {
    family: 'wzp',
    requires: 'workers',
    env: { WZP_MEDIA_WORKERS: '2' },
    about: 'media_workers = 2 (both on CPU 0)',
  },
  'wzp-dgram': {
    family: 'wzp',
    requires: 'udpIo',
    env: { ...oneWorker, WZP_UDP_IO: 'dgram' },
    about: 'udp_io = "dgram"',
  },
  'wzp-native': {
    family: 'wzp',
    requires: 'udpIo',
    env: { ...oneWorker, WZP_UDP_IO: 'native' },
    about: 'udp_io = "native" (add-on: sendmmsg + recvmmsg)',
  },
  // Diagnostic: the add-on's send with dgram's receive (what native was before the
  // batched receive), so the receive's share of the gap to C is measured, not guessed.
  'wzp-native-send': {
    family: 'wzp',
    requires: 'udpIo',
    env: { ...oneWorker, WZP_UDP_IO: 'native', WZP_NATIVE_RECV_DISABLE: '1' },
    about: 'udp_io = "native" with WZP_NATIVE_RECV_DISABLE=1 (sendmmsg, dgram receive)',
  },
  // Diagnostic: the native path sending on the media socket itself (no send-only
  // socket), so what the send-only socket saves is measured in the same alternation.
  'wzp-native-onesock': {
    family: 'wzp',
    requires: 'udpIo',
    env: { ...oneWorker, WZP_UDP_IO: 'native', WZP_NATIVE_SEND_SOCKET: '0' },
    about: 'udp_io = "native" with WZP_NATIVE_SEND_SOCKET=0 (sendmmsg on the media socket itself)',
  },
  'wzp-trunking': {
    family: 'wzp',
    env: { ...oneWorker, WZP_TRUNKING: 'true' },
    about: 'trunking = true',
  },
  'node-raw': { family: 'raw', about: 'node:dgram fan-out, no protocol' },
  // A/A control: a second, identical node-raw measured in the same alternation
  // (fixed load only). Its ratio to node-raw is this run's noise floor.
  'node-raw-b': {
    family: 'raw',
    twin: 'node-raw',
    noRamp: true,
    about: 'a second, identical node-raw: the A/A control (noise floor), fixed load only',
  },
  'c-raw': { family: 'raw', about: 'C recvfrom/sendto fan-out, no protocol' },
  // Diagnostics (--kinds only): the floor of JavaScript on the native path,
  // and of Node's event loop with no JavaScript per datagram.
  'node-raw-c': {
    family: 'raw',
    about:
      "relay.c's loop inside Node: a libuv poll handle, recvmmsg and sendmmsg in C (bench/forwarding/nativefwd.c), no JavaScript per datagram",
  },
  'node-raw-native': {
    family: 'raw',
    about:
      "node-raw's protocol on our add-on (recvmmsg, one JS call per batch, one sendmmsg per input), no protocol",
  },
};
const REQUIRES_WHY = {
  workers: 'this relay has no media_workers setting yet',
  udpIo: 'this relay has no udp_io setting yet',
};
// With the udp_io setting, the large-room scenarios compare both I/O paths.
// (wzp-native-send, the batched receive's diagnostic, runs only with --kinds.)
const ioPair = FEATURES.udpIo ? ['wzp-native', 'wzp-native-onesock', 'wzp-dgram'] : ['wzp'];
for (const name of only ?? []) {
  if (!['50x3', '10x10', '1x50'].includes(name)) {
    console.error(`unknown scenario ${name}; scenarios: 50x3, 10x10, 1x50`);
    process.exit(2);
  }
}
for (const k of onlyKinds ?? []) {
  if (VARIANTS[k] === undefined) {
    console.error(`unknown relay kind ${k}; kinds: ${Object.keys(VARIANTS).join(', ')}`);
    process.exit(2);
  }
}
const SCENARIOS = [
  { name: '50x3', rooms: 50, size: 3, kinds: ['wzp', 'wzp-w2', 'node-raw', 'node-raw-b', 'c-raw'] },
  { name: '10x10', rooms: 10, size: 10, kinds: [...ioPair, 'node-raw', 'node-raw-b', 'c-raw'] },
  {
    name: '1x50',
    rooms: 1,
    size: 50,
    kinds: [...ioPair, 'node-raw', 'node-raw-b', 'c-raw'],
    controlPlane: true,
  },
]
  .filter((s) => only === null || only.includes(s.name))
  .map((s) => ({
    ...s,
    kinds: onlyKinds === null ? s.kinds : onlyKinds.filter((k) => VARIANTS[k] !== undefined),
  }));

// ── starting relays ───────────────────────────────────────────────────────────
function waitLine(proc) {
  return new Promise((resolve, reject) => {
    let buf = '';
    proc.stdout.on('data', (d) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        resolve(buf.slice(0, nl).trim());
      }
    });
    proc.once('exit', (code) => reject(new Error(`exited with ${code}`)));
  });
}

/** Starts a relay variant and joins the scenario's participants; lines are the load generator's input. */
async function startTarget(kind, sc) {
  const v = VARIANTS[kind];
  if (v.family === 'wzp') {
    const [sig, http] = [await freePort(), await freePort()];
    const env = {
      ...process.env,
      WZP_UDP_HOST: '127.0.0.1',
      // 0: the relay (or each media worker) takes a free port; participants
      // bind to the port their CallAnswer names.
      WZP_UDP_PORT: '0',
      WZP_SIGNAL_HOST: '127.0.0.1',
      WZP_SIGNAL_PORT: String(sig),
      WZP_HTTP_HOST: '127.0.0.1',
      WZP_HTTP_PORT: String(http),
      WZP_LOG_LEVEL: 'warn',
      WZP_MAX_SESSIONS: '100000',
      WZP_MAX_PARTICIPANTS_PER_ROOM: '1000',
      WZP_SESSION_TIMEOUT_MS: '600000',
      WZP_SIGNAL_RATE_PER_SEC: '10000',
      // Every participant and the control-plane driver connect from 127.0.0.1.
      WZP_MAX_CONNECTIONS_PER_IP: '100000',
      WZP_MAX_SESSIONS_PER_SUBJECT: '100000',
      WZP_MAX_SESSIONS_PER_IDENTITY: '100000',
      // The load generator's senders exceed an audio profile's rate by design:
      // the meters run and count (their CPU is measured) but drop nothing,
      // like the raw relays, and hang nobody up.
      WZP_MEDIA_POLICING: 'observe',
      WZP_DATA_DIR: mkdtempSync(join(tmpdir(), 'wzp-bench-')),
      WZP_TRUNKING: 'false',
      WZP_UDP_BUFFER_BYTES: String(BUFFER_BYTES),
      ...v.env,
    };
    const [cmd, argv] = pin(0, process.execPath, [INSPECT, ...RELAY_NODE_FLAGS, WZP_BIN, 'relay']);
    const proc = spawn(cmd, argv, {
      env,
      stdio: ['ignore', RELAY_NODE_FLAGS.length > 0 ? 'inherit' : 'ignore', 'pipe'],
    });
    let stderr = '';
    proc.stderr.on('data', (d) => {
      stderr = (stderr + d).slice(-4000);
      if (RELAY_NODE_FLAGS.length > 0) {
        process.stderr.write(d);
      }
    });
    let exited = null;
    proc.once('exit', (code, signal) => {
      exited = signal ?? code;
    });
    const httpUrl = `http://127.0.0.1:${http}`;
    for (let i = 0; ; i++) {
      if (exited !== null) {
        throw new Error(
          `relay exited (${exited}) at start: ${stderr.trim().split('\n').slice(-3).join(' | ')}`,
        );
      }
      try {
        if ((await fetch(`${httpUrl}/readyz`)).ok) {
          break;
        }
      } catch {}
      if (i > 300) {
        proc.kill('SIGKILL');
        throw new Error('relay did not become ready in 15 s');
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    const signalUrl = `ws://127.0.0.1:${sig}/v2/signal`;
    const clients = [];
    const lines = [];
    const ports = new Set();
    for (let r = 0; r < sc.rooms; r++) {
      for (let m = 0; m < sc.size; m++) {
        const c = new WzpClient({ signalUrl, room: `bench-${r}` });
        const answer = await c.handshake();
        clients.push(c);
        // With media workers a room's UDP port is its worker's.
        const port = answer.udp_port;
        ports.add(port);
        lines.push(`${r} ${Buffer.from(answer.bind_token).toString('hex')} ${port}`);
      }
    }
    // Read once, before any measurement: what the relay says it runs.
    const metrics = await (await fetch(`${httpUrl}/metrics`)).text();
    const facts = metrics
      .split('\n')
      .filter((l) =>
        /^wzp_relay_udp_(recv_)?io\{.* 1$|^wzp_relay_udp_send_sockets |^wzp_media_worker_(up|sessions)\{/.test(
          l,
        ),
      )
      .slice(0, 9);
    return {
      kind,
      proc,
      port: [...ports][0],
      mode: 'wzp',
      lines,
      httpUrl,
      signalUrl,
      udpPorts: [...ports],
      facts,
      stderr: () => stderr,
      inspector: () => inspectorUrl(stderr),
      alive: () => exited === null,
      async stop() {
        await Promise.all(clients.map((c) => c.close(false).catch(() => {})));
        if (exited === null) {
          proc.kill('SIGTERM');
          await new Promise((r) => proc.once('exit', r));
        }
      },
    };
  }
  if (kind === 'c-raw' && C_RELAY === null) {
    throw new Error('no C compiler for the C relay');
  }
  if (kind === 'node-raw-c' && NATIVE_FWD === null) {
    throw new Error('cannot build bench/forwarding/nativefwd.c (cc and Node headers are needed)');
  }
  const nodeScript =
    kind === 'node-raw' || VARIANTS[kind].twin === 'node-raw'
      ? 'raw-relay.mjs'
      : kind === 'node-raw-native' || kind === 'node-raw-c'
        ? 'raw-relay-native.mjs'
        : null;
  const [cmd, argv] =
    nodeScript !== null
      ? pin(0, process.execPath, [
          INSPECT,
          ...RAW_NODE_FLAGS,
          join(ROOT, 'bench', 'forwarding', nodeScript),
          '0',
          String(BUFFER_BYTES),
          ...(kind === 'node-raw-c' ? ['c', NATIVE_FWD] : []),
        ])
      : pin(0, C_RELAY, ['0', String(BUFFER_BYTES)]);
  const proc = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d) => {
    stderr = (stderr + d).slice(-4000);
  });
  let exited = null;
  proc.once('exit', (code, signal) => {
    exited = signal ?? code;
  });
  const port = Number(await waitLine(proc));
  const lines = [];
  for (let r = 0; r < sc.rooms; r++) {
    for (let m = 0; m < sc.size; m++) {
      lines.push(`${r} -`);
    }
  }
  return {
    kind,
    proc,
    port,
    mode: 'raw',
    lines,
    httpUrl: null,
    signalUrl: null,
    udpPorts: [port],
    facts: [],
    stderr: () => stderr,
    inspector: () => inspectorUrl(stderr),
    alive: () => exited === null,
    async stop() {
      if (exited === null) {
        proc.kill('SIGKILL');
        await new Promise((r) => proc.once('exit', r));
      }
    },
  };
}

// ── steps ─────────────────────────────────────────────────────────────────────
const outPerSender = (sc) => sc.rooms * sc.size * (sc.size - 1);

/** One load generator run; a run that fails (e.g. no BIND ack from an overloaded relay) counts as 100 % loss. */
async function loadStep(t, pps, seconds) {
  try {
    return await runLoadgen(
      LOADGEN,
      [t.mode, String(t.port), String(pps), String(seconds), String(PAYLOAD)],
      t.lines,
      { LOADGEN_MAX_LATE_US: String(GEN_MAX_LATE_US) },
    );
  } catch (err) {
    return { failed: String(err.message), lossPct: 100, outPps: 0, received: 0, seconds };
  }
}

/**
 * Waits until the relay has worked off what the last step left queued (its
 * CPU below 10 % over 100 ms), so that one step's backlog never delays the
 * next step's BINDs or inflates its latency. Gives up after 10 s.
 */
async function waitIdle(t) {
  for (let i = 0; i < 100; i++) {
    const a = procSample(t.proc.pid);
    await new Promise((res) => setTimeout(res, 100));
    const pct = cpuPct(a, procSample(t.proc.pid));
    if (pct === null || pct < 10) {
      return;
    }
  }
}

/** `perf record` of every thread of `pid` until the returned stop function is awaited. */
function startPerf(pid, file) {
  mkdirSync(PERF_DIR, { recursive: true });
  const [cmd, argv] = pin(1, 'perf', [
    'record',
    '-q',
    '-e',
    'cpu-clock',
    '-g',
    '-p',
    String(pid),
    '-o',
    file,
  ]);
  const p = spawn(cmd, argv, { stdio: 'ignore' });
  let done = false;
  const ended = new Promise((resolve) => {
    p.once('exit', resolve);
    // No perf here: the step runs unrecorded, the run goes on.
    p.once('error', (err) => {
      log(`  perf record failed: ${err.message}`);
      resolve();
    });
  }).then(() => {
    done = true;
  });
  return () => {
    if (!done) {
      p.kill('SIGINT');
    }
    return ended;
  };
}

/** A measured step: /proc before and after, nothing else touches the relay. */
async function measuredStep(t, pps, seconds) {
  await waitIdle(t);
  const cs0 = ctxSwitches(t.proc.pid);
  const th0 = THREADS ? threadSample(t.proc.pid) : null;
  const before = procSample(t.proc.pid);
  const r = await loadStep(t, pps, seconds);
  const after = procSample(t.proc.pid);
  const cs1 = ctxSwitches(t.proc.pid);
  if (THREADS) {
    const rows = threadDelta(th0, threadSample(t.proc.pid));
    const per = (n) => fmt((n / Math.max(1, r.received)) * 1000, 2);
    log(
      `  threads ${t.kind} @ ${Math.round(r.outPps)}/s (thread[tid] CPU ticks/of them kernel in the step, voluntary/involuntary switches per 1000 delivered): ${rows
        .map((x) => `${x.name}[${x.tid}] ${x.ticks}/${x.sysTicks} ${per(x.vol)}/${per(x.invol)}`)
        .join('; ')}`,
    );
  }
  r.ctxSwitches = cs0 && cs1 ? { vol: cs1.vol - cs0.vol, invol: cs1.invol - cs0.invol } : null;
  r.ppsPerSender = pps;
  r.cpuPct = cpuPct(before, after);
  const us = cpuUs(before, after);
  r.cpuUsPerPkt = us !== null && r.received > 0 ? us / r.received : null;
  // Its kernel share (ticks of 10 ms: ~300 per step at full load).
  r.sysShare =
    before && after && after.ticks > before.ticks
      ? (after.sysTicks - before.sysTicks) / (after.ticks - before.ticks)
      : null;
  r.rssBytes = after?.rssBytes ?? null;
  return r;
}

/**
 * Host steadiness: hostgap.c pinned to each CPU at once for STEADY_S seconds, with no
 * relay running; null without the probe or a second core.
 */
const STEADY_S = 2;
async function hostSteadiness() {
  if (HOSTGAP === null || !hasTaskset || cpus().length < 2) {
    return null;
  }
  const one = (cpu) =>
    new Promise((resolve) => {
      const [cmd, argv] = pin(cpu, HOSTGAP, [String(STEADY_S)]);
      execFile(cmd, argv, (err, stdout) => {
        resolve(err ? null : JSON.parse(stdout));
      });
    });
  const [cpu0, cpu1] = await Promise.all([one(0), one(1)]);
  // Then what a sleep and wake-up costs here (wakecost.c pins its own two threads).
  const wake = (gap) =>
    new Promise((resolve) => {
      if (WAKECOST === null) {
        resolve(null);
        return;
      }
      execFile(WAKECOST, [String(gap), String(Math.round(1e6 / gap))], (err, stdout) => {
        resolve(err ? null : JSON.parse(stdout));
      });
    });
  const wake100 = await wake(100);
  const wake450 = await wake(450);
  return { cpu0, cpu1, wake100, wake450 };
}
function steadinessText(s) {
  if (s === null) {
    return 'not measured';
  }
  const cpu = (name, x) =>
    x === null
      ? `${name} —`
      : `${name} lost ${fmt(x.lost_ms, 1)} ms in ${x.gaps} gaps (max ${fmt(x.max_gap_us / 1000, 1)} ms)`;
  const wake = (x) => (x === null ? '—' : `${fmt(x.cpu_us_per_wake, 1)} µs`);
  return `${cpu('CPU 0', s.cpu0)}, ${cpu('CPU 1', s.cpu1)}; a thread's sleep and wake-up costs ${wake(s.wake100)} of CPU 100 µs apart, ${wake(s.wake450)} 450 µs apart`;
}

/** The max-rate ramp from `startPps` per sender; returns the highest passing step. */
async function ramp(t, sc, startPps) {
  let pps = startPps;
  let best = null;
  let failed = null;
  let forwarded = 0;
  const steps = [];
  const step = async (rate) => {
    let r = await measuredStep(t, rate, RAMP_S);
    forwarded += r.received;
    if (r.lossPct > 1) {
      // One retry: a single noisy step must not end the ramp; a real limit fails twice.
      r = await measuredStep(t, rate, RAMP_S);
      forwarded += r.received;
    }
    steps.push({ ppsPerSender: rate, outPps: Math.round(r.outPps), lossPct: r.lossPct });
    log(
      `  ramp  ${t.kind.padEnd(12)} ${sc.name.padEnd(6)} ${Math.round(rate * outPerSender(sc))
        .toString()
        .padStart(
          7,
        )} offered → ${Math.round(r.outPps).toString().padStart(7)} out/s, loss ${r.lossPct.toFixed(2)} %, cpu ${r.cpuPct?.toFixed(0)} %${r.failed ? ` (${r.failed})` : ''}`,
    );
    return r;
  };
  for (let i = 0; i < MAX_STEPS; i++) {
    const r = await step(pps);
    if (r.lossPct > 1) {
      failed = pps;
      break;
    }
    best = r;
    pps *= GROWTH;
  }
  // The start was already too much (a slow relay or a busy machine): go down
  // until a step passes.
  for (let i = 0; i < MIN_STEPS_DOWN && best === null && failed !== null; i++) {
    const r = await step(failed / GROWTH);
    if (r.lossPct > 1) {
      failed /= GROWTH;
    } else {
      best = r;
    }
  }
  // Geometric bisection between the last passing and the first failing rate.
  for (let i = 0; i < REFINE_STEPS && best !== null && failed !== null; i++) {
    const mid = Math.sqrt(best.ppsPerSender * failed);
    const r = await step(mid);
    if (r.lossPct > 1) {
      failed = mid;
    } else {
      best = r;
    }
  }
  return {
    maxOutPps: best === null ? 0 : Math.round(best.outPps),
    cpuAtMaxPct: best?.cpuPct ?? null,
    steps,
    forwarded,
  };
}

/** Starts the control-plane driver against a relay; resolves once it is running. */
function startControlLoad(t) {
  return new Promise((resolve, reject) => {
    // Inherits this process's CPU (the load generator's core).
    const p = spawn(
      process.execPath,
      [
        join(ROOT, 'bench', 'forwarding', 'control-load.mjs'),
        t.signalUrl,
        t.httpUrl,
        String(CONTROL_JOINS),
        String(CONTROL_SCRAPE_MS),
      ],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    let out = '';
    let ready = false;
    const done = new Promise((res) => {
      p.once('exit', () => {
        const last = out.trim().split('\n').pop();
        try {
          res(JSON.parse(last));
        } catch {
          res(null);
        }
      });
    });
    p.stdout.on('data', (d) => {
      out += d;
      if (!ready && out.includes('ready\n')) {
        ready = true;
        resolve({
          proc: p,
          async stop() {
            p.stdin.end();
            return done;
          },
        });
      }
    });
    p.once('exit', (code) => {
      if (!ready) {
        reject(new Error(`control-load exited with ${code}`));
      }
    });
  });
}

/**
 * Between steps, the relay idle: RSS from /proc for every relay; for the Node
 * relays (ours and node-raw alike, both started with --inspect) the heap used
 * after a forced full collection on every thread, through the inspector.
 */
/** Receive batching of our relay from one /metrics scrape (summed over its workers). */
async function ioCounters(httpUrl) {
  const text = await (await fetch(`${httpUrl}/metrics`)).text();
  const sum = (name) => {
    let total = 0;
    for (const line of text.split('\n')) {
      if (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) {
        total += Number(line.slice(line.lastIndexOf(' ') + 1));
      }
    }
    return total;
  };
  const batches = sum('wzp_relay_udp_recv_batches_total');
  if (batches === 0) {
    return { datagramsPerBatch: null, callsPerBatch: null };
  }
  return {
    datagramsPerBatch: sum('wzp_relay_packets_received_total') / batches,
    callsPerBatch: sum('wzp_relay_udp_recv_syscalls_total') / batches,
  };
}

async function memorySample(t) {
  await waitIdle(t);
  const url = t.inspector();
  const heap = url === null ? null : await inspectHeap(url);
  await waitIdle(t);
  const s = procSample(t.proc.pid);
  return {
    rssBytes: s?.rssBytes ?? null,
    heapBytes: heap?.totalBytes ?? null,
    heapThreads: heap === null ? null : 1 + heap.workerBytes.length,
  };
}

// ── the run ───────────────────────────────────────────────────────────────────
const skipped = [];
const scenarioResults = [];
const t0 = performance.now();
log(
  `bench:forwarding: relay options ${JSON.stringify(FEATURES)}; ${QUICK ? 'quick' : 'full'} run, ${RAMPS} ramps, ${REPEATS} fixed-load repeats`,
);

const steadyBefore = await hostSteadiness();
log(`  host steadiness before the run: ${steadinessText(steadyBefore)}`);

let idleSpinner = null;
let idleSpinning = false;
if (IDLE_SPIN) {
  if (IDLESPIN === null || !hasTaskset) {
    log('  BENCH_IDLE_SPIN: needs cc and taskset; the run goes on without the spinner');
  } else {
    const [cmd, argv] = pin(0, IDLESPIN, []);
    idleSpinner = spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'inherit'] });
    idleSpinning = true;
    log('  BENCH_IDLE_SPIN: a SCHED_IDLE busy loop runs on CPU 0 under every relay');
  }
}
process.once('exit', () => idleSpinner?.kill('SIGKILL'));

for (const sc of SCENARIOS) {
  const targets = [];
  for (const kind of sc.kinds) {
    const v = VARIANTS[kind];
    if (v.requires !== undefined && !FEATURES[v.requires]) {
      skipped.push({ scenario: sc.name, kind, reason: REQUIRES_WHY[v.requires] });
      log(`  skip  ${kind} in ${sc.name}: ${REQUIRES_WHY[v.requires]}`);
      continue;
    }
    try {
      targets.push(await startTarget(kind, sc));
    } catch (err) {
      // A variant the relay refuses at start (or no C compiler) is skipped;
      // any other failure (joins refused, say) would publish a table without
      // the relay under test, so the run stops.
      if (!/^relay exited \(|^no C compiler/.test(err.message)) {
        throw new Error(`${kind} in ${sc.name}: ${err.message}`);
      }
      skipped.push({ scenario: sc.name, kind, reason: err.message });
      log(`  skip  ${kind} in ${sc.name}: ${err.message}`);
    }
  }
  if (targets.length === 0) {
    continue;
  }
  const perSender = outPerSender(sc);
  const rec = new Map(
    targets.map((t) => [
      t.kind,
      {
        kind: t.kind,
        about: VARIANTS[t.kind].about,
        facts: t.facts,
        udpPorts: t.udpPorts.length,
        ramps: [],
        fixed: [],
        control: [],
        controlDriver: [],
        forwarded: 0,
      },
    ]),
  );
  try {
    // 1. Warm-up, discarded.
    for (const t of targets) {
      const w = await measuredStep(t, WARMUP_OUT_PPS / perSender, WARMUP_S);
      log(
        `  warm  ${t.kind.padEnd(12)} ${sc.name.padEnd(6)} p99 ${w.p99_us} µs, loss ${w.lossPct.toFixed(2)} % (discarded)`,
      );
    }
    const mem0 = new Map();
    for (const t of targets) {
      mem0.set(t.kind, await memorySample(t));
    }
    // 2. Max-rate ramps, alternating.
    for (let rep = 0; rep < RAMPS; rep++) {
      for (const t of targets) {
        if (VARIANTS[t.kind].noRamp) {
          continue;
        }
        const r = rec.get(t.kind);
        const first = r.ramps[0]?.maxOutPps ?? 0;
        const startOut = Math.max(START_OUT_PPS, first / GROWTH ** 2);
        const res = await ramp(t, sc, startOut / perSender);
        r.ramps.push(res);
        r.forwarded += res.forwarded;
      }
    }
    for (const r of rec.values()) {
      r.max = spread(r.ramps.map((x) => x.maxOutPps));
    }
    // 3. Fixed load: the same for every relay, below each one's limit.
    const lowest = Math.min(
      ...[...rec.values()].filter((r) => r.ramps.length > 0).map((r) => r.max.median ?? 0),
    );
    const fixedOut = FIXED_OUT ?? Math.max(1000, Math.round(FIXED_FRACTION * lowest));
    const fixedPps = fixedOut / perSender;
    log(`  fixed load ${sc.name}: ${fixedOut} out/s offered to every relay`);
    const phases = [{ key: 'fixed', control: false }];
    if (sc.controlPlane && !NO_CONTROL) {
      phases.push({ key: 'control', control: true });
    }
    const mem1 = new Map();
    for (const phase of phases) {
      if (phase.control) {
        // Memory is compared over the ramps and the plain fixed-load steps;
        // the control-plane phase adds sessions of its own.
        for (const t of targets) {
          mem1.set(t.kind, await memorySample(t));
        }
      }
      for (let rep = 0; rep < REPEATS; rep++) {
        for (const t of targets) {
          if (phase.control && (t.kind === 'c-raw' || VARIANTS[t.kind].noRamp)) {
            continue;
          }
          const r = rec.get(t.kind);
          let driver = null;
          if (phase.control && t.httpUrl !== null) {
            await waitIdle(t);
            driver = await startControlLoad(t);
          }
          const profiling =
            PROFILE_DIR !== null && !phase.control && rep === 0 && t.inspector() !== null
              ? await startProfile(t.inspector())
              : null;
          const perf =
            PERF_DIR !== null && !phase.control && rep === 0
              ? startPerf(t.proc.pid, join(PERF_DIR, `${sc.name}-${t.kind}.perf.data`))
              : null;
          const s = await measuredStep(t, fixedPps, FIXED_S);
          if (perf !== null) {
            await perf();
          }
          if (profiling !== null) {
            mkdirSync(PROFILE_DIR, { recursive: true });
            for (const { thread, profile } of await profiling()) {
              writeFileSync(
                join(PROFILE_DIR, `${sc.name}-${t.kind}-${thread}.cpuprofile`),
                JSON.stringify(profile),
              );
            }
          }
          if (driver !== null) {
            r.controlDriver.push(await driver.stop());
          }
          if (!phase.control) {
            r.forwarded += s.received;
          }
          r[phase.key].push({
            outPps: Math.round(s.outPps),
            lossPct: s.lossPct,
            p50Us: s.p50_us,
            p99Us: s.p99_us,
            p999Us: s.p999_us,
            p50KUs: s.p50_k_us,
            p99KUs: s.p99_k_us,
            p999KUs: s.p999_k_us,
            genStalls: s.stalls,
            genStallMs: s.stall_ms,
            genMaxGapUs: s.max_gap_us,
            genSkipped: s.skipped,
            genSkippedPct:
              s.sent === undefined || s.skipped === undefined
                ? null
                : (100 * s.skipped) / Math.max(1, s.sent + s.skipped),
            cpuPct: s.cpuPct,
            cpuUsPerPkt: s.cpuUsPerPkt,
            ctxSwitches: s.ctxSwitches,
            received: s.received,
            sysShare: s.sysShare,
            failed: s.failed,
          });
          log(
            `  ${phase.control ? 'ctrl ' : 'fixed'} ${t.kind.padEnd(12)} ${sc.name.padEnd(6)} #${rep + 1} ${Math.round(s.outPps)} out/s, loss ${s.lossPct.toFixed(2)} %, ${s.cpuUsPerPkt?.toFixed(2)} µs/pkt, p50 ${s.p50_us} p99 ${s.p99_us} p99.9 ${s.p999_us} µs (kernel stamp: p99 ${s.p99_k_us} p99.9 ${s.p999_k_us}; generator stalls ${s.stalls}, ${s.stall_ms} ms, max gap ${s.max_gap_us} µs, skipped ${s.skipped})${driver ? ` (control: ${JSON.stringify(r.controlDriver.at(-1))})` : ''}`,
          );
        }
      }
    }
    for (const t of targets) {
      const r = rec.get(t.kind);
      const m0 = mem0.get(t.kind);
      const m1 = mem1.get(t.kind) ?? (await memorySample(t));
      // Our relay's I/O counters, read once with the relay idle (outside every measured step).
      r.io = t.mode === 'wzp' && t.alive() ? await ioCounters(t.httpUrl) : null;
      const per = (a, b) => (a === null || b === null ? null : (b - a) / Math.max(1, r.forwarded));
      r.memory = {
        rssStartBytes: m0.rssBytes,
        rssEndBytes: m1.rssBytes,
        rssDeltaPerPkt: per(m0.rssBytes, m1.rssBytes),
        heapStartBytes: m0.heapBytes,
        heapEndBytes: m1.heapBytes,
        heapDeltaPerPkt: per(m0.heapBytes, m1.heapBytes),
        heapThreads: m1.heapThreads,
      };
      for (const key of ['fixed', 'control']) {
        const xs = r[key];
        r[`${key}Summary`] =
          xs.length === 0
            ? null
            : {
                outPps: spread(xs.map((x) => x.outPps)),
                lossPct: spread(xs.map((x) => x.lossPct)),
                cpuUsPerPkt: spread(xs.map((x) => x.cpuUsPerPkt)),
                p50Us: spread(xs.map((x) => x.p50Us)),
                p99Us: spread(xs.map((x) => x.p99Us)),
                p999Us: spread(xs.map((x) => x.p999Us)),
                genStallMs: spread(xs.map((x) => x.genStallMs ?? null)),
                genSkippedPct: spread(xs.map((x) => x.genSkippedPct ?? null)),
              };
      }
      if (!t.alive()) {
        r.died = t.stderr().trim().split('\n').slice(-3).join(' | ');
      }
    }
    scenarioResults.push({
      scenario: sc.name,
      rooms: sc.rooms,
      size: sc.size,
      fixedOutPps: fixedOut,
      relays: [...rec.values()],
    });
  } finally {
    for (const t of targets) {
      await t.stop();
    }
  }
}
const elapsedS = (performance.now() - t0) / 1000;
idleSpinner?.kill('SIGKILL');
idleSpinner = null;

// ── report ────────────────────────────────────────────────────────────────────
/** Ratio of medians, with the spread of the per-repeat ratios (adjacent steps of the alternation). */
function ratio(a, b, pick) {
  if (!a || !b) {
    return null;
  }
  const n = Math.min(a.length, b.length);
  const pairs = [];
  for (let i = 0; i < n; i++) {
    const x = pick(a[i]);
    const y = pick(b[i]);
    if (x !== null && y !== null && y > 0) {
      pairs.push(x / y);
    }
  }
  const ma = spread(a.map(pick)).median;
  const mb = spread(b.map(pick)).median;
  return {
    value: ma !== null && mb !== null && mb > 0 ? ma / mb : null,
    pairs: spread(pairs),
  };
}
const rt = (r) =>
  r === null || r.value === null
    ? '—'
    : r.pairs.n > 1
      ? `${fmt(r.value, 2)} (${fmt(r.pairs.min, 2)}–${fmt(r.pairs.max, 2)})`
      : fmt(r.value, 2);

const fixedRows = [];
const rateRows = [];
const memRows = [];
const ioRows = [];
for (const s of scenarioResults) {
  const node = s.relays.find((r) => r.kind === 'node-raw');
  const c = s.relays.find((r) => r.kind === 'c-raw');
  for (const phase of ['fixed', 'control']) {
    for (const r of s.relays) {
      const sum = r[`${phase}Summary`];
      if (sum === null) {
        continue;
      }
      const base = node?.[phase];
      const label =
        phase === 'control'
          ? `${s.scenario} + control plane`
          : `${s.scenario} @ ${fmt(s.fixedOutPps)}/s`;
      const relay =
        phase !== 'control'
          ? r.kind
          : r.kind.startsWith('wzp')
            ? `${r.kind} (scrape + churn)`
            : `${r.kind} (no control plane)`;
      fixedRows.push(
        `| ${label} | ${relay} | ${sp(sum.cpuUsPerPkt, 2)} | ${r.kind === 'node-raw' ? '1.00' : rt(ratio(r[phase], base, (x) => x.cpuUsPerPkt))} | ${sp(sum.p50Us)} | ${sp(sum.p99Us)} | ${sp(sum.p999Us)} | ${r.kind === 'node-raw' ? '1.00' : rt(ratio(r[phase], base, (x) => x.p99Us))} | ${fmt(sum.lossPct.max, 2)} | ${sp(sum.genStallMs, 1)} | ${sp(sum.genSkippedPct, 2)} |`,
      );
    }
  }
  for (const r of s.relays) {
    const rampsOf = (x) => x?.ramps.map((y) => ({ v: y.maxOutPps }));
    if (r.ramps.length > 0) {
      rateRows.push(
        `| ${s.scenario} | ${r.kind} | ${sp(r.max)} | ${node ? rt(ratio(rampsOf(r), rampsOf(node), (x) => x.v)) : '—'} | ${c ? rt(ratio(rampsOf(r), rampsOf(c), (x) => x.v)) : '—'} | ${fmt(spread(r.ramps.map((x) => x.cpuAtMaxPct)).median)} |`,
      );
    }
    // Context switches of all the relay's threads per 1000 delivered packets, per fixed step.
    const cs = (pick) =>
      spread(
        r.fixed
          .filter((x) => x.ctxSwitches !== null && x.received > 0)
          .map((x) => (pick(x.ctxSwitches) * 1000) / x.received),
      );
    // CPU per packet split into user and kernel time by each step's kernel share.
    const split = (kernel) =>
      spread(
        r.fixed
          .filter((x) => x.sysShare !== null && x.cpuUsPerPkt !== null)
          .map((x) => x.cpuUsPerPkt * (kernel ? x.sysShare : 1 - x.sysShare)),
      );
    const io = r.io;
    ioRows.push(
      `| ${s.scenario} | ${r.kind} | ${sp(split(false), 2)} | ${sp(split(true), 2)} | ${sp(
        cs((c) => c.vol),
        2,
      )} | ${sp(
        cs((c) => c.invol),
        2,
      )} | ${io?.datagramsPerBatch == null ? '—' : fmt(io.datagramsPerBatch, 2)} | ${io?.callsPerBatch == null ? '—' : fmt(io.callsPerBatch, 2)} |`,
    );
    const m = r.memory;
    const mib = (b) => (b === null ? '—' : fmt(b / 2 ** 20, 1));
    memRows.push(
      `| ${s.scenario} | ${r.kind} | ${mib(m.rssStartBytes)} → ${mib(m.rssEndBytes)} | ${m.heapStartBytes === null ? '—' : `${mib(m.heapStartBytes)} → ${mib(m.heapEndBytes)} (${m.heapThreads} thread${m.heapThreads === 1 ? '' : 's'})`} | ${fmt(m.heapDeltaPerPkt, 3)} | ${fmt(r.forwarded)} |`,
    );
  }
}
const tables = [
  `**Fixed load** (the same offered load for every relay of a scenario: ${FIXED_OUT === null ? '50 % of the lowest median maximum' : `${FIXED_OUT} delivered packets/s, set by BENCH_FIXED_OUT`}; median of the repeats, range in brackets; ratios are of medians, the bracket is the range of the per-repeat ratios):`,
  '',
  '| scenario | relay | CPU µs / packet | ÷ node-raw | p50 µs | p99 µs | p99.9 µs | p99 ÷ node-raw | loss % (max) | generator stalls ms | sends skipped % |',
  '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ...fixedRows,
  '',
  `**Maximum rate** (highest step with ≤ 1 % loss, ${RAMPS} ramps per relay, median and range; packets delivered to receivers per second):`,
  '',
  '| scenario | relay | max out pps | ÷ node-raw | ÷ C | CPU at max % |',
  '| --- | --- | ---: | ---: | ---: | ---: |',
  ...rateRows,
  '',
  '**Memory** (read with the relay idle, after the warm-up and after the last step: RSS from /proc for every relay; for both Node relays the heap used on every thread after a forced full collection, through the inspector; Δ heap divided by the packets forwarded in between):',
  '',
  '| scenario | relay | RSS MiB | heap used MiB, all threads | heap Δ B/pkt | packets |',
  '| --- | --- | ---: | ---: | ---: | ---: |',
  ...memRows,
  '',
  "**Where the CPU goes** (fixed-load steps, median and range: CPU µs per delivered packet split into user and kernel time from /proc, and context switches of all the relay's threads per 1000 delivered packets; for our relay on the native receive path, from its counters read once at the end: datagrams per receive batch and recvmmsg calls per batch — a call that finds nothing counts too):",
  '',
  '| scenario | relay | user µs / pkt | kernel µs / pkt | voluntary ctx switches / 1000 pkt | involuntary / 1000 pkt | datagrams per batch | recvmmsg calls per batch |',
  '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  ...ioRows,
].join('\n');

// Targets (issue 10 and, when both I/O paths ran, issue 15).
const targetRows = [];
const find = (sc, kind) =>
  scenarioResults.find((s) => s.scenario === sc)?.relays.find((r) => r.kind === kind);
const verdict = (v, limit) => (v === null ? '—' : v <= limit ? 'met' : '**missed**');
for (const s of scenarioResults) {
  const node = s.relays.find((r) => r.kind === 'node-raw');
  for (const r of s.relays.filter((x) => x.kind.startsWith('wzp'))) {
    for (const phase of ['fixed', 'control']) {
      if (r[phase].length === 0 || !node || node[phase].length === 0) {
        continue;
      }
      const where = phase === 'control' ? `${s.scenario} + control plane` : s.scenario;
      const p = ratio(r[phase], node[phase], (x) => x.p99Us);
      const cpu = ratio(r[phase], node[phase], (x) => x.cpuUsPerPkt);
      targetRows.push(
        `| #10 p99 ≤ 1.5 × node-raw | ${where} | ${r.kind} | ${rt(p)} | ${verdict(p?.value ?? null, 1.5)} |`,
      );
      targetRows.push(
        `| #10 CPU/pkt ≤ 1.15 × node-raw | ${where} | ${r.kind} | ${rt(cpu)} | ${verdict(cpu?.value ?? null, 1.15)} |`,
      );
    }
  }
  const twin = s.relays.find((r) => r.kind === 'node-raw-b');
  if (twin && node) {
    const p = ratio(twin.fixed, node.fixed, (x) => x.p99Us);
    const cpu = ratio(twin.fixed, node.fixed, (x) => x.cpuUsPerPkt);
    targetRows.push(
      `| A/A noise floor: p99 | ${s.scenario} | node-raw-b ÷ node-raw | ${rt(p)} | (ideal 1.00) |`,
    );
    targetRows.push(
      `| A/A noise floor: CPU/pkt | ${s.scenario} | node-raw-b ÷ node-raw | ${rt(cpu)} | (ideal 1.00) |`,
    );
  }
}
const w1 = find('50x3', 'wzp');
const w2 = find('50x3', 'wzp-w2');
if (w1 && w2) {
  const x = ratio(w2.fixed, w1.fixed, (y) => y.cpuUsPerPkt);
  targetRows.push(
    `| #10 2 workers ≤ 1.10 × 1 worker CPU/pkt | 50x3 | wzp-w2 ÷ wzp | ${rt(x)} | ${verdict(x?.value ?? null, 1.1)} |`,
  );
}
for (const sc of ['1x50', '10x10']) {
  const nat = find(sc, 'wzp-native');
  const dg = find(sc, 'wzp-dgram');
  const c = find(sc, 'c-raw');
  if (nat && c) {
    const x = ratio(nat.fixed, c.fixed, (y) => y.cpuUsPerPkt);
    targetRows.push(
      `| #15 native CPU/pkt ≤ 1.15 × C | ${sc} | wzp-native ÷ c-raw | ${rt(x)} | ${verdict(x?.value ?? null, 1.15)} |`,
    );
  }
  if (nat && dg) {
    if (sc === '1x50') {
      const x = ratio(nat.fixed, dg.fixed, (y) => y.cpuUsPerPkt);
      targetRows.push(
        `| #15 native CPU/pkt ≤ 0.8 × dgram | ${sc} | wzp-native ÷ wzp-dgram | ${rt(x)} | ${verdict(x?.value ?? null, 0.8)} |`,
      );
    }
    const p = ratio(nat.fixed, dg.fixed, (y) => y.p99Us);
    targetRows.push(
      `| #15 native p99 ≤ dgram p99 | ${sc} | wzp-native ÷ wzp-dgram | ${rt(p)} | ${verdict(p?.value ?? null, 1)} |`,
    );
  }
  const onesock = find(sc, 'wzp-native-onesock');
  if (nat && onesock) {
    // What the send-only socket saves (not a target: a share of the gap to C).
    const x = ratio(nat.fixed, onesock.fixed, (y) => y.cpuUsPerPkt);
    targetRows.push(
      `| send-only socket effect: CPU/pkt | ${sc} | wzp-native ÷ wzp-native-onesock | ${rt(x)} | (informative) |`,
    );
  }
  const send = find(sc, 'wzp-native-send');
  if (nat && send) {
    // What the batched receive saves (not a target: the receive's share of the gap to C).
    const x = ratio(nat.fixed, send.fixed, (y) => y.cpuUsPerPkt);
    targetRows.push(
      `| recvmmsg effect: CPU/pkt | ${sc} | wzp-native ÷ wzp-native-send | ${rt(x)} | (informative) |`,
    );
  }
  if (send && c) {
    const x = ratio(send.fixed, c.fixed, (y) => y.cpuUsPerPkt);
    targetRows.push(
      `| send-only native ÷ C (previous native) | ${sc} | wzp-native-send ÷ c-raw | ${rt(x)} | (informative) |`,
    );
  }
}
const targetTable = [
  '| target | scenario | relay | measured ratio (per-repeat range) | verdict |',
  '| --- | --- | --- | ---: | --- |',
  ...targetRows,
].join('\n');

const steadyAfter = await hostSteadiness();
log(`  host steadiness after the run: ${steadinessText(steadyAfter)}`);
const steadyLine =
  steadyBefore === null
    ? ''
    : `\n\n**Host steadiness** (bench/forwarding/hostgap.c: a busy loop pinned to each CPU for ${STEADY_S} s with no relay running, before and after the run; time it did not run in gaps over 1 ms, which on a virtual machine includes the hypervisor not running the vCPU; then bench/forwarding/wakecost.c: the CPU one epoll sleep and eventfd wake-up of an otherwise idle thread costs, the floor under every relay's cost per receive wake-up): before: ${steadinessText(steadyBefore)}; after: ${steadinessText(steadyAfter)}. The fixed-load table's *generator stalls* column is the same measure inside the load generator (CPU 1) during each step, median per step; *sends skipped* are the sends it was more than ${GEN_MAX_LATE_US} µs late for and skipped (not burst out), in % of the due sends.`;
const load1 = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const machine = `${cpus().length} × ${cpus()[0]?.model ?? '?'}, Node ${process.version}, ${hasTaskset ? 'relays pinned to CPU 0, load generator and harness to CPU 1' : 'no CPU pinning (taskset missing)'}${pinned ? '' : ' (harness not pinned)'}${idleSpinning ? '; BENCH_IDLE_SPIN: a SCHED_IDLE busy loop on CPU 0 (latency without vCPU halts, kernel CPU inflated for every relay)' : ''}`;
const stamp = new Date().toISOString();
const variantsLine = scenarioResults
  .flatMap((s) =>
    s.relays.map(
      (r) =>
        `${s.scenario}/${r.kind}: ${r.about}${r.udpPorts > 1 ? `, ${r.udpPorts} UDP ports` : ''}${r.facts.length > 0 ? ` [${r.facts.join('; ')}]` : ''}${r.died ? ` — DIED: ${r.died}` : ''}`,
    ),
  )
  .map((l) => `- ${l}`)
  .join('\n');
const skippedLine = skipped.map((s) => `- skipped ${s.scenario}/${s.kind}: ${s.reason}`).join('\n');
const profiled =
  PROFILE_DIR === null
    ? ''
    : `\n\n**Profiled run** (BENCH_PROFILE_DIR): the first fixed-load step of every Node relay ran under the CPU profiler; not comparable.`;
const summary = `${tables}${profiled}${steadyLine}\n\n**Targets** (computed from the tables above):\n\n${targetTable}\n\nRelays:\n\n${variantsLine}${skippedLine ? `\n${skippedLine}` : ''}\n\n_${machine}; ${QUICK ? 'quick run' : 'full run'} in ${elapsedS.toFixed(0)} s; load average at the end ${load1}._`;
console.log(`\n${summary}`);
writeFileSync(
  join(OUT, 'forwarding.json'),
  JSON.stringify(
    {
      date: stamp,
      machine,
      quick: QUICK,
      repeats: REPEATS,
      ramps: RAMPS,
      rampStepSeconds: RAMP_S,
      fixedStepSeconds: FIXED_S,
      generatorMaxLateUs: GEN_MAX_LATE_US,
      features: FEATURES,
      skipped,
      loadavgAtEnd: load1,
      hostSteadiness: { before: steadyBefore, after: steadyAfter },
      elapsedS,
      scenarios: scenarioResults,
    },
    null,
    2,
  ),
);
writeFileSync(join(OUT, 'forwarding.md'), `${summary}\n`);

// ── docs/benchmarks.md section and SVG chart (full runs of every scenario only) ──
if (!QUICK && only === null && onlyKinds === null) {
  const docPath = join(ROOT, 'docs', 'benchmarks.md');
  const doc = readFileSync(docPath, 'utf8');
  const begin = '<!-- forwarding:begin -->';
  const end = '<!-- forwarding:end -->';
  const section = `${begin}\n_Measured ${stamp.slice(0, 16).replace('T', ' ')} UTC by \`npm run bench:forwarding\` (${elapsedS.toFixed(0)} s)._\n\n${summary}\n\n![CPU per packet and p99 latency at fixed load](benchmarks-forwarding.svg)\n${end}`;
  const next = doc.includes(begin)
    ? doc.slice(0, doc.indexOf(begin)) + section + doc.slice(doc.indexOf(end) + end.length)
    : `${doc.trimEnd()}\n\n## Forwarding\n\n${section}\n`;
  writeFileSync(docPath, next);
  writeFileSync(join(ROOT, 'docs', 'benchmarks-forwarding.svg'), svg());
  console.log('updated docs/benchmarks.md and docs/benchmarks-forwarding.svg');
}

function svg() {
  const W = 760;
  const H = 380;
  const colors = {
    wzp: '#1f77b4',
    'wzp-w2': '#9467bd',
    'wzp-native': '#2ca02c',
    'wzp-native-send': '#98df8a',
    'wzp-native-onesock': '#bcbd22',
    'wzp-dgram': '#aec7e8',
    'wzp-trunking': '#17becf',
    'node-raw': '#ff7f0e',
    'c-raw': '#7f7f7f',
    'node-raw-native': '#d62728',
    'node-raw-c': '#8c564b',
  };
  const kinds = [...new Set(scenarioResults.flatMap((s) => s.relays.map((r) => r.kind)))];
  const panel = (x0, title, value, unit) => {
    const all = scenarioResults.flatMap((s) => s.relays.map(value)).filter(Number.isFinite);
    const max = Math.max(1e-9, ...all);
    const gw = 330;
    const gh = 240;
    const groupW = gw / Math.max(1, scenarioResults.length);
    const barW = (groupW - 20) / Math.max(1, kinds.length);
    let s = `<text x="${x0 + gw / 2}" y="24" text-anchor="middle" font-size="14" font-weight="bold">${title}</text>`;
    s += `<line x1="${x0}" y1="${40 + gh}" x2="${x0 + gw}" y2="${40 + gh}" stroke="#333"/>`;
    s += `<text x="${x0}" y="36" font-size="10" fill="#555">max ${fmt(max, max < 10 ? 2 : 0)} ${unit}</text>`;
    scenarioResults.forEach((sc, gi) => {
      kinds.forEach((kind, ki) => {
        const r = sc.relays.find((x) => x.kind === kind);
        const v = r ? value(r) : null;
        if (v === null || !Number.isFinite(v)) {
          return;
        }
        const h = (v / max) * gh;
        const x = x0 + gi * groupW + 10 + ki * barW;
        s += `<rect x="${x.toFixed(1)}" y="${(40 + gh - h).toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${h.toFixed(1)}" fill="${colors[kind] ?? '#333'}"><title>${kind} ${sc.scenario}: ${fmt(v, 2)} ${unit}</title></rect>`;
      });
      s += `<text x="${x0 + gi * groupW + groupW / 2}" y="${40 + gh + 16}" text-anchor="middle" font-size="12">${sc.scenario}</text>`;
    });
    return s;
  };
  let body = panel(
    30,
    'CPU µs per packet at fixed load',
    (r) => r.fixedSummary?.cpuUsPerPkt.median ?? null,
    'µs',
  );
  body += panel(
    410,
    'p99 latency at fixed load',
    (r) => r.fixedSummary?.p99Us.median ?? null,
    'µs',
  );
  kinds.forEach((k, i) => {
    body += `<rect x="${30 + i * 120}" y="${H - 28}" width="12" height="12" fill="${colors[k] ?? '#333'}"/><text x="${48 + i * 120}" y="${H - 18}" font-size="12">${k}</text>`;
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">\n<rect width="100%" height="100%" fill="white"/>\n${body}\n</svg>\n`;
}
process.exit(0);
