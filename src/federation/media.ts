/**
 * The federation media plane: UDP BIND/BIND_CHALLENGE/BIND_CONFIRM/BIND_ACK of
 * links (validated like client binds, protocol/BINDING.md §8.4), and FEDERATION
 * (0x03) datagrams out (`egress`, after a local sender's fan-out) and in
 * (`ingress`: validate, rate-limit, dedup by replay window, deliver to the
 * room's local participants, forward on with hop limit − 1).
 *
 * Synchronous, lock-free and allocation-light like the engine's own hot
 * path; it runs inside media worker 0, beside the engine of the rooms it
 * serves (worker-plane.ts), on the worker's media-half state (media-state.ts).
 */
import type { RemoteInfo } from 'node:dgram';
import type { TrunkingOptions } from '../media/engine.js';
import type { Session } from '../media/session.js';
import { MAX_LAYER } from '../media/subscriptions.js';
import type { UdpDestination } from '../media/udp-io.js';
import { DeadlineQueue } from '../util/deadline-queue.js';
import {
  BIND_ACK_SIZE,
  BIND_CHALLENGE_DATAGRAM_SIZE,
  bindTokenEquals,
  bindTokenHex,
  type CompactView,
  confirmOf,
  createFederationEntryView,
  encodeBind,
  encodeBindAck,
  FEDERATION_ENTRY_OVERHEAD,
  FEDERATION_HEADER_SIZE,
  FederationBatcher,
  FederationReader,
  FrameType,
  fullFrameMediaType,
  fullFrameSeq,
  fullFrameSize,
  fullFrameStreamId,
  MediaType,
  type WireErrorCode,
  writeFederationEntryHeader,
  writeFederationPrefix,
  writeFullFrameUnchecked,
} from '../wire/index.js';
import type {
  MediaLink as Link,
  MediaLinkTable,
  MediaRoom,
  MediaRoomTable,
  RemoteMedia,
} from './media-state.js';
import type { FederationDropReason } from './worker-protocol.js';

const ENTRY_PREFIX = FEDERATION_HEADER_SIZE + FEDERATION_ENTRY_OVERHEAD;

export class FederationStats {
  deduped = 0;
  tooOld = 0;
  /** Video entries not sent on a link because the peer needs no such layer (§8.5). */
  layerFiltered = 0;
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

/** Where federation media is delivered locally (the room's media engine). */
export interface LocalDelivery {
  /**
   * Fans a remote participant's FULL frame out to the room's local
   * participants; false (nothing sent) when its header does not parse.
   */
  forwardRemote(sender: Session, frame: Buffer): boolean;
}

export interface FederationMediaOptions {
  /** `federation_max_hops`. */
  maxHops: number;
  /** Trunking: entries to a link are batched (FederationBatcher). */
  trunking: TrunkingOptions;
  links: MediaLinkTable;
  globals: MediaRoomTable;
  /** Our 8-byte origin relay id. */
  selfOrigin: Buffer;
  delivery: LocalDelivery;
  /** Sends one UDP datagram from the media socket. */
  sendUdp: (data: Buffer | readonly Buffer[], port: number, address: string) => void;
  /**
   * `prefix ‖ buf` to many destinations at once (one sendmmsg when native);
   * default: sendUdp each. `prefix` is scratch, valid only during the call (an
   * implementation that keeps it, a send queue, copies it); `buf` is not.
   */
  sendUdpMany?: (
    prefix: Buffer | null,
    buf: Buffer,
    destinations: readonly UdpDestination[],
    count: number,
  ) => void;
  /** A link's UDP path just came up: the rooms' interested links change. */
  onUdpReady: (link: Link) => void;
  /** A BIND_CONFIRM bound a link's peer media source (new or moved). */
  onBound: (link: Link) => void;
  now: () => number;
}

export class FederationMedia {
  readonly stats = new FederationStats();
  private readonly maxHops: number;
  private readonly trunking: TrunkingOptions;
  private readonly links: MediaLinkTable;
  private readonly globals: MediaRoomTable;
  private readonly selfOrigin: Buffer;
  private readonly selfHi: number;
  private readonly selfLo: number;
  private readonly delivery: LocalDelivery;
  private readonly sendUdp: FederationMediaOptions['sendUdp'];
  private readonly sendUdpMany: NonNullable<FederationMediaOptions['sendUdpMany']>;
  /** The links' media addresses of one entry (reused; grown to the largest link count). */
  private readonly linkDests: { port: number; address: string | null }[] = [];
  /** The one-entry datagram prefix of an unbatched send (rewritten per entry). */
  private readonly prefixScratch = Buffer.alloc(ENTRY_PREFIX);
  private readonly onUdpReady: (link: Link) => void;
  private readonly onBound: (link: Link) => void;
  private readonly now: () => number;
  private readonly reader = new FederationReader();
  private readonly entry = createFederationEntryView();
  private readonly flushQueue: DeadlineQueue | null;

