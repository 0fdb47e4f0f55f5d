// Summarises a V8 CPU profile (node --cpu-prof) of a relay by where its busy
// time goes: Node's dgram send path, garbage collection, our code (dist/),
// other Node internals. Used to explain bench:forwarding's CPU per packet.
//
//   BENCH_PROFILE_DIR=/tmp/prof node bench/forwarding.mjs --quick --scenarios 1x50
//   node bench/profile-summary.mjs /tmp/prof/*.cpuprofile [--top 25]
// (BENCH_PROFILE_DIR profiles each Node relay's first fixed-load step on every
// thread; BENCH_RELAY_NODE_FLAGS / BENCH_RAW_NODE_FLAGS="--cpu-prof" profile
// whole processes, start-up included.)
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const top = args.includes('--top') ? Number(args[args.indexOf('--top') + 1]) : 20;
const files = args.filter((a, i) => a.endsWith('.cpuprofile') && args[i - 1] !== '--top');
if (files.length === 0) {
  console.error('usage: node bench/profile-summary.mjs FILE.cpuprofile... [--top N]');
  process.exit(2);
}

const SEND = new Set([
  'doSend',
  'send',
  'Socket.send',
  'fixBufferList',
  'afterDns',
  'lookup',
  'lookup4',
  'nextTick',
  'processTicksAndRejections',
  'isIPv4',
  'isIP',
  'writev',
  'onSend',
  'runInAsyncScope',
  'emitAfterScript',
  'emitBeforeScript',
]);
const category = (cf) => {
  const fn = cf.functionName;
  const url = cf.url;
  if (fn === '(garbage collector)') {
    return 'garbage collection';
  }
  if (fn === '(program)' || fn === '(root)') {
    return 'V8/native, unattributed';
  }
  if (url.includes('node_modules')) {
    return 'dependencies';
  }
  if (url.includes('/dist/') || url.includes('/bench/')) {
    return 'our code (dist/, bench/)';
  }
  if (url.startsWith('node:dgram') || url.startsWith('node:internal/dgram') || SEND.has(fn)) {
    return 'node:dgram send/receive path';
  }
  return 'other Node internals';
};

for (const file of files) {
  const p = JSON.parse(readFileSync(file, 'utf8'));
  const dt = new Map();
  p.samples.forEach((s, i) => {
    dt.set(s, (dt.get(s) ?? 0) + (p.timeDeltas[i] ?? 0));
  });
  const byFn = new Map();
  const byCat = new Map();
  let busy = 0;
  for (const n of p.nodes) {
    const t = dt.get(n.id) ?? 0;
    if (n.callFrame.functionName === '(idle)') {
      continue;
    }
    busy += t;
    const cf = n.callFrame;
    const key = `${cf.functionName || '(anonymous)'} ${cf.url.replace(/^.*\/(dist|node_modules|bench)\//, '$1/')}:${cf.lineNumber + 1}`;
    byFn.set(key, (byFn.get(key) ?? 0) + t);
    const c = category(cf);
    byCat.set(c, (byCat.get(c) ?? 0) + t);
  }
  const pct = (v) => `${((v / busy) * 100).toFixed(1).padStart(5)} %`;
  console.log(`\n${file}: ${(busy / 1e6).toFixed(1)} s busy`);
  for (const [c, v] of [...byCat].sort((a, b) => b[1] - a[1])) {
    console.log(`  ${pct(v)}  ${c}`);
  }
  console.log(`  top ${top} functions (self time):`);
  for (const [k, v] of [...byFn].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`  ${pct(v)}  ${k}`);
  }
}
