/**
 * A session's media path: where the relay's datagrams to it go and where
 * its datagrams come from. The UDP socket is the default path (a session's
 * `path` is null and its `address`/`port` are a UDP source). Stream
 * transports that carry the UDP binding's datagrams unchanged, one per
 * message (WebSocket `/v2/media`, WebTransport datagrams where installed),
 * implement `DatagramPath` and hand every received datagram to the engine
 * with themselves as the source.
 *
 * A path never queues without bound: when its receiver cannot keep up it
 * drops and counts, exactly like a lossy UDP link.
 */
import type { RemoteInfo } from 'node:dgram';

export type DatagramPathKind = 'websocket' | 'webtransport';

export interface DatagramPath {
  readonly kind: DatagramPathKind;
  /**
   * The source the engine maps to the bound session: `address` is unique
   * per path (never a valid IP address), `port` is 0.
   */
  readonly rinfo: RemoteInfo;
  /** Sends one datagram (the pieces are one message). Drops when over its bound; never throws. */
  send(data: Buffer | readonly Buffer[]): void;
  /** The engine bound a session to this path (BIND accepted). */
  attached(): void;
}

/** Counters shared by every path of one kind (read at scrape time). */
export class DatagramPathStats {
  /** Open paths. */
  open = 0;
  /** Datagrams received and handed to the engine. */
  datagramsIn = 0;
  /** Datagrams sent to receivers. */
  datagramsOut = 0;
  /** Datagrams dropped because the receiver's send buffer was over its bound. */
  droppedBackpressure = 0;
  /** Datagrams dropped because the path had closed. */
  droppedClosed = 0;
  /** Messages that were not datagrams (text frames). */
  droppedBadFrame = 0;
  /** Paths closed because no BIND was accepted in time. */
  bindTimeouts = 0;
}
