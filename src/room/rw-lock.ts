/**
 * An async read-write lock built on async-mutex.
 *
 * Many readers or one writer. Writer-preferring: a writer first takes the
 * FIFO `gate` mutex (so readers and writers that arrive after it queue
 * behind it), then waits for the readers already inside to leave. Readers
 * pass through the gate only for an instant, so they run concurrently.
 *
 * Only multi-step changes that await need this (join, leave, federation
 * merges). The per-packet path never touches it: it reads the immutable
 * snapshot the last writer published.
 */
import { Mutex } from 'async-mutex';

export class RwLock {
  private readonly gate = new Mutex();
  private readers = 0;
  private drained: (() => void) | null = null;

  /** Number of readers inside right now. */
  get activeReaders(): number {
    return this.readers;
  }

  /** True while a writer holds or waits for the gate. */
  get writeLocked(): boolean {
    return this.gate.isLocked();
  }

  /** Runs `fn` under the read side; releases on return or throw. */
  async runRead<T>(fn: () => Promise<T> | T): Promise<T> {
    const release = await this.gate.acquire();
    this.readers++;
    release();
    try {
      return await fn();
    } finally {
      this.readers--;
      if (this.readers === 0 && this.drained !== null) {
        const wake = this.drained;
        this.drained = null;
        wake();
      }
    }
  }

  /** Runs `fn` under the write side (exclusive); releases on return or throw. */
  async runWrite<T>(fn: () => Promise<T> | T): Promise<T> {
    const release = await this.gate.acquire();
    try {
      if (this.readers > 0) {
        await new Promise<void>((resolve) => {
          this.drained = resolve;
        });
      }
      return await fn();
    } finally {
      release();
    }
  }
}
