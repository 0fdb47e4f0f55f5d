/**
 * Federation between relays (docs/federation.md), composed from its parts:
 *
 * - handshake.ts / peers.ts — mutually authenticated link handshakes against
 *   the configured peer directory;
 * - link-table.ts — installed links (one per pair) and their indexes;
 * - dialer.ts — the reconnect loop of each peer with a URL;
 * - control.ts — a link's control messages, heartbeats and liveness;
 * - global-rooms.ts — presence (path vectors) and remote participants;
 * - media.ts — the FEDERATION (0x03) media plane, run inside media worker 0
 *   (worker-plane.ts) and driven from here through mirror.ts.
 *
 * This class owns the link lifecycle (accept, dial, install with the
 * tie-break, close) and the operator views. It plugs into the media plane
 * from above: worker 0's engine gets federation media as its
 * `FederationPlane` (an extension of the worker's host), and this thread
 * tells it what the control plane decides (worker-protocol.ts). It plugs
 * into the control plane through the room manager.
 */
import type { IncomingMessage } from 'node:http';
import type WebSocket from 'ws';
import type { CallLinks, CallSignalSink } from '../calls/hub.js';
import type { RelayConfig } from '../config/index.js';
import { isWzpError, WzpError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import type { RoomState } from '../media/room-state.js';
import type { Session } from '../media/session.js';
import type { RoomManager } from '../room/index.js';
import type { BodyOf, Identity, SignalMessage } from '../signal/index.js';
import { type FrameObserver, FrameSpan } from '../util/frame-span.js';
import { LinkControl } from './control.js';
import { LayerDemandRouter } from './demand.js';
import { Dialer, type DialTarget } from './dialer.js';
import { GlobalRoomTable } from './global-room.js';
import { GlobalRooms, type RemoteSessions } from './global-rooms.js';
import {
  acceptHandshake,
  dialHandshake,
  type HandshakeContext,
  type HandshakeResult,
  sendSignal,
} from './handshake.js';
import { Link } from './link.js';
import { LinkTable, type PeerCounters } from './link-table.js';
import { type FederationPost, type FederationStatsView, MediaMirror } from './mirror.js';
import { type Peer, PeerDirectory, relayId } from './peers.js';
import { FederationPliRouter } from './pli.js';
import type { FederationEvent, FederationWorkerInit } from './worker-protocol.js';

/** WebSocket path of federation links on the signalling port. */
export const FEDERATION_PATH = '/v2/federation';

/** Call signals held per peer while its link is dialed. */
const CALL_OUTBOX_MAX = 64;
const CLOSE_REFUSED = 4003;
const CLOSE_DUPLICATE = 4009;

export interface FederationOptions {
  config: RelayConfig;
  identity: Identity;
  log: Logger;
  rooms: RoomManager<Session, RoomState>;
  /** Commands for federation media in media worker 0 (in order with its other commands). */
  post: FederationPost;
  /** Sessions of remote participants in worker 0. */
  remotes: RemoteSessions;
  /** Our media UDP port (told to peers): worker 0's. */
  udpPort: () => number;
  /** The remote participants of a room changed: send RoomUpdate to its local participants. */
  onRoomChanged: (roomName: string) => void;
  /**
   * Resolves once media worker 0 applied every command posted so far (room
   * interest, remote joins). A RoomUpdate waits for it, so that a client
   * that starts sending on the RoomUpdate is forwarded from its first packet.
   */
  settled: () => Promise<void>;
  /**
   * Fleet (docs/fleet.md): a relay key no `[[peers]]` entry names; return
   * its label and federation URL when the fleet directory vouches for it.
   */
  resolvePeer?: (publicKey: Buffer) => { label: string; url: string } | undefined;
  /** Fleet: a peer announced a room that is not global here; true when this relay is its home. */
  acceptRoom?: (roomName: string) => boolean;
  /** A PLI for a local sender arrived over a link (BINDING.md §8.5). */
  onPli?: (sender: Session, streamId: number) => void;
  /**
   * Times every received federation frame: handshake frames with the step
   * they complete (up to installing or refusing the link), control frames of
   * installed links with their dispatch (metrics: wzp_federation_frame_*).
   */
  observeFrame?: FrameObserver;
  now?: () => number;
}

/**
 * What the fleet does with federation: peers learned from the directory,
 * rooms bridged on demand, links that close when idle.
 */
export interface DynamicFederation {
  /** The peer of a relay the directory vouches for (dialed only by `bridgeRoom`). */
  addPeer(p: { label: string; url: string; publicKey: Uint8Array }): Peer;
  /** Serves `room` bridged with its home `peer` only, opening the link when needed. */
  bridgeRoom(room: string, peer: Peer): void;
  /** This relay became the home of `room` (it bridged it before): accept every peer. */
  homeRoom(room: string): void;
  /** Stops bridging a room added at run time (configured global rooms stay). */
  dropRoom(room: string): void;
}

export class Federation implements CallLinks, DynamicFederation {
  readonly selfId: string;
  readonly selfOrigin: Buffer;
  readonly label: string;
  readonly directory: PeerDirectory;
  readonly config: RelayConfig;
  readonly log: Logger;
  /** Installed links by configured peer. */
  readonly links = new LinkTable();
  private readonly identity: Identity;
  private readonly udpPort: () => number;
  private readonly now: () => number;
  private readonly observeFrame: FrameObserver | null;
  private readonly globals: GlobalRoomTable;
  private readonly rooms: GlobalRooms;
  private readonly control: LinkControl;
  /** Federation media in worker 0, as this thread drives it. */
  private readonly mirror: MediaMirror;
  /** Worker 0's port when links were last installed (a replacement on another port drops them). */
  private mediaPort = 0;
  /** Keyframe requests across links. */
  readonly pli: FederationPliRouter;
  /** Which layers of remote participants this relay pulls across links (BINDING.md §8.5). */
  readonly demand: LayerDemandRouter;
  private readonly dialers = new Map<Peer, Dialer>();
  private readonly dialTarget: DialTarget;
  /** Dynamic peers whose link carries no room, since when (ms). */
  private readonly idleSince = new Map<Peer, number>();
  private idleTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  /** Where call signals arriving on links go (set by the server when the hub runs). */
  callSink: CallSignalSink | null = null;
  /** Call signals waiting for a link that is being dialed, by peer relay id (bounded). */
  private readonly callOutbox = new Map<
    string,
    { body: BodyOf<'CallSignalForward'>; at: number }[]
  >();

  constructor(options: FederationOptions) {
    this.config = options.config;
    this.identity = options.identity;
    this.log = options.log.child({ component: 'federation' });
    this.udpPort = options.udpPort;
    this.observeFrame = options.observeFrame ?? null;
    const now = options.now ?? (() => performance.now());
    this.now = now;
    this.selfId = relayId(options.identity.publicKey);
    this.selfOrigin = Buffer.from(this.selfId, 'hex');
    this.label = options.config.relay_label ?? options.identity.fingerprint.slice(0, 9);
    this.directory = new PeerDirectory(options.config.peers);
    if (options.resolvePeer !== undefined) {
      this.directory.resolver = options.resolvePeer;
    }
    this.globals = new GlobalRoomTable(
      options.config.global_rooms,
      options.config.federation_room_pps,
    );
    this.mirror = new MediaMirror(options.post);
    const post = this.mirror.post;
    this.rooms = new GlobalRooms({
      post,
      selfId: this.selfId,
      label: this.label,
      log: this.log,
      rooms: options.rooms,
      media: options.remotes,
      links: this.links,
      globals: this.globals,
      onRoomChanged: (name: string) => {
        options.onRoomChanged(name);
        this.demand.roomChanged(name);
      },
      stopped: () => this.stopped,
      settled: options.settled,
      now,
      roomPps: options.config.federation_room_pps,
      ...(options.acceptRoom === undefined
        ? {}
        : { acceptRoom: (room: string) => (options.acceptRoom as (r: string) => boolean)(room) }),
      onUsageChanged: () => this.checkIdle(),
    });
    this.pli = new FederationPliRouter({
      selfId: this.selfId,
      log: this.log,
      rooms: options.rooms,
      links: this.links,
      globals: this.globals,
      onLocalPli: options.onPli ?? (() => {}),
    });
    const roomManager = options.rooms;
    this.demand = new LayerDemandRouter({
      post,
      selfId: this.selfId,
      log: this.log,
      links: this.links,
      globals: this.globals,
      localSessions: (name) =>
        (roomManager.get(name)?.snapshot ?? []).filter((p) => !p.remote).map((p) => p.sink),
      // A rise admits layers the link filtered: their receivers need a keyframe.
      onRise: options.onPli ?? (() => {}),
    });
    this.control = new LinkControl({
      onPli: (link, body) => this.pli.onMessage(link, body),
      onLayerDemand: (link, body) => this.demand.onMessage(link, body),
      config: this.config,
      log: this.log,
      rooms: this.rooms,
      sendBind: (link) => post({ type: 'sendBind', id: link.id }),
      closeLink: (link, code, reason) => this.closeLink(link, code, reason),
      calls: () => this.callSink,
      now,
      ...(options.observeFrame === undefined ? {} : { observeFrame: options.observeFrame }),
    });
    this.dialTarget = {
      config: this.config,
      log: this.log,
      hasLink: (peer: Peer) => this.links.has(peer),
      dial: (peer: Peer) => this.dial(peer),
      countEvent: (event: string) => this.links.countEvent(event),
    };
    for (const peer of this.directory.peers) {
      if (peer.url !== null) {
        this.dialers.set(peer, new Dialer(this.dialTarget, peer));
      }
    }
  }

  /** Sends a PLI for a remote participant towards its origin relay; false if no link leads there. */
  sendPli(remote: Session, streamId: number): boolean {
    return this.pli.send(remote, streamId);
  }

  /** Media-plane counters (from worker 0's shared buffer). */
  get stats(): FederationStatsView {
    return this.mirror.statsView();
  }

  /** What worker 0's federation plane is started with (`WorkerInit.extension`). */
  workerInit(): FederationWorkerInit {
    const c = this.config;
    return {
      selfId: this.selfId,
      maxHops: c.federation_max_hops,
      trunking: {
        enabled: c.trunking,
        maxEntries: c.trunk_max_entries,
        mtu: c.trunk_mtu,
        flushMs: c.trunk_flush_ms,
      },
      stats: this.mirror.buffer,
    };
  }

  /**
   * Worker 0 (re)started on `port`: it gets the whole federation media
   * state (rooms, links with what the previous worker had learned of their
   * UDP paths, interested links, layer demands); the relay joins the
   * remote participants to it again. A replacement on another port than
   * the links were set up with closes them: the peers BIND to the old
   * one, so they reconnect (and learn the new port in the handshake).
   */
  workerStarted(port: number): void {
    const post = this.mirror.post;
    for (const g of this.globals.values()) {
      post({ type: 'room', name: g.name, pps: g.pps });
    }
    if (this.mediaPort !== 0 && port !== this.mediaPort && this.links.size > 0) {
      this.log.warn(
        { from: this.mediaPort, to: port },
        'media worker 0 replaced on another port: reconnecting the federation links',
      );
      for (const link of [...this.links.values()]) {
        this.closeLink(link, 1012, 'media port changed');
      }
    }
    this.mediaPort = port;
    for (const link of this.links.values()) {
      this.pushLink(link, false);
    }
    for (const g of this.globals.values()) {
      this.rooms.pushInterest(g);
    }
  }

  /** Pushes the layer demands again (after the remote participants rejoined worker 0). */
  pushDemands(): void {
    for (const link of this.links.values()) {
      for (const [session, maxLayer] of link.mediaDemand) {
        this.mirror.post({ type: 'demand', link: link.id, session, maxLayer });
      }
    }
  }

  /** The remote participants of every global room (to join them to a replacement worker 0). */
  remoteSessions(): Session[] {
    const out: Session[] = [];
    for (const g of this.globals.values()) {
      out.push(...g.remotes.values());
    }
    return out;
  }

  /** An event of federation media in worker 0. */
  onMediaEvent(e: FederationEvent): void {
    let link: Link | undefined;
    for (const l of this.links.values()) {
      if (l.id === e.id) {
        link = l;
        break;
      }
    }
    if (link === undefined || link.closed) {
      return;
    }
    if (e.type === 'linkBound') {
      link.boundAddress = e.bound[0];
      link.boundPort = e.bound[1];
      this.log.debug(
        { peer: link.label, from: `${e.bound[0]}:${e.bound[1]}` },
        'federation udp bound',
      );
      return;
    }
    link.mediaAddress = e.media[0];
    link.mediaPort = e.media[1];
    if (!link.udpReady) {
      link.udpReady = true;
      this.rooms.linkUdpReady(link);
    }
  }

  /** Tells worker 0 about a link (`fresh`: a new one, its counters start at 0). */
  private pushLink(link: Link, fresh: boolean): void {
    this.mirror.post({
      type: 'linkUp',
      id: link.id,
      slot: link.slot,
      fresh,
      localToken: new Uint8Array(link.localBindToken),
      peerToken: new Uint8Array(link.peerBindToken),
      remoteAddress: link.remoteAddress,
      peerUdpPort: link.peerUdpPort,
      peerPps: link.peerPps,
      bound: link.boundAddress === null ? null : [link.boundAddress, link.boundPort],
      media:
        link.udpReady && link.mediaAddress !== null ? [link.mediaAddress, link.mediaPort] : null,
    });
  }

  /** The link is no longer installed: worker 0 flushes and forgets it, its counter slot frees. */
  private dropLink(link: Link): void {
    this.mirror.post({ type: 'linkDown', id: link.id });
    this.mirror.releaseSlot(link.slot);
  }

  /** Link event counts (metrics). */
  get linkEvents(): ReadonlyMap<string, number> {
    return this.links.events;
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
        global_rooms: this.globals.names(),
      },
      'federation started',
    );
  }

  /** Closes every link (peers drop our participants at once) and stops dialing. */
  stop(): void {
    this.stopped = true;
    if (this.idleTimer !== null) {
      clearTimeout(this.idleTimer);
      this.idleTimer = null;
    }
    for (const d of this.dialers.values()) {
      d.stop();
    }
    for (const link of [...this.links.values()]) {
      // Worker 0 flushes the link's batch before it forgets it (linkDown).
      this.closeLink(link, 1001, 'relay shutting down');
    }
  }

  isGlobal(room: string): boolean {
    return this.globals.has(room);
  }

  /** A local session joined: its media goes to peers when its room is global. */
  attach(session: Session): void {
    const g = this.globals.get(session.room.name);
    if (g !== undefined && session.remote === null) {
      session.globalRoom = g;
      this.rooms.announce(g);
      this.demand.roomChanged(g.name);
    }
  }

  /** A local receiver's subscription changed: the layers pulled across links may change. */
  subscriptionChanged(session: Session): void {
    if (session.remote === null && this.globals.has(session.room.name)) {
      this.demand.roomChanged(session.room.name);
    }
  }

  // ── fleet: peers and rooms on demand (DynamicFederation) ────────────────────

  addPeer(p: { label: string; url: string; publicKey: Uint8Array }): Peer {
    return this.directory.addDynamic(p);
  }

  bridgeRoom(room: string, peer: Peer): void {
    const g = this.globals.get(room);
    if (g !== undefined && (g.mode === 'static' || (g.mode === 'bridge' && g.only === peer))) {
      this.connect(peer);
      return;
    }
    if (g !== undefined) {
      this.rooms.remove(room); // bridged to another home before, or homed here
    }
    this.rooms.add(room, 'bridge', peer);
    this.log.info({ room, home: peer.label }, 'room bridged to its home');
    this.connect(peer);
    this.checkIdle();
  }

  homeRoom(room: string): void {
    this.rooms.promote(room);
  }

  dropRoom(room: string): void {
    this.rooms.remove(room);
  }

  /** Keeps a link to `peer` up (dialing it when it has none). */
  private connect(peer: Peer): void {
    if (this.stopped || peer.url === null) {
      return;
    }
    let dialer = this.dialers.get(peer);
    if (dialer === undefined) {
      dialer = new Dialer(this.dialTarget, peer);
      this.dialers.set(peer, dialer);
    }
    if (!this.links.has(peer)) {
      dialer.kick(0);
    }
  }

  /** True while some room needs the link to a dynamic peer. */
  private inUse(peer: Peer): boolean {
    const link = this.links.get(peer);
    if (link !== undefined && (link.rooms.size > 0 || link.sent.size > 0)) {
      return true;
    }
    if (peer.publicKey !== null) {
      const id = relayId(peer.publicKey);
      if (this.callOutbox.has(id) || this.callSink?.usesPeer(id) === true) {
        return true;
      }
    }
    for (const g of this.globals.values()) {
      if (g.mode === 'bridge' && g.only === peer) {
        return true;
      }
    }
    return false;
  }

  /**
   * Idle links: a link to a dynamic peer that carries no room for
   * `fleet_link_idle_ms` closes and is not redialed. One deadline timer.
   */
  private checkIdle(): void {
    if (this.stopped) {
      return;
    }
    const now = this.now();
    const idleMs = this.config.fleet_link_idle_ms;
    let next = Number.POSITIVE_INFINITY;
    for (const peer of this.directory.peers) {
      if (peer.dynamic !== true) {
        continue;
      }
      if (this.inUse(peer)) {
        this.idleSince.delete(peer);
        continue;
      }
      const since = this.idleSince.get(peer) ?? now;
      this.idleSince.set(peer, since);
      if (now - since >= idleMs) {
        this.idleSince.delete(peer);
        this.dialers.get(peer)?.stop();
        this.dialers.delete(peer);
        const link = this.links.get(peer);
        if (link !== undefined) {
          this.log.info({ peer: peer.label }, 'federation link idle: closing');
          this.links.countEvent('idle_closed');
          this.closeLink(link, 1000, 'idle');
        }
        continue;
      }
      next = Math.min(next, since + idleMs);
    }
    if (this.idleTimer !== null) {
      clearTimeout(this.idleTimer);
      this.idleTimer = null;
    }
    if (next !== Number.POSITIVE_INFINITY) {
      this.idleTimer = setTimeout(
        () => {
          this.idleTimer = null;
          this.checkIdle();
        },
        Math.max(1, next - now),
      );
      this.idleTimer.unref();
    }
  }

  /** A local participant left a room. */
  localLeft(roomName: string, sessionId: number): void {
    this.links.forgetDemands(sessionId);
    const g = this.globals.get(roomName);
    if (g !== undefined) {
      this.rooms.announce(g);
      this.demand.roomChanged(g.name);
    }
  }

  // ── call signals (CallLinks) ─────────────────────────────────────────────

  broadcastCallSignal(
    body: BodyOf<'CallSignalForward'>,
    except: string | null,
    configuredOnly = false,
  ): number {
    let n = 0;
    for (const link of this.links.values()) {
      if (
        link.peerId !== except &&
        !link.closed &&
        !(configuredOnly && link.peer.dynamic === true)
      ) {
        link.send({ type: 'CallSignalForward', body });
        n++;
      }
    }
    return n;
  }

  sendCallSignal(peerId: string, body: BodyOf<'CallSignalForward'>): boolean {
    for (const link of this.links.values()) {
      if (link.peerId === peerId && !link.closed) {
        link.send({ type: 'CallSignalForward', body });
        return true;
      }
    }
    // No link: a peer we can dial (configured with a URL, or vouched for by
    // the fleet directory) gets the signal once its link is up.
    const peer = this.directory.peers.find(
      (p) => p.url !== null && p.publicKey !== null && relayId(p.publicKey) === peerId,
    );
    if (peer === undefined || this.stopped) {
      return false;
    }
    let queue = this.callOutbox.get(peerId);
    if (queue === undefined) {
      queue = [];
      this.callOutbox.set(peerId, queue);
    }
    if (queue.length >= CALL_OUTBOX_MAX) {
      this.links.countEvent('call_outbox_full');
      return false;
    }
    queue.push({ body, at: this.now() });
    this.connect(peer);
    return true;
  }

  callsChanged(): void {
    this.checkIdle();
  }

  /** A link came up: the call signals that waited for it go out (unless they waited too long). */
  private flushCallOutbox(link: Link): void {
    const queue = this.callOutbox.get(link.peerId);
    if (queue === undefined) {
      return;
    }
    this.callOutbox.delete(link.peerId);
    const oldest = this.now() - this.config.call_route_timeout_ms;
    for (const { body, at } of queue) {
      if (at >= oldest) {
        link.send({ type: 'CallSignalForward', body });
      } else {
        this.links.countEvent('call_outbox_expired');
      }
    }
  }

  // ── link lifecycle ───────────────────────────────────────────────────────

  handshakeContext(): HandshakeContext {
    return {
      identity: this.identity,
      label: this.label,
      directory: this.directory,
      udpPort: this.udpPort(),
      timeoutMs: this.config.handshake_timeout_ms,
      maxFrameBytes: this.config.signal_max_frame_bytes,
      budget: {
        bytesPerSec: this.config.signal_budget_bytes_per_sec,
        burstBytes: this.config.signal_budget_burst_bytes,
      },
      ...(this.observeFrame === null ? {} : { frames: new FrameSpan(this.observeFrame) }),
    };
  }

  /** An upgraded WebSocket on FEDERATION_PATH. */
  accept(ws: WebSocket, req: IncomingMessage): void {
    // Socket errors surface as 'close'; without a listener they would throw.
    ws.on('error', () => {});
    // Nothing is reserved for a peer before it has proved its key: a Hello
    // naming a configured (public) key costs the impostor a handshake
    // timeout and the real peer nothing. Two proven links are settled by
    // the tie-break in `install`.
    const ctx = this.handshakeContext();
    acceptHandshake(ws, req, ctx)
      .then((result) => {
        this.install(ws, result, false);
      })
      .catch((err: unknown) => {
        this.refuse(ws, err, `inbound from ${req.socket.remoteAddress ?? '?'}`);
      })
      // The last frame's span holds installing or refusing the link.
      .finally(() => ctx.frames?.end());
  }

  /** Dials one peer (used by its Dialer). Resolves true when a link got installed. */
  async dial(peer: Peer): Promise<boolean> {
    const ctx = this.handshakeContext();
    try {
      const { ws, result } = await dialHandshake(peer, ctx);
      return this.install(ws, result, true) !== null;
    } finally {
      ctx.frames?.end();
    }
  }

  /** Logs and counts a failed handshake, answers with a typed Error, closes. */
  refuse(ws: WebSocket, err: unknown, where: string): void {
    const e = isWzpError(err) ? err : new WzpError('FEDERATION_BAD_CHALLENGE', String(err));
    const event =
      e.code === 'FEDERATION_UNKNOWN_PEER'
        ? 'refused_unknown_peer'
        : e.code === 'FEDERATION_WRONG_KEY'
          ? 'refused_wrong_key'
          : e.code === 'FEDERATION_BAD_CHALLENGE'
            ? 'refused_bad_challenge'
            : e.code === 'FEDERATION_DUPLICATE_LINK'
              ? 'duplicate'
              : 'refused_other';
    this.links.countEvent(event);
    const level = e.code === 'FEDERATION_DUPLICATE_LINK' ? 'debug' : 'warn';
    this.log[level]({ code: e.code, where }, e.message);
    sendSignal(ws, { type: 'Error', body: { code: e.code, message: e.message.slice(0, 4000) } });
    ws.close(CLOSE_REFUSED, e.code);
    setTimeout(() => ws.terminate(), 1000).unref();
  }

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
      this.links.remove(replaced);
      this.dropLink(replaced);
      replaced.closed = true;
      sendSignal(replaced.ws, {
        type: 'Error',
        body: { code: 'FEDERATION_DUPLICATE_LINK', message: 'replaced by the preferred link' },
      });
      replaced.ws.close(CLOSE_DUPLICATE, 'FEDERATION_DUPLICATE_LINK');
      this.links.countEvent('duplicate');
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
      budgetBytesPerSec: this.config.federation_signal_budget_bytes_per_sec,
      maxFrameBytes: this.config.signal_max_frame_bytes,
    });
  }

  private activate(link: Link, pending: SignalMessage[]): void {
    link.mirror = this.mirror;
    link.slot = this.mirror.takeSlot();
    this.links.add(link);
    this.pushLink(link, true);
    this.links.countEvent('up');
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
    link.ws.on('message', (data, isBinary) => this.control.onMessage(link, data, isBinary));
    link.ws.on('close', (code, reason) =>
      this.onLinkClosed(link, `closed (${code}${reason.length > 0 ? ` ${reason}` : ''})`),
    );
    link.ws.on('error', () => {});
    for (const m of pending) {
      this.control.handle(link, m);
    }
    this.mirror.post({ type: 'sendBind', id: link.id });
    this.control.tick(link);
    this.rooms.linkUp(link);
    this.flushCallOutbox(link);
    this.checkIdle();
  }

  /** Cumulative per-peer counters (metrics). */
  peerCounters(peer: Peer): PeerCounters {
    return this.links.peerCounters(peer);
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
    this.links.remove(link);
    if (!installed) {
      return;
    }
    this.dropLink(link);
    this.links.countEvent('down');
    this.log.warn({ peer: link.label, why }, 'federation link down');
    const rooms = [...link.rooms.keys()];
    link.rooms = new Map();
    this.rooms.linkDown(rooms);
    if (!this.stopped && (link.peer.dynamic !== true || this.inUse(link.peer))) {
      this.dialers.get(link.peer)?.linkLost();
    }
    this.checkIdle();
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
          dynamic: peer.dynamic === true,
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
                // FederationLayerDemand entries the peer sent that are in force.
                layer_demands: link.mediaDemand.size,
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
