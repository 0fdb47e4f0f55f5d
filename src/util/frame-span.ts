import { type CpuTime, threadCpuUsage } from './thread-cpu.js';

/** Receives one span: wall seconds and main-thread CPU seconds. */
export type FrameObserver = (seconds: number, cpuSeconds: number) => void;

/**
 * Times the synchronous work one received frame causes when that work is
 * spread over microtasks (an `await`ed handshake step after the frame's
 * 'message' event): `begin` when the frame arrives, `end` where the work it
 * triggered stops. Wall time (`performance.now`) and this thread's CPU time
 * (`threadCpuUsage`). A span left open is ended by the next `begin`, so
 * spans never overlap and each is observed once.
 */
export class FrameSpan {
  private t0 = -1;
  private cpu0: CpuTime = { user: 0, system: 0 };

  constructor(private readonly observe: FrameObserver) {}

  get open(): boolean {
    return this.t0 >= 0;
  }

  /** Starts a span (ending the open one first). */
  begin(): void {
    this.end();
    this.t0 = performance.now();
    this.cpu0 = threadCpuUsage();
  }

  /** Starts a span unless one is open. */
  ensure(): void {
    if (this.t0 < 0) {
      this.begin();
    }
  }

  /** Ends the open span, if any, and observes it. */
  end(): void {
    if (this.t0 < 0) {
      return;
    }
    const cpu = threadCpuUsage(this.cpu0);
    const seconds = (performance.now() - this.t0) / 1000;
    this.t0 = -1;
    this.observe(seconds, (cpu.user + cpu.system) / 1e6);
  }
}
