import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_DROPOUT, MAX_MISORDER, PacketClass, StreamStats } from './stream-stats.js';

/** Feeds seqs in the given order: 20 ms media clock per seq step, arrival in feed order. */
function feed(s: StreamStats, seqs: readonly number[], base = 0, t0 = 0): PacketClass[] {
  return seqs.map((q, i) => s.update((base + q) >>> 0, (q * 20) >>> 0, 100, t0 + i * 20));
}

function range(from: number, to: number): number[] {
  const out: number[] = [];
  for (let i = from; i < to; i++) {
    out.push(i);
  }
  return out;
}

describe('StreamStats: loss', () => {
  it('counts no loss for an in-order stream', () => {
    const s = new StreamStats();
    const classes = feed(s, range(0, 50), 1000);
    expect(classes[0]).toBe(PacketClass.First);
    expect(classes.slice(1).every((c) => c === PacketClass.InOrder)).toBe(true);
    expect([s.expected, s.received, s.lost, s.lossPct]).toEqual([50, 50, 0, 0]);
    expect(s.highestSeq).toBe(1049);
  });

  it('counts a gap as lost', () => {
    const s = new StreamStats();
    feed(s, [0, 1, 2, 5, 6, 9]);
    expect([s.expected, s.received, s.lost]).toEqual([10, 6, 4]);
    expect(s.lossPct).toBeCloseTo(40, 10);
  });

  it('a late packet fills its gap', () => {
    const s = new StreamStats();
    const classes = feed(s, [0, 1, 3, 4, 2, 5]);
    expect(classes[4]).toBe(PacketClass.Reordered);
    expect([s.expected, s.received, s.lost, s.reordered]).toEqual([6, 6, 0, 1]);
  });

  it('counts duplicates once, of the highest and of older packets', () => {
    const s = new StreamStats();
    const classes = feed(s, [0, 1, 1, 3, 1, 2, 2, 0, 4]);
    expect(classes).toEqual([
      PacketClass.First,
      PacketClass.InOrder,
      PacketClass.Duplicate,
      PacketClass.InOrder,
      PacketClass.Duplicate,
      PacketClass.Reordered,
      PacketClass.Duplicate,
      PacketClass.Duplicate,
      PacketClass.InOrder,
    ]);
    expect([s.expected, s.received, s.lost, s.duplicates, s.packets]).toEqual([5, 5, 0, 4, 9]);
  });

  it('a late packet older than the first one seen moves the base back (loss never negative)', () => {
    const s = new StreamStats();
    feed(s, [10, 11, 8, 12]);
    expect([s.expected, s.received, s.lost]).toEqual([5, 4, 1]);
    s.update(9, 180, 100, 100);
    expect([s.expected, s.received, s.lost]).toEqual([5, 5, 0]);
  });

  it('wraps across 0xFFFFFFFF → 0 without loss', () => {
    const s = new StreamStats();
    for (let i = 0; i < 20; i++) {
      s.update((0xfffffff6 + i) >>> 0, (0xffffff00 + i * 20) >>> 0, 100, i * 20);
    }
    expect([s.expected, s.received, s.lost]).toEqual([20, 20, 0]);
    expect(s.highestSeq).toBe(9);
    expect(s.jitterMs).toBe(0); // the timestamp wrapped too
  });

  it('counts a gap across the wrap, and a late packet from before the wrap fills it', () => {
    const s = new StreamStats();
    s.update(0xfffffffe, 0, 10, 0);
    s.update(1, 60, 10, 60); // 0xffffffff and 0 missing
    expect([s.expected, s.lost]).toEqual([4, 2]);
    expect(s.update(0xffffffff, 20, 10, 61)).toBe(PacketClass.Reordered);
    expect(s.update(0, 40, 10, 62)).toBe(PacketClass.Reordered);
    expect([s.expected, s.received, s.lost]).toEqual([4, 4, 0]);
  });

  it('ignores a single stray far ahead', () => {
    const s = new StreamStats();
    feed(s, [0, 1, 2]);
    expect(s.update(50_000, 0, 100, 100)).toBe(PacketClass.Stray);
    expect(s.update(3, 60, 100, 120)).toBe(PacketClass.InOrder);
    // The stray's successor after other traffic is a stray again, not a resync.
    expect(s.update(50_001, 0, 100, 140)).toBe(PacketClass.Stray);
    expect([s.expected, s.received, s.lost, s.resyncs]).toEqual([4, 4, 0, 0]);
  });

  it(`resyncs on a confirmed jump (> ${MAX_DROPOUT} ahead) instead of counting it lost`, () => {
    const s = new StreamStats();
    feed(s, [0, 1, 3]); // one lost before the restart
    expect(s.update(1_000_000, 0, 100, 100)).toBe(PacketClass.Stray);
    expect(s.update(1_000_001, 20, 100, 120)).toBe(PacketClass.Resync);
    expect(s.update(1_000_002, 40, 100, 140)).toBe(PacketClass.InOrder);
    // 4 expected before (1 lost) + 3 after.
    expect([s.expected, s.received, s.lost, s.resyncs]).toEqual([7, 6, 1, 1]);
    expect(s.highestSeq).toBe(1_000_002);
    expect(s.packets).toBe(6);
  });

  it('resyncs on a confirmed restart backwards, also onto 0', () => {
    const s = new StreamStats();
    feed(s, range(0, 500), 5_000_000);
    expect(s.update(0xffffffff, 0, 100, 20_000)).toBe(PacketClass.Stray);
    expect(s.update(0, 20, 100, 20_020)).toBe(PacketClass.Resync);
    expect(s.update(0xffffffff, 0, 100, 20_030)).toBe(PacketClass.Duplicate);
    expect(s.update(2, 60, 100, 20_060)).toBe(PacketClass.InOrder);
    expect([s.expected, s.received, s.lost]).toEqual([504, 503, 1]);
  });

  it('accepts a late packet up to MAX_MISORDER − 1 behind; further behind is a stray', () => {
    const s = new StreamStats();
    feed(
      s,
      range(0, 300).filter((q) => q !== 199 && q !== 200),
    );
    expect(s.update(300 - MAX_MISORDER, 0, 100, 10_000)).toBe(PacketClass.Reordered);
    expect(s.update(299 - MAX_MISORDER, 0, 100, 10_001)).toBe(PacketClass.Stray);
    expect([s.expected, s.lost]).toEqual([300, 1]);
  });
});

