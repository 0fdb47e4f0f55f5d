/**
 * Global rooms across links: what we announce to each peer (path-vector
 * presence, presence.ts), which links are interested in a room's media, and
 * the reconciliation that keeps a room's remote participants (local sessions
 * standing for them) in line with what the links announce.
 */
import type { Logger } from '../log/index.js';
import type { RoomState } from '../media/room-state.js';
import { Session } from '../media/session.js';
import type { Room, RoomManager } from '../room/index.js';
import type { FederatedParticipant } from '../signal/index.js';
import {
  type GlobalRoom,
  type GlobalRoomMode,
  type GlobalRoomTable,
  RemoteParticipant,
} from './global-room.js';
import type { Link } from './link.js';
import type { LinkTable } from './link-table.js';
import type { FederationPost } from './mirror.js';
import type { Peer } from './peers.js';
import { acceptAnnouncement, announcementFor, knownRemote } from './presence.js';

/** What presence needs from the media plane of the room's relay. */
export interface RemoteSessions {
  /** A remote participant joined the room: media worker 0 gets a session for it. */
  register(session: Session): void;
  /** Stops routing media to and from a session that is about to leave. */
  unregister(session: Session): void;
}

export interface GlobalRoomsOptions {
  selfId: string;
  label: string;
  log: Logger;
  rooms: RoomManager<Session, RoomState>;
  media: RemoteSessions;
  links: LinkTable;
  globals: GlobalRoomTable;
  /** Commands for federation media in worker 0 (rooms and their interested links). */
  post: FederationPost;
  /** The remote participants of a room changed: send RoomUpdate to its local participants. */
  onRoomChanged: (roomName: string) => void;
  /** Resolves once media worker 0 applied every command posted so far. */
  settled: () => Promise<void>;
  /** True once the federation is stopping (every remote participant leaves). */
  stopped: () => boolean;
  now: () => number;
  /** Media rate of a room added at run time (`federation_room_pps`). */
  roomPps: number;
  /** A peer announced a room that is not global here: true makes it a `home` room (fleet). */
  acceptRoom?: (roomName: string, link: Link) => boolean;
  /** Which rooms a link carries may have changed (idle-link bookkeeping). */
  onUsageChanged?: () => void;
}

export class GlobalRooms {
  constructor(private readonly o: GlobalRoomsOptions) {}

  /** A peer announced (or withdrew) its participants of `roomName`. */
  onAnnouncement(
    link: Link,
    roomName: string,
    participants: readonly FederatedParticipant[] | null,
  ): void {
    let g = this.o.globals.get(roomName);
    if (g === undefined && participants !== null && this.o.acceptRoom?.(roomName, link) === true) {
      g = this.add(roomName, 'home', null);
    }
    if (g === undefined || !g.accepts(link)) {
      this.o.log.debug(
        { peer: link.label, room: roomName },
        'announcement for a room that is not global here (or not with this peer)',
      );
      return;
    }
    if (participants !== null) {
      link.rooms.set(g.name, acceptAnnouncement(this.o.selfId, link.peerId, [...participants]));
    } else {
      link.rooms.delete(g.name);
    }
    this.refreshInterest(g);
    void this.reconcile(g);
    this.announce(g);
    if (g.mode === 'home' && !this.announcedAnywhere(g)) {
      this.remove(g.name);
    }
    this.o.onUsageChanged?.();
  }

  private announcedAnywhere(g: GlobalRoom): boolean {
    for (const link of this.o.links.values()) {
      if (link.rooms.has(g.name)) {
        return true;
      }
    }
    return false;
  }

  /**
   * Adds a room at run time (fleet): its local participants start sending
   * to interested links, and it is announced.
   */
  add(name: string, mode: GlobalRoomMode, only: Peer | null): GlobalRoom {
    const g = this.o.globals.add(name, this.o.roomPps);
    this.o.post({ type: 'room', name, pps: g.pps });
    g.mode = mode;
    g.only = only;
    for (const p of this.o.rooms.get(name)?.snapshot ?? []) {
      if (!p.remote) {
        p.sink.globalRoom = g;
      }
    }
    this.refreshInterest(g);
    this.announce(g);
    void this.reconcile(g);
    return g;
  }

