/**
 * `wzp load` coordinator: N rooms × M participants spread over worker
 * processes, a synchronised start, progress, and a merged report
 * (delivery, loss, duplicates, one-way latency percentiles, relay CPU/RSS).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as hdr from 'hdr-histogram-js';
import { WzpError } from '../errors/index.js';
import {
  Share,
  type ShareResult,
  type ShareSpec,
  type VideoLoadResult,
  type VideoLoadSpec,
} from './worker.js';

export interface LoadOptions {
  signalUrl: string;
  token?: string;
  rooms: number;
  participants: number;
  /** Packets per second per sender (default 50). */
  pps: number;
  sizeMin: number;
  sizeMax: number;
  mini: boolean;
  durationS: number;
  /** Worker processes; 0 runs in this process. */
  workers: number;
  encrypt: boolean;
  /** PID of a local relay to sample CPU and RSS from /proc. */
  relayPid?: number;
  roomPrefix?: string;
  /** Every participant also sends simulcast video (`--video`). */
  video?: VideoLoadSpec;
  onProgress?: (p: { elapsedS: number; sent: number; delivered: number }) => void;
}

export interface LatencySummary {
  p50: number;
  p95: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

export interface LoadReport {
  rooms: number;
  participants: number;
  pps: number;
  sizeMin: number;
  sizeMax: number;
  mini: boolean;
  encrypt: boolean;
  workers: number;
  durationS: number;
  joined: number;
  sent: number;
  expected: number;
  delivered: number;
  lossPct: number;
  duplicates: number;
  /** Delivered packets per second at the receivers. */
  deliveredPps: number;
  /** One-way latency in milliseconds. */
  latencyMs: LatencySummary;
  relay: { cpuPct: number; rssBytes: number } | null;
  /** Video totals over all participants (with `--video`). */
  video: (VideoLoadResult & { layers: number[]; maxLayer: number | null }) | null;
}

/** Reads utime+stime (clock ticks) and VmRSS (bytes) of a local process. */
export function sampleProcess(pid: number): { ticks: number; rssBytes: number } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = /VmRSS:\s+(\d+) kB/.exec(status);
    return { ticks, rssBytes: rss === null ? 0 : Number(rss[1]) * 1024 };
  } catch {
    return null;
  }
}

const CLOCK_TICKS_PER_S = 100;

function plan(opts: LoadOptions): ShareSpec[] {
  const prefix = opts.roomPrefix ?? `load-${randomBytes(3).toString('hex')}`;
  const n = Math.max(1, opts.workers);
  const roomKeyHex = opts.encrypt ? randomBytes(32).toString('hex') : undefined;
  const shares: ShareSpec[] = Array.from({ length: n }, () => ({
    signalUrl: opts.signalUrl,
    ...(opts.token !== undefined ? { token: opts.token } : {}),
    members: [],
    pps: opts.pps,
    sizeMin: opts.sizeMin,
    sizeMax: opts.sizeMax,
    mini: opts.mini,
    ...(roomKeyHex !== undefined ? { roomKeyHex } : {}),
    ...(opts.video !== undefined ? { video: opts.video } : {}),
  }));
  let id = 1;
  for (let r = 0; r < opts.rooms; r++) {
    for (let p = 0; p < opts.participants; p++) {
      // Spread each room over the workers so latency includes cross-process paths.
      (shares[(r * opts.participants + p) % n] as ShareSpec).members.push({
        room: `${prefix}-${r}`,
        senderId: id++,
      });
    }
  }
  return shares;
}

interface WorkerHandle {
  ready: Promise<number>;
  start(): void;
  stop(): Promise<ShareResult>;
  progress(): { sent: number; delivered: number };
}

function inProcess(spec: ShareSpec): WorkerHandle {
  const share = new Share(spec);
  return {
    ready: share.join(),
    start: () => share.start(),
    progress: () => ({ sent: share.sentCount, delivered: share.deliveredCount }),
    stop: async () => {
      share.stop();
      await new Promise((r) => setTimeout(r, 300));
      const result = share.result();
      await share.close();
      return result;
    },
  };
}

