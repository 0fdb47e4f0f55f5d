/**
 * Token buckets on simulated time: refill, the burst cap, costs, and the
 * packed TokenBuckets agreeing with TokenBucket on any sequence of takes.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TokenBucket, TokenBuckets } from './token-bucket.js';

describe('TokenBuckets', () => {
  it('starts full, refills at its rate and never holds more than its burst', () => {
    const b = new TokenBuckets(1);
    b.set(0, 10, 3, 0); // 10 tokens/s, burst 3
    expect([b.take(0, 0), b.take(0, 0), b.take(0, 0), b.take(0, 0)]).toEqual([
      true,
      true,
      true,
      false,
    ]);
    expect(b.take(0, 50)).toBe(false); // half a token
    expect(b.take(0, 100)).toBe(true); // one token after 100 ms
    // A long idle spell refills to the burst, not beyond.
    expect([b.take(0, 60_000), b.take(0, 60_000), b.take(0, 60_000)]).toEqual([true, true, true]);
    expect(b.take(0, 60_000)).toBe(false);
  });

  it('takes a cost whole or not at all, and keeps the buckets apart', () => {
    const b = new TokenBuckets(2);
    b.set(0, 1000, 500, 0);
    b.set(1, 1, 1, 0);
    expect(b.take(0, 0, 400)).toBe(true);
    expect(b.take(0, 0, 200)).toBe(false); // 100 left: nothing is taken
    expect(b.take(0, 0, 100)).toBe(true);
    expect(b.take(1, 0)).toBe(true);
    expect(b.take(1, 0)).toBe(false);
    expect(b.take(0, 500, 500)).toBe(true); // bucket 0 refilled regardless of bucket 1
    b.set(1, 1, 1, 500); // reset: full again
    expect(b.take(1, 500)).toBe(true);
  });

  it('agrees with TokenBucket on any sequence of takes', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 100_000 }),
        fc.integer({ min: 1, max: 10_000 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 2000 }), fc.integer({ min: 1, max: 3000 })), {
          maxLength: 200,
        }),
        (rate, burst, steps) => {
          const one = new TokenBucket(rate, burst, 0);
          const packed = new TokenBuckets(3);
          packed.set(1, rate, burst, 0);
          let now = 0;
          for (const [dt, cost] of steps) {
            now += dt;
            expect(packed.take(1, now, cost)).toBe(one.take(now, cost));
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