  /** Turns a bridged room into a home room (this relay took it over). */
  promote(name: string): void {
    const g = this.o.globals.get(name);
    if (g !== undefined && g.mode === 'bridge') {
      g.mode = 'home';
      g.only = null;
      this.refreshInterest(g);
      this.announce(g);
      this.o.onUsageChanged?.();
    }
  }

  /**
   * Removes a room added at run time: withdrawn from every link, its remote
   * participants leave, its local ones stop sending to peers.
   */
  remove(name: string): void {
    const g = this.o.globals.get(name);
    if (g === undefined || g.mode === 'static') {
      return;
    }
    this.o.globals.remove(g);
    this.o.post({ type: 'roomGone', name });
    for (const link of this.o.links.values()) {
      if (link.sent.delete(name)) {
        link.send({ type: 'GlobalRoomInactive', body: { room: name } });
      }
      link.rooms.delete(name);
    }
    g.interested = [];
    for (const p of this.o.rooms.get(name)?.snapshot ?? []) {
      if (!p.remote && p.sink.globalRoom === g) {
        p.sink.globalRoom = null;
      }
    }
    void this.reconcile(g);
    this.o.onUsageChanged?.();
  }

  /** A link came up: tell it about every room, and take over rooms it carried before. */
  linkUp(link: Link): void {
    for (const g of this.o.globals.values()) {
      this.announce(g);
      this.refreshInterest(g);
      if (link.rooms.has(g.name)) {
        void this.reconcile(g);
      }
    }
  }

  /** A link went down: its participants leave the rooms it carried. */
  linkDown(rooms: readonly string[]): void {
    for (const g of this.o.globals.values()) {
      this.refreshInterest(g);
      if (rooms.includes(g.name)) {
        void this.reconcile(g);
      }
      this.announce(g);
    }
  }

  /** Some link's UDP path came up. */
  /** The link's UDP path came up: its rooms take media, and its participants are listed. */
  linkUdpReady(link: Link): void {
    for (const g of this.o.globals.values()) {
      this.refreshInterest(g);
      if (link.rooms.has(g.name)) {
        void this.reconcile(g);
      }
    }
  }

  /** Sends each link the room's announcement when it changed. */
  announce(g: GlobalRoom): void {
    const room = this.o.rooms.get(g.name);
    const local = (room?.snapshot ?? [])
      .filter((p) => !p.remote)
      .map((p) => ({ fingerprint: p.fingerprint, alias: p.alias, tag: p.tag }));
    for (const link of this.o.links.values()) {
      const others: FederatedParticipant[][] = [];
      for (const l of this.o.links.values()) {
        const list = l !== link ? l.rooms.get(g.name) : undefined;
        if (list !== undefined) {
          others.push(list);
        }
      }
      const before = link.sent.get(g.name);
      if (!g.announcesTo(link)) {
        if (before !== undefined) {
          link.sent.delete(g.name);
          link.send({ type: 'GlobalRoomInactive', body: { room: g.name } });
        }
        continue;
      }
      const list = announcementFor(this.o.selfId, this.o.label, link.peerId, local, others);
      const json = JSON.stringify(list);
      if (json === before || (list.length === 0 && before === undefined)) {
        continue;
      }
      if (list.length === 0) {
        link.sent.delete(g.name);
        link.send({ type: 'GlobalRoomInactive', body: { room: g.name } });
      } else {
        link.sent.set(g.name, json);
        link.send({ type: 'GlobalRoomActive', body: { room: g.name, participants: list } });
      }
    }
  }

  private refreshInterest(g: GlobalRoom): void {
    const next: Link[] = [];
    for (const link of this.o.links.values()) {
      if (link.udpReady && g.accepts(link) && (link.rooms.get(g.name)?.length ?? 0) > 0) {
        next.push(link);
      }
    }
    const before = g.interested;
    g.interested = next;
    if (next.length !== before.length || next.some((l, i) => l !== before[i])) {
      this.pushInterest(g);
    }
  }

