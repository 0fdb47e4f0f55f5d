/**
 * Federation between relays (docs/federation.md): authenticated links to
 * configured peers, global rooms bridged with a path-vector presence
 * protocol, and the FEDERATION (0x03) media plane with hop limits, replay
 * windows and rate limits.
 *
 * Control work (handshakes, announcements, room reconciliation) is async
 * and event driven; the media plane (`ingress`, `egress`) is synchronous,
 * lock-free and allocation-light like the relay's own hot path.
 */
import type { RemoteInfo } from 'node:dgram';
import type { IncomingMessage } from 'node:http';
import type WebSocket from 'ws';
import type { RelayConfig } from '../config/index.js';
import { isWzpError, WzpError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import type { MediaEngine } from '../media/engine.js';
import type { RoomState } from '../media/room-state.js';
import { type GlobalRoomRef, type RemoteRef, Session } from '../media/session.js';
import type { Room, RoomManager } from '../room/index.js';
import type { FederatedParticipant, Identity, SignalMessage } from '../signal/index.js';
import { decodeSignal } from '../signal/index.js';
import { toBuffer } from '../util/buffers.js';
import { DeadlineQueue } from '../util/deadline-queue.js';
import { TokenBucket } from '../util/token-bucket.js';
import {
  BIND_DATAGRAM_SIZE,
  type CompactView,
  createFederationEntryView,
  encodeBind,
  FederationBatcher,
  FederationReader,
  FrameType,
  fullFrameSize,
  roomHash,
  type WireErrorCode,
  writeFederationEntryHeader,
  writeFederationPrefix,
  writeFullFrameUnchecked,
} from '../wire/index.js';
import {
  acceptHandshake,
  dialHandshake,
  type HandshakeContext,
  type HandshakeResult,
  sendSignal,
} from './handshake.js';
import { Link } from './link.js';
import { type Peer, PeerDirectory, relayId } from './peers.js';
import { acceptAnnouncement, announcementFor, knownRemote } from './presence.js';
import { StreamReplay } from './replay-window.js';

/** WebSocket path of federation links on the signalling port. */
export const FEDERATION_PATH = '/v2/federation';

const CLOSE_REFUSED = 4003;
const CLOSE_DUPLICATE = 4009;
const CLOSE_DEAD = 4008;
const ENTRY_PREFIX = 3 + 21;

export type FederationDropReason =
  | 'unbound'
  | 'malformed'
  | 'loop'
  | 'unknown_room'
  | 'unknown_sender'
  | 'hop_limit';

export class FederationStats {
  deduped = 0;
  tooOld = 0;
  rateLimitedPeer = 0;
  rateLimitedRoom = 0;
  readonly dropped: Record<FederationDropReason, number> = {
    unbound: 0,
    malformed: 0,
    loop: 0,
    unknown_room: 0,
    unknown_sender: 0,
    hop_limit: 0,
  };
  readonly malformedByCode = new Map<WireErrorCode, number>();
}

/** A participant of another relay, as carried by its local Session. */
class RemoteParticipant implements RemoteRef {
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

/** Federation state of one configured global room. */
class GlobalRoom implements GlobalRoomRef {
  readonly hash: Buffer;
  readonly hashHi: number;
  readonly hashLo: number;
  /** Links whose peer announced participants here and whose UDP path is up. */
  interested: Link[] = [];
  /** Local sessions standing for remote participants, by participant key. */
  readonly remotes = new Map<string, Session>();
  /** Hot-path index of `remotes`: origin id high word → entries. */
  readonly byOrigin = new Map<number, OriginEntry[]>();
  readonly bucket: TokenBucket;
  reconciling = false;
  dirty = false;

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

export interface FederationOptions {
  config: RelayConfig;
  identity: Identity;
  log: Logger;
  rooms: RoomManager<Session, RoomState>;
  engine: MediaEngine;
  /** Sends one UDP datagram from the media socket. */
  sendUdp: (data: Buffer | readonly Buffer[], port: number, address: string) => void;
  /** Our media UDP port (told to peers). */
  udpPort: () => number;
  /** The remote participants of a room changed: send RoomUpdate to its local participants. */
  onRoomChanged: (roomName: string) => void;
  now?: () => number;
}

export class Federation {
  readonly stats = new FederationStats();
  readonly selfId: string;
  readonly selfHi: number;
  readonly selfLo: number;
  readonly selfOrigin: Buffer;
  readonly label: string;
  readonly directory: PeerDirectory;
  readonly config: RelayConfig;
  private readonly identity: Identity;
  readonly log: Logger;
  private readonly rooms: RoomManager<Session, RoomState>;
  private readonly engine: MediaEngine;
  private readonly sendUdp: FederationOptions['sendUdp'];
  private readonly udpPort: () => number;
  private readonly onRoomChanged: (roomName: string) => void;
  private readonly now: () => number;
  private readonly globals = new Map<string, GlobalRoom>();
  private readonly globalsByHash = new Map<number, GlobalRoom[]>();
  /** Installed links by configured peer. */
  readonly links = new Map<Peer, Link>();
  private readonly linksByToken = new Map<string, Link>();
  private readonly linksByAddr = new Map<number, Map<string, Link>>();
  /** Peers with an inbound handshake in progress. */
  private readonly pendingInbound = new Set<Peer>();
  private readonly dialers = new Map<Peer, Dialer>();
  private readonly reader = new FederationReader();
  private readonly entry = createFederationEntryView();
  private readonly flushQueue: DeadlineQueue | null;
  private stopped = false;

  constructor(options: FederationOptions) {
    this.config = options.config;
    this.identity = options.identity;
    this.log = options.log.child({ component: 'federation' });
    this.rooms = options.rooms;
    this.engine = options.engine;
    this.sendUdp = options.sendUdp;
    this.udpPort = options.udpPort;
    this.onRoomChanged = options.onRoomChanged;
    this.now = options.now ?? (() => performance.now());
    this.selfId = relayId(options.identity.publicKey);
    this.selfOrigin = Buffer.from(this.selfId, 'hex');
    this.selfHi = this.selfOrigin.readUInt32BE(0);
    this.selfLo = this.selfOrigin.readUInt32BE(4);
    this.label = options.config.relay_label ?? options.identity.fingerprint.slice(0, 9);
    this.directory = new PeerDirectory(options.config.peers);
    const now = this.now();
    for (const name of options.config.global_rooms) {
      const g = new GlobalRoom(name, options.config.federation_room_pps, now);
      this.globals.set(name, g);
      const list = this.globalsByHash.get(g.hashHi) ?? [];
      list.push(g);
      this.globalsByHash.set(g.hashHi, list);
    }
    this.flushQueue = options.config.trunking
      ? new DeadlineQueue(options.config.trunk_flush_ms, this.now)
      : null;
    for (const peer of this.directory.peers) {
      if (peer.url !== null) {
        this.dialers.set(peer, new Dialer(this, peer));
      }
    }
  }

  /** Starts dialing the peers that have a URL. */
  start(): void {
    const smaller = (peer: Peer): boolean =>
      peer.publicKey === null || Buffer.compare(this.identity.publicKey, peer.publicKey) < 0;
    for (const [peer, dialer] of this.dialers) {
      // The relay with the smaller key dials first; the other waits a little,
      // so that two relays dialing each other rarely race (the tie-break in
      // `install` settles it when they do).
      dialer.kick(smaller(peer) ? 0 : Math.min(500, this.config.federation_backoff_initial_ms));
    }
    this.log.info(
      {
        relay_id: this.selfId,
        public_key: this.identity.publicKey.toString('hex'),
        peers: this.directory.peers.map((p) => p.label),
        global_rooms: [...this.globals.keys()],
      },
      'federation started',
    );
  }

  /** Closes every link (peers drop our participants at once) and stops dialing. */
  stop(): void {
    this.stopped = true;
    for (const d of this.dialers.values()) {
      d.stop();
    }
    for (const link of [...this.links.values()]) {
      link.batcher?.flush();
      this.closeLink(link, 1001, 'relay shutting down');
    }
    this.flushQueue?.close();
  }

  isGlobal(room: string): boolean {
    return this.globals.has(room);
  }

  /** A local session joined: its media goes to peers when its room is global. */
  attach(session: Session): void {
    const g = this.globals.get(session.room.name);
    if (g !== undefined && session.remote === null) {
      session.globalRoom = g;
      this.announce(g);
    }
  }

  /** A local participant left a room. */
  localLeft(roomName: string): void {
    const g = this.globals.get(roomName);
    if (g !== undefined) {
      this.announce(g);
    }
  }

  // ── links ─────────────────────────────────────────────────────────────────

  handshakeContext(): HandshakeContext {
    return {
      identity: this.identity,
      label: this.label,
      directory: this.directory,
      udpPort: this.udpPort(),
      timeoutMs: this.config.handshake_timeout_ms,
      maxFrameBytes: this.config.signal_max_frame_bytes,
    };
  }

  /** An upgraded WebSocket on FEDERATION_PATH. */
  accept(ws: WebSocket, req: IncomingMessage): void {
    // Socket errors surface as 'close'; without a listener they would throw.
    ws.on('error', () => {});
    let claimed: Peer | null = null;
    acceptHandshake(ws, req, this.handshakeContext(), (peer) => {
      if (this.pendingInbound.has(peer)) {
        throw new WzpError(
          'FEDERATION_DUPLICATE_LINK',
          `a handshake from "${peer.label}" is already in progress`,
        );
      }
      this.pendingInbound.add(peer);
      claimed = peer;
    })
      .then((result) => {
        if (claimed !== null) {
          this.pendingInbound.delete(claimed);
        }
        this.install(ws, result, false);
      })
      .catch((err: unknown) => {
        if (claimed !== null) {
          this.pendingInbound.delete(claimed);
        }
        this.refuse(ws, err, `inbound from ${req.socket.remoteAddress ?? '?'}`);
      });
  }

  /** Dials one peer (used by its Dialer). Resolves true when a link got installed. */
  async dial(peer: Peer): Promise<boolean> {
    const { ws, result } = await dialHandshake(peer, this.handshakeContext());
    return this.install(ws, result, true) !== null;
  }

  /** Logs and counts a failed handshake, answers with a typed Error, closes. */
  refuse(ws: WebSocket, err: unknown, where: string): void {
    const e = isWzpError(err) ? err : new WzpError('FEDERATION_BAD_CHALLENGE', String(err));
    const event =
      e.code === 'FEDERATION_UNKNOWN_PEER'
        ? 'refused_unknown_peer'
        : e.code === 'FEDERATION_WRONG_KEY'
          ? 'refused_wrong_key'
          : e.code === 'FEDERATION_DUPLICATE_LINK'
            ? 'duplicate'
            : 'refused_other';
    this.linkEvents.set(event, (this.linkEvents.get(event) ?? 0) + 1);
    const level = e.code === 'FEDERATION_DUPLICATE_LINK' ? 'debug' : 'warn';
    this.log[level]({ code: e.code, where }, e.message);
    sendSignal(ws, { type: 'Error', body: { code: e.code, message: e.message.slice(0, 4000) } });
    ws.close(CLOSE_REFUSED, e.code);
    setTimeout(() => ws.terminate(), 1000).unref();
  }

  /** Link event counts (metrics). */
  readonly linkEvents = new Map<string, number>();

  /**
   * Installs an authenticated link, or refuses it when the pair already has
   * one. Tie-break: of two links between the same relays, the one dialed by
   * the relay with the smaller public key wins; both relays decide alike.
   */
  private install(ws: WebSocket, result: HandshakeResult, dialedBySelf: boolean): Link | null {
    if (this.stopped) {
      ws.close(1001, 'relay shutting down');
      return null;
    }
    const existing = this.links.get(result.peer);
    if (existing !== undefined) {
      const selfDialsPreferred = Buffer.compare(this.identity.publicKey, result.peerPub) < 0;
      const newPreferred =
        dialedBySelf === selfDialsPreferred && existing.dialedBySelf !== selfDialsPreferred;
      if (!newPreferred) {
        this.refuse(
          ws,
          new WzpError(
            'FEDERATION_DUPLICATE_LINK',
            `a link with "${result.peer.label}" is already up`,
          ),
          result.peer.label,
        );
        return null;
      }
      // The preferred link takes over the peer's announcements; the old one
      // closes without churning the rooms.
      const replaced = existing;
      this.detach(replaced);
      replaced.closed = true;
      sendSignal(replaced.ws, {
        type: 'Error',
        body: { code: 'FEDERATION_DUPLICATE_LINK', message: 'replaced by the preferred link' },
      });
      replaced.ws.close(CLOSE_DUPLICATE, 'FEDERATION_DUPLICATE_LINK');
      this.linkEvents.set('duplicate', (this.linkEvents.get('duplicate') ?? 0) + 1);
      const link = this.newLink(ws, result, dialedBySelf);
      link.rooms = replaced.rooms;
      this.activate(link, result.pending);
      return link;
    }
    const link = this.newLink(ws, result, dialedBySelf);
    this.activate(link, result.pending);
    return link;
  }

  private newLink(ws: WebSocket, result: HandshakeResult, dialedBySelf: boolean): Link {
    return new Link(ws, result, dialedBySelf, this.now(), {
      signalRate: this.config.federation_signal_rate_per_sec,
      peerPps: this.config.federation_peer_pps,
    });
  }

  private activate(link: Link, pending: SignalMessage[]): void {
    this.links.set(link.peer, link);
    this.linksByToken.set(link.localBindToken.toString('hex'), link);
    this.linkEvents.set('up', (this.linkEvents.get('up') ?? 0) + 1);
    this.log.info(
      {
        peer: link.label,
        peer_label: link.peerLabel,
        peer_id: link.peerId,
        direction: link.dialedBySelf ? 'outbound' : 'inbound',
        media: `${link.remoteAddress}:${link.peerUdpPort}`,
      },
      'federation link up',
    );
    link.ws.on('message', (data, isBinary) => this.onMessage(link, data, isBinary));
    link.ws.on('close', (code, reason) =>
      this.onLinkClosed(link, `closed (${code}${reason.length > 0 ? ` ${reason}` : ''})`),
    );
    link.ws.on('error', () => {});
    for (const m of pending) {
      this.handle(link, m);
    }
    this.sendBind(link);
    this.tick(link);
    for (const g of this.globals.values()) {
      this.announce(g);
      this.refreshInterest(g);
      if (link.rooms.has(g.name)) {
        void this.reconcile(g);
      }
    }
  }

  /** Counters of links that are gone, per peer (live links add their own). */
  private readonly folded = new Map<
    Peer,
    { packetsIn: number; packetsOut: number; rateLimited: number }
  >();

  /** Cumulative per-peer counters (metrics). */
  peerCounters(peer: Peer): { packetsIn: number; packetsOut: number; rateLimited: number } {
    const f = this.folded.get(peer) ?? { packetsIn: 0, packetsOut: 0, rateLimited: 0 };
    const link = this.links.get(peer);
    return link === undefined
      ? { ...f }
      : {
          packetsIn: f.packetsIn + link.packetsIn,
          packetsOut: f.packetsOut + link.packetsOut,
          rateLimited: f.rateLimited + link.signalsRateLimited,
        };
  }

  /** Removes a link from every index (it stays open until closed). */
  private detach(link: Link): void {
    if (this.links.get(link.peer) === link) {
      const f = this.folded.get(link.peer) ?? { packetsIn: 0, packetsOut: 0, rateLimited: 0 };
      f.packetsIn += link.packetsIn;
      f.packetsOut += link.packetsOut;
      f.rateLimited += link.signalsRateLimited;
      this.folded.set(link.peer, f);
    }
    if (this.links.get(link.peer) === link) {
      this.links.delete(link.peer);
    }
    this.linksByToken.delete(link.localBindToken.toString('hex'));
    if (link.boundAddress !== null) {
      const inner = this.linksByAddr.get(link.boundPort);
      if (inner?.get(link.boundAddress) === link) {
        inner.delete(link.boundAddress);
      }
    }
    if (link.timer !== null) {
      clearTimeout(link.timer);
      link.timer = null;
    }
  }

  private closeLink(link: Link, code: number, reason: string): void {
    if (link.closed) {
      return;
    }
    link.ws.close(code, reason);
    setTimeout(() => link.ws.terminate(), 1000).unref();
    this.onLinkClosed(link, reason);
  }

  /** The link is gone: its participants leave every room at once. */
  private onLinkClosed(link: Link, why: string): void {
    if (link.closed) {
      return;
    }
    link.closed = true;
    const installed = this.links.get(link.peer) === link;
    this.detach(link);
    if (!installed) {
      return;
    }
    this.linkEvents.set('down', (this.linkEvents.get('down') ?? 0) + 1);
    this.log.warn({ peer: link.label, why }, 'federation link down');
    const rooms = [...link.rooms.keys()];
    link.rooms = new Map();
    for (const g of this.globals.values()) {
      this.refreshInterest(g);
      if (rooms.includes(g.name)) {
        void this.reconcile(g);
      }
      this.announce(g);
    }
    if (!this.stopped) {
      this.dialers.get(link.peer)?.linkLost();
    }
  }

  // ── control messages ─────────────────────────────────────────────────────

  private onMessage(link: Link, data: WebSocket.RawData, isBinary: boolean): void {
    if (link.closed) {
      return;
    }
    const now = this.now();
    link.lastHeardMs = now;
    link.signalsIn++;
    if (!link.signalBucket.take(now)) {
      link.signalsRateLimited++;
      if (link.signalsRateLimited % 100 === 1) {
        link.send({
          type: 'Error',
          body: { code: 'SIGNAL_RATE_LIMITED', message: 'federation signalling over its rate' },
        });
        this.log.warn({ peer: link.label }, 'federation signalling rate limited');
      }
      return;
    }
    let msg: SignalMessage;
    try {
      if (!isBinary) {
        throw new WzpError('SIGNAL_UNDECODABLE', 'federation frames are binary');
      }
      msg = decodeSignal(toBuffer(data), this.config.signal_max_frame_bytes);
    } catch (err) {
      const e = isWzpError(err) ? err : new WzpError('SIGNAL_UNDECODABLE');
      link.send({ type: 'Error', body: { code: e.code, message: e.message.slice(0, 4000) } });
      this.log.warn({ peer: link.label, code: e.code }, 'bad federation message');
      return;
    }
    this.handle(link, msg);
  }

  private handle(link: Link, msg: SignalMessage): void {
    switch (msg.type) {
      case 'Ping':
        link.send({ type: 'Pong', body: { timestamp_ms: msg.body.timestamp_ms } });
        return;
      case 'Pong':
        if (msg.body.timestamp_ms === link.pingId) {
          link.rttMs = this.now() - link.pingSentMs;
        }
        return;
      case 'GlobalRoomActive':
      case 'GlobalRoomInactive': {
        const g = this.globals.get(msg.body.room);
        if (g === undefined) {
          this.log.debug(
            { peer: link.label, room: msg.body.room },
            'announcement for a room that is not global here',
          );
          return;
        }
        if (msg.type === 'GlobalRoomActive') {
          link.rooms.set(
            g.name,
            acceptAnnouncement(this.selfId, link.peerId, msg.body.participants),
          );
        } else {
          link.rooms.delete(g.name);
        }
        this.refreshInterest(g);
        void this.reconcile(g);
        this.announce(g);
        return;
      }
      case 'Error':
        this.log.warn({ peer: link.label, code: msg.body.code }, msg.body.message);
        return;
      default:
        link.send({
          type: 'Error',
          body: {
            code: 'SIGNAL_UNEXPECTED',
            message: `${msg.type} is not used on federation links`,
          },
        });
    }
  }

  /** Heartbeat and liveness of one link: one deadline timer, re-armed for the next deadline. */
  private tick(link: Link): void {
    link.timer = null;
    if (link.closed) {
      return;
    }
    const now = this.now();
    const dead = link.lastHeardMs + this.config.federation_dead_ms;
    if (now >= dead) {
      this.closeLink(link, CLOSE_DEAD, 'FEDERATION_LINK_DOWN');
      return;
    }
    if (now >= link.nextPingMs) {
      link.pingId = (link.pingId + 1) % 0x7fffffff;
      link.pingSentMs = now;
      link.send({ type: 'Ping', body: { timestamp_ms: link.pingId } });
      link.nextPingMs = now + this.config.federation_heartbeat_ms;
      if (!link.udpReady) {
        this.sendBind(link);
      }
    }
    const next = Math.min(link.nextPingMs, dead);
    link.timer = setTimeout(() => this.tick(link), Math.max(1, next - now));
    link.timer.unref();
  }

  private sendBind(link: Link): void {
    this.sendUdp(encodeBind(link.peerBindToken), link.peerUdpPort, link.remoteAddress);
  }

  // ── presence ─────────────────────────────────────────────────────────────

  /** Sends each link the room's announcement when it changed. */
  private announce(g: GlobalRoom): void {
    const room = this.rooms.get(g.name);
    const local = (room?.snapshot ?? [])
      .filter((p) => !p.remote)
      .map((p) => ({ fingerprint: p.fingerprint, alias: p.alias, tag: p.tag }));
    for (const link of this.links.values()) {
      const others: FederatedParticipant[][] = [];
      for (const l of this.links.values()) {
        const list = l !== link ? l.rooms.get(g.name) : undefined;
        if (list !== undefined) {
          others.push(list);
        }
      }
      const list = announcementFor(this.selfId, this.label, link.peerId, local, others);
      const json = JSON.stringify(list);
      const before = link.sent.get(g.name);
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
    for (const link of this.links.values()) {
      if (link.udpReady && (link.rooms.get(g.name)?.length ?? 0) > 0) {
        next.push(link);
      }
    }
    g.interested = next;
  }

  /**
   * Brings the room's remote participants in line with what the links
   * announce: joins the new ones (with distinct local tags), removes the
   * gone ones, then asks for a RoomUpdate. Runs one at a time per room.
   */
  private async reconcile(g: GlobalRoom): Promise<void> {
    if (g.reconciling) {
      g.dirty = true;
      return;
    }
    g.reconciling = true;
    try {
      do {
        g.dirty = false;
        if (await this.reconcileOnce(g)) {
          this.onRoomChanged(g.name);
        }
      } while (g.dirty);
    } catch (err) {
      this.log.error({ room: g.name, err: (err as Error).message }, 'room reconciliation failed');
    } finally {
      g.reconciling = false;
    }
  }

  private async reconcileOnce(g: GlobalRoom): Promise<boolean> {
    const lists: FederatedParticipant[][] = [];
    for (const link of this.links.values()) {
      const list = link.rooms.get(g.name);
      if (list !== undefined) {
        lists.push(list);
      }
    }
    const desired = this.stopped ? new Map() : knownRemote(this.selfId, lists);
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
      this.engine.unregister(session);
      await this.rooms.leave(session.room as Room<Session, RoomState>, session.id);
      changed = true;
    }
    for (const [key, p] of desired) {
      if (g.remotes.has(key)) {
        continue;
      }
      const origin = p.path[0] as string;
      const remote = new RemoteParticipant(origin, p.tag, p.path);
      try {
        const now = this.now();
        const joined = await this.rooms.join(
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
        changed = true;
      } catch (err) {
        // Logged once per pass below: a hostile or oversized announcement
        // must not turn into one log line per participant.
        failed++;
        lastError = (err as Error).message;
      }
    }
    if (failed > 0) {
      this.log.warn(
        { room: g.name, failed, err: lastError },
        'cannot add remote participants (room limit?)',
      );
    }
    return changed;
  }

  // ── media plane ───────────────────────────────────────────────────────────

  /** UDP BIND from a peer relay's media socket. */
  bind(msg: Buffer, rinfo: RemoteInfo): boolean {
    const link = this.linksByToken.get(msg.toString('hex', 1, BIND_DATAGRAM_SIZE));
    if (link === undefined || link.closed) {
      return false;
    }
    if (link.boundAddress !== rinfo.address || link.boundPort !== rinfo.port) {
      if (link.boundAddress !== null) {
        this.linksByAddr.get(link.boundPort)?.delete(link.boundAddress);
      }
      link.boundAddress = rinfo.address;
      link.boundPort = rinfo.port;
      let inner = this.linksByAddr.get(rinfo.port);
      if (inner === undefined) {
        inner = new Map();
        this.linksByAddr.set(rinfo.port, inner);
      }
      inner.set(rinfo.address, link);
      this.log.debug(
        { peer: link.label, from: `${rinfo.address}:${rinfo.port}` },
        'federation udp bound',
      );
    }
    link.lastHeardMs = this.now();
    this.sendUdp(encodeBind(link.localBindToken, FrameType.BindAck), rinfo.port, rinfo.address);
    return true;
  }

  /** BIND_ACK from a peer: our media may now flow to it. */
  bindAck(msg: Buffer, rinfo: RemoteInfo): boolean {
    if (msg.length !== BIND_DATAGRAM_SIZE) {
      return false;
    }
    for (const link of this.links.values()) {
      if (link.peerBindToken.equals(msg.subarray(1, BIND_DATAGRAM_SIZE))) {
        link.mediaAddress = rinfo.address;
        link.mediaPort = rinfo.port;
        link.lastHeardMs = this.now();
        if (!link.udpReady) {
          link.udpReady = true;
          for (const g of this.globals.values()) {
            this.refreshInterest(g);
          }
        }
        return true;
      }
    }
    return false;
  }

  /** A local sender's frame (after local fan-out): one entry to every interested link. */
  egress(sender: Session, msg: Buffer, view: CompactView): void {
    const g = sender.globalRoom as GlobalRoom;
    const links = g.interested;
    if (links.length === 0) {
      return;
    }
    let frame = msg;
    if (view.frameType === FrameType.Mini) {
      const payload = msg.subarray(view.payloadOffset, view.payloadOffset + view.payloadLength);
      frame = Buffer.allocUnsafe(fullFrameSize(view.payloadLength, false));
      writeFullFrameUnchecked(view.header, payload, null, frame, 0);
    }
    this.sendEntry(
      links,
      null,
      this.config.federation_max_hops,
      g,
      this.selfOrigin,
      0,
      sender.tag,
      frame,
    );
  }

  /** Sends one entry to `links` except `except`, batched or as its own datagram. */
  private sendEntry(
    links: readonly Link[],
    except: Link | null,
    hop: number,
    g: GlobalRoom,
    origin: Buffer,
    originOff: number,
    tag: number,
    frame: Buffer,
  ): void {
    let prefix: Buffer | null = null;
    for (let i = 0; i < links.length; i++) {
      const link = links[i] as Link;
      if (link === except || link.mediaAddress === null) {
        continue;
      }
      link.packetsOut++;
      if (this.flushQueue !== null) {
        this.batch(link).push(hop, g.hash, origin.subarray(originOff, originOff + 8), tag, frame);
        if (link.batcher?.pendingEntries === 1) {
          this.flushQueue.add(link.flushItem, link.batchGeneration);
        }
        continue;
      }
      if (prefix === null) {
        prefix = Buffer.allocUnsafe(ENTRY_PREFIX);
        writeFederationPrefix(prefix, 0, 1);
        writeFederationEntryHeader(
          prefix,
          3,
          hop,
          g.hash,
          origin.subarray(originOff, originOff + 8),
          tag,
          frame.length,
        );
      }
      this.sendUdp([prefix, frame], link.mediaPort, link.mediaAddress);
    }
  }

  private batch(link: Link): FederationBatcher {
    if (link.batcher === null) {
      link.batcher = new FederationBatcher({
        maxEntries: this.config.trunk_max_entries,
        maxBytes: this.config.trunk_mtu,
        onFlush: (datagram) => {
          link.batchGeneration++;
          if (link.mediaAddress !== null && !link.closed) {
            this.sendUdp(datagram, link.mediaPort, link.mediaAddress);
          }
        },
      });
    }
    return link.batcher;
  }

  /** A FEDERATION datagram: validate, dedup, deliver locally, forward on. */
  ingress(msg: Buffer, rinfo: RemoteInfo): void {
    const stats = this.stats;
    const link = this.linksByAddr.get(rinfo.port)?.get(rinfo.address);
    if (link === undefined || link.closed) {
      stats.dropped.unbound++;
      return;
    }
    const now = this.now();
    link.lastHeardMs = now;
    const reader = this.reader;
    const bad = reader.reset(msg, 0, msg.length);
    if (bad !== null) {
      stats.dropped.malformed++;
      stats.malformedByCode.set(bad, (stats.malformedByCode.get(bad) ?? 0) + 1);
      return;
    }
    const v = this.entry;
    while (reader.next(v)) {
      link.packetsIn++;
      if (!link.mediaBucket.take(now)) {
        stats.rateLimitedPeer++;
        continue;
      }
      const oHi = msg.readUInt32BE(v.originOffset);
      const oLo = msg.readUInt32BE(v.originOffset + 4);
      if (oHi === this.selfHi && oLo === this.selfLo) {
        stats.dropped.loop++;
        continue;
      }
      const g = this.globalAt(
        msg.readUInt32BE(v.roomHashOffset),
        msg.readUInt32BE(v.roomHashOffset + 4),
      );
      if (g === undefined) {
        stats.dropped.unknown_room++;
        continue;
      }
      if (!g.bucket.take(now)) {
        stats.rateLimitedRoom++;
        continue;
      }
      const sender = g.remoteAt(oHi, oLo, v.senderTag);
      if (sender === undefined) {
        stats.dropped.unknown_sender++;
        continue;
      }
      // Frame = 0x00 ‖ MediaHeader…: stream_id at +5, seq at +7.
      const f = v.frameOffset;
      const verdict = (sender.remote as RemoteParticipant).replay.check(
        msg[f + 5] as number,
        msg.readUInt32BE(f + 7),
      );
      if (verdict !== 'new') {
        if (verdict === 'duplicate') {
          stats.deduped++;
        } else {
          stats.tooOld++;
        }
        continue;
      }
      const frame = msg.subarray(f, f + v.frameLength);
      this.engine.forwardRemote(sender, frame);
      if (g.interested.length > (g.interested.includes(link) ? 1 : 0)) {
        if (v.hopLimit <= 1) {
          stats.dropped.hop_limit++;
        } else {
          this.sendEntry(
            g.interested,
            link,
            v.hopLimit - 1,
            g,
            msg,
            v.originOffset,
            v.senderTag,
            frame,
          );
        }
      }
    }
  }

  private globalAt(hi: number, lo: number): GlobalRoom | undefined {
    const list = this.globalsByHash.get(hi);
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

  // ── operator views ───────────────────────────────────────────────────────

  /** `/v2/peers`. */
  peersJson(): unknown {
    const now = this.now();
    return {
      self: {
        label: this.label,
        relay_id: this.selfId,
        fingerprint: this.identity.fingerprint,
        public_key: this.identity.publicKey.toString('hex'),
      },
      global_rooms: [...this.globals.values()].map((g) => ({
        name: g.name,
        room_hash: g.hash.toString('hex'),
        remote_participants: g.remotes.size,
        peers: g.interested.map((l) => l.label),
      })),
      peers: this.directory.peers.map((peer) => {
        const link = this.links.get(peer);
        return {
          label: peer.label,
          url: peer.url,
          fingerprint: peer.fingerprint,
          status: link === undefined ? 'down' : 'up',
          ...(link === undefined
            ? { reconnect_attempts: this.dialers.get(peer)?.failures ?? 0 }
            : {
                relay_id: link.peerId,
                peer_label: link.peerLabel,
                direction: link.dialedBySelf ? 'outbound' : 'inbound',
                up_for_ms: Math.round(now - link.upSinceMs),
                rtt_ms: link.rttMs === null ? null : Math.round(link.rttMs * 1000) / 1000,
                udp_ready: link.udpReady,
                media: link.mediaAddress === null ? null : `${link.mediaAddress}:${link.mediaPort}`,
                rooms: [...link.rooms.entries()].map(([room, list]) => ({
                  room,
                  participants: list.length,
                })),
                packets_in: link.packetsIn,
                packets_out: link.packetsOut,
              }),
        };
      }),
    };
  }

  /** Rooms some peer announced participants in. */
  get activeRooms(): number {
    let n = 0;
    for (const g of this.globals.values()) {
      for (const link of this.links.values()) {
        if ((link.rooms.get(g.name)?.length ?? 0) > 0) {
          n++;
          break;
        }
      }
    }
    return n;
  }

  /** Links by peer label, for metrics. */
  linkStates(): { label: string; link: Link | undefined }[] {
    return this.directory.peers.map((peer) => ({ label: peer.label, link: this.links.get(peer) }));
  }
}

/** Reconnect loop of one configured peer: exponential backoff with jitter. */
class Dialer {
  failures = 0;
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private stopped = false;

  constructor(
    private readonly fed: Federation,
    private readonly peer: Peer,
  ) {}

  kick(delayMs: number): void {
    if (this.stopped || this.timer !== null || this.running) {
      return;
    }
    this.timer = setTimeout(() => void this.run(), delayMs);
    this.timer.unref();
  }

  linkLost(): void {
    this.kick(this.backoff());
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  private backoff(): number {
    const cfg = this.fedConfig();
    const base = Math.min(cfg.max, cfg.initial * 2 ** Math.min(this.failures, 20));
    return Math.round(base * (0.75 + Math.random() * 0.5));
  }

  private fedConfig(): { initial: number; max: number } {
    const c = this.fed.config;
    return { initial: c.federation_backoff_initial_ms, max: c.federation_backoff_max_ms };
  }

  private async run(): Promise<void> {
    this.timer = null;
    if (this.stopped || this.fed.links.has(this.peer)) {
      return;
    }
    this.running = true;
    try {
      if (await this.fed.dial(this.peer)) {
        this.failures = 0;
      }
    } catch (err) {
      this.failures++;
      const e = isWzpError(err) ? err : null;
      const log = this.fed.log;
      const wrongKey = e?.code === 'FEDERATION_WRONG_KEY' || e?.code === 'FEDERATION_UNKNOWN_PEER';
      log[wrongKey || this.failures === 1 ? 'warn' : 'debug'](
        { peer: this.peer.label, code: e?.code, attempt: this.failures },
        `federation dial failed: ${(err as Error).message}`,
      );
      if (e?.code === 'FEDERATION_WRONG_KEY') {
        this.fed.linkEvents.set(
          'refused_wrong_key',
          (this.fed.linkEvents.get('refused_wrong_key') ?? 0) + 1,
        );
      }
    } finally {
      this.running = false;
    }
    if (!this.fed.links.has(this.peer)) {
      this.kick(this.backoff());
    }
  }
}

const NO_SIGNAL = { send(): void {}, close(): void {} };
const NO_OBSERVER = {
  observe(): boolean {
    return false;
  },
};
