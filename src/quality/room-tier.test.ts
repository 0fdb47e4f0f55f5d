import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { directiveReason, RoomTierTracker } from './room-tier.js';
import { ALL_TIERS, Tier as T, type Tier } from './tiers.js';

describe('RoomTierTracker', () => {
  it('is Good when empty, and joiners at Good change nothing', () => {
    const r = new RoomTierTracker();
    expect(r.tier).toBe(T.Good);
    expect(r.weakest()).toBe(T.Good);
    expect(r.set(1, T.Good)).toBeNull();
    expect(r.set(2, T.Good)).toBeNull();
    expect(r.size).toBe(2);
  });

  it('follows the weakest participant, reporting only changes', () => {
    const r = new RoomTierTracker();
    r.set(1, T.Good);
    r.set(2, T.Good);
    expect(r.set(2, T.Degraded)).toBe(T.Degraded);
    expect(r.set(2, T.Degraded)).toBeNull(); // same value
    expect(r.set(1, T.Studio64k)).toBeNull(); // not the weakest
    expect(r.set(1, T.Catastrophic)).toBe(T.Catastrophic);
    expect(r.set(1, T.Studio48k)).toBe(T.Degraded); // upgrades are changes too
    expect(r.set(2, T.Studio32k)).toBe(T.Studio32k);
    expect(r.tier).toBe(T.Studio32k);
    expect(r.get(1)).toBe(T.Studio48k);
    expect(r.get(3)).toBeUndefined();
  });

  it('raises the room tier when the weakest participant leaves', () => {
    const r = new RoomTierTracker();
    r.set(1, T.Studio48k);
    r.set(2, T.Degraded);
    expect(r.tier).toBe(T.Degraded);
    expect(r.remove(2)).toBe(T.Studio48k);
    expect(r.remove(2)).toBeNull(); // unknown id
    expect(r.remove(1)).toBe(T.Good); // empty room
    expect(r.size).toBe(0);
  });

  it('does not change while another participant shares the weakest tier', () => {
    const r = new RoomTierTracker();
    r.set(1, T.Degraded);
    r.set(2, T.Degraded);
    r.set(3, T.Studio64k);
    expect(r.remove(1)).toBeNull();
    expect(r.set(3, T.Good)).toBeNull();
    expect(r.remove(2)).toBe(T.Good);
  });

  it('ignores invalid tier values', () => {
    const r = new RoomTierTracker();
    expect(r.set(1, 7 as Tier)).toBeNull();
    expect(r.size).toBe(0);
  });

  it('accepts string ids', () => {
    const r = new RoomTierTracker<string>();
    expect(r.set('alice', T.Catastrophic)).toBe(T.Catastrophic);
    expect(r.remove('alice')).toBe(T.Good);
  });

  it('formats the directive reason', () => {
    expect(directiveReason(T.Degraded)).toBe('weakest link: Degraded');
    expect(directiveReason(T.Studio64k)).toBe('weakest link: Studio64k');
  });

  it('property: tier = min of a model map; the return value is non-null exactly on change', () => {
    const op = fc.record({
      id: fc.integer({ min: 0, max: 5 }),
      tier: fc.option(fc.constantFrom(...ALL_TIERS), { nil: null }),
    });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const r = new RoomTierTracker();
        const model = new Map<number, Tier>();
        let before: Tier = T.Good;
        for (const { id, tier } of ops) {
          let result: Tier | null;
          if (tier === null) {
            result = r.remove(id);
            model.delete(id);
          } else {
            result = r.set(id, tier);
            model.set(id, tier);
          }
          const expected = model.size === 0 ? T.Good : (Math.min(...model.values()) as Tier);
          if (r.tier !== expected || r.size !== model.size) {
            return false;
          }
          if (
            (result !== null) !== (expected !== before) ||
            (result !== null && result !== expected)
          ) {
            return false;
          }
          before = expected;
        }
        return true;
      }),
      { numRuns: 300 },
    );
  });
});
