/**
 * One authenticated federation link to a peer relay: its WebSocket control
 * channel, its UDP media binding, what the peer announced, heartbeats and
 * counters. The Federation owns links; a link only reports to it.
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
import type { FederationBatcher } from '../wire/index.js';
import type { HandshakeResult } from './handshake.js';
import { sendSignal } from './handshake.js';
import type { Peer } from './peers.js';
import { relayId } from './peers.js';

/** Error replies on a link: a burst of this many, then one per second. */
export const LINK_ERROR_REPLY_BURST = 8;

export class Link {
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

  /** The peer's media source (set by its BIND); datagrams from elsewhere are not this link's. */
  boundAddress: string | null = null;
  boundPort = 0;
  /** Where we send media (set by the peer's BIND_ACK). */
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
  readonly mediaBucket: TokenBucket;
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
  /** The demands this relay sent on the link, by remote participant. */
  readonly layerDemandSent = new WeakMap<Session, number>();
  /** Federation trunk batcher (trunking mode only). */
  batcher: FederationBatcher | null = null;
  batchGeneration = 0;
  readonly flushItem = {
    onDeadline: (generation: number): void => {
      if (generation === this.batchGeneration) {
        this.batcher?.flush();
      }
    },
  };

  packetsIn = 0;
  packetsOut = 0;
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
    this.mediaBucket = new TokenBucket(limits.peerPps, limits.peerPps, nowMs);
    this.limits = Object.freeze({ ...PEER_DECODE_LIMITS, maxBytes: limits.maxFrameBytes });
    const largest = frameCost(this.limits.maxBytes, this.limits.maxElements);
    this.budget = new TokenBucket(
      limits.budgetBytesPerSec,
      Math.max(2 * limits.budgetBytesPerSec, 2 * largest),
      nowMs,
    );
    this.errorReplies = new ErrorReplyLimiter(LINK_ERROR_REPLY_BURST, 1, nowMs);
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
