/**
 * Token bucket: `ratePerSec` tokens per second up to `burst`. Time is passed
 * in by the caller (monotonic ms), so no timer is involved.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly ratePerSec: number,
    private readonly burst: number,
    nowMs: number,
  ) {
    this.tokens = burst;
    this.last = nowMs;
  }

  /** Takes one token if available. */
  take(nowMs: number, cost = 1): boolean {
    const elapsed = nowMs - this.last;
    if (elapsed > 0) {
      this.tokens = Math.min(this.burst, this.tokens + (elapsed / 1000) * this.ratePerSec);
      this.last = nowMs;
    }
    if (this.tokens >= cost) {
      this.tokens -= cost;
      return true;
    }
    return false;
  }
}

/**
 * Several token buckets packed in one Float64Array (rate, burst, tokens and
 * last refill of each, side by side): the same arithmetic as `TokenBucket`,
 * but checking all of them touches one small block of memory instead of an
 * object and a boxed number per field. For the per-packet path (media policing).
 */
export class TokenBuckets {
  private readonly s: Float64Array;

  constructor(count: number) {
    this.s = new Float64Array(count * 4);
  }

  /** (Re)sets bucket `i`: `ratePerSec` tokens per second up to `burst`, full now. */
  set(i: number, ratePerSec: number, burst: number, nowMs: number): void {
    const s = this.s;
    const o = i * 4;
    s[o] = ratePerSec;
    s[o + 1] = burst;
    s[o + 2] = burst;
    s[o + 3] = nowMs;
  }

  /** Takes `cost` tokens from bucket `i` if it holds them. */
  take(i: number, nowMs: number, cost = 1): boolean {
    const s = this.s;
    const o = i * 4;
    let tokens = s[o + 2] as number;
    const elapsed = nowMs - (s[o + 3] as number);
    if (elapsed > 0) {
      tokens = Math.min(s[o + 1] as number, tokens + (elapsed / 1000) * (s[o] as number));
      s[o + 3] = nowMs;
    }
    if (tokens >= cost) {
      s[o + 2] = tokens - cost;
      return true;
    }
    s[o + 2] = tokens;
    return false;
  }
}