function forked(spec: ShareSpec): WorkerHandle {
  const child: ChildProcess = fork(new URL('./worker-main.js', import.meta.url), [], {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  let last = { sent: 0, delivered: 0 };
  let resultResolve: (r: ShareResult) => void = () => {};
  let resultReject: (e: Error) => void = () => {};
  const result = new Promise<ShareResult>((resolve, reject) => {
    resultResolve = resolve;
    resultReject = reject;
  });
  const ready = new Promise<number>((resolve, reject) => {
    child.on('message', (raw) => {
      const m = raw as {
        type: string;
        joined?: number;
        sent?: number;
        delivered?: number;
        result?: ShareResult;
        message?: string;
      };
      if (m.type === 'ready') {
        resolve(m.joined ?? 0);
      } else if (m.type === 'progress') {
        last = { sent: m.sent ?? 0, delivered: m.delivered ?? 0 };
      } else if (m.type === 'result' && m.result !== undefined) {
        resultResolve(m.result);
      } else if (m.type === 'error') {
        const err = new WzpError('TRANSPORT_CLOSED', `load worker failed: ${m.message ?? '?'}`);
        reject(err);
        resultReject(err);
      }
    });
    child.on('exit', (code) => {
      if (code !== 0) {
        const err = new WzpError('TRANSPORT_CLOSED', `load worker exited with ${code}`);
        reject(err);
        resultReject(err);
      }
    });
  });
  child.send({ type: 'spec', spec });
  return {
    ready,
    start: () => child.send({ type: 'start' }),
    progress: () => last,
    stop: () => {
      child.send({ type: 'stop' });
      return result;
    },
  };
}

function requireInt(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new WzpError(
      'CONFIG_INVALID',
      `${name} must be an integer in ${min}..${max}, got ${value}`,
    );
  }
}

/** Rejects options that cannot describe a load test, with a message naming the option. */
export function validateOptions(opts: LoadOptions): void {
  requireInt('rooms', opts.rooms, 1, 10_000);
  if (opts.participants < 2) {
    throw new WzpError(
      'CONFIG_INVALID',
      'a room needs at least 2 participants to forward anything',
    );
  }
  requireInt('participants', opts.participants, 2, 1000);
  requireInt('pps', opts.pps, 1, 10_000);
  requireInt('workers', opts.workers, 0, 64);
  requireInt('size (minimum)', opts.sizeMin, 16, 1100);
  requireInt('size (maximum)', opts.sizeMax, opts.sizeMin, 1100);
  const v = opts.video;
  if (v !== undefined) {
    if (
      v.layers.length === 0 ||
      v.layers.some((l) => !Number.isInteger(l) || l < 0 || l > 2) ||
      new Set(v.layers).size !== v.layers.length
    ) {
      throw new WzpError(
        'CONFIG_INVALID',
        `video layers must be distinct stream ids 0..2, got ${v.layers.join(',')}`,
      );
    }
    if (!Number.isFinite(v.bitrateScale) || v.bitrateScale <= 0 || v.bitrateScale > 10) {
      throw new WzpError('CONFIG_INVALID', `video scale must be in (0, 10], got ${v.bitrateScale}`);
    }
    requireInt('keyframe interval', v.keyframeInterval, 1, 100_000);
    if (v.maxLayer !== undefined) {
      requireInt('max layer', v.maxLayer, 0, 2);
    }
  }
  if (!Number.isFinite(opts.durationS) || opts.durationS <= 0 || opts.durationS > 86_400) {
    throw new WzpError('CONFIG_INVALID', `duration must be in (0, 86400] s, got ${opts.durationS}`);
  }
}

/** Runs one load test and returns the merged report. */
export async function runLoad(opts: LoadOptions): Promise<LoadReport> {
  validateOptions(opts);
  const specs = plan(opts);
  const workers = specs.map((s) => (opts.workers === 0 ? inProcess(s) : forked(s)));
  const joined = (await Promise.all(workers.map((w) => w.ready))).reduce((a, b) => a + b, 0);
  const before = opts.relayPid === undefined ? null : sampleProcess(opts.relayPid);
  const t0 = performance.now();
  for (const w of workers) {
    w.start();
  }
  const progressTimer = setInterval(() => {
    const p = workers.map((w) => w.progress());
    opts.onProgress?.({
      elapsedS: (performance.now() - t0) / 1000,
      sent: p.reduce((n, x) => n + x.sent, 0),
      delivered: p.reduce((n, x) => n + x.delivered, 0),
    });
  }, 250);
  await new Promise((r) => setTimeout(r, opts.durationS * 1000));
  clearInterval(progressTimer);
  const elapsedS = (performance.now() - t0) / 1000;
  const after = opts.relayPid === undefined ? null : sampleProcess(opts.relayPid);
  const results = await Promise.all(workers.map((w) => w.stop()));

  const merged = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 60_000_000,
    numberOfSignificantValueDigits: 3,
  });
  let sent = 0;
  let delivered = 0;
  let duplicates = 0;
  let expected = 0;
  let video: LoadReport['video'] = null;
  if (opts.video !== undefined) {
    video = {
      layers: opts.video.layers,
      maxLayer: opts.video.maxLayer ?? null,
      sent: [0, 0, 0],
      keyframesSent: [0, 0, 0],
      received: [0, 0, 0],
      keyframesReceived: [0, 0, 0],
      bytes: 0,
      plis: 0,
    };
  }
  for (const r of results) {
    if (video !== null && r.video !== undefined) {
      for (let l = 0; l < 3; l++) {
        video.sent[l] = (video.sent[l] as number) + (r.video.sent[l] as number);
        video.keyframesSent[l] =
          (video.keyframesSent[l] as number) + (r.video.keyframesSent[l] as number);
        video.received[l] = (video.received[l] as number) + (r.video.received[l] as number);
        video.keyframesReceived[l] =
          (video.keyframesReceived[l] as number) + (r.video.keyframesReceived[l] as number);
      }
      video.bytes += r.video.bytes;
      video.plis += r.video.plis;
    }
    sent += r.sent;
    delivered += r.delivered;
    duplicates += r.duplicates;
    for (const n of Object.values(r.sentBySender)) {
      expected += n * (opts.participants - 1);
    }
    const h = hdr.decodeFromCompressedBase64(r.histogram);
    merged.add(h);
    h.destroy();
  }
  const ms = (us: number) => Math.round(us) / 1000;
  const latencyMs: LatencySummary = {
    p50: ms(merged.getValueAtPercentile(50)),
    p95: ms(merged.getValueAtPercentile(95)),
    p99: ms(merged.getValueAtPercentile(99)),
    p999: ms(merged.getValueAtPercentile(99.9)),
    max: ms(merged.maxValue),
    mean: ms(merged.mean),
  };
  merged.destroy();
  return {
    rooms: opts.rooms,
    participants: opts.participants,
    pps: opts.pps,
    sizeMin: opts.sizeMin,
    sizeMax: opts.sizeMax,
    mini: opts.mini,
    encrypt: opts.encrypt,
    workers: opts.workers,
    durationS: Math.round(elapsedS * 100) / 100,
    joined,
    sent,
    expected,
    delivered,
    lossPct: expected > 0 ? Math.max(0, (1 - delivered / expected) * 100) : 0,
    duplicates,
    deliveredPps: Math.round(delivered / elapsedS),
    latencyMs,
    relay:
      before !== null && after !== null
        ? {
            cpuPct:
              Math.round(((after.ticks - before.ticks) / CLOCK_TICKS_PER_S / elapsedS) * 1000) / 10,
            rssBytes: after.rssBytes,
          }
        : null,
    video,
  };
}

