/**
 * What a signalling connection needs from the relay (implemented by
 * `Relay`). Kept as an interface so connections and the relay do not import
 * each other.
 */
import type { RelayConfig } from '../config/index.js';
import type { Logger } from '../log/index.js';
import type { RelayMetrics } from '../metrics/index.js';
import type { Identity } from '../signal/index.js';
import type { Session } from './session.js';
import type { SignalConnection } from './signal-connection.js';

export type EndReason = 'hangup' | 'ws_close' | 'timeout' | 'shutdown' | 'error';

export interface JoinRequest {
  room: string;
  fingerprint: string;
  alias: string | null;
  bindToken: Buffer;
  canPublish: boolean;
  canSubscribe: boolean;
}

export interface RelayCore {
  readonly config: RelayConfig;
  readonly log: Logger;
  readonly metrics: RelayMetrics;
  readonly identity: Identity;
  readonly advertisedUdpPort: number;
  /** Joins a room (critical section) and registers the session with the media engine. */
  join(conn: SignalConnection, request: JoinRequest): Promise<Session>;
  /** Ends a session: unregisters it, leaves the room, tells the others. Idempotent. */
  endSession(session: Session, reason: EndReason): Promise<void>;
  /** Sends RoomUpdate to every participant of the session's room. */
  broadcastRoomUpdate(session: Session): void;
  /** Routes a PictureLossIndication from `from` to the stream's owner. */
  routePli(from: Session, streamId: number): void;
  /** The WebSocket of `conn` closed. */
  connectionClosed(conn: SignalConnection): void;
}
