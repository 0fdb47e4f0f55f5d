/**
 * Federation media inside media worker 0: the FederationPlane of the
 * worker's engine (FederationMedia, media.ts, on the worker's media-half
 * state, media-state.ts), driven by the main thread's commands
 * (worker-protocol.ts) and publishing its counters into the federation's
 * shared buffer. Every federation datagram is handled here, synchronously,
 * beside the engine of the rooms it serves; nothing crosses threads per
 * packet. Replay windows and rate limits exist only here, so exactly-once
 * delivery and the limits hold however many workers the relay runs.
 */
import type { RemoteInfo } from 'node:dgram';
import { performance } from 'node:perf_hooks';
import type { FederationPlane } from '../media/engine.js';
import type { MediaHost, MediaHostExtension } from '../media/host.js';
import type { RemoteRef, Session } from '../media/session.js';
import type { CompactView } from '../wire/index.js';
import { FederationMedia } from './media.js';
import { MediaLink, MediaLinkTable, MediaRoomTable, RemoteMedia } from './media-state.js';
import {
  FED_DROP_SLOT,
  FEDERATION_DROP_REASONS,
  type FederationCommand,
  type FederationEvent,
  type FederationWorkerInit,
  linkField,
} from './worker-protocol.js';

export class FederationWorkerPlane implements MediaHostExtension, FederationPlane {
  readonly links = new MediaLinkTable();
  readonly rooms = new MediaRoomTable();
  readonly media: FederationMedia;
  private readonly stats: Float64Array;
  private readonly now = (): number => performance.now();

  /** Installs federation media on `host` (worker 0, before its socket opens). */
  static install(host: MediaHost, init: FederationWorkerInit): FederationWorkerPlane {
    const plane = new FederationWorkerPlane(host, init);
    host.extend(plane);
    host.federation = plane;
    return plane;
  }

  private constructor(
    private readonly host: MediaHost,
    init: FederationWorkerInit,
  ) {
    this.stats = new Float64Array(init.stats);
    this.media = new FederationMedia({
      maxHops: init.maxHops,
      trunking: init.trunking,
      links: this.links,
      globals: this.rooms,
      selfOrigin: Buffer.from(init.selfId, 'hex'),
      delivery: { forwardRemote: (sender, frame) => host.engine.forwardRemote(sender, frame) },
      sendUdp: (data, port, address) => host.udp.send(data, port, address),
      sendUdpMany: (prefix, buf, destinations, count) =>
        host.udp.sendMany(prefix, buf, destinations, count),
      onUdpReady: (link) =>
        this.emit({
          type: 'linkReady',
          id: link.id,
          media: [link.mediaAddress as string, link.mediaPort],
        }),
      onBound: (link) =>
        this.emit({
          type: 'linkBound',
          id: link.id,
          bound: [link.boundAddress as string, link.boundPort],
        }),
      now: this.now,
    });
    // Counters continue from the previous incarnation's (the buffer outlives
    // workers). Slots 0-4 are FED_SCALARS, in order.
    const st = this.media.stats;
    const out = this.stats;
    st.deduped = out[0] as number;
    st.tooOld = out[1] as number;
    st.layerFiltered = out[2] as number;
    st.rateLimitedPeer = out[3] as number;
    st.rateLimitedRoom = out[4] as number;
    FEDERATION_DROP_REASONS.forEach((reason, i) => {
      st.dropped[reason] = out[FED_DROP_SLOT + i] as number;
    });
  }

  private emit(e: FederationEvent): void {
    this.host.emitExt(e);
  }

  // ── MediaHostExtension ────────────────────────────────────────────────────

