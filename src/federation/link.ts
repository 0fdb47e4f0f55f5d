/**
 * One authenticated federation link to a peer relay: its WebSocket control
 * channel, its UDP media binding, what the peer announced, heartbeats and
 * counters. The Federation owns links; a link only reports to it.
 */
import type WebSocket from 'ws';
import type { FederatedParticipant, OutgoingSignal } from '../signal/index.js';
import { TokenBucket } from '../util/token-bucket.js';
import type { FederationBatcher } from '../wire/index.js';
import type { HandshakeResult } from './handshake.js';
import { sendSignal } from './handshake.js';
import type { Peer } from './peers.js';
import { relayId } from './peers.js';

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

  constructor(
    ws: WebSocket,
    result: HandshakeResult,
    dialedBySelf: boolean,
    nowMs: number,
    limits: { signalRate: number; peerPps: number },
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
