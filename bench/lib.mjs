// Helpers shared by the benchmarks that drive relays with the C load
// generator (bench/forwarding.mjs, bench/federation.mjs).
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus } from 'node:os';
import { join } from 'node:path';

export const ROOT = new URL('..', import.meta.url).pathname;
export const OUT = join(ROOT, 'bench', 'out');
mkdirSync(OUT, { recursive: true });

export const hasTaskset = (() => {
  try {
    execFileSync('taskset', ['-c', '0', 'true']);
    return cpus().length > 1;
  } catch {
    return false;
  }
})();

/** `[command, argv]` running `cmd` pinned to `cpu` when taskset and a second core exist. */
export const pin = (cpu, cmd, argv) =>
  hasTaskset ? ['taskset', ['-c', String(cpu), cmd, ...argv]] : [cmd, argv];

/** Compiles bench/forwarding/<source> to bench/out/<name> with `cc -O2`; null without a compiler. */
export function compileC(name, source) {
  const bin = join(OUT, name);
  try {
    execFileSync('cc', ['-O2', '-o', bin, join(ROOT, 'bench', 'forwarding', source)], {
      stdio: 'pipe',
    });
    return bin;
  } catch {
    return null;
  }
}

/** A TCP/UDP port free on 127.0.0.1 right now. */
export function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** CPU ticks and RSS of a process from /proc (null when it is gone). */
export function procSample(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(f[11]) + Number(f[12]);
    const rss = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return { ticks, rssBytes: rss ? Number(rss[1]) * 1024 : 0, at: performance.now() };
  } catch {
    return null;
  }
}

/** Percent of one core used between two samples. */
export const cpuPct = (a, b) =>
  a && b ? (((b.ticks - a.ticks) / 100) * 100000) / (b.at - a.at) : null;

/**
 * Runs the load generator pinned to CPU 1 with `argv`, feeding it the
 * participant `lines`; resolves with its JSON result plus lossPct and outPps.
 */
export function runLoadgen(loadgen, argv, lines) {
  return new Promise((resolve, reject) => {
    const [cmd, args] = pin(1, loadgen, argv);
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d) => {
      out += d;
    });
    p.once('exit', (code) => {
      if (code !== 0) {
        reject(new Error(`loadgen exited with ${code}`));
        return;
      }
      const r = JSON.parse(out);
      r.lossPct = r.expected === 0 ? 0 : Math.max(0, (1 - r.received / r.expected) * 100);
      r.outPps = r.received / r.seconds;
      resolve(r);
    });
    p.stdin.end(`${lines.join('\n')}\n`);
  });
}
