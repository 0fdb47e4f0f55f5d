/**
 * Multi-relay test clusters: every relay is a real `wzp relay` child
 * process on 127.0.0.1 with its own data directory, identity and TOML
 * configuration; links are declared as edges between relays.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Identity } from '../src/signal/index.js';
import { TEST_MEDIA_WORKERS, TEST_UDP_IO } from './helpers.js';

export const BIN = new URL('../dist/cli/wzp.js', import.meta.url).pathname;

export interface ClusterRelay {
  name: string;
  dir: string;
  identity: Identity;
  signalPort: number;
  httpPort: number;
  /** Client signalling URL. */
  url: string;
  fedUrl: string;
  httpUrl: string;
  proc: ChildProcess | null;
  output: string[];
  /** Extra TOML appended to the generated configuration (after the [[peers]] tables). */
  extraToml: string;
  /** Extra top-level TOML keys, placed before any table. */
  topToml?: string;
}

export interface ClusterOptions {
  globalRooms?: string[];
  deadMs?: number;
  heartbeatMs?: number;
  trunking?: boolean;
  /** Media workers per relay (default TEST_MEDIA_WORKERS). */
  mediaWorkers?: number;
}

/** Ports this process handed out (never twice). */
const handedOut = new Set<number>();
/** Below Linux's ephemeral range (32768-60999), where `listen(0)` of other tests never lands. */
const PORT_LOW = 20_000;
const PORT_SPAN = 12_000;

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/**
 * A free TCP port for a relay process that binds it later. Picked at random
 * below the ephemeral range: a port the OS handed out and took back (the old
 * way) is exactly what the next `listen(0)` of a concurrent test may get, so
 * relays failed to start with EADDRINUSE now and then.
 */
