// bench/video: what the video SFU features cost and save, against a relay process.
//
//   npm run bench:video [-- --quick]
//
// 1. Simulcast: a camera sends the reference layers (150 kbit/s, 600 kbit/s,
//    2.5 Mbit/s, keyframe every 30 frames) for 3 s to a receiver capped at
//    max_layer 0 and an uncapped one; prints the bytes each got (/v2/rooms
//    bytes_out).
// 2. Resync of compact framing (BINDING.md §4.6): 5 % loss on the relay →
//    receiver path (a loopback UDP proxy dropping 1 of every 20 media
//    datagrams at random), encrypted media, the real client's decryption;
//    prints the share of forwarded frames the receiver decoded and decrypted,
//    for the default mechanism and with parts of it turned off.
// Results also go to bench/out/video.json.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AvSource, measureLossRecovery, runSource, WzpClient } from '../dist/client/index.js';
import { freePort, OUT, ROOT } from './lib.mjs';

const QUICK = process.argv.includes('--quick');
const SECONDS = QUICK ? 4 : 10;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function relay(extra = []) {
  const [udp, sig, http] = [await freePort(), await freePort(), await freePort()];
  const dir = mkdtempSync(join(tmpdir(), 'wzp-video-'));
  const toml = [
    'udp_host = "127.0.0.1"',
    `udp_port = ${udp}`,
    'signal_host = "127.0.0.1"',
    `signal_port = ${sig}`,
    'http_host = "127.0.0.1"',
    `http_port = ${http}`,
    `data_dir = ${JSON.stringify(dir)}`,
    'log_level = "warn"',
    ...extra,
  ].join('\n');
  writeFileSync(join(dir, 'relay.toml'), toml);
  const proc = spawn(
    process.execPath,
    [join(ROOT, 'dist', 'cli', 'wzp.js'), 'relay', '--config', join(dir, 'relay.toml')],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${http}/readyz`)).ok) {
        break;
      }
    } catch {}
    if (i > 200) {
      throw new Error('relay did not start');
    }
    await sleep(50);
  }
  return {
    signal: `ws://127.0.0.1:${sig}/v2/signal`,
    http: `http://127.0.0.1:${http}`,
    stop: () =>
      new Promise((r) => {
        proc.once('exit', r);
        proc.kill('SIGTERM');
      }),
  };
}

async function simulcast() {
  const r = await relay();
  try {
    const cam = await WzpClient.connect({ signalUrl: r.signal, room: 'sim' });
    const capped = await WzpClient.connect({ signalUrl: r.signal, room: 'sim' });
    const full = await WzpClient.connect({ signalUrl: r.signal, room: 'sim' });
    capped.subscribe(null, { maxLayer: 0 });
    await sleep(200);
    const source = new AvSource({ audio: false, layers: [0, 1, 2], keyframeInterval: 30 });
    cam.on('signal', (m) => {
      if (m.type === 'PictureLossIndication') {
        source.requestKeyframe(m.body.stream_id);
      }
    });
    const run = runSource(source, (h, p) => cam.sendMedia(h, p));
    await sleep(3000);
    run.stop();
    await sleep(200);
    const rooms = await (await fetch(`${r.http}/v2/rooms`)).json();
    const ps = rooms.rooms[0]?.participants ?? [];
    const bytesOf = (c) => ps.find((p) => p.tag === c.tag)?.bytes_out ?? 0;
    const layerOf = (c) => ps.find((p) => p.tag === c.tag)?.receiving?.[0]?.video_layer ?? null;
    const sentBytes = ps.find((p) => p.tag === cam.tag)?.bytes_in ?? null;
    const out = {
      seconds: 3,
      camera_bytes_in: sentBytes,
      capped: { max_layer: 0, bytes: bytesOf(capped), layer: layerOf(capped) },
      uncapped: { bytes: bytesOf(full), layer: layerOf(full) },
    };
    await Promise.all([cam, capped, full].map((c) => c.close(false)));
    return out;
  } finally {
    await r.stop();
  }
}

const CONFIGS = [
  { name: 'default (request + 5 s FULL window + anchor 10)', toml: [], autoResync: true },
  {
    name: 'ResyncRequest only (next frame FULL)',
    toml: ['resync_full_ms = 0', 'resync_anchor_frames = 0'],
    autoResync: true,
  },
  { name: 'anchor 10 only (receiver never asks)', toml: [], autoResync: false },
  {
    name: 'none (chain until the sender FULL, every 50)',
    toml: ['resync_anchor_frames = 0'],
    autoResync: false,
  },
];
const SOURCES = [
  { name: 'audio', source: { audio: true } },
  {
    name: 'audio+video (layers 0,1)',
    source: { audio: true, layers: [0, 1], bitrateScale: 0.2, keyframeInterval: 60 },
  },
];

async function resync() {
  const rows = [];
  for (const c of CONFIGS) {
    const r = await relay(c.toml);
    try {
      for (const s of SOURCES) {
        const m = await measureLossRecovery({
          signalUrl: r.signal,
          lossPct: 5,
          durationMs: SECONDS * 1000,
          source: s.source,
          autoResync: c.autoResync,
        });
        rows.push({ config: c.name, source: s.name, ...m });
        console.log(
          `${c.name.padEnd(48)} ${s.name.padEnd(26)} forwarded ${String(m.forwarded).padStart(5)} ` +
            `dropped ${String(m.dropped).padStart(4)} decoded ${(100 * m.share).toFixed(1)} % ` +
            `(of arrived ${(100 * m.shareOfDelivered).toFixed(1)} %) resyncs ${m.resyncs} ` +
            `bytes/frame ${(m.forwardedBytes / Math.max(1, m.forwarded)).toFixed(1)}`,
        );
      }
    } finally {
      await r.stop();
    }
  }
  return rows;
}

const sim = await simulcast();
console.log(
  `simulcast, 3 s: capped (max_layer 0) receiver ${sim.capped.bytes} B (layer ${sim.capped.layer}), ` +
    `uncapped ${sim.uncapped.bytes} B (layer ${sim.uncapped.layer}); ratio ${(sim.uncapped.bytes / Math.max(1, sim.capped.bytes)).toFixed(1)}x`,
);
const rows = await resync();
writeFileSync(
  join(OUT, 'video.json'),
  JSON.stringify(
    { at: new Date().toISOString(), seconds: SECONDS, simulcast: sim, resync: rows },
    null,
    2,
  ),
);
