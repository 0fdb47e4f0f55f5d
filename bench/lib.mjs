// Helpers shared by the benchmarks that drive relays with the C load
// generator (bench/forwarding.mjs, bench/federation.mjs).
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';

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

/**
 * Builds bench/forwarding/`source` as an N-API add-on into bench/out/`name`.node
 * against the running Node's headers (<prefix>/include/node, as
 * scripts/build-native.mjs finds them; never downloaded), or returns null.
 */
export function compileAddon(name, source) {
  const bin = join(OUT, `${name}.node`);
  const include = join(dirname(process.execPath), '..', 'include', 'node');
  try {
    execFileSync(
      'cc',
      [
        '-O2',
        '-shared',
        '-fPIC',
        `-I${include}`,
        '-o',
        bin,
        join(ROOT, 'bench', 'forwarding', source),
      ],
      { stdio: 'pipe' },
    );
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
    const userTicks = Number(f[11]);
    const sysTicks = Number(f[12]);
    const ticks = userTicks + sysTicks;
    const rss = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return {
      ticks,
      userTicks,
      sysTicks,
      rssBytes: rss ? Number(rss[1]) * 1024 : 0,
      at: performance.now(),
    };
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
export function runLoadgen(loadgen, argv, lines, env = undefined) {
  return new Promise((resolve, reject) => {
    const [cmd, args] = pin(1, loadgen, argv);
    const p = spawn(cmd, args, {
      stdio: ['pipe', 'pipe', 'inherit'],
      env: env === undefined ? process.env : { ...process.env, ...env },
    });
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

/**
 * Moves this process (every thread) to `cpu`, so the harness and whatever it
 * spawns without `pin` (WebSocket clients, the control-plane driver) share
 * the load generator's core and never the relay's. False when not possible.
 */
export function pinSelf(cpu) {
  if (!hasTaskset) {
    return false;
  }
  try {
    execFileSync('taskset', ['-a', '-p', '-c', String(cpu), String(process.pid)], {
      stdio: 'pipe',
    });
    return true;
  } catch {
    return false;
  }
}

/** CPU time of a process (all its threads, exited ones included) in µs, from /proc. */
export const cpuUs = (a, b) => (a && b ? (b.ticks - a.ticks) * 10_000 : null);

/** Median, min and max of the finite numbers in `xs` (nulls when there are none). */
export function spread(xs) {
  const s = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) {
    return { median: null, min: null, max: null, n: 0 };
  }
  const mid = s.length >> 1;
  const median = s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  return { median, min: s[0], max: s[s.length - 1], n: s.length };
}

/** The inspector URL a process started with `--inspect=127.0.0.1:0` prints on stderr, or null. */
export const inspectorUrl = (stderrText) =>
  /Debugger listening on (ws:\/\/\S+)/.exec(stderrText)?.[1] ?? null;

/**
 * A Chrome DevTools Protocol session on a Node process's inspector, reaching
 * its main thread (`call`) and its worker threads (`callWorker`, after
 * `attachWorkers`). For use between measured steps, or in diagnostic runs.
 */
export async function openInspector(url) {
  const { WebSocket } = await import('ws');
  const ws = new WebSocket(url);
  let nextId = 1;
  const pending = new Map();
  const workerPending = new Map();
  const workers = [];
  ws.on('message', (data) => {
    const msg = JSON.parse(String(data));
    if (msg.id !== undefined) {
      pending.get(msg.id)?.(msg);
      pending.delete(msg.id);
    } else if (msg.method === 'NodeWorker.attachedToWorker') {
      workers.push(msg.params.sessionId);
    } else if (msg.method === 'NodeWorker.receivedMessageFromWorker') {
      const inner = JSON.parse(msg.params.message);
      const key = `${msg.params.sessionId}:${inner.id}`;
      workerPending.get(key)?.(inner);
      workerPending.delete(key);
    }
  });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const call = (method, params = {}) =>
    new Promise((resolve) => {
      const id = nextId++;
      pending.set(id, resolve);
      ws.send(JSON.stringify({ id, method, params }));
    });
  return {
    workers,
    call,
    callWorker: (sessionId, method, params = {}) =>
      new Promise((resolve) => {
        const id = nextId++;
        workerPending.set(`${sessionId}:${id}`, resolve);
        call('NodeWorker.sendMessageToWorker', {
          sessionId,
          message: JSON.stringify({ id, method, params }),
        });
      }),
    async attachWorkers() {
      await call('NodeWorker.enable', { waitForDebuggerOnStart: false });
      await new Promise((r) => setTimeout(r, 200));
      return workers;
    },
    close: () => ws.terminate(),
  };
}

/**
 * Heap used after a forced full collection, on the main thread and on every
 * worker thread of a Node process, through its inspector. Connects, collects,
 * reads and disconnects: call it only between measured steps. Resolves
 * { mainBytes, workerBytes: [], totalBytes } or null.
 */
export async function inspectHeap(url, timeoutMs = 10_000) {
  let session = null;
  const work = (async () => {
    session = await openInspector(url);
    await session.call('HeapProfiler.collectGarbage');
    const main = await session.call('Runtime.getHeapUsage');
    const workerBytes = [];
    for (const w of await session.attachWorkers()) {
      await session.callWorker(w, 'HeapProfiler.collectGarbage');
      const u = await session.callWorker(w, 'Runtime.getHeapUsage');
      workerBytes.push(u.result?.usedSize ?? null);
    }
    await session.call('NodeWorker.disable');
    const mainBytes = main.result?.usedSize ?? null;
    return {
      mainBytes,
      workerBytes,
      totalBytes: [mainBytes, ...workerBytes].reduce((a, b) => a + (b ?? 0), 0),
    };
  })();
  try {
    return await Promise.race([
      work,
      new Promise((resolve) => setTimeout(() => resolve(null), timeoutMs)),
    ]);
  } catch {
    return null;
  } finally {
    session?.close();
  }
}

/**
 * Diagnostic only: starts the CPU profiler on every thread of a Node process;
 * resolves a function that stops it and resolves [{ thread, profile }].
 */
export async function startProfile(url) {
  const s = await openInspector(url);
  await s.call('Profiler.enable');
  await s.call('Profiler.setSamplingInterval', { interval: 200 });
  await s.call('Profiler.start');
  const workers = await s.attachWorkers();
  for (const w of workers) {
    await s.callWorker(w, 'Profiler.enable');
    await s.callWorker(w, 'Profiler.setSamplingInterval', { interval: 200 });
    await s.callWorker(w, 'Profiler.start');
  }
  return async () => {
    const out = [{ thread: 'main', profile: (await s.call('Profiler.stop')).result?.profile }];
    for (const [i, w] of workers.entries()) {
      out.push({
        thread: `worker${i}`,
        profile: (await s.callWorker(w, 'Profiler.stop')).result?.profile,
      });
    }
    s.close();
    return out;
  };
}

/**
 * Per-thread CPU ticks and context switches of `pid` (BENCH_THREADS=1's
 * diagnostic): Map tid → { name, ticks, sysTicks, vol, invol }; null if gone.
 */
export function threadSample(pid) {
  try {
    const m = new Map();
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const st = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
      m.set(tid, {
        name,
        ticks: Number(f[11]) + Number(f[12]),
        sysTicks: Number(f[12]),
        vol: Number(/\nvoluntary_ctxt_switches:\s+(\d+)/.exec(st)?.[1] ?? 0),
        invol: Number(/nonvoluntary_ctxt_switches:\s+(\d+)/.exec(st)?.[1] ?? 0),
      });
    }
    return m;
  } catch {
    return null;
  }
}

/** What each thread did between two threadSample()s, busiest first (threads that did nothing left out). */
export function threadDelta(a, b) {
  if (a === null || b === null) {
    return [];
  }
  const rows = [];
  for (const [tid, y] of b) {
    const x = a.get(tid) ?? { ticks: 0, sysTicks: 0, vol: 0, invol: 0 };
    const d = {
      tid,
      name: y.name,
      ticks: y.ticks - x.ticks,
      sysTicks: y.sysTicks - x.sysTicks,
      vol: y.vol - x.vol,
      invol: y.invol - x.invol,
    };
    if (d.ticks > 0 || d.vol > 0 || d.invol > 0) {
      rows.push(d);
    }
  }
  return rows.sort((p, q) => q.ticks - p.ticks || q.vol - p.vol);
}

/** Context switches (voluntary, involuntary) summed over the threads of a process, from /proc. */
export function ctxSwitches(pid) {
  try {
    let vol = 0;
    let invol = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const st = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
      vol += Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(st)?.[1] ?? 0);
      invol += Number(/nonvoluntary_ctxt_switches:\s+(\d+)/.exec(st)?.[1] ?? 0);
    }
    return { vol, invol };
  } catch {
    return null;
  }
}
