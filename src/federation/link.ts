/**
 * One authenticated federation link to a peer relay: its WebSocket control
 * channel, what the peer announced, heartbeats and counters, and what the
 * main thread knows of its UDP media binding (the binding itself, its rate
 * limit and batches live in media worker 0: media-state.ts). The Federation
 * owns links; a link only reports to it.
 */
import type WebSocket from 'ws';
import type { Session } from '../media/session.js';
import {
  type DecodeLimits,
  type FederatedParticipant,
  frameCost,
  type OutgoingSignal,
  PEER_DECODE_LIMITS,
} from '../signal/index.js';
import { ErrorReplyLimiter } from '../util/error-replies.js';
import { TokenBucket } from '../util/token-bucket.js';
import type { HandshakeResult } from './handshake.js';
import { sendSignal } from './handshake.js';
import type { MediaMirror } from './mirror.js';
import type { Peer } from './peers.js';
import { relayId } from './peers.js';

/** Error replies on a link: a burst of this many, then one per second. */
export const LINK_ERROR_REPLY_BURST = 8;

let nextLinkId = 1;

export class Link {
  /** Names the link in commands to media worker 0. */
  readonly id = nextLinkId++;
  /** Its slot in the federation's shared counters (−1: none). */
  slot = -1;
  /** Where its media counters are read from (set when installed). */
  mirror: MediaMirror | null = null;
  readonly peer: Peer;
  readonly ws: WebSocket;
  readonly peerPub: Buffer;
  /** The peer's relay id (16 hex). */
  readonly peerId: string;
  readonly peerLabel: string;
  /** True when this relay dialed the link. */
  readonly dialedBySelf: boolean;
  /** Where the peer's media socket is (WebSocket peer address + announced port). */
  readonly remoteAddress: string;
  readonly peerUdpPort: number;
  /** Token we BIND with at the peer. */
  readonly peerBindToken: Buffer;
  /** Token the peer BINDs with at our media port. */
  readonly localBindToken: Buffer;
  readonly upSinceMs: number;

  /** The peer's media source (its BIND, as worker 0 reported it). */
  boundAddress: string | null = null;
  boundPort = 0;
  /** Where worker 0 sends media (the peer's BIND_ACK, as worker 0 reported it). */
  mediaAddress: string | null = null;
  mediaPort = 0;
  /** Our BIND was acknowledged: media may flow to the peer. */
  udpReady = false;

  /** Last announcement per global room received from the peer. */
  rooms = new Map<string, FederatedParticipant[]>();
  /** Last announcement per room sent to the peer (JSON, for change detection). */
  readonly sent = new Map<string, string>();

  lastHeardMs: number;
  nextPingMs = 0;
  pingSentMs = 0;
  pingId = 0;
  rttMs: number | null = null;
  timer: NodeJS.Timeout | null = null;
  closed = false;
  readonly signalBucket: TokenBucket;
  /**
   * Decode budget (`federation_signal_budget_bytes_per_sec`, burst 2 s and at
   * least two of the largest frames); over it the link is closed.
   */
  readonly budget: TokenBucket;
  /** What a control frame may contain (the peer limits, the configured frame size). */
  readonly limits: DecodeLimits;
  /** Error replies to the peer: a burst of 8, then 1/s, each carrying the count. */
  readonly errorReplies: ErrorReplyLimiter;

  /**
   * Highest video layer the peer needs of a participant (FederationLayerDemand,
   * demand.ts); absent: every layer. Keyed by the participant's session here.
   */
  layerDemand: WeakMap<Session, number> | null = null;
  /** The same demands by session id, as pushed to worker 0 (again to a replacement). */
  readonly mediaDemand = new Map<number, number>();
  /** The demands this relay sent on the link, by remote participant. */
  readonly layerDemandSent = new WeakMap<Session, number>();

  signalsIn = 0;
  signalsRateLimited = 0;
  /** Control frames refused (undecodable, over the limits, unexpected). */
  signalsRejected = 0;

  constructor(
    ws: WebSocket,
    result: HandshakeResult,
    dialedBySelf: boolean,
    nowMs: number,
    limits: {
      signalRate: number;
      peerPps: number;
      budgetBytesPerSec: number;
      maxFrameBytes: number;
    },
  ) {
    this.ws = ws;
    this.peer = result.peer;
    this.peerPub = result.peerPub;
    this.peerId = relayId(result.peerPub);
    this.peerLabel = result.peerLabel;
    this.dialedBySelf = dialedBySelf;
    this.remoteAddress = result.remoteAddress;
    this.peerUdpPort = result.peerUdpPort;
    this.peerBindToken = result.peerBindToken;
    this.localBindToken = result.localBindToken;
    this.upSinceMs = nowMs;
    this.lastHeardMs = nowMs;
    this.signalBucket = new TokenBucket(limits.signalRate, limits.signalRate * 2, nowMs);
    this.peerPps = limits.peerPps;
    this.limits = Object.freeze({ ...PEER_DECODE_LIMITS, maxBytes: limits.maxFrameBytes });
    const largest = frameCost(this.limits.maxBytes, this.limits.maxElements);
    this.budget = new TokenBucket(
      limits.budgetBytesPerSec,
      Math.max(2 * limits.budgetBytesPerSec, 2 * largest),
      nowMs,
    );
    this.errorReplies = new ErrorReplyLimiter(LINK_ERROR_REPLY_BURST, 1, nowMs);
  }

  /** FEDERATION entries per second accepted from the peer (enforced in worker 0). */
  readonly peerPps: number;

  /** Federation entries received on the link (counted in worker 0). */
  get packetsIn(): number {
    return this.mirror?.packets(this.slot, false) ?? 0;
  }

  /** Federation entries sent on the link (counted in worker 0). */
  get packetsOut(): number {
    return this.mirror?.packets(this.slot, true) ?? 0;
  }

  /** Last time anything arrived on the link: control frames here, UDP in worker 0. */
  get heardMs(): number {
    return Math.max(this.lastHeardMs, this.mirror?.heardMs(this.slot) ?? 0);
  }

  /** The metric label of the peer: its configured label. */
  get label(): string {
    return this.peer.label;
  }

  send(msg: OutgoingSignal): void {
    if (!this.closed) {
      sendSignal(this.ws, msg);
    }
  }
}