export async function freePort(): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = PORT_LOW + Math.floor(Math.random() * PORT_SPAN);
    if (handedOut.has(port)) {
      continue;
    }
    if (await bindable(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('no free port found below the ephemeral range');
}

export class Cluster {
  readonly relays = new Map<string, ClusterRelay>();
  private readonly edges: [string, string][] = [];
  private readonly root = mkdtempSync(join(tmpdir(), 'wzp-cluster-'));

  constructor(private readonly options: ClusterOptions = {}) {}

  async add(name: string): Promise<ClusterRelay> {
    const dir = join(this.root, name);
    const identity = Identity.generate();
    const signalPort = await freePort();
    const httpPort = await freePort();
    const r: ClusterRelay = {
      name,
      dir,
      identity,
      signalPort,
      httpPort,
      url: `ws://127.0.0.1:${signalPort}/v2/signal`,
      fedUrl: `ws://127.0.0.1:${signalPort}/v2/federation`,
      httpUrl: `http://127.0.0.1:${httpPort}`,
      proc: null,
      output: [],
      extraToml: '',
    };
    this.relays.set(name, r);
    return r;
  }

  link(a: string, b: string): void {
    this.edges.push([a, b]);
  }

  get(name: string): ClusterRelay {
    const r = this.relays.get(name);
    if (r === undefined) {
      throw new Error(`no relay ${name}`);
    }
    return r;
  }

  neighbours(name: string): string[] {
    return this.edges.flatMap(([a, b]) => (a === name ? [b] : b === name ? [a] : []));
  }

  configToml(r: ClusterRelay): string {
    const o = this.options;
    const lines = [
      'udp_host = "127.0.0.1"',
      'udp_port = 0',
      'signal_host = "127.0.0.1"',
      `signal_port = ${r.signalPort}`,
      'http_host = "127.0.0.1"',
      `http_port = ${r.httpPort}`,
      `relay_label = "${r.name}"`,
      `data_dir = ${JSON.stringify(r.dir)}`,
      'log_level = "info"',
      `trunking = ${o.trunking === true}`,
      // The media I/O path under test (vitest project udp-dgram: dgram; default: auto = native).
      `udp_io = "${TEST_UDP_IO}"`,
      // Media workers per relay (vitest project workers-2: 2; federation media runs in worker 0).
      `media_workers = ${o.mediaWorkers ?? TEST_MEDIA_WORKERS}`,
      `global_rooms = ${JSON.stringify(o.globalRooms ?? ['g'])}`,
      `federation_heartbeat_ms = ${o.heartbeatMs ?? 200}`,
      `federation_dead_ms = ${o.deadMs ?? 1500}`,
      'federation_backoff_initial_ms = 100',
      'federation_backoff_max_ms = 1000',
      'shutdown_timeout_ms = 2000',
      ...(r.topToml !== undefined ? [r.topToml] : []),
    ];
    for (const n of this.neighbours(r.name)) {
      const p = this.get(n);
      lines.push(
        '',
        '[[peers]]',
        `label = "${p.name}"`,
        `url = "${p.fedUrl}"`,
        `public_key = "${p.identity.publicKey.toString('hex')}"`,
      );
    }
    return `${lines.join('\n')}\n${r.extraToml}`;
  }

  /** Starts (or restarts) a relay and waits until it is ready. */
  async start(name: string, readyMs = 20_000): Promise<ClusterRelay> {
    const r = this.get(name);
    rmSync(r.dir, { recursive: true, force: true });
    const { mkdirSync } = await import('node:fs');
    mkdirSync(r.dir, { recursive: true });
    writeFileSync(join(r.dir, 'relay-identity'), `${r.identity.seed.toString('hex')}\n`, {
      mode: 0o600,
    });
    const file = join(r.dir, 'relay.toml');
    writeFileSync(file, this.configToml(r));
    const proc = spawn(process.execPath, [BIN, 'relay', '--config', file], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    r.proc = proc;
    r.output = [];
    proc.stdout?.on('data', (d: Buffer) => r.output.push(...String(d).split('\n').filter(Boolean)));
    proc.stderr?.on('data', (d: Buffer) => r.output.push(...String(d).split('\n').filter(Boolean)));
    const end = Date.now() + readyMs;
    for (;;) {
      if (proc.exitCode !== null) {
        throw new Error(`relay ${name} exited with ${proc.exitCode}: ${r.output.join('\n')}`);
      }
      try {
        const res = await fetch(`${r.httpUrl}/readyz`);
        if (res.ok) {
          return r;
        }
      } catch {
        // not listening yet
      }
      if (Date.now() > end) {
        throw new Error(`relay ${name} not ready: ${r.output.join('\n')}`);
      }
      await new Promise((res) => setTimeout(res, 50));
    }
  }

  async startAll(): Promise<void> {
    await Promise.all([...this.relays.keys()].map((n) => this.start(n)));
  }

  /** /v2/peers of a relay. */
  async peers(name: string): Promise<PeersJson> {
    const res = await fetch(`${this.get(name).httpUrl}/v2/peers`);
    return (await res.json()) as PeersJson;
  }

  /** Prometheus text of a relay. */
  async metrics(name: string): Promise<string> {
    const res = await fetch(`${this.get(name).httpUrl}/metrics`);
    return res.text();
  }

  /** Waits until every configured link of every running relay is up with UDP bound. */
  async linksUp(ms = 10_000): Promise<void> {
    const end = Date.now() + ms;
    for (;;) {
      let all = true;
      for (const r of this.relays.values()) {
        if (r.proc === null || r.proc.exitCode !== null || r.proc.signalCode !== null) {
          continue;
        }
        const p = await this.peers(r.name);
        const running = (label: string) => {
          const q = this.relays.get(label)?.proc;
          return q !== null && q !== undefined && q.exitCode === null && q.signalCode === null;
        };
        if (
          !p.peers.every((x) => !running(x.label) || (x.status === 'up' && x.udp_ready === true))
        ) {
          all = false;
          break;
        }
      }
      if (all) {
        return;
      }
      if (Date.now() > end) {
        const states = await Promise.all(
          [...this.relays.keys()].map(async (n) => [n, (await this.peers(n)).peers]),
        );
        throw new Error(`links not up: ${JSON.stringify(states)}`);
      }
      await new Promise((res) => setTimeout(res, 50));
    }
  }

  async stop(name: string, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const proc = this.get(name).proc;
    if (proc === null || proc.exitCode !== null || proc.signalCode !== null) {
      return;
    }
    const exited = new Promise<void>((res) => proc.once('exit', () => res()));
    proc.kill(signal);
    if (signal === 'SIGSTOP') {
      return;
    }
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }

  async close(): Promise<void> {
    for (const r of this.relays.values()) {
      if (r.proc !== null && r.proc.exitCode === null && r.proc.signalCode === null) {
        r.proc.kill('SIGCONT');
        r.proc.kill('SIGKILL');
      }
    }
    await new Promise((res) => setTimeout(res, 50));
    rmSync(this.root, { recursive: true, force: true });
  }
}

export interface PeersJson {
  self: { label: string; relay_id: string; public_key: string };
  peers: {
    label: string;
    status: 'up' | 'down';
    udp_ready?: boolean;
    rtt_ms?: number | null;
    rooms?: { room: string; participants: number }[];
    layer_demands?: number;
  }[];
}

/** Reads one sample of a Prometheus metric (0 when absent). */
export function metricValue(
  text: string,
  name: string,
  labels: Record<string, string> = {},
): number {
  const want = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort();
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) {
      continue;
    }
    const m = /^([a-z_]+)(\{([^}]*)\})? ([0-9.e+-]+)$/.exec(line);
    if (m === null || m[1] !== name) {
      continue;
    }
    const have = (m[3] ?? '').split(',').filter(Boolean).sort();
    if (want.every((w) => have.includes(w))) {
      return Number(m[4]);
    }
  }
  return 0;
}