  handle(body: unknown): void {
    const cmd = body as FederationCommand;
    const now = this.now();
    switch (cmd.type) {
      case 'room': {
        const g = this.rooms.add(cmd.name, cmd.pps, now);
        for (const p of this.host.roomSessions(cmd.name)) {
          this.place(p.sink, g);
        }
        return;
      }
      case 'roomGone': {
        const g = this.rooms.remove(cmd.name);
        if (g === undefined) {
          return;
        }
        for (const p of this.host.roomSessions(cmd.name)) {
          const s = p.sink;
          if (s.remote === null && s.globalRoom === g) {
            s.globalRoom = null;
          } else if (s.remote !== null) {
            g.remotes.set(s, s.remote.origin, s.remote.originTag, false);
          }
        }
        return;
      }
      case 'interest': {
        const g = this.rooms.get(cmd.room);
        if (g !== undefined) {
          const next: MediaLink[] = [];
          for (const id of cmd.links) {
            const link = this.links.get(id);
            if (link !== undefined && !link.closed) {
              next.push(link);
            }
          }
          g.interested = next;
        }
        return;
      }
      case 'linkUp': {
        const old = this.links.get(cmd.id);
        if (old !== undefined) {
          this.drop(old);
        }
        const link = new MediaLink(
          cmd.id,
          cmd.slot,
          cmd.localToken,
          cmd.peerToken,
          cmd.remoteAddress,
          cmd.peerUdpPort,
          cmd.peerPps,
          now,
        );
        link.lastHeardMs = now;
        if (cmd.slot >= 0) {
          if (cmd.fresh) {
            this.stats[linkField(cmd.slot, 0)] = 0;
            this.stats[linkField(cmd.slot, 1)] = 0;
          } else {
            link.packetsIn = this.stats[linkField(cmd.slot, 0)] as number;
            link.packetsOut = this.stats[linkField(cmd.slot, 1)] as number;
          }
        }
        this.links.add(link);
        if (cmd.bound !== null) {
          this.links.bindAddress(link, cmd.bound[0], cmd.bound[1]);
        }
        if (cmd.media !== null) {
          link.mediaAddress = cmd.media[0];
          link.mediaPort = cmd.media[1];
          link.udpReady = true;
        }
        return;
      }
      case 'linkDown': {
        const link = this.links.get(cmd.id);
        if (link !== undefined) {
          this.drop(link);
        }
        return;
      }
      case 'sendBind': {
        const link = this.links.get(cmd.id);
        if (link !== undefined && !link.closed) {
          this.media.sendBind(link);
        }
        return;
      }
      case 'demand': {
        const link = this.links.get(cmd.link);
        const session = this.host.session(cmd.session);
        if (link !== undefined && session !== undefined) {
          link.layerDemand ??= new WeakMap();
          link.layerDemand.set(session, cmd.maxLayer);
        }
        return;
      }
      default:
        return;
    }
  }

  /** A link goes: what it batched leaves first, then it is forgotten everywhere. */
  private drop(link: MediaLink): void {
    this.publishLink(link);
    link.batcher?.flush();
    link.closed = true;
    this.links.remove(link);
    for (const g of this.rooms.values()) {
      if (g.interested.includes(link)) {
        g.interested = g.interested.filter((l) => l !== link);
      }
    }
  }

  remoteRef(remote: { origin: string; originTag: number }): RemoteRef {
    return new RemoteMedia(remote.origin, remote.originTag);
  }

  sessionJoined(session: Session): void {
    const g = this.rooms.get(session.room.name);
    if (g !== undefined) {
      this.place(session, g);
    }
  }

  /** A session of global room `g`: a local one sends to peers, a remote one is indexed. */
  private place(session: Session, g: ReturnType<MediaRoomTable['add']>): void {
    const r = session.remote;
    if (r === null) {
      session.globalRoom = g;
    } else {
      g.remotes.set(session, r.origin, r.originTag, true);
    }
  }

  sessionLeft(session: Session): void {
    const r = session.remote;
    if (r !== null) {
      this.rooms.get(session.room.name)?.remotes.set(session, r.origin, r.originTag, false);
    }
  }

  publishStats(): void {
    const out = this.stats;
    const st = this.media.stats;
    out[0] = st.deduped;
    out[1] = st.tooOld;
    out[2] = st.layerFiltered;
    out[3] = st.rateLimitedPeer;
    out[4] = st.rateLimitedRoom;
    for (let i = 0; i < FEDERATION_DROP_REASONS.length; i++) {
      out[FED_DROP_SLOT + i] = st.dropped[FEDERATION_DROP_REASONS[i] as 'unbound'];
    }
    for (const link of this.links.values()) {
      this.publishLink(link);
    }
  }

  private publishLink(link: MediaLink): void {
    if (link.slot < 0) {
      return;
    }
    const out = this.stats;
    out[linkField(link.slot, 0)] = link.packetsIn;
    out[linkField(link.slot, 1)] = link.packetsOut;
    out[linkField(link.slot, 2)] = performance.timeOrigin + link.lastHeardMs;
  }

  close(): void {
    for (const link of this.links.values()) {
      link.batcher?.flush();
    }
    this.media.close();
    this.publishStats();
  }

  // ── FederationPlane (the engine's hot path) ───────────────────────────────

  egress(sender: Session, msg: Buffer, view: CompactView): void {
    this.media.egress(sender, msg, view);
  }

  ingress(msg: Buffer, rinfo: RemoteInfo): void {
    this.media.ingress(msg, rinfo);
  }

  bind(msg: Buffer, rinfo: RemoteInfo): boolean {
    return this.media.bind(msg, rinfo);
  }

  bindLink(msg: Buffer): object | null {
    return this.media.bindLink(msg);
  }

  bindChallenge(msg: Buffer, rinfo: RemoteInfo): boolean {
    return this.media.bindChallenge(msg, rinfo);
  }

  bindAck(msg: Buffer, rinfo: RemoteInfo): boolean {
    return this.media.bindAck(msg, rinfo);
  }
}
