/**
 * Layer demand across links (BINDING.md §8.5): a relay tells the relay a
 * remote participant's media comes from which video layers it may still
 * need, so layers no receiver behind a link can take do not cross it.
 *
 * `FederationLayerDemand { room, origin, tag, max_layer }` (max_layer −1:
 * no video at all) travels like a PLI, on the link the participant's
 * announcement came from. A relay's demand for a remote participant is the
 * highest of (a) the subscription caps of its local receivers of that
 * participant (`video: false` counts as −1, no cap as 2) and (b) the
 * demands other links sent it for that participant (transit). It is sent
 * when it changes; a link that never sent one for a participant gets every
 * layer (relays without this feature are unaffected).
 *
 * When a link's demand for a local sender rises (from "no video", or from a
 * lower cap), the layers it now admits were filtered until then, so their
 * receivers behind the link have no keyframe to start from: the sender is
 * asked for one per newly admitted layer (`onRise`, the usual PLI path with
 * its suppression). A transit relay raises its own demand upstream instead,
 * and the origin relay asks.
 *
 * Recomputed on control-path events only (subscriptions, joins and leaves,
 * remote participants changing, a demand arriving), never per packet; a
 * demand that arrives is pushed to federation media in worker 0, which
 * reads it per forwarded video entry.
 */
import type { Logger } from '../log/index.js';
import type { Session } from '../media/session.js';
import { MAX_LAYER } from '../media/subscriptions.js';
import type { BodyOf } from '../signal/index.js';
import type { GlobalRoom, GlobalRoomTable, RemoteParticipant } from './global-room.js';
import type { Link } from './link.js';
import type { LinkTable } from './link-table.js';
import type { FederationPost } from './mirror.js';

export interface LayerDemandOptions {
  selfId: string;
  log: Logger;
  links: LinkTable;
  globals: GlobalRoomTable;
  /** Commands for federation media in worker 0. */
  post: FederationPost;
  /** The local participants of a room (receivers), by room name. */
  localSessions: (roomName: string) => readonly Session[];
  /** A link now admits layer `streamId` of local sender `sender`, which it filtered before. */
  onRise?: (sender: Session, streamId: number) => void;
}

export class LayerDemandRouter {
  sent = 0;
  received = 0;
  dropped = 0;
  /** Rises of a link's demand for a local sender (each asked that sender for keyframes). */
  rises = 0;
  constructor(private readonly o: LayerDemandOptions) {}

  /** Recomputes (and sends on change) the demand for every remote participant of room `name`. */
  roomChanged(name: string): void {
    const g = this.o.globals.get(name);
    if (g === undefined) {
      return;
    }
    const locals = this.o.localSessions(name);
    for (const remote of g.remotes.values()) {
      this.update(g, remote, locals);
    }
  }

  /** A FederationLayerDemand from a link. */
  onMessage(link: Link, body: BodyOf<'FederationLayerDemand'>): void {
    this.received++;
    const g = this.o.globals.get(body.room);
    if (g === undefined) {
      this.dropped++;
      return;
    }
    let target: Session | undefined;
    if (body.origin === this.o.selfId) {
      target = this.o.localSessions(g.name).find((s) => s.tag === body.tag);
    } else {
      const hi = Number.parseInt(body.origin.slice(0, 8), 16);
      const lo = Number.parseInt(body.origin.slice(8, 16), 16);
      target = g.remoteAt(hi, lo, body.tag);
    }
    if (target === undefined) {
      this.dropped++;
      return;
    }
    const maxLayer = Math.max(-1, Math.min(MAX_LAYER, body.max_layer));
    link.layerDemand ??= new WeakMap();
    // A link that never said what it needs had every layer.
    const before = link.layerDemand.get(target) ?? MAX_LAYER;
    link.layerDemand.set(target, maxLayer);
    if (target.remote === null && maxLayer > before) {
      this.rises++;
      for (let layer = before + 1; layer <= maxLayer; layer++) {
        this.o.onRise?.(target, layer);
      }
    }
    if (link.mediaDemand.get(target.id) !== maxLayer) {
      link.mediaDemand.set(target.id, maxLayer);
      this.o.post({ type: 'demand', link: link.id, session: target.id, maxLayer });
    }
    if (target.remote !== null) {
      // Transit: what this link needs is part of what we need from the origin.
      this.update(g, target, this.o.localSessions(g.name));
    }
  }

  private update(g: GlobalRoom, remote: Session, locals: readonly Session[]): void {
    const r = remote.remote as RemoteParticipant;
    const via = r.path[r.path.length - 1];
    let demand = -1;
    for (const s of locals) {
      if (s === remote || s.closed || !s.canSubscribe) {
        continue;
      }
      const prefs = s.av.rx.prefsFor(remote.tag);
      if (prefs.video && prefs.maxLayer > demand) {
        demand = prefs.maxLayer;
      }
    }
    let toward: Link | null = null;
    for (const link of this.o.links.values()) {
      if (link.closed) {
        continue;
      }
      if (link.peerId === via) {
        toward = link;
        continue;
      }
      if (!g.interested.includes(link) || demand >= MAX_LAYER) {
        continue;
      }
      // A link that never said what it needs gets everything (and so do we).
      const d = link.layerDemand?.get(remote) ?? MAX_LAYER;
      if (d > demand) {
        demand = d;
      }
    }
    if (toward === null || toward.layerDemandSent.get(remote) === demand) {
      return;
    }
    toward.layerDemandSent.set(remote, demand);
    toward.send({
      type: 'FederationLayerDemand',
      body: { room: g.name, origin: r.origin, tag: r.originTag, max_layer: demand },
    });
    this.sent++;
  }
}
