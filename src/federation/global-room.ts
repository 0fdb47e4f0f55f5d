/**
 * The federation state of one global room on the main thread: its room
 * hash, the links interested in it, and the local sessions that stand for
 * remote participants, indexed by (origin relay id, sender tag). Its media
 * half (rate limit, replay windows, the hot-path index) is in worker 0
 * (media-state.ts).
 */
import type { GlobalRoomRef, RemoteRef, Session } from '../media/session.js';
import { roomHash } from '../wire/index.js';
import type { Link } from './link.js';
import { OriginIndex } from './media-state.js';
import type { Peer } from './peers.js';

/**
 * How a global room is bridged: `static` — configured (`global_rooms`), with
 * every link; `home` — this relay is the room's fleet home: it accepts any
 * trusted peer's announcement and announces only to links that announced the
 * room; `bridge` — served here bridged to its home: announced to and
 * accepted from the home's link only (a star per room: media crosses each
 * link once).
 */
export type GlobalRoomMode = 'static' | 'home' | 'bridge';

/** A participant of another relay, as carried by its local Session (its replay windows are in worker 0). */
export class RemoteParticipant implements RemoteRef {
  constructor(
    readonly origin: string,
    readonly originTag: number,
    readonly path: readonly string[],
  ) {}
}

export class GlobalRoom implements GlobalRoomRef {
  readonly hash: Buffer;
  /** Links whose peer announced participants here and whose UDP path is up. */
  interested: Link[] = [];
  /** Local sessions standing for remote participants, by participant key. */
  readonly remotes = new Map<string, Session>();
  /** `remotes` by (origin relay id, tag at the origin). */
  private readonly byOrigin = new OriginIndex();
  /** Media rate limit of this room across all links (`federation_room_pps`, enforced in worker 0). */
  readonly pps: number;
  reconciling = false;
  dirty = false;
  mode: GlobalRoomMode = 'static';
  /** The home's peer of a `bridge` room. */
  only: Peer | null = null;

  /** True when announcements from `link` count for this room. */
  accepts(link: Link): boolean {
    return this.mode !== 'bridge' || link.peer === this.only;
  }

  /** True when this room is announced on `link`. */
  announcesTo(link: Link): boolean {
    if (this.mode === 'static') {
      return true;
    }
    return this.mode === 'bridge' ? link.peer === this.only : link.rooms.has(this.name);
  }

  constructor(
    readonly name: string,
    pps: number,
  ) {
    this.hash = roomHash(name);
    this.pps = pps;
  }

  /** The session of remote sender `tag` from origin relay (hi, lo), if known. */
  remoteAt(hi: number, lo: number, tag: number): Session | undefined {
    return this.byOrigin.at(hi, lo, tag);
  }

  /** Adds or removes `session` in the index by origin. */
  index(session: Session, origin: string, tag: number, add: boolean): void {
    this.byOrigin.set(session, origin, tag, add);
  }
}

/** The global rooms of this relay, by name. */
export class GlobalRoomTable {
  private readonly byName = new Map<string, GlobalRoom>();

  constructor(names: readonly string[], pps: number) {
    for (const name of names) {
      this.add(name, pps);
    }
  }

  /** Adds a room (configured, or dynamic for the fleet). */
  add(name: string, pps: number): GlobalRoom {
    const g = new GlobalRoom(name, pps);
    this.byName.set(name, g);
    return g;
  }

  /** Removes a dynamic room. */
  remove(g: GlobalRoom): void {
    if (this.byName.get(g.name) === g) {
      this.byName.delete(g.name);
    }
  }

  get(name: string): GlobalRoom | undefined {
    return this.byName.get(name);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  values(): IterableIterator<GlobalRoom> {
    return this.byName.values();
  }

  names(): string[] {
    return [...this.byName.keys()];
  }
}