  constructor(o: FederationMediaOptions) {
    this.maxHops = o.maxHops;
    this.trunking = o.trunking;
    this.links = o.links;
    this.globals = o.globals;
    this.selfOrigin = o.selfOrigin;
    this.selfHi = o.selfOrigin.readUInt32BE(0);
    this.selfLo = o.selfOrigin.readUInt32BE(4);
    this.delivery = o.delivery;
    this.sendUdp = o.sendUdp;
    this.sendUdpMany =
      o.sendUdpMany ??
      ((scratch, buf, destinations, count) => {
        // sendUdp's queue keeps what it is given: the scratch prefix is copied once.
        const prefix = scratch === null ? null : Buffer.from(scratch);
        for (let i = 0; i < count; i++) {
          const d = destinations[i] as UdpDestination;
          if (d.address !== null) {
            this.sendUdp(prefix === null ? buf : [prefix, buf], d.port, d.address);
          }
        }
      });
    this.onUdpReady = o.onUdpReady;
    this.onBound = o.onBound;
    this.now = o.now;
    this.flushQueue = o.trunking.enabled ? new DeadlineQueue(o.trunking.flushMs, o.now) : null;
  }

  close(): void {
    this.flushQueue?.close();
  }

  /** Sends our BIND to the peer's media port (until it acknowledges). */
  sendBind(link: Link): void {
    this.sendUdp(encodeBind(link.peerBindToken), link.peerUdpPort, link.remoteAddress);
  }

  /** The live link whose local token a BIND / BIND_CONFIRM carries (length already checked). */
  bindLink(msg: Buffer): Link | null {
    const link = this.links.byBindToken(bindTokenHex(msg));
    return link === undefined || link.closed ? null : link;
  }

  /**
   * A BIND_CONFIRM of a link's token from `rinfo`, validated by the engine's
   * bind guard (protocol/BINDING.md §8.4): the peer's media source is bound
   * here, and acknowledged.
   */
  bind(msg: Buffer, rinfo: RemoteInfo): boolean {
    const link = this.bindLink(msg);
    if (link === null) {
      return false;
    }
    if (link.boundAddress !== rinfo.address || link.boundPort !== rinfo.port) {
      this.links.bindAddress(link, rinfo.address, rinfo.port);
      this.onBound(link);
    }
    link.lastHeardMs = this.now();
    this.sendUdp(encodeBindAck(link.localBindToken), rinfo.port, rinfo.address);
    return true;
  }

  /**
   * A BIND_CHALLENGE for the token we BIND with at a peer, from the address
   * we sent that BIND to: echo it as BIND_CONFIRM. Challenges from anywhere
   * else are not ours to answer.
   */
  bindChallenge(msg: Buffer, rinfo: RemoteInfo): boolean {
    if (msg.length !== BIND_CHALLENGE_DATAGRAM_SIZE) {
      return false;
    }
    for (const link of this.links.values()) {
      if (
        !link.closed &&
        rinfo.port === link.peerUdpPort &&
        rinfo.address === link.remoteAddress &&
        bindTokenEquals(msg, 0, msg.length, link.peerBindToken)
      ) {
        this.sendUdp(confirmOf(msg), rinfo.port, rinfo.address);
        return true;
      }
    }
    return false;
  }

