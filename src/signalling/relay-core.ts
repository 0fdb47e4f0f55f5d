/**
 * What a signalling connection needs from the relay (implemented by
 * `Relay`). Kept as an interface so connections and the relay do not import
 * each other.
 */
import type { RelayConfig } from '../config/index.js';
import type { Logger } from '../log/index.js';
import type { Session } from '../media/session.js';
import type { SubscriptionChange } from '../media/subscriptions.js';
import type { RelayMetrics } from '../metrics/index.js';
import type { BodyOf, Identity, OutgoingSignal } from '../signal/index.js';
import type { LogSampler } from '../util/log-sampler.js';

export type EndReason =
  | 'hangup'
  | 'ws_close'
  | 'timeout'
  | 'shutdown'
  | 'error'
  | 'moved'
  | 'policy';

/** Where a room lives (fleet placement): here, or on another relay the client is redirected to. */
export type Route = { kind: 'here' } | { kind: 'redirect'; url: string; label: string };

export interface JoinRequest {
  room: string;
  fingerprint: string;
  /** The access token's `sub`, when auth is on and the token has one. */
  subject: string | null;
  alias: string | null;
  bindToken: Buffer;
  canPublish: boolean;
  canSubscribe: boolean;
  /** What media policing meters this session against (negotiated profile, announced video). */
  policy?: { audioCodec: string; frameMs: number; videoKbps: number | null };
}

/** What the relay may do with a signalling connection (implemented by `SignalConnection`). */
export interface SignalPeer {
  /** The session this connection joined, once it has. */
  readonly joined: Session | null;
  send(msg: OutgoingSignal): void;
  /** Sends an already encoded message (one encoding shared by a whole room). */
  sendFrame(frame: Uint8Array): void;
  close(code?: number, reason?: string): void;
  terminate(): void;
}

export interface RelayCore {
  readonly config: RelayConfig;
  readonly log: Logger;
  readonly metrics: RelayMetrics;
  readonly identity: Identity;
  /** Places the room (fleet directory) before the join: served here, or redirect. */
  route(room: string): Promise<Route>;
  /** Shared by every connection: repeated rejections are logged sampled. */
  readonly logSampler: LogSampler;
  /** The UDP port the session's client is told in CallAnswer (its media worker's). */
  udpPortOf(session: Session): number;
  /** Joins a room (critical section) and registers the session with the media engine. */
  join(conn: SignalPeer, request: JoinRequest): Promise<Session>;
  /** Ends a session: unregisters it, leaves the room, tells the others. Idempotent. */
  endSession(session: Session, reason: EndReason): Promise<void>;
  /** Sends RoomUpdate to every participant of the session's room. */
  broadcastRoomUpdate(session: Session): void;
  /**
   * Routes a PictureLossIndication from `from`: to the sender with `tag`, or
   * without a tag to every sender of video on `streamId` (BINDING.md §6.1).
   */
  routePli(from: Session, streamId: number, tag: number | null): void;
  /** A receiver's SubscriptionUpdate (§6.3). */
  subscribe(session: Session, change: SubscriptionChange): void;
  /** A receiver's TransportFeedback (§6.4). */
  transportFeedback(session: Session, feedback: BodyOf<'TransportFeedback'>): void;
  /** A receiver's ResyncRequest (BINDING.md §4.6); false when `tag` is no sender of its room. */
  resync(session: Session, tag: number): boolean;
  /**
   * Resolves once the media plane applied every earlier signal of the
   * session (subscriptions, feedback, resync): a Pong is sent after it, so a
   * client that waits for its Pong knows its settings hold before its BIND.
   */
  settled(session: Session): Promise<void>;
  /** The WebSocket of `conn` closed. */
  connectionClosed(conn: SignalPeer): void;
}
