/**
 * The installed federation links and their indexes: by configured peer (at
 * most one link per pair), by our bind token (UDP BIND from the peer), and by
 * the peer's bound UDP source address (FEDERATION datagrams, hot path).
 * Also keeps the counters of links that are gone, so per-peer metrics are
 * cumulative, and the link event counts.
 */
import type { Link } from './link.js';
import type { Peer } from './peers.js';

export interface PeerCounters {
  packetsIn: number;
  packetsOut: number;
  rateLimited: number;
  /** Control frames refused (undecodable, over the limits or the budget, unexpected). */
  rejected: number;
}

export class LinkTable {
  /** Installed links by configured peer. */
  readonly byPeer = new Map<Peer, Link>();
  private readonly byToken = new Map<string, Link>();
  private readonly folded = new Map<Peer, PeerCounters>();
  /** Link event counts (metrics): up, down, duplicate, refused_*. */
  readonly events = new Map<string, number>();

  countEvent(event: string): void {
    this.events.set(event, (this.events.get(event) ?? 0) + 1);
  }

  get(peer: Peer): Link | undefined {
    return this.byPeer.get(peer);
  }

  /** Number of installed links. */
  get size(): number {
    return this.byPeer.size;
  }

  has(peer: Peer): boolean {
    return this.byPeer.has(peer);
  }

  /** Drops every link's layer demand for session `sessionId` (it left). */
  forgetDemands(sessionId: number): void {
    for (const link of this.byPeer.values()) {
      link.mediaDemand.delete(sessionId);
    }
  }

  values(): IterableIterator<Link> {
    return this.byPeer.values();
  }

  /** Installs `link` as its peer's link. */
  add(link: Link): void {
    this.byPeer.set(link.peer, link);
    this.byToken.set(link.localBindToken.toString('hex'), link);
  }

  /** The link whose local bind token is `hex`. */
  byBindToken(hex: string): Link | undefined {
    return this.byToken.get(hex);
  }

  /** Removes a link from every index and folds its counters (it stays open until closed). */
  remove(link: Link): void {
    if (this.byPeer.get(link.peer) === link) {
      const f = this.folded.get(link.peer) ?? {
        packetsIn: 0,
        packetsOut: 0,
        rateLimited: 0,
        rejected: 0,
      };
      f.packetsIn += link.packetsIn;
      f.packetsOut += link.packetsOut;
      f.rateLimited += link.signalsRateLimited;
      f.rejected += link.signalsRejected;
      this.folded.set(link.peer, f);
      this.byPeer.delete(link.peer);
    }
    this.byToken.delete(link.localBindToken.toString('hex'));
    if (link.timer !== null) {
      clearTimeout(link.timer);
      link.timer = null;
    }
  }

  /** Cumulative per-peer counters (metrics). */
  peerCounters(peer: Peer): PeerCounters {
    const f = this.folded.get(peer) ?? { packetsIn: 0, packetsOut: 0, rateLimited: 0, rejected: 0 };
    const link = this.byPeer.get(peer);
    return link === undefined
      ? { ...f }
      : {
          packetsIn: f.packetsIn + link.packetsIn,
          packetsOut: f.packetsOut + link.packetsOut,
          rateLimited: f.rateLimited + link.signalsRateLimited,
          rejected: f.rejected + link.signalsRejected,
        };
  }
}
