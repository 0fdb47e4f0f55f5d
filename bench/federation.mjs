// bench/federation: what one federation hop costs.
//
//   npm run bench:federation [-- --quick]
//
// Two relays A and B (child processes, both pinned to CPU 0, linked as
// peers with one global room) and the C load generator (CPU 1). Measures
// one-way latency of participant → A → participant (one relay) against
// participant on A → A → B → participant on B (one hop), at the same rate,
// and the highest rate one link carries (both directions) at ≤ 1 % loss.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { WzpClient } from '../dist/client/index.js';
import { Identity } from '../dist/signal/index.js';
import { compileC, freePort, OUT, pin, ROOT, runLoadgen } from './lib.mjs';

const QUICK = process.argv.includes('--quick');
const LOADGEN = compileC('loadgen', 'loadgen.c');
if (LOADGEN === null) {
  console.error('bench:federation needs a C compiler (cc) for its load generator; install gcc.');
  process.exit(2);
}

/** Relay CPU: both on CPU 0 by default; --split puts B on CPU 1 (shared with the generator). */
const SPLIT = process.argv.includes('--split');

async function relay(name, identity, peer) {
  const [udp, sig, http] = [await freePort(), await freePort(), await freePort()];
  const dir = mkdtempSync(join(tmpdir(), `wzp-fed-${name}-`));
  writeFileSync(join(dir, 'relay-identity'), `${identity.seed.toString('hex')}\n`);
  const toml = [
    'udp_host = "127.0.0.1"',
    `udp_port = ${udp}`,
    'signal_host = "127.0.0.1"',
    `signal_port = ${sig}`,
    'http_host = "127.0.0.1"',
    `http_port = ${http}`,
    `relay_label = "${name}"`,
    `data_dir = ${JSON.stringify(dir)}`,
    'log_level = "warn"',
    'global_rooms = ["g"]',
    'federation_peer_pps = 10000000',
    'federation_room_pps = 10000000',
    'session_timeout_ms = 600000',
    '',
    '[[peers]]',
    `label = "${peer.name}"`,
    `public_key = "${peer.identity.publicKey.toString('hex')}"`,
    ...(peer.url ? [`url = "${peer.url}"`] : []),
  ].join('\n');
  writeFileSync(join(dir, 'relay.toml'), toml);
  const [cmd, argv] = pin(SPLIT && name === 'B' ? 1 : 0, process.execPath, [
    join(ROOT, 'dist', 'cli', 'wzp.js'),
    'relay',
    '--config',
    join(dir, 'relay.toml'),
  ]);
  const proc = spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'inherit'] });
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${http}/readyz`)).ok) {
        break;
      }
    } catch {}
    if (i > 200) {
      throw new Error(`relay ${name} did not start`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    name,
    proc,
    udp,
    signal: `ws://127.0.0.1:${sig}/v2/signal`,
    fedUrl: `ws://127.0.0.1:${sig}/v2/federation`,
    http: `http://127.0.0.1:${http}`,
  };
}

async function join_(r, room) {
  const c = new WzpClient({ signalUrl: r.signal, room });
  const answer = await c.handshake();
  return { c, line: (idx) => `${idx} ${Buffer.from(answer.bind_token).toString('hex')} ${r.udp}` };
}

function loadStep(lines, pps, seconds) {
  return runLoadgen(LOADGEN, ['wzp', '0', String(pps), String(seconds), '100'], lines);
}

const idA = Identity.generate();
const idB = Identity.generate();
const b = await relay('B', idB, { name: 'A', identity: idA });
const a = await relay('A', idA, { name: 'B', identity: idB, url: b.fedUrl });
for (let i = 0; ; i++) {
  const peers = await (await fetch(`${a.http}/v2/peers`)).json();
  if (peers.peers[0]?.status === 'up' && peers.peers[0]?.udp_ready) {
    break;
  }
  if (i > 200) {
    throw new Error('link did not come up');
  }
  await new Promise((r) => setTimeout(r, 50));
}

const clients = [];
const pair = async (r1, r2, room) => {
  const x = await join_(r1, room);
  const y = await join_(r2, room);
  clients.push(x.c, y.c);
  return [x.line(0), y.line(0)];
};
const local = await pair(a, a, 'local');
const fed = await pair(a, b, 'g');
await new Promise((r) => setTimeout(r, 300));

const seconds = Number(process.env.FED_SECONDS ?? (QUICK ? 2 : 10));
const rate = 500; // per sender: 1000 packets/s through the path, well below capacity
// Warm-up (JIT, first-use allocations on both paths), not measured: without
// it the first ~50 ms of a run put 10–30 ms outliers into the p99.
await loadStep(local, rate, 1);
await loadStep(fed, rate, 1);
const one = await loadStep(local, rate, seconds);
const hop = await loadStep(fed, rate, seconds);
console.log(
  `one relay        : p50 ${one.p50_us} µs, p99 ${one.p99_us} µs, p99.9 ${one.p999_us} µs, loss ${one.lossPct.toFixed(2)} %`,
);
console.log(
  `one federation hop: p50 ${hop.p50_us} µs, p99 ${hop.p99_us} µs, p99.9 ${hop.p999_us} µs, loss ${hop.lossPct.toFixed(2)} %`,
);

let pps = 1000;
let best = null;
for (let i = 0; i < 14; i++) {
  let r = await loadStep(fed, pps, QUICK ? 1 : 2);
  if (r.lossPct > 1) {
    r = await loadStep(fed, pps, QUICK ? 1 : 2); // one retry against a noisy step
  }
  process.stderr.write(
    `  link: ${pps} pps per direction → ${Math.round(r.outPps)} delivered/s, loss ${r.lossPct.toFixed(2)} %\n`,
  );
  if (r.lossPct > 1) {
    break;
  }
  best = { ppsPerDirection: pps, deliveredPps: Math.round(r.outPps) };
  pps = Math.round(pps * 1.5);
}
console.log(
  `one link carries ${best?.deliveredPps ?? 0} packets/s (both directions together, ≤ 1 % loss)`,
);
const result = {
  date: new Date().toISOString().slice(0, 10),
  machine: `${cpus().length} × ${cpus()[0]?.model ?? '?'}, Node ${process.version}, relays on CPU 0, generator on CPU 1`,
  ratePerSender: rate,
  oneRelay: { p50Us: one.p50_us, p99Us: one.p99_us, p999Us: one.p999_us, lossPct: one.lossPct },
  oneHop: { p50Us: hop.p50_us, p99Us: hop.p99_us, p999Us: hop.p999_us, lossPct: hop.lossPct },
  addedByHop: { p50Us: hop.p50_us - one.p50_us, p99Us: hop.p99_us - one.p99_us },
  link: best,
};
writeFileSync(join(OUT, 'federation.json'), JSON.stringify(result, null, 2));
console.log(JSON.stringify(result.addedByHop));
await Promise.all(clients.map((c) => c.close(false).catch(() => {})));
a.proc.kill('SIGTERM');
b.proc.kill('SIGTERM');
process.exit(0);
