/**
 * The contract between the federation control plane (main thread,
 * federation.ts) and federation media inside media worker 0
 * (worker-plane.ts), carried in the media workers' `ext` commands and
 * events (src/media/protocol.ts) and one SharedArrayBuffer of counters.
 *
 * Everything here crosses threads on control-path events only (a link up
 * or down, a room's interest, a layer demand, a BIND to send); nothing is
 * per packet. Counters and each link's packet counts and last-heard time
 * are written into the shared buffer by the worker whenever it publishes
 * its own counters, so a scrape or a heartbeat never waits for it.
 */
import type { TrunkingOptions } from '../media/engine.js';

/**
 * The module the media workers of a federated relay run (worker-main.ts:
 * compiled JavaScript, or TypeScript under the test runner).
 */
export const FEDERATION_WORKER_ENTRY = new URL(
  import.meta.url.endsWith('.ts') ? './worker-main.ts' : './worker-main.js',
  import.meta.url,
);

/** What worker 0's federation plane is started with (`WorkerInit.extension`). */
export interface FederationWorkerInit {
  /** Our relay id (16 hex characters: the 8-byte origin of our entries). */
  selfId: string;
  /** `federation_max_hops`. */
  maxHops: number;
  /** Federation trunking (batches per link) follows the relay's trunking settings. */
  trunking: TrunkingOptions;
  /** Counters, laid out by `FED_SCALARS` and `LINK_SLOT` (kept across worker restarts). */
  stats: SharedArrayBuffer;
}

/** A UDP address (address, port). */
export type Address = [string, number];

/** Commands: main thread → worker 0 (inside `ext` commands, in order with the rest). */
export type FederationCommand =
  /** A global room exists (configured, bridged or homed here). Idempotent. */
  | { type: 'room'; name: string; pps: number }
  /** A room added at run time stopped being global. */
  | { type: 'roomGone'; name: string }
  /** The links whose peers take the room's media (their UDP path is up). */
  | { type: 'interest'; room: string; links: number[] }
  /**
   * A link is installed (or pushed again to a replacement worker, with what
   * the previous one had learned: `bound`, `media`).
   */
  | {
      type: 'linkUp';
      id: number;
      /** Its slot in the shared counters, or −1. */
      slot: number;
      /** True for a new link (its counters start at 0), false when pushed again. */
      fresh: boolean;
      localToken: Uint8Array;
      peerToken: Uint8Array;
      remoteAddress: string;
      peerUdpPort: number;
      /** `federation_peer_pps`. */
      peerPps: number;
      /** The peer's media source (its BIND), if known. */
      bound: Address | null;
      /** Where the peer acknowledged our BIND from, if it did. */
      media: Address | null;
    }
  /** The link is gone (its batch is flushed first). */
  | { type: 'linkDown'; id: number }
  /** Sends the link's UDP BIND to the peer (until it acknowledges). */
  | { type: 'sendBind'; id: number }
  /** The highest video layer the link's peer needs of session `session` (−1: none). */
  | { type: 'demand'; link: number; session: number; maxLayer: number };

/** Events: worker 0 → main thread (inside `ext` events). */
export type FederationEvent =
  /** The peer acknowledged our BIND: media may flow to it (from `media`). */
  | { type: 'linkReady'; id: number; media: Address }
  /** A BIND_CONFIRM bound the peer's media source (new or moved). */
  | { type: 'linkBound'; id: number; bound: Address };

// ── shared counters ─────────────────────────────────────────────────────────

/** Federation drop reasons (metric label `reason`). */
export const FEDERATION_DROP_REASONS = [
  'unbound',
  'malformed',
  'loop',
  'unknown_room',
  'unknown_sender',
  'hop_limit',
] as const;

export type FederationDropReason = (typeof FEDERATION_DROP_REASONS)[number];

/** Scalar counters, in order, then one per drop reason. */
export const FED_SCALARS = [
  'deduped',
  'tooOld',
  'layerFiltered',
  'rateLimitedPeer',
  'rateLimitedRoom',
] as const;

export const FED_DROP_SLOT = FED_SCALARS.length;
/** Links with counters in the shared buffer at once (a link beyond has none). */
export const MAX_LINK_SLOTS = 1024;
/** Per link: packets in, packets out, last heard (epoch ms). */
export const LINK_FIELDS = 3;
export const LINK_SLOT = FED_DROP_SLOT + FEDERATION_DROP_REASONS.length;
export const FED_STATS_LENGTH = LINK_SLOT + MAX_LINK_SLOTS * LINK_FIELDS;

/** A zeroed federation stats buffer. */
export function createFederationStatsBuffer(): SharedArrayBuffer {
  return new SharedArrayBuffer(FED_STATS_LENGTH * Float64Array.BYTES_PER_ELEMENT);
}

/** Index of field `field` (0 in, 1 out, 2 heard) of link slot `slot`. */
export function linkField(slot: number, field: 0 | 1 | 2): number {
  return LINK_SLOT + slot * LINK_FIELDS + field;
}
