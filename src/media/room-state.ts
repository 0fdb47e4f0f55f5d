/**
 * Relay-side state of one room, created with the room and dropped with it:
 * the room quality tier, the owner of each stream id (for PLI routing) and
 * PLI suppression times. Touched by the event loop only.
 */
import { RoomTierTracker } from '../quality/index.js';
import type { Session } from './session.js';

export class RoomState {
  readonly tiers = new RoomTierTracker();
  /** Last session that sent a non-repair video packet on each stream id. */
  readonly streamOwners: (Session | undefined)[] = new Array(256);
  /** Last forwarded PLI time per `${ownerId}:${streamId}`. */
  private readonly pliLast = new Map<string, number>();

  /**
   * Decides whether a PLI for `streamId` goes out now: returns the owner to
   * send it to, 'suppressed' inside the window, or 'no_owner'.
   */
  routePli(streamId: number, nowMs: number, windowMs: number): Session | 'suppressed' | 'no_owner' {
    const owner = this.streamOwners[streamId];
    if (owner === undefined || owner.closed) {
      return 'no_owner';
    }
    const key = `${owner.id}:${streamId}`;
    const last = this.pliLast.get(key);
    if (last !== undefined && nowMs - last < windowMs) {
      return 'suppressed';
    }
    this.pliLast.set(key, nowMs);
    return owner;
  }

  /** Forgets everything about a session that left. */
  forget(session: Session): void {
    for (let i = 0; i < this.streamOwners.length; i++) {
      if (this.streamOwners[i] === session) {
        this.streamOwners[i] = undefined;
      }
    }
    for (const key of this.pliLast.keys()) {
      if (key.startsWith(`${session.id}:`)) {
        this.pliLast.delete(key);
      }
    }
  }
}