  /** BIND_ACK from a peer: our media may now flow to it. */
  bindAck(msg: Buffer, rinfo: RemoteInfo): boolean {
    if (msg.length !== BIND_ACK_SIZE) {
      return false;
    }
    for (const link of this.links.values()) {
      if (!link.closed && bindTokenEquals(msg, 0, msg.length, link.peerBindToken)) {
        const moved = link.mediaAddress !== rinfo.address || link.mediaPort !== rinfo.port;
        link.mediaAddress = rinfo.address;
        link.mediaPort = rinfo.port;
        link.lastHeardMs = this.now();
        if (!link.udpReady || moved) {
          link.udpReady = true;
          this.onUdpReady(link);
        }
        return true;
      }
    }
    return false;
  }

  /** A local sender's frame (after local fan-out): one entry to every interested link. */
  egress(sender: Session, msg: Buffer, view: CompactView): void {
    const g = sender.globalRoom as MediaRoom;
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
    const h = view.header;
    this.sendEntry(
      links,
      null,
      this.maxHops,
      g,
      this.selfOrigin,
      0,
      sender.tag,
      frame,
      sender,
      h.mediaType === MediaType.Video && h.streamId <= MAX_LAYER ? h.streamId : -1,
    );
  }

  /** Sends one entry to `links` except `except`, batched or as its own datagram. */
  private sendEntry(
    links: readonly Link[],
    except: Link | null,
    hop: number,
    g: MediaRoom,
    origin: Buffer,
    originOff: number,
    tag: number,
    frame: Buffer,
    sender: Session,
    layer: number,
  ): void {
    let prefix: Buffer | null = null;
    const dests = this.linkDests;
    let n = 0;
    for (let i = 0; i < links.length; i++) {
      const link = links[i] as Link;
      if (link === except || link.mediaAddress === null) {
        continue;
      }
      if (layer >= 0 && link.layerDemand !== null) {
        // A layer no receiver behind this link can take does not cross it (demand.ts).
        const demand = link.layerDemand.get(sender);
        if (demand !== undefined && layer > demand) {
          this.stats.layerFiltered++;
          continue;
        }
      }
      link.packetsOut++;
      if (this.flushQueue !== null) {
        this.batch(link).push(hop, g.hash, origin, tag, frame, originOff);
        if (link.batcher?.pendingEntries === 1) {
          this.flushQueue.add(link.flushItem, link.batchGeneration);
        }
        continue;
      }
      if (prefix === null) {
        prefix = this.prefixScratch;
        writeFederationPrefix(prefix, 0, 1);
        writeFederationEntryHeader(
          prefix,
          FEDERATION_HEADER_SIZE,
          hop,
          g.hash,
          origin,
          tag,
          frame.length,
          originOff,
        );
      }
      const d = dests[n] ?? { port: 0, address: null };
      dests[n++] = d;
      d.port = link.mediaPort;
      d.address = link.mediaAddress;
    }
    if (n > 0) {
      this.sendUdpMany(prefix, frame, dests, n);
      for (let i = 0; i < n; i++) {
        (dests[i] as { address: string | null }).address = null;
      }
    }
  }

  private batch(link: Link): FederationBatcher {
    if (link.batcher === null) {
      link.batcher = new FederationBatcher({
        maxEntries: this.trunking.maxEntries,
        maxBytes: this.trunking.mtu,
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
    const link = this.links.byAddress(rinfo.port, rinfo.address);
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
      const g = this.globals.at(
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
      const f = v.frameOffset;
      const verdict = (sender.remote as RemoteMedia).replay.check(
        fullFrameMediaType(msg, f),
        fullFrameStreamId(msg, f),
        fullFrameSeq(msg, f),
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
      if (!this.delivery.forwardRemote(sender, frame)) {
        // The entry parsed but its frame's header does not: not relayed either.
        stats.dropped.malformed++;
        continue;
      }
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
            sender,
            fullFrameMediaType(msg, f) === MediaType.Video && fullFrameStreamId(msg, f) <= MAX_LAYER
              ? fullFrameStreamId(msg, f)
              : -1,
          );
        }
      }
    }
  }
}
