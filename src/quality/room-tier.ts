/**
 * Room-wide tier: the weakest participant's tier (Good for an empty room).
 * Every change — a participant moving, joining or leaving, including the
 * weakest one leaving — is reported so the caller can broadcast a
 * QualityDirective.
 */
import { Tier } from './tiers.js';

export class RoomTierTracker {
  private readonly tiers = new Map<number, Tier>();
  private current: Tier = Tier.Good;

  get tier(): Tier {
    return this.current;
  }

  /** Sets a participant's tier; returns the new room tier if it changed, else null. */
  set(id: number, tier: Tier): Tier | null {
    this.tiers.set(id, tier);
    return this.recompute();
  }

  /** Removes a participant; returns the new room tier if it changed, else null. */
  remove(id: number): Tier | null {
    if (!this.tiers.delete(id)) {
      return null;
    }
    return this.recompute();
  }

  /** Tier of one participant, if tracked. */
  of(id: number): Tier | undefined {
    return this.tiers.get(id);
  }

  private recompute(): Tier | null {
    let weakest: Tier | null = null;
    for (const t of this.tiers.values()) {
      if (weakest === null || t < weakest) {
        weakest = t;
      }
    }
    const next = weakest ?? Tier.Good;
    if (next === this.current) {
      return null;
    }
    this.current = next;
    return next;
  }
}
