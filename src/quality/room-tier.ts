/**
 * Room-wide tier: the weakest (lowest) tier among the room's participants,
 * Good for an empty room (reference §3.4). The tracker reports every change
 * of that value so the caller can broadcast a QualityDirective, on upgrades
 * as well as downgrades, and also when a participant leaves: the original
 * relay never recomputed on leave, so a room stayed degraded after its
 * weakest participant had gone; this tracker does not.
 *
 * The weakest tier is derived from a count of participants per tier, so
 * `set` and `remove` cost O(1) whatever the room size.
 */
import { ALL_TIERS, INITIAL_TIER, isTier, TIER_COUNT, type Tier, tierName } from './tiers.js';

/** The QualityDirective reason for a room tier: `weakest link: <TierName>`. */
export function directiveReason(tier: Tier): string {
  return `weakest link: ${tierName(tier)}`;
}

/**
 * Tier per participant and the resulting room tier. Callers register a
 * joiner with {@link RoomTierTracker.set} at Good (joiners count as Good).
 */
export class RoomTierTracker<Id = number> {
  private readonly byId = new Map<Id, Tier>();
  private readonly counts = new Uint32Array(TIER_COUNT);
  private current: Tier = INITIAL_TIER;

  /** The room tier as last reported (Good initially and when empty). */
  get tier(): Tier {
    return this.current;
  }

  /** Number of tracked participants. */
  get size(): number {
    return this.byId.size;
  }

  /** A participant's tier, or undefined if not tracked. */
  get(id: Id): Tier | undefined {
    return this.byId.get(id);
  }

  /**
   * Sets (or adds) a participant's tier. Returns the new room tier if it
   * changed, else null. An invalid tier value is ignored (null).
   */
  set(id: Id, tier: Tier): Tier | null {
    if (!isTier(tier)) {
      return null;
    }
    const previous = this.byId.get(id);
    if (previous === tier) {
      return null;
    }
    if (previous !== undefined) {
      this.counts[previous] = (this.counts[previous] ?? 1) - 1;
    }
    this.byId.set(id, tier);
    this.counts[tier] = (this.counts[tier] ?? 0) + 1;
    return this.update();
  }

  /**
   * Removes a participant. Returns the new room tier if it changed (e.g. the
   * weakest participant left), else null; unknown ids return null.
   */
  remove(id: Id): Tier | null {
    const previous = this.byId.get(id);
    if (previous === undefined) {
      return null;
    }
    this.byId.delete(id);
    this.counts[previous] = (this.counts[previous] ?? 1) - 1;
    return this.update();
  }

  /** The weakest tracked tier, Good when empty (computed, does not update {@link tier}). */
  weakest(): Tier {
    for (const t of ALL_TIERS) {
      if ((this.counts[t] ?? 0) > 0) {
        return t;
      }
    }
    return INITIAL_TIER;
  }

  private update(): Tier | null {
    const next = this.weakest();
    if (next === this.current) {
      return null;
    }
    this.current = next;
    return next;
  }
}
