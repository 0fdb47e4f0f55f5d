/**
 * `/v2/media`: the UDP binding's datagrams over a WebSocket, one datagram
 * per binary message in both directions (BIND and BIND_ACK, FULL/MINI,
 * TRUNK, PING/PONG). For clients that cannot send UDP (browsers).
 *
 * Receiving: every binary message goes to the engine's datagram entry point
 * with this path as its source, so the bind rules, validation, counting and
 * forwarding are exactly those of UDP. Text frames are dropped and counted.
 *
 * Sending: a receiver that cannot keep up is treated like a lossy UDP one.
 * When the socket's `bufferedAmount` is above `maxBufferedBytes` the
 * datagram is dropped and counted; memory per connection never grows past
 * that bound plus one datagram.
 *
 * A connection that has no accepted BIND within `bindTimeoutMs` is closed
 * (4008), so idle sockets cannot pile up.
 */
import type { RemoteInfo } from 'node:dgram';
import type { RawData, WebSocket } from 'ws';
import type { DatagramPath, DatagramPathStats } from './datagram-path.js';

export const MEDIA_WS_PATH = '/v2/media';

/** Largest message accepted: the largest UDP payload. */
export const WS_MEDIA_MAX_MESSAGE = 65_507;

export interface WsMediaPathOptions {
  /** Drop outgoing datagrams while this many bytes are still buffered. */
  maxBufferedBytes: number;
  /** Close the socket when no BIND is accepted within this time. */
  bindTimeoutMs: number;
  stats: DatagramPathStats;
  /** Every received datagram (must not throw). */
  onDatagram: (msg: Buffer, rinfo: RemoteInfo, path: DatagramPath) => void;
  /** The socket closed (the engine forgets the binding). */
  onClose: (path: WsMediaPath) => void;
}

let nextId = 1;

export class WsMediaPath implements DatagramPath {
  readonly kind = 'websocket' as const;
  readonly rinfo: RemoteInfo;
  /** Datagrams this path dropped on send (its own share of the shared counters). */
  dropped = 0;
  private bound = false;
  private closed = false;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly ws: WebSocket,
    readonly remote: string,
    private readonly options: WsMediaPathOptions,
  ) {
    const id = nextId++;
    // Not an IP address, so it can never collide with a UDP source.
    this.rinfo = { address: `ws#${id}`, port: 0, family: 'IPv4', size: 0 };
    options.stats.open++;
    this.timer = setTimeout(() => {
      if (!this.bound) {
        options.stats.bindTimeouts++;
        ws.close(4008, 'no BIND accepted');
      }
    }, options.bindTimeoutMs);
    this.timer.unref();
    ws.on('message', (data, isBinary) => this.onMessage(data, isBinary));
    ws.once('close', () => this.onClose());
    ws.on('error', () => {});
  }

  /** True once a BIND was accepted on this path. */
  get isBound(): boolean {
    return this.bound;
  }

  /** Bytes queued to this receiver and not yet written to the kernel. */
  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  attached(): void {
    this.bound = true;
    clearTimeout(this.timer);
  }

  send(data: Buffer | readonly Buffer[]): void {
    const stats = this.options.stats;
    const ws = this.ws;
    if (this.closed || ws.readyState !== 1) {
      stats.droppedClosed++;
      return;
    }
    if (ws.bufferedAmount > this.options.maxBufferedBytes) {
      stats.droppedBackpressure++;
      this.dropped++;
      return;
    }
    // ws frames one buffer per message; scatter pieces are joined here (WebSocket path only).
    const msg = Buffer.isBuffer(data) ? data : Buffer.concat(data as Buffer[]);
    ws.send(msg, { binary: true, compress: false });
    stats.datagramsOut++;
  }

  /** Closes the socket (relay shutdown). */
  close(code = 1001, reason = 'relay shutting down'): void {
    if (this.ws.readyState === 0 || this.ws.readyState === 1) {
      this.ws.close(code, reason);
    }
  }

  terminate(): void {
    this.ws.terminate();
  }

  private onMessage(data: RawData, isBinary: boolean): void {
    const stats = this.options.stats;
    if (!isBinary || !Buffer.isBuffer(data)) {
      stats.droppedBadFrame++;
      return;
    }
    stats.datagramsIn++;
    this.options.onDatagram(data, this.rinfo, this);
  }

  private onClose(): void {
    if (this.closed) {
      return;
    }
    this.closed = true;
    clearTimeout(this.timer);
    this.options.stats.open--;
    this.options.onClose(this);
  }
}
