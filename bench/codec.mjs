// Codec microbenchmarks: ops/s (tinybench) and heap bytes per operation.
// Run: npm run bench:codec   (builds, then node --expose-gc bench/codec.mjs)
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { Bench } from 'tinybench';
import {
  createCompactView,
  createHeader,
  createPacketView,
  encodeMediaPacket,
  encodeTrunkInto,
  MiniCompressor,
  MiniContext,
  qualityFromPathStats,
  readCompact,
  readHeader,
  readPacket,
  TrunkBatcher,
  writePacketUnchecked,
} from '../dist/wire/index.js';

if (typeof globalThis.gc !== 'function') {
  console.error('run with node --expose-gc');
  process.exit(1);
}

const header = createHeader({
  flags: 0x40,
  codecId: 0,
  fecRatio: 20,
  seq: 1000,
  timestamp: 20000,
  fecBlock: 3,
});
const payload = Buffer.alloc(100, 7);
const quality = qualityFromPathStats(1, 40, 3);
const packet = encodeMediaPacket({ header, payload, quality });
const headerOut = createHeader();
const view = createPacketView();
const cview = createCompactView();

// A FULL then a long run of MINI frames: expanding always hits a baseline.
const comp = new MiniCompressor();
const h2 = createHeader({ fecRatio: 20 });
comp.encode(h2, payload);
h2.seq = 1;
h2.timestamp = 20;
const mini = comp.encode(h2, payload);
const miniCtx = new MiniContext();
miniCtx.setBaseline(createHeader({ fecRatio: 20 }));

const out = Buffer.allocUnsafe(2048);
const encComp = new MiniCompressor();
const encHeader = createHeader({ fecRatio: 20 });
const trunkEntries = Array.from({ length: 10 }, (_, i) => ({
  tag: i + 1,
  data: Buffer.alloc(60, i),
}));
const trunkOut = Buffer.allocUnsafe(1200);
let flushed = 0;
const batcher = new TrunkBatcher({
  maxEntries: 10,
  maxBytes: 1200,
  prefixByte: 2,
  onFlush: () => flushed++,
});
const entry = Buffer.alloc(60, 1);

const ops = {
  'decode header (readHeader)': () => readHeader(packet, 0, packet.length, headerOut),
  'decode media packet with trailer (readPacket)': () => readPacket(packet, 0, packet.length, view),
  'expand a MINI frame (readCompact)': () => readCompact(mini, 0, mini.length, miniCtx, cview),
  'encode packet into a preallocated buffer': () =>
    writePacketUnchecked(header, payload, quality, out, 0),
  'compress + encode (MiniCompressor.encodeInto)': () => {
    encHeader.seq = (encHeader.seq + 1) >>> 0;
    encHeader.timestamp = (encHeader.timestamp + 20) >>> 0;
    return encComp.encodeInto(encHeader, payload, null, out, 0);
  },
  'encode a trunk of 10 (encodeTrunkInto)': () => encodeTrunkInto(trunkEntries, trunkOut, 0),
  'batch 10 entries into one trunk (TrunkBatcher)': () => {
    for (let i = 0; i < 10; i++) {
      batcher.push(i, entry);
    }
  },
};

const bench = new Bench({ time: 1000, warmupTime: 200 });
for (const [name, fn] of Object.entries(ops)) {
  bench.add(name, fn);
}
await bench.run();

/** Heap growth per call over n calls between forced collections. */
function heapPerOp(fn, n = 1_000_000) {
  for (let i = 0; i < 10_000; i++) {
    fn();
  }
  globalThis.gc();
  globalThis.gc();
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < n; i++) {
    fn();
  }
  const after = process.memoryUsage().heapUsed;
  return (after - before) / n;
}

const rows = bench.tasks.map((t) => {
  const r = t.result;
  const hz = r?.throughput?.mean ?? r?.hz ?? 0;
  return {
    operation: t.name,
    opsPerSec: Math.round(hz),
    nsPerOp: hz > 0 ? 1e9 / hz : 0,
    heapBytesPerOp: heapPerOp(ops[t.name]),
  };
});

const machine = { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version };
console.log(
  `# codec microbenchmarks — ${machine.cpu}, ${machine.cores} cores, node ${machine.node}\n`,
);
console.log('| operation | ops/s | ns/op | heap bytes/op |');
console.log('| --- | ---: | ---: | ---: |');
for (const r of rows) {
  console.log(
    `| ${r.operation} | ${r.opsPerSec.toLocaleString('en-US')} | ${r.nsPerOp.toFixed(1)} | ${r.heapBytesPerOp.toFixed(3)} |`,
  );
}
const headerHz = rows[0]?.opsPerSec ?? 0;
console.log(
  `\nheader decode target ≥ 10,000,000/s: ${headerHz >= 10_000_000 ? 'met' : 'NOT met'} (${headerHz.toLocaleString('en-US')}/s)`,
);
mkdirSync(new URL('./out/', import.meta.url), { recursive: true });
writeFileSync(
  new URL('./out/codec.json', import.meta.url),
  JSON.stringify({ machine, rows, flushed }, null, 2),
);
