import { describe, expect, it } from 'vitest';
import { ErrorReplyLimiter } from './error-replies.js';

describe('ErrorReplyLimiter', () => {
  it('answers a burst, then one per second standing for the suppressed rejections', () => {
    const l = new ErrorReplyLimiter(3, 1, 0);
    expect([l.admit(0), l.admit(1), l.admit(2)]).toEqual([1, 1, 1]);
    // 1000 rejections in the next 999 ms: none answered, all counted.
    let answered = 0;
    for (let i = 0; i < 1000; i++) {
      answered += l.admit(3 + i * 0.996) > 0 ? 1 : 0;
    }
    expect(answered).toBe(0);
    expect(l.pending).toBe(1000);
    // One second after the burst: one reply for all of them and this one.
    expect(l.admit(1002)).toBe(1001);
    expect(l.pending).toBe(0);
    expect(l.admit(1003)).toBe(0);
  });

  it('always answers a closing rejection, with the count', () => {
    const l = new ErrorReplyLimiter(1, 1, 0);
    expect(l.admit(0)).toBe(1);
    expect(l.admit(1)).toBe(0);
    expect(l.admit(2)).toBe(0);
    expect(l.admit(3, true)).toBe(3);
  });
});