describe('StreamStats: interval loss', () => {
  it('reports the loss since the previous call and resets', () => {
    const s = new StreamStats();
    const seqs = range(0, 100).filter((q) => q % 10 !== 5);
    feed(s, seqs);
    expect(s.takeIntervalLoss()).toBeCloseTo(10, 10);
    expect(s.takeIntervalLoss()).toBe(0);
    feed(s, [100, 103], 0, 5000);
    expect(s.takeIntervalLoss()).toBeCloseTo(50, 10); // 101, 102 missing of 4
  });

  it('never goes below 0 when late packets fill an earlier interval', () => {
    const s = new StreamStats();
    feed(s, [0, 1, 3]);
    expect(s.takeIntervalLoss()).toBeCloseTo(25, 10);
    s.update(2, 40, 100, 100);
    s.update(4, 80, 100, 120);
    expect(s.takeIntervalLoss()).toBe(0);
  });

  it('returns NaN and keeps accumulating below minExpected', () => {
    const s = new StreamStats();
    feed(s, [0, 2]);
    expect(s.takeIntervalLoss(5)).toBeNaN();
    feed(s, [3, 4], 0, 100);
    expect(s.takeIntervalLoss(5)).toBeCloseTo(20, 10);
  });

  it('is 0 before any packet', () => {
    expect(new StreamStats().takeIntervalLoss()).toBe(0);
  });
});

describe('StreamStats: jitter', () => {
  it('is 0 for constant transit and converges back to ~0 after a noisy phase', () => {
    const steady = new StreamStats();
    for (let i = 0; i < 200; i++) {
      steady.update(i, i * 20, 100, 5_000 + i * 20);
    }
    expect(steady.jitterMs).toBe(0);

    const s = new StreamStats();
    for (let i = 0; i < 100; i++) {
      s.update(i, i * 20, 100, i * 20 + (i % 2 === 0 ? 0 : 10));
    }
    const noisy = s.jitterMs;
    expect(noisy).toBeGreaterThan(9);
    for (let i = 100; i < 400; i++) {
      s.update(i, i * 20, 100, i * 20 + 3); // constant offset again
    }
    expect(s.jitterMs).toBeLessThan(0.01);
  });

  it('grows with variable arrival: J → |D| for a ±offset pattern', () => {
    const s = new StreamStats();
    for (let i = 0; i < 300; i++) {
      s.update(i, i * 20, 100, i * 20 + (i % 2 === 0 ? 0 : 8));
    }
    expect(s.jitterMs).toBeCloseTo(8, 3);
  });

  it('follows J += (|D| − J) / 16 exactly', () => {
    const s = new StreamStats();
    s.update(0, 0, 100, 0);
    s.update(1, 20, 100, 36); // D = 16
    expect(s.jitterMs).toBe(1);
    s.update(2, 40, 100, 40); // D = 4 − 20 = −16
    expect(s.jitterMs).toBeCloseTo(1 + 15 / 16, 12);
  });

  it('uses the media-clock difference for late packets and skips duplicates', () => {
    const s = new StreamStats();
    s.update(0, 0, 100, 0);
    s.update(2, 40, 100, 40);
    s.update(1, 20, 100, 20 + 40); // transit +40: D = 20 − (−20) = 40
    expect(s.jitterMs).toBeCloseTo(40 / 16, 12);
    s.update(1, 20, 100, 500); // duplicate: no change
    expect(s.jitterMs).toBeCloseTo(40 / 16, 12);
  });
});

