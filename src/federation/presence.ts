/**
 * Room presence across relays: a path-vector protocol over
 * `GlobalRoomActive` / `GlobalRoomInactive` (docs/federation.md).
 *
 * Every relay announces, per global room and per link, the full list of
 * participants it knows there: its own (path = [self]) and those learned
 * from its OTHER links, with itself appended to their path. An entry whose
 * path already holds the receiver is a loop and is ignored; an entry is
 * never announced back to a relay on its path (split horizon). Lists are
 * state, not events: each announcement replaces the previous one from that
 * link, so a lost or repeated message cannot leave a stale participant, and
 * a dead link's entries disappear with it.
 */
import type { FederatedParticipant } from '../signal/index.js';

/** Longest path accepted or announced (the media hop limit cannot exceed it either). */
export const MAX_PATH = 16;

/** A remote participant is identified by its origin relay and its tag there. */
export function participantKey(p: { path: readonly string[]; tag: number }): string {
  return `${p.path[0] ?? ''}:${p.tag}`;
}

/**
 * The remote participants `self` knows from the given lists: one entry per
 * key (the shortest path wins), loops removed.
 */
export function knownRemote(
  selfId: string,
  lists: Iterable<readonly FederatedParticipant[]>,
  exclude: string | null = null,
): Map<string, FederatedParticipant> {
  const best = new Map<string, FederatedParticipant>();
  for (const list of lists) {
    for (const p of list) {
      if (p.path.includes(selfId) || (exclude !== null && p.path.includes(exclude))) {
        continue;
      }
      const key = participantKey(p);
      const prev = best.get(key);
      if (prev === undefined || p.path.length < prev.path.length) {
        best.set(key, p);
      }
    }
  }
  return best;
}

export interface LocalParticipant {
  fingerprint: string;
  alias: string | null;
  tag: number;
}

/**
 * The list `self` announces for one room on its link to `peerId`: local
 * participants, then what it learned from its other links (`otherLists`)
 * that does not pass through `peerId`, sorted so equal states compare equal.
 */
export function announcementFor(
  selfId: string,
  selfLabel: string,
  peerId: string,
  local: readonly LocalParticipant[],
  otherLists: Iterable<readonly FederatedParticipant[]>,
): FederatedParticipant[] {
  const out: FederatedParticipant[] = local.map((p) => ({
    fingerprint: p.fingerprint,
    alias: p.alias,
    relay_label: selfLabel,
    tag: p.tag,
    path: [selfId],
  }));
  for (const p of knownRemote(selfId, otherLists, peerId).values()) {
    if (p.path.length < MAX_PATH) {
      out.push({ ...p, path: [...p.path, selfId] });
    }
  }
  out.sort((a, b) => {
    const ka = participantKey(a);
    const kb = participantKey(b);
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  });
  return out;
}

/**
 * Keeps the entries of a received announcement that can be right: the last
 * path element must be the announcing peer, the path must not hold us and
 * must not repeat a relay.
 */
export function acceptAnnouncement(
  selfId: string,
  peerId: string,
  participants: readonly FederatedParticipant[],
): FederatedParticipant[] {
  return participants.filter(
    (p) =>
      p.path.length <= MAX_PATH &&
      p.path[p.path.length - 1] === peerId &&
      !p.path.includes(selfId) &&
      new Set(p.path).size === p.path.length,
  );
}
