/**
 * The reconnect loop of one configured peer that has a URL: dial, and after
 * a failure or a lost link wait an exponential backoff with jitter
 * (`federation_backoff_initial_ms` doubling up to `federation_backoff_max_ms`,
 * ±25 %). One deadline timer at a time.
 */
import type { RelayConfig } from '../config/index.js';
import { isWzpError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import type { Peer } from './peers.js';

/** What a dialer needs from the federation. */
export interface DialTarget {
  readonly config: RelayConfig;
  readonly log: Logger;
  /** True while an authenticated link with `peer` is installed. */
  hasLink(peer: Peer): boolean;
  /** Dials and installs a link; resolves true when one got installed. */
  dial(peer: Peer): Promise<boolean>;
  /** Counts a link event for metrics. */
  countEvent(event: string): void;
}

export class Dialer {
  failures = 0;
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private stopped = false;

  constructor(
    private readonly target: DialTarget,
    private readonly peer: Peer,
  ) {}

  kick(delayMs: number): void {
    if (this.stopped || this.timer !== null || this.running) {
      return;
    }
    this.timer = setTimeout(() => void this.run(), delayMs);
    this.timer.unref();
  }

  linkLost(): void {
    this.kick(this.backoff());
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  private backoff(): number {
    const c = this.target.config;
    const base = Math.min(
      c.federation_backoff_max_ms,
      c.federation_backoff_initial_ms * 2 ** Math.min(this.failures, 20),
    );
    return Math.round(base * (0.75 + Math.random() * 0.5));
  }

  private async run(): Promise<void> {
    this.timer = null;
    if (this.stopped || this.target.hasLink(this.peer)) {
      return;
    }
    this.running = true;
    try {
      if (await this.target.dial(this.peer)) {
        this.failures = 0;
      }
    } catch (err) {
      this.failures++;
      const e = isWzpError(err) ? err : null;
      const wrongKey = e?.code === 'FEDERATION_WRONG_KEY' || e?.code === 'FEDERATION_UNKNOWN_PEER';
      this.target.log[wrongKey || this.failures === 1 ? 'warn' : 'debug'](
        { peer: this.peer.label, code: e?.code, attempt: this.failures },
        `federation dial failed: ${(err as Error).message}`,
      );
      if (e?.code === 'FEDERATION_WRONG_KEY') {
        this.target.countEvent('refused_wrong_key');
      }
    } finally {
      this.running = false;
    }
    if (!this.target.hasLink(this.peer)) {
      this.kick(this.backoff());
    }
  }
}
