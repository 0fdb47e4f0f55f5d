import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { threadContextSwitches, threadCpuSource, threadCpuUsage } from './thread-cpu.js';

const SPIN_MS = 400;

describe('threadCpuUsage', () => {
  it('counts its own thread and grows while the thread computes', () => {
    const t0 = threadCpuUsage();
    const p0 = process.cpuUsage();
    const until = performance.now() + 150;
    let x = 0;
    while (performance.now() < until) {
      x += 1;
    }
    const d = threadCpuUsage(t0);
    const p = process.cpuUsage(p0);
    expect(x).toBeGreaterThan(0);
    // A loaded machine may give the spin less than its 150 ms of wall time, so
    // the reference is the process's CPU over the same span (getrusage, µs):
    // this thread did nearly all of it, to within one 10 ms tick either way.
    const thread = d.user + d.system;
    const proc = p.user + p.system;
    expect(proc).toBeGreaterThan(20_000);
    expect(thread).toBeGreaterThanOrEqual(proc * 0.8 - 10_000);
    expect(thread).toBeLessThanOrEqual(proc + 10_000);
  });

  it.skipIf(threadCpuSource() === 'process')(
    "leaves out another thread's CPU (a media worker spinning while the main thread sleeps)",
    async () => {
      const worker = new Worker(
        `const until = Date.now() + ${SPIN_MS}; let x = 0; while (Date.now() < until) x++;
         require('node:worker_threads').parentPort.postMessage(x);`,
        { eval: true },
      );
      const started = new Promise((resolve) => worker.once('online', resolve));
      await started;
      const main0 = threadCpuUsage();
      const proc0 = process.cpuUsage();
      await new Promise((resolve) => worker.once('message', resolve));
      const main = threadCpuUsage(main0);
      const proc = process.cpuUsage(proc0);
      await worker.terminate();
      // The process spent the worker's spin; the main thread, waiting, almost none of it.
      expect(proc.user + proc.system).toBeGreaterThan(SPIN_MS * 500);
      expect(main.user + main.system).toBeLessThan(SPIN_MS * 250);
    },
  );
});

describe('threadContextSwitches', () => {
  it.skipIf(process.platform !== 'linux')(
    'counts each sleep of the calling thread as a voluntary switch',
    async () => {
      const read = threadContextSwitches();
      expect(read).not.toBeNull();
      const clock = read as NonNullable<typeof read>;
      const before = { ...clock() };
      // 20 sleeps of this thread: each is at least one voluntary switch.
      for (let i = 0; i < 20; i++) {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      const after = clock();
      expect(after.voluntary - before.voluntary).toBeGreaterThanOrEqual(20);
      expect(Number.isInteger(after.involuntary)).toBe(true);
      expect(after.involuntary).toBeGreaterThanOrEqual(before.involuntary);
    },
  );
});