describe('StreamStats: rates and snapshot', () => {
  it('reports packet and bit rates over the last second, decaying to 0 in silence', () => {
    const s = new StreamStats();
    for (let i = 0; i < 150; i++) {
      s.update(i, i * 20, 200, i * 20); // 50 pps, 200 B
    }
    const now = 149 * 20;
    expect(s.packetRate(now)).toBeGreaterThan(48);
    expect(s.packetRate(now)).toBeLessThan(52);
    expect(s.bitRate(now)).toBeCloseTo(s.packetRate(now) * 200 * 8, 6);
    expect(s.packetRate(now + 500)).toBeGreaterThan(s.packetRate(now + 900));
    expect(s.packetRate(now + 2000)).toBe(0);
    expect(s.bitRate(now + 2000)).toBe(0);
  });

  it('counts a burst after silence from zero', () => {
    const s = new StreamStats();
    s.update(0, 0, 100, 0);
    for (let i = 1; i <= 10; i++) {
      s.update(i, i * 20, 100, 10_000 + i);
    }
    expect(s.packetRate(10_010)).toBe(10);
    expect(new StreamStats().packetRate(123)).toBe(0);
  });

  it('produces the admin JSON snapshot', () => {
    const s = new StreamStats();
    feed(s, [0, 1, 3, 3]);
    const snap = s.snapshot(60);
    expect(snap).toMatchObject({
      packets: 4,
      bytes: 400,
      expected: 4,
      received: 3,
      lost: 1,
      lossPct: 25,
      highestSeq: 3,
      reordered: 0,
      duplicates: 1,
      resyncs: 0,
    });
    expect(snap.pps).toBe(4);
    expect(snap.bps).toBe(3200);
    expect(typeof snap.jitterMs).toBe('number');
    expect(JSON.parse(JSON.stringify(snap))).toEqual(snap);
  });
});

describe('StreamStats: properties', () => {
  /** Checks the invariants after feeding `order` (offsets from `start`). */
  function check(start: number, order: readonly number[]): boolean {
    const s = new StreamStats();
    for (let i = 0; i < order.length; i++) {
      const q = order[i] ?? 0;
      s.update((start + q) >>> 0, (q * 20) >>> 0, 50, i * 20);
    }
    const distinct = new Set(order);
    const expected = Math.max(...distinct) - Math.min(...distinct) + 1;
    return (
      s.expected === expected &&
      s.received === distinct.size &&
      s.lost === expected - distinct.size &&
      s.duplicates === order.length - distinct.size &&
      s.lost >= 0
    );
  }

  it('any permutation with drops and duplicates of a short range: lost = expected − distinct received', () => {
    const start = fc.oneof(
      fc.integer({ min: 0, max: 0xffffffff }),
      fc.integer({ min: 0xffffff9c, max: 0xffffffff }), // ranges straddling the wrap
    );
    const sample = fc
      .uniqueArray(fc.integer({ min: 0, max: 99 }), { minLength: 1, maxLength: 100 })
      .chain((kept) =>
        fc.tuple(
          fc.shuffledSubarray(kept, { minLength: kept.length, maxLength: kept.length }),
          fc.array(fc.constantFrom(...kept), { maxLength: 20 }),
          fc.array(fc.nat(), { maxLength: 20 }),
        ),
      )
      .map(([perm, dups, at]) => {
        const order = [...perm];
        dups.forEach((d, i) => {
          order.splice(((at[i] ?? 0) % order.length) + 1, 0, d);
        });
        return order;
      });
    fc.assert(
      fc.property(start, sample, (st, order) => check(st, order)),
      { numRuns: 500 },
    );
  });

  it('long ranges with drops and bounded reordering: lost = expected − distinct received', () => {
    const sample = fc
      .array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 49 })), {
        minLength: 1,
        maxLength: 2000,
      })
      .map((slots) => {
        const kept = slots
          .map(([keep, jitter], i) => ({ i, key: i + jitter, keep }))
          .filter((p) => p.keep || p.i === 0);
        kept.sort((a, b) => a.key - b.key || a.i - b.i);
        return kept.map((p) => p.i);
      });
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), sample, (st, order) => check(st, order)),
      { numRuns: 200 },
    );
  });
});
