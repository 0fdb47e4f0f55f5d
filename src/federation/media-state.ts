/**
 * Federation media state inside media worker 0 (worker-plane.ts): the
 * media half of each link (bind tokens, bound and acknowledged addresses,
 * the per-peer rate limit, layer demand, the trunk batcher, counters), the
 * media half of each global room (room hash, interested links, the per-room
 * rate limit, the index of its remote participants), and the remote
 * participants' replay windows. The main thread owns the other halves
 * (link.ts, global-room.ts) and pushes what changes (worker-protocol.ts).
 */
import type { GlobalRoomRef, RemoteRef, Session } from '../media/session.js';
import { AddressMap } from '../util/address-map.js';
import { TokenBucket } from '../util/token-bucket.js';
import { type FederationBatcher, roomHash } from '../wire/index.js';
import { StreamReplay } from './replay-window.js';

/** A participant of another relay as worker 0 sees it: its replay windows. */
export class RemoteMedia implements RemoteRef {
  readonly replay = new StreamReplay();
  constructor(
    readonly origin: string,
    readonly originTag: number,
  ) {}
}

/** The media half of one link. */
export class MediaLink {
  readonly localBindToken: Buffer;
  readonly localKey: string;
  readonly peerBindToken: Buffer;
  boundAddress: string | null = null;
  boundPort = 0;
  mediaAddress: string | null = null;
  mediaPort = 0;
  udpReady = false;
  closed = false;
  lastHeardMs = 0;
  packetsIn = 0;
  packetsOut = 0;
  readonly mediaBucket: TokenBucket;
  /** Highest video layer the peer needs of a sender (absent: every layer). */
  layerDemand: WeakMap<Session, number> | null = null;
  batcher: FederationBatcher | null = null;
  batchGeneration = 0;
  readonly flushItem = {
    onDeadline: (generation: number): void => {
      if (generation === this.batchGeneration) {
        this.batcher?.flush();
      }
    },
  };

  constructor(
    readonly id: number,
    readonly slot: number,
    localToken: Uint8Array,
    peerToken: Uint8Array,
    readonly remoteAddress: string,
    readonly peerUdpPort: number,
    peerPps: number,
    nowMs: number,
  ) {
    this.localBindToken = Buffer.from(localToken);
    this.localKey = this.localBindToken.toString('hex');
    this.peerBindToken = Buffer.from(peerToken);
    this.mediaBucket = new TokenBucket(peerPps, peerPps, nowMs);
  }
}

/** The links of worker 0, by id, by local bind token and by bound UDP source (hot path). */
export class MediaLinkTable {
  private readonly byId = new Map<number, MediaLink>();
  private readonly byToken = new Map<string, MediaLink>();
  private readonly byAddr = new AddressMap<MediaLink>();

  get(id: number): MediaLink | undefined {
    return this.byId.get(id);
  }

  values(): IterableIterator<MediaLink> {
    return this.byId.values();
  }

  add(link: MediaLink): void {
    this.byId.set(link.id, link);
    this.byToken.set(link.localKey, link);
  }

  byBindToken(hex: string): MediaLink | undefined {
    return this.byToken.get(hex);
  }

  /** The link bound to UDP source (address, port), without allocating. */
  byAddress(port: number, address: string): MediaLink | undefined {
    return this.byAddr.get(port, address);
  }

  bindAddress(link: MediaLink, address: string, port: number): void {
    if (link.boundAddress !== null) {
      this.byAddr.deleteIf(link.boundPort, link.boundAddress, link);
    }
    link.boundAddress = address;
    link.boundPort = port;
    this.byAddr.set(port, address, link);
  }

  remove(link: MediaLink): void {
    if (this.byId.get(link.id) === link) {
      this.byId.delete(link.id);
    }
    if (this.byToken.get(link.localKey) === link) {
      this.byToken.delete(link.localKey);
    }
    if (link.boundAddress !== null) {
      this.byAddr.deleteIf(link.boundPort, link.boundAddress, link);
    }
  }
}

interface OriginEntry {
  lo: number;
  byTag: Map<number, Session>;
}

/** Sessions of remote participants by (origin relay id, tag at the origin), without allocating. */
export class OriginIndex {
  private readonly byOrigin = new Map<number, OriginEntry[]>();

  /** The session of remote sender `tag` from origin relay (hi, lo), if known. */
  at(hi: number, lo: number, tag: number): Session | undefined {
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

  /** Adds or removes `session` as (origin, tag). */
  set(session: Session, origin: string, tag: number, add: boolean): void {
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

/** The media half of one global room. */
export class MediaRoom implements GlobalRoomRef {
  readonly hash: Buffer;
  readonly hashHi: number;
  readonly hashLo: number;
  /** Links whose peers take this room's media. */
  interested: MediaLink[] = [];
  /** Media rate limit of this room across all links. */
  readonly bucket: TokenBucket;
  readonly remotes = new OriginIndex();

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

  remoteAt(hi: number, lo: number, tag: number): Session | undefined {
    return this.remotes.at(hi, lo, tag);
  }
}

/** The global rooms of worker 0, by name and by room hash (hot path). */
export class MediaRoomTable {
  private readonly byName = new Map<string, MediaRoom>();
  private readonly byHash = new Map<number, MediaRoom[]>();

  get(name: string): MediaRoom | undefined {
    return this.byName.get(name);
  }

  add(name: string, pps: number, nowMs: number): MediaRoom {
    const existing = this.byName.get(name);
    if (existing !== undefined) {
      return existing;
    }
    const g = new MediaRoom(name, pps, nowMs);
    this.byName.set(name, g);
    const list = this.byHash.get(g.hashHi) ?? [];
    list.push(g);
    this.byHash.set(g.hashHi, list);
    return g;
  }

  remove(name: string): MediaRoom | undefined {
    const g = this.byName.get(name);
    if (g === undefined) {
      return undefined;
    }
    this.byName.delete(name);
    const list = (this.byHash.get(g.hashHi) ?? []).filter((x) => x !== g);
    if (list.length === 0) {
      this.byHash.delete(g.hashHi);
    } else {
      this.byHash.set(g.hashHi, list);
    }
    return g;
  }

  values(): IterableIterator<MediaRoom> {
    return this.byName.values();
  }

  /** The room whose 8-byte hash is (hi, lo), without allocating. */
  at(hi: number, lo: number): MediaRoom | undefined {
    const list = this.byHash.get(hi);
    if (list === undefined) {
      return undefined;
    }
    for (let i = 0; i < list.length; i++) {
      const g = list[i] as MediaRoom;
      if (g.hashLo === lo) {
        return g;
      }
    }
    return undefined;
  }
}
