/**
 * Keyframe requests across links (BINDING.md §8.5): a PLI for a remote
 * participant travels hop by hop towards its origin relay as
 * `FederationPli { room, origin, tag, stream_id }` (origin relay id and the
 * participant's tag there). Each relay sends it on the link its
 * announcement of that participant came from (the last relay of its path);
 * the origin relay hands it to its local sender, with its usual
 * suppression per (sender, stream).
 */
import type { Logger } from '../log/index.js';
import type { RoomState } from '../media/room-state.js';
import type { Session } from '../media/session.js';
import type { RoomManager } from '../room/index.js';
import type { BodyOf } from '../signal/index.js';
import type { GlobalRoomTable, RemoteParticipant } from './global-room.js';
import type { Link } from './link.js';
import type { LinkTable } from './link-table.js';

export interface FederationPliOptions {
  selfId: string;
  log: Logger;
  rooms: RoomManager<Session, RoomState>;
  links: LinkTable;
  globals: GlobalRoomTable;
  /** A PLI arrived for a local sender. */
  onLocalPli: (sender: Session, streamId: number) => void;
}

export class FederationPliRouter {
  /** PLIs sent on links, received, and dropped (unknown room or participant). */
  sent = 0;
  received = 0;
  dropped = 0;

  constructor(private readonly o: FederationPliOptions) {}

  /** Sends a PLI for remote participant `remote` towards its origin; false if no link leads there. */
  send(remote: Session, streamId: number): boolean {
    const r = remote.remote as RemoteParticipant | null;
    if (r === null) {
      return false;
    }
    const via = r.path[r.path.length - 1];
    for (const link of this.o.links.values()) {
      if (link.peerId === via && !link.closed) {
        link.send({
          type: 'FederationPli',
          body: { room: remote.room.name, origin: r.origin, tag: r.originTag, stream_id: streamId },
        });
        this.sent++;
        return true;
      }
    }
    return false;
  }

  /** A FederationPli from a link. */
  onMessage(link: Link, body: BodyOf<'FederationPli'>): void {
    this.received++;
    const g = this.o.globals.get(body.room);
    if (g === undefined) {
      this.dropped++;
      return;
    }
    if (body.origin === this.o.selfId) {
      const room = this.o.rooms.get(g.name);
      const p = room?.snapshot.find((x) => x.tag === body.tag && !x.remote);
      if (p === undefined) {
        this.dropped++;
        this.o.log.debug({ peer: link.label, tag: body.tag }, 'PLI for an unknown local sender');
        return;
      }
      this.o.onLocalPli(p.sink, body.stream_id);
      return;
    }
    const hi = Number.parseInt(body.origin.slice(0, 8), 16);
    const lo = Number.parseInt(body.origin.slice(8, 16), 16);
    const remote = g.remoteAt(hi, lo, body.tag);
    if (remote === undefined || !this.send(remote, body.stream_id)) {
      this.dropped++;
    }
  }
}
