/**
 * The main thread's side of federation media in media worker 0
 * (worker-plane.ts): what the control plane tells the worker (links up and
 * down, global rooms and their interested links, layer demands, BINDs to
 * send; worker-protocol.ts), the counters it reads back from the shared
 * buffer without waiting for the worker, and the push of the whole state
 * to a replacement worker after a crash.
 */
import {
  createFederationStatsBuffer,
  FED_DROP_SLOT,
  FEDERATION_DROP_REASONS,
  type FederationCommand,
  linkField,
  MAX_LINK_SLOTS,
} from './worker-protocol.js';

/** Where commands for worker 0's federation plane go (in order with its other commands). */
export type FederationPost = (cmd: FederationCommand) => void;

/** Counters of the federation media plane (read from the shared buffer). */
export interface FederationStatsView {
  deduped: number;
  tooOld: number;
  layerFiltered: number;
  rateLimitedPeer: number;
  rateLimitedRoom: number;
  dropped: Record<(typeof FEDERATION_DROP_REASONS)[number], number>;
}

export class MediaMirror {
  /** Shared with every incarnation of worker 0 (its counters continue across restarts). */
  readonly buffer = createFederationStatsBuffer();
  private readonly stats = new Float64Array(this.buffer);
  private readonly freeSlots: number[] = [];
  private nextSlot = 0;

  constructor(readonly post: FederationPost) {}

  /** A counter slot for a new link, or −1 when every slot is taken. */
  takeSlot(): number {
    if (this.nextSlot < MAX_LINK_SLOTS) {
      return this.nextSlot++;
    }
    return this.freeSlots.shift() ?? -1;
  }

  releaseSlot(slot: number): void {
    if (slot >= 0) {
      this.freeSlots.push(slot);
    }
  }

  /** Packets in / out of a link slot (as last published by the worker). */
  packets(slot: number, out: boolean): number {
    return slot < 0 ? 0 : (this.stats[linkField(slot, out ? 1 : 0)] as number);
  }

  /** When the worker last heard the link's UDP (performance clock of this thread), or −∞. */
  heardMs(slot: number): number {
    const epoch = slot < 0 ? 0 : (this.stats[linkField(slot, 2)] as number);
    return epoch === 0 ? Number.NEGATIVE_INFINITY : epoch - performance.timeOrigin;
  }

  statsView(): FederationStatsView {
    const s = this.stats;
    const dropped = {} as FederationStatsView['dropped'];
    FEDERATION_DROP_REASONS.forEach((reason, i) => {
      dropped[reason] = s[FED_DROP_SLOT + i] as number;
    });
    return {
      deduped: s[0] as number,
      tooOld: s[1] as number,
      layerFiltered: s[2] as number,
      rateLimitedPeer: s[3] as number,
      rateLimitedRoom: s[4] as number,
      dropped,
    };
  }
}
