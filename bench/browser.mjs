#!/usr/bin/env node
// Browser benchmark (npm run bench:browser): a relay process, two headless
// Chromium participants and Node clients on 127.0.0.1.
//  1. Mouth-to-ear latency: page A's fake microphone plays 100 ms tone bursts
//     every 2 s; each onset is timed when A captures it and when page B
//     decodes it and when it reaches B's audio output (AudioWorklet), p50/p99.
//  2. CPU of one browser participant (all of its Chromium processes, /proc)
//     while sending and receiving audio and 320×240 video.
//  3. Added latency of the WebSocket media path: one UDP sender, a UDP and a
//     WebSocket Node receiver in one room, one-way latency p50/p99 of each.
// Options: BENCH_SECONDS (default 40); BENCH_PERIOD_MS (burst period, default 2000); BENCH_SIMULCAST=0 sends one video layer
// instead of three. The machine's load average is printed with the result:
// the latency numbers mean something only on a quiet machine.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer from 'puppeteer-core';
import { WzpClient } from '../dist/client/index.js';
import { createHeader } from '../dist/wire/index.js';

const ROOT = new URL('..', import.meta.url).pathname;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 40);
const SIMULCAST = process.env.BENCH_SIMULCAST !== '0';
// One 100 ms tone burst per period; a latency above the period would alias (match the next
// burst), so the period bounds what can be measured.
const PERIOD_MS = Number(process.env.BENCH_PERIOD_MS ?? 2000);
const CHROMIUM = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].find(
  (p) => p !== undefined && p !== '' && existsSync(p),
);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function wav(path, hz, seconds, burst) {
  const rate = 48_000;
  const n = rate * seconds;
  const buf = Buffer.alloc(44 + n * 2);
  buf.write('RIFF', 0);
  buf.writeUInt32LE(36 + n * 2, 4);
  buf.write('WAVEfmt ', 8);
  buf.writeUInt32LE(16, 16);
  buf.writeUInt16LE(1, 20);
  buf.writeUInt16LE(1, 22);
  buf.writeUInt32LE(rate, 24);
  buf.writeUInt32LE(rate * 2, 28);
  buf.writeUInt16LE(2, 32);
  buf.writeUInt16LE(16, 34);
  buf.write('data', 36);
  buf.writeUInt32LE(n * 2, 40);
  for (let i = 0; i < n; i++) {
    const t = i / rate;
    const on = burst === null || (t * 1000) % burst.periodMs < burst.onMs;
    buf.writeInt16LE(
      on && hz > 0 ? Math.round(Math.sin(2 * Math.PI * hz * t) * 16000) : 0,
      44 + i * 2,
    );
  }
  writeFileSync(path, buf);
}

function pct(values, p) {
  if (values.length === 0) {
    return Number.NaN;
  }
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

const round = (v) => Math.round(v * 10) / 10;

/** utime + stime (clock ticks) of `pid` and all its descendants. */
function cpuTicks(pid) {
  const children = new Map();
  let total = 0;
  const all = [];
  for (const name of readdirSync('/proc')) {
    if (/^\d+$/.test(name)) {
      try {
        const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        all.push({ pid: Number(name), ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) });
      } catch {
        // gone
      }
    }
  }
  for (const p of all) {
    if (!children.has(p.ppid)) {
      children.set(p.ppid, []);
    }
    children.get(p.ppid).push(p);
  }
  const stack = [pid];
  const byPid = new Map(all.map((p) => [p.pid, p]));
  while (stack.length > 0) {
    const cur = stack.pop();
    total += byPid.get(cur)?.ticks ?? 0;
    for (const c of children.get(cur) ?? []) {
      stack.push(c.pid);
    }
  }
  return total;
}

async function launch(dir, name, file) {
  return puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    userDataDir: join(dir, name),
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-dev-shm-usage',
      '--use-fake-ui-for-media-stream',
      '--use-fake-device-for-media-stream',
      `--use-file-for-fake-audio-capture=${file}`,
      '--autoplay-policy=no-user-gesture-required',
    ],
  });
}

