import { describe, expect, it } from 'vitest';
import { LogSampler } from './log-sampler.js';

describe('LogSampler', () => {
  it('lets through perSecond lines per key and window and carries the suppressed count', () => {
    const s = new LogSampler(2);
    const out: number[] = [];
    for (let i = 0; i < 100_000; i++) {
      out.push(s.sample('A', i / 100)); // 100 000 events in 1 s
    }
    expect(out.filter((n) => n >= 0)).toEqual([0, 0]);
    expect(s.sample('B', 500)).toBe(0);
    // Next window: the first line reports what the previous one swallowed.
    expect(s.sample('A', 1000)).toBe(99_998);
    expect(s.sample('A', 1001)).toBe(0);
    expect(s.sample('A', 1002)).toBe(-1);
  });

  it('bounds the keys it tracks', () => {
    const s = new LogSampler(1, 4);
    let lines = 0;
    for (let i = 0; i < 1000; i++) {
      if (s.sample(`k${i}`, 0) >= 0) {
        lines++;
      }
    }
    expect(lines).toBeLessThanOrEqual(5);
  });
});
