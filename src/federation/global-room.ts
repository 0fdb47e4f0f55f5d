/**
 * The federation state of one configured global room: its room hash, the
 * links interested in it, and the local sessions that stand for remote
 * participants, with a hot-path index by (origin relay id, sender tag).
 */
import type { GlobalRoomRef, RemoteRef, Session } from '../media/session.js';
import { TokenBucket } from '../util/token-bucket.js';
import { roomHash } from '../wire/index.js';
import type { Link } from './link.js';
import type { Peer } from './peers.js';
import { StreamReplay } from './replay-window.js';

/**
 * How a global room is bridged: `static` — configured (`global_rooms`), with
 * every link; `home` — this relay is the room's fleet home: it accepts any
 * trusted peer's announcement and announces only to links that announced the
 * room; `bridge` — served here bridged to its home: announced to and
 * accepted from the home's link only (a star per room: media crosses each
 * link once).
 */
export type GlobalRoomMode = 'static' | 'home' | 'bridge';

/** A participant of another relay, as carried by its local Session. */
export class RemoteParticipant implements RemoteRef {
  readonly replay = new StreamReplay();
  constructor(
    readonly origin: string,
    readonly originTag: number,
    readonly path: readonly string[],
  ) {}
}

interface OriginEntry {
  lo: number;
  byTag: Map<number, Session>;
}

export class GlobalRoom implements GlobalRoomRef {
  readonly hash: Buffer;
  readonly hashHi: number;
  readonly hashLo: number;
  /** Links whose peer announced participants here and whose UDP path is up. */
  interested: Link[] = [];
  /** Local sessions standing for remote participants, by participant key. */
  readonly remotes = new Map<string, Session>();
  /** Hot-path index of `remotes`: origin id high word → entries. */
  readonly byOrigin = new Map<number, OriginEntry[]>();
  /** Media rate limit of this room across all links. */
  readonly bucket: TokenBucket;
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
    nowMs: number,
  ) {
    this.hash = roomHash(name);
    this.hashHi = this.hash.readUInt32BE(0);
    this.hashLo = this.hash.readUInt32BE(4);
    this.bucket = new TokenBucket(pps, pps, nowMs);
  }

  /** The session of remote sender `tag` from origin relay (hi, lo), if known. */
  remoteAt(hi: number, lo: number, tag: number): Session | undefined {
    const list = this.byOrigin.get(hi);
    if (list === undefined) {
      return undefined;
    }
    for (let i = 0; i < list.length; i++) {
      const e = list[i] as OriginEntry;
      if (e.lo === lo) {
        return e.byTag.get(tag);
      }
    }
    return undefined;
  }

  /** Adds or removes `session` in the hot-path index. */
  index(session: Session, origin: string, tag: number, add: boolean): void {
    const hi = Number.parseInt(origin.slice(0, 8), 16);
    const lo = Number.parseInt(origin.slice(8, 16), 16);
    let list = this.byOrigin.get(hi);
    if (list === undefined) {
      if (!add) {
        return;
      }
      list = [];
      this.byOrigin.set(hi, list);
    }
    let entry = list.find((e) => e.lo === lo);
    if (entry === undefined) {
      if (!add) {
        return;
      }
      entry = { lo, byTag: new Map() };
      list.push(entry);
    }
    if (add) {
      entry.byTag.set(tag, session);
    } else if (entry.byTag.get(tag) === session) {
      entry.byTag.delete(tag);
    }
  }
}

/** The configured global rooms, by name and by room hash (hot path). */
export class GlobalRoomTable {
  private readonly byName = new Map<string, GlobalRoom>();
  private readonly byHash = new Map<number, GlobalRoom[]>();

  constructor(names: readonly string[], pps: number, nowMs: number) {
    for (const name of names) {
      this.add(name, pps, nowMs);
    }
  }

  /** Adds a room (configured, or dynamic for the fleet). */
  add(name: string, pps: number, nowMs: number): GlobalRoom {
    const g = new GlobalRoom(name, pps, nowMs);
    this.byName.set(name, g);
    const list = this.byHash.get(g.hashHi) ?? [];
    list.push(g);
    this.byHash.set(g.hashHi, list);
    return g;
  }

  /** Removes a dynamic room. */
  remove(g: GlobalRoom): void {
    if (this.byName.get(g.name) !== g) {
      return;
    }
    this.byName.delete(g.name);
    const list = (this.byHash.get(g.hashHi) ?? []).filter((x) => x !== g);
    if (list.length === 0) {
      this.byHash.delete(g.hashHi);
    } else {
      this.byHash.set(g.hashHi, list);
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

  /** The room whose 8-byte hash is (hi, lo), without allocating. */
  at(hi: number, lo: number): GlobalRoom | undefined {
    const list = this.byHash.get(hi);
    if (list === undefined) {
      return undefined;
    }
    for (let i = 0; i < list.length; i++) {
      const g = list[i] as GlobalRoom;
      if (g.hashLo === lo) {
        return g;
      }
    }
    return undefined;
  }
}