/** The report as an aligned text table. */
export function formatLoadReport(r: LoadReport): string {
  const rows: [string, string][] = [
    ['rooms × participants', `${r.rooms} × ${r.participants} (${r.joined} joined)`],
    [
      'rate per sender',
      `${r.pps} pps, ${r.sizeMin}–${r.sizeMax} B${r.mini ? ', MINI frames' : ', FULL frames'}${r.encrypt ? ', encrypted' : ''}`,
    ],
    [
      'duration',
      `${r.durationS} s on ${r.workers === 0 ? 'the main process' : `${r.workers} worker(s)`}`,
    ],
    ['sent / expected / delivered', `${r.sent} / ${r.expected} / ${r.delivered}`],
    ['delivered rate', `${r.deliveredPps} pps`],
    ['loss', `${r.lossPct.toFixed(3)} %`],
    ['duplicates', String(r.duplicates)],
    [
      'latency p50 / p95 / p99 / p99.9 / max',
      `${r.latencyMs.p50} / ${r.latencyMs.p95} / ${r.latencyMs.p99} / ${r.latencyMs.p999} / ${r.latencyMs.max} ms`,
    ],
    [
      'relay CPU / RSS',
      r.relay === null
        ? 'n/a (give --relay-pid for a local relay)'
        : `${r.relay.cpuPct} % / ${(r.relay.rssBytes / 1048576).toFixed(1)} MiB`,
    ],
  ];
  const v = r.video;
  if (v !== null) {
    const per = (a: number[]) => v.layers.map((l) => `L${l} ${a[l]}`).join(', ');
    rows.push(
      [
        'video layers sent',
        `${v.layers.join(',')}${v.maxLayer === null ? '' : `, receivers capped at ${v.maxLayer}`}`,
      ],
      ['video packets sent / received', `${per(v.sent)} / ${per(v.received)}`],
      ['video keyframes sent / received', `${per(v.keyframesSent)} / ${per(v.keyframesReceived)}`],
      ['video bytes received / PLIs', `${v.bytes} B / ${v.plis}`],
    );
  }
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n');
}