  /** Tells worker 0 which links take the room's media. */
  pushInterest(g: GlobalRoom): void {
    this.o.post({ type: 'interest', room: g.name, links: g.interested.map((l) => l.id) });
  }

  /**
   * Brings the room's remote participants in line with what the links
   * announce: joins the new ones (with distinct local tags), removes the
   * gone ones, then asks for a RoomUpdate. Runs one at a time per room.
   */
  async reconcile(g: GlobalRoom): Promise<void> {
    if (g.reconciling) {
      g.dirty = true;
      return;
    }
    g.reconciling = true;
    try {
      do {
        g.dirty = false;
        if (await this.reconcileOnce(g)) {
          // Media worker 0 forwards to the room's remote participants only
          // once it applied their joins and the room's link interest: wait,
          // so that the first packet sent after the RoomUpdate crosses.
          await this.settled(g);
          this.o.onRoomChanged(g.name);
        }
      } while (g.dirty);
    } catch (err) {
      this.o.log.error({ room: g.name, err: (err as Error).message }, 'room reconciliation failed');
    } finally {
      g.reconciling = false;
    }
  }

  private async settled(g: GlobalRoom): Promise<void> {
    try {
      await this.o.settled();
    } catch (err) {
      this.o.log.warn(
        { room: g.name, err: (err as Error).message },
        'media worker 0 did not confirm the room state; sending the RoomUpdate anyway',
      );
    }
  }

  private async reconcileOnce(g: GlobalRoom): Promise<boolean> {
    const lists: FederatedParticipant[][] = [];
    for (const link of this.o.links.values()) {
      // A link's participants are listed once its UDP path is up (our BIND
      // acknowledged): before that the room's media could not reach them,
      // and a client that starts sending on the RoomUpdate would lose it.
      if (!link.udpReady) {
        continue;
      }
      const list = link.rooms.get(g.name);
      if (list !== undefined) {
        lists.push(list);
      }
    }
    const desired = this.o.stopped() ? new Map() : knownRemote(this.o.selfId, lists);
    let changed = false;
    let failed = 0;
    let lastError = '';
    for (const [key, session] of [...g.remotes]) {
      if (desired.has(key)) {
        continue;
      }
      g.remotes.delete(key);
      const r = session.remote as RemoteParticipant;
      g.index(session, r.origin, r.originTag, false);
      this.o.media.unregister(session);
      // Demands links sent for it go with it (they would pile up on a long-lived link).
      this.o.links.forgetDemands(session.id);
      await this.o.rooms.leave(session.room as Room<Session, RoomState>, session.id);
      changed = true;
    }
    for (const [key, p] of desired) {
      if (g.remotes.has(key)) {
        continue;
      }
      const origin = p.path[0] as string;
      const remote = new RemoteParticipant(origin, p.tag, p.path);
      try {
        const now = this.o.now();
        const joined = await this.o.rooms.join(
          g.name,
          {
            fingerprint: p.fingerprint,
            alias: p.alias,
            relayLabel: p.relay_label ?? origin,
            remote: true,
          },
          ({ id, tag, room }) =>
            new Session({
              id,
              tag,
              fingerprint: p.fingerprint,
              alias: p.alias,
              room,
              bindToken: Buffer.alloc(16),
              signal: NO_SIGNAL,
              observer: NO_OBSERVER,
              canPublish: true,
              canSubscribe: false,
              nowMs: now,
              remote,
            }),
        );
        const session = joined.participant.sink;
        g.remotes.set(key, session);
        g.index(session, origin, p.tag, true);
        this.o.media.register(session);
        changed = true;
      } catch (err) {
        // Logged once per pass below: a hostile or oversized announcement
        // must not turn into one log line per participant.
        failed++;
        lastError = (err as Error).message;
      }
    }
    if (failed > 0) {
      this.o.log.warn(
        { room: g.name, failed, err: lastError },
        'cannot add remote participants (room limit?)',
      );
    }
    return changed;
  }
}

const NO_SIGNAL = { send(): void {}, close(): void {} };
const NO_OBSERVER = {
  observe(): boolean {
    return false;
  },
};
