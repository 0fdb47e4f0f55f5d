/**
 * A `wzp relay` child process for the hostile-input tests: configured
 * through WZP_* variables, optionally under `prlimit`, with its RSS, open
 * file descriptors and metrics readable from the test.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { until } from './helpers.js';

export const CLI = new URL('../dist/cli/wzp.js', import.meta.url).pathname;

/** True when util-linux `prlimit` can run a child with a different nofile limit. */
export const HAVE_PRLIMIT =
  spawnSync('prlimit', ['--nofile=1024:1024', 'true'], { stdio: 'ignore' }).status === 0;

export interface ChildRelay {
  proc: ChildProcess;
  pid: number;
  url: string;
  fedUrl: string;
  httpUrl: string;
  /** The relay's identity key (hex), as its start line reports it. */
  publicKey: string;
  lines: Record<string, unknown>[];
  /** Resident set size in bytes (VmRSS). */
  rss(): number;
  /** Open file descriptors. */
  fds(): number;
  metrics(): Promise<string>;
  /** GET `path` of the operator endpoint as JSON. */
  json(path: string): Promise<unknown>;
  stop(): Promise<void>;
}

export interface ChildOptions {
  env?: Record<string, string | number | boolean>;
  /** `prlimit --nofile=<value>` (for example "1024:1024"). */
  nofile?: string;
  /** Options for node itself, before the script (for example `--trace-gc`). */
  nodeArgs?: string[];
}

export async function startChildRelay(options: ChildOptions = {}): Promise<ChildRelay> {
  const dataDir = mkdtempSync(join(tmpdir(), 'wzp-hostile-'));
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    WZP_DATA_DIR: dataDir,
    WZP_LOG_LEVEL: 'info',
    WZP_UDP_HOST: '127.0.0.1',
    WZP_UDP_PORT: '0',
    WZP_SIGNAL_HOST: '127.0.0.1',
    WZP_SIGNAL_PORT: '0',
    WZP_HTTP_HOST: '127.0.0.1',
    WZP_HTTP_PORT: '0',
  };
  for (const [k, v] of Object.entries(options.env ?? {})) {
    env[k] = String(v);
  }
  const node = [...(options.nodeArgs ?? []), CLI, 'relay'];
  const [cmd, args] =
    options.nofile === undefined
      ? [process.execPath, node]
      : ['prlimit', [`--nofile=${options.nofile}`, process.execPath, ...node]];
  const proc = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Record<string, unknown>[] = [];
  let buf = '';
  proc.stdout?.on('data', (d: Buffer) => {
    buf += d.toString();
    let i = buf.indexOf('\n');
    while (i >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not a log line
      }
      i = buf.indexOf('\n');
    }
  });
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  try {
    await until(
      () => lines.some((l) => l.msg === 'relay started') || proc.exitCode !== null,
      'relay started',
      30_000,
    );
  } catch (err) {
    proc.kill('SIGKILL');
    throw new Error(`${(err as Error).message}: ${stderr}`);
  }
  if (proc.exitCode !== null) {
    throw new Error(`relay exited ${proc.exitCode}: ${stderr}`);
  }
  const started = lines.find((l) => l.msg === 'relay started') as {
    signal: string;
    http: string;
    pid: number;
    public_key: string;
  };
  const signalPort = Number(started.signal.split(':')[2]?.split('/')[0]);
  const pid = started.pid;
  const status = (): string => readFileSync(`/proc/${pid}/status`, 'utf8');
  return {
    proc,
    pid,
    url: `ws://127.0.0.1:${signalPort}/v2/signal`,
    fedUrl: `ws://127.0.0.1:${signalPort}/v2/federation`,
    httpUrl: started.http,
    publicKey: started.public_key,
    lines,
    rss: () => Number(/VmRSS:\s+(\d+)/.exec(status())?.[1] ?? Number.NaN) * 1024,
    fds: () => readdirSync(`/proc/${pid}/fd`).length,
    metrics: async () => (await fetch(`${started.http}/metrics`)).text(),
    json: async (path) => (await fetch(`${started.http}${path}`)).json() as Promise<unknown>,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise<void>((r) => proc.once('exit', () => r()));
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 8000);
        await exited;
        clearTimeout(t);
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** The value of a metric line `name{labels} value` (labels as written, or none); 0 when absent. */
export function metricValue(text: string, name: string, labels = ''): number {
  const key = labels === '' ? `${name} ` : `${name}{${labels}} `;
  const line = text.split('\n').find((l) => l.startsWith(key));
  return line === undefined ? 0 : Number(line.slice(key.length));
}

/** Sum of every sample of a labelled counter. */
export function metricSum(text: string, name: string): number {
  let n = 0;
  for (const l of text.split('\n')) {
    if (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) {
      n += Number(l.slice(l.lastIndexOf(' ') + 1));
    }
  }
  return n;
}

/** Frames whose synchronous handling took longer than `le` seconds (from the histogram). */
export function framesSlowerThan(
  text: string,
  le: string,
  metric = 'wzp_relay_signal_frame_cpu_seconds',
): number {
  const total = metricValue(text, `${metric}_count`);
  const under = metricValue(text, `${metric}_bucket`, `le="${le}"`);
  return total - under;
}
