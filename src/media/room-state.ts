/**
 * Relay-side state of one room, created with the room and dropped with it:
 * the room quality tier, PLI targets (by tag, or the senders of video on a
 * stream id) and PLI suppression times per (sender, stream). Touched by the event loop only.
 */
import { RoomTierTracker } from '../quality/index.js';
import type { Session } from './session.js';

export class RoomState {
  readonly tiers = new RoomTierTracker();
  /** Last forwarded PLI time per `${ownerId}:${streamId}`. */
  private readonly pliLast = new Map<string, number>();

  /**
   * The senders a PLI for `streamId` goes to: with `tag`, the participant
   * with that tag; without, every participant that sent video on
   * `streamId`. `from` (the requester) is never a target.
   */
  pliTargets(
    snapshot: readonly { readonly sink: Session }[],
    from: Session | null,
    streamId: number,
    tag: number | null,
  ): Session[] {
    const out: Session[] = [];
    for (const p of snapshot) {
      const s = p.sink;
      if (s === from || s.closed) {
        continue;
      }
      if (tag !== null ? s.tag === tag : s.av.sendsVideo(streamId)) {
        out.push(s);
      }
    }
    return out;
  }

  /**
   * Suppression per (sender, stream): true when a PLI for `target`'s
   * `streamId` may go out now (and records it), false inside the window.
   */
  admitPli(target: Session, streamId: number, nowMs: number, windowMs: number): boolean {
    const key = `${target.id}:${streamId}`;
    const last = this.pliLast.get(key);
    if (last !== undefined && nowMs - last < windowMs) {
      return false;
    }
    this.pliLast.set(key, nowMs);
    return true;
  }

  /** Forgets everything about a session that left. */
  forget(session: Session): void {
    for (const key of this.pliLast.keys()) {
      if (key.startsWith(`${session.id}:`)) {
        this.pliLast.delete(key);
      }
    }
  }
}