async function main() {
  if (CHROMIUM === undefined) {
    console.log('bench:browser skipped: no chromium (apt-get install -y chromium)');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'wzp-bench-browser-'));
  const [signalPort, httpPort, udpPort] = await Promise.all([freePort(), freePort(), freePort()]);
  const relay = spawn(process.execPath, [join(ROOT, 'dist', 'cli', 'wzp.js'), 'relay'], {
    env: {
      ...process.env,
      WZP_SIGNAL_HOST: '127.0.0.1',
      WZP_SIGNAL_PORT: String(signalPort),
      WZP_HTTP_HOST: '127.0.0.1',
      WZP_HTTP_PORT: String(httpPort),
      WZP_UDP_HOST: '127.0.0.1',
      WZP_UDP_PORT: String(udpPort),
      WZP_LOG_LEVEL: process.env.BENCH_RELAY_LOG ?? 'warn',
      WZP_DATA_DIR: join(dir, 'data'),
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const browsers = [];
  try {
    for (let i = 0; i < 100; i++) {
      const ok = await fetch(`http://127.0.0.1:${httpPort}/readyz`)
        .then((r) => r.ok)
        .catch(() => false);
      if (ok) {
        break;
      }
      await sleep(100);
    }
    wav(join(dir, 'burst.wav'), 1000, 90, { onMs: 100, periodMs: PERIOD_MS });
    wav(join(dir, 'silence.wav'), 0, 60, null);
    const a = await launch(dir, 'a', join(dir, 'burst.wav'));
    const b = await launch(dir, 'b', join(dir, 'silence.wav'));
    browsers.push(a, b);
    const base = `http://127.0.0.1:${signalPort}/?room=bench&join=1&video=320x240${SIMULCAST ? '' : '&simulcast=0'}`;
    const pa = await a.newPage();
    const pb = await b.newPage();
    await pa.goto(`${base}&name=A`);
    await pb.goto(`${base}&name=B`);
    const ready = async (p) =>
      p.evaluate(() => window.wzpStats?.().participants === 1).catch(() => false);
    for (let i = 0; i < 300 && !((await ready(pa)) && (await ready(pb))); i++) {
      await sleep(100);
    }
    for (const p of [pa, pb]) {
      const state = await p.evaluate(() => ({
        err: document.getElementById('join-error')?.textContent,
        state: window.wzpCall?.state,
        participants: window.wzpStats?.().participants,
      }));
      if (state.state !== 'connected') {
        const m = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
        console.log(
          m
            .split('\n')
            .filter((l) => /dropped|ws_media|binds/.test(l) && !l.startsWith('#'))
            .join('\n'),
        );
        throw new Error(`page did not join: ${JSON.stringify(state)}`);
      }
    }
    // Onset recorders in both pages.
    await pa.evaluate(() => {
      window.onsets = [];
      let quiet = 0;
      window.wzpCall.addEventListener('micframe', (e) => {
        // `at` is when the chunk reached the page, i.e. about when its last sample was captured:
        // the onset is `frames - firstLoud` samples earlier.
        const { at, frames, sampleRate, firstLoud } = e.detail;
        if (firstLoud >= 0) {
          if (quiet > 20) {
            window.onsets.push(at - ((frames - firstLoud) / sampleRate) * 1000);
          }
          quiet = 0;
        } else {
          quiet++;
        }
      });
    });
    await pb.evaluate(() => {
      window.decoded = [];
      window.played = [];
      let quiet = 0;
      window.wzpCall.addEventListener('audioframe', (e) => {
        // The same threshold as at the microphone and the output: a sample above 0.05.
        if (e.detail.firstLoud >= 0) {
          if (quiet > 10) {
            window.decoded.push(e.detail.at);
          }
          quiet = 0;
        } else {
          quiet++;
        }
      });
      window.wzpCall.addEventListener('playoutonset', (e) => window.played.push(e.detail.at));
    });
    const load0 = loadavg();
    const t0 = cpuTicks(a.process().pid);
    const w0 = performance.now();
    await sleep(SECONDS * 1000);
    const cpuA = ((cpuTicks(a.process().pid) - t0) / 100 / ((performance.now() - w0) / 1000)) * 100;
    const sent = await pa.evaluate(() => window.onsets);
    const decoded = await pb.evaluate(() => window.decoded);
    const played = await pb.evaluate(() => window.played);
    const statsA = await pa.evaluate(() => window.wzpCall.getStats());
    const statsB = await pb.evaluate(() => window.wzpCall.getStats());
    const match = (onsets, heard) => {
      const out = [];
      for (const s of onsets) {
        const h = heard.find((x) => x > s && x - s < PERIOD_MS - 100);
        if (h !== undefined) {
          out.push(h - s);
        }
      }
      return out;
    };
    const toDecode = match(sent, decoded);
    const toEar = match(sent, played);
    const peerA = statsB.peers.find((p) => p.tag === statsA.tag);
    const result = {
      date: new Date().toISOString(),
      chromium: await a.version(),
      loadAverage1m: { before: round(load0[0]), after: round(loadavg()[0]) },
      simulcast: SIMULCAST,
      seconds: SECONDS,
      mouthToDecodeMs: {
        n: toDecode.length,
        p50: round(pct(toDecode, 50)),
        p99: round(pct(toDecode, 99)),
      },
      mouthToEarMs: { n: toEar.length, p50: round(pct(toEar, 50)), p99: round(pct(toEar, 99)) },
      onsetsSent: sent.length,
      jitterBufferMs: round(peerA?.jitterBufferMs ?? Number.NaN),
      audioFramesDecodedB: peerA?.audioFramesDecoded ?? 0,
      audioCapturedMsA: round(statsA.sent.capturedMs),
      cpuOneParticipantPct: round(cpuA),
      videoFramesSentA: statsA.sent.videoFrames,
      rttMs: round(statsA.rttMs ?? Number.NaN),
    };
    await a.close();
    await b.close();
    browsers.length = 0;
    // WebSocket vs UDP media path, Node clients.
    const url = `ws://127.0.0.1:${signalPort}/v2/signal`;
    const sender = await WzpClient.connect({ signalUrl: url, room: 'path' });
    const rUdp = await WzpClient.connect({ signalUrl: url, room: 'path' });
    const rWs = await WzpClient.connect({
      signalUrl: url,
      room: 'path',
      mediaTransport: 'websocket',
    });
    const lat = { udp: [], ws: [] };
    const on = (c, key) =>
      c.on('media', (m) => {
        const sentAt = m.payload.readDoubleBE(0);
        lat[key].push(performance.timeOrigin + performance.now() - sentAt);
      });
    on(rUdp, 'udp');
    on(rWs, 'ws');
    await sleep(300);
    const n = Math.min(1000, SECONDS * 50);
    const payload = Buffer.alloc(120);
    for (let i = 0; i < n; i++) {
      payload.writeDoubleBE(performance.timeOrigin + performance.now(), 0);
      sender.sendMedia(createHeader({ seq: i, timestamp: i * 20, fecRatio: 20 }), payload);
      await sleep(20);
    }
    await sleep(500);
    result.pathLatencyMs = {
      packets: n,
      udp: { received: lat.udp.length, p50: round(pct(lat.udp, 50)), p99: round(pct(lat.udp, 99)) },
      websocket: {
        received: lat.ws.length,
        p50: round(pct(lat.ws, 50)),
        p99: round(pct(lat.ws, 99)),
      },
    };
    result.pathLatencyMs.addedP50 = round(
      result.pathLatencyMs.websocket.p50 - result.pathLatencyMs.udp.p50,
    );
    result.pathLatencyMs.addedP99 = round(
      result.pathLatencyMs.websocket.p99 - result.pathLatencyMs.udp.p99,
    );
    await Promise.all([sender.close(), rUdp.close(), rWs.close()]);
    console.log(JSON.stringify(result, null, 2));
  } finally {
    for (const b of browsers) {
      await b.close().catch(() => {});
    }
    relay.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
