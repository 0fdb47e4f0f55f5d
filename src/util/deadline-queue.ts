/**
 * A FIFO of deadlines served by ONE timer that sleeps until the earliest
 * deadline. Items are added with `now + delay` for a constant delay, so
 * the queue stays ordered without sorting. No timer is created per item:
 * the timer is armed only when the queue goes from empty to non-empty and
 * re-armed for the next head after it fires.
 *
 * An item may be cancelled by the owner (for example a trunk batch flushed
 * early because it filled up): the owner bumps its own generation and the
 * stale entry is skipped when it reaches the head.
 */
export interface DeadlineItem {
  /** Called when the deadline passes; `generation` is the value given to `add`. */
  onDeadline(generation: number): void;
}

interface Entry {
  item: DeadlineItem;
  generation: number;
  at: number;
}

export class DeadlineQueue {
  private readonly delayMs: number;
  private readonly now: () => number;
  private entries: Entry[] = [];
  private head = 0;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(delayMs: number, now: () => number = () => performance.now()) {
    this.delayMs = delayMs;
    this.now = now;
  }

  /** Number of pending (possibly stale) entries. */
  get size(): number {
    return this.entries.length - this.head;
  }

  /** Schedules `item` to fire `delayMs` from now. */
  add(item: DeadlineItem, generation: number): void {
    if (this.closed) {
      return;
    }
    this.entries.push({ item, generation, at: this.now() + this.delayMs });
    if (this.timer === null) {
      this.arm();
    }
  }

  /** Fires every due entry now (used on shutdown to flush everything). */
  drainAll(): void {
    const entries = this.entries;
    const start = this.head;
    this.entries = [];
    this.head = 0;
    this.clearTimer();
    for (let i = start; i < entries.length; i++) {
      const e = entries[i] as Entry;
      e.item.onDeadline(e.generation);
    }
  }

  /** Stops the timer and forgets every entry. */
  close(): void {
    this.closed = true;
    this.clearTimer();
    this.entries = [];
    this.head = 0;
  }

  private arm(): void {
    const first = this.entries[this.head];
    if (first === undefined) {
      return;
    }
    const wait = Math.max(0, first.at - this.now());
    this.timer = setTimeout(() => this.fire(), wait);
    this.timer.unref?.();
  }

  private clearTimer(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  private fire(): void {
    this.timer = null;
    const now = this.now();
    // Serve every entry that is due; stop at the first one in the future.
    while (this.head < this.entries.length) {
      const e = this.entries[this.head] as Entry;
      if (e.at > now) {
        break;
      }
      this.head++;
      e.item.onDeadline(e.generation);
    }
    if (this.head === this.entries.length) {
      this.entries = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
    if (!this.closed && this.timer === null) {
      this.arm();
    }
  }
}
