import { describe, expect, it } from 'vitest';
import { BufferSlab } from './slab.js';

describe('BufferSlab', () => {
  it('hands out disjoint views, never reusing bytes, and grows by whole slabs', () => {
    const slab = new BufferSlab(64);
    const a = slab.take(10);
    const b = slab.take(20);
    a.fill(1);
    b.fill(2);
    expect(a.every((x) => x === 1)).toBe(true);
    expect(a.buffer).toBe(b.buffer);
    expect(slab.slabs).toBe(1);
    const c = slab.take(40); // does not fit in the rest of the first slab
    c.fill(3);
    expect(c.buffer).not.toBe(a.buffer);
    expect(slab.slabs).toBe(2);
    expect(a.every((x) => x === 1) && b.every((x) => x === 2)).toBe(true);
    const big = slab.take(1000); // larger than a slab: its own
    expect(big.length).toBe(1000);
    expect(slab.slabs).toBe(3);
  });
});
