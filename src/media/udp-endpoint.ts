/**
 * The relay's UDP socket: one bound socket, one datagram handler, sends with
 * an explicit destination. Send errors are counted, never thrown.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { WzpError } from '../errors/index.js';

export interface UdpEndpointOptions {
  host: string;
  port: number;
  /** SO_RCVBUF / SO_SNDBUF request in bytes (the kernel may cap it). */
  bufferBytes?: number;
  /** Called for every received datagram. Must not throw. */
  onDatagram: (msg: Buffer, rinfo: RemoteInfo) => void;
  /** Called when the socket reports an error (for example a failed send). */
  onError?: (err: Error) => void;
}

export class UdpEndpoint {
  private readonly socket: Socket;
  private readonly options: UdpEndpointOptions;
  private open = false;

  constructor(options: UdpEndpointOptions) {
    this.options = options;
    const type = options.host.includes(':') ? 'udp6' : 'udp4';
    this.socket = createSocket({ type, reuseAddr: false });
    this.socket.on('message', options.onDatagram);
    this.socket.on('error', (err) => options.onError?.(err));
  }

  /** Binds the socket; resolves with the bound port. */
  start(): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => {
        reject(
          new WzpError(
            'TRANSPORT_BIND_FAILED',
            `cannot bind UDP ${this.options.host}:${this.options.port}: ${err.message}`,
            { cause: err },
          ),
        );
      };
      this.socket.once('error', onError);
      this.socket.bind(this.options.port, this.options.host, () => {
        this.socket.off('error', onError);
        this.open = true;
        const size = this.options.bufferBytes;
        if (size !== undefined && size > 0) {
          try {
            this.socket.setRecvBufferSize(size);
            this.socket.setSendBufferSize(size);
          } catch {
            // The kernel limit (net.core.rmem_max) may refuse; the default still works.
          }
        }
        resolve(this.socket.address().port);
      });
    });
  }

  /** The bound port (0 before start). */
  get port(): number {
    return this.open ? this.socket.address().port : 0;
  }

  /**
   * Sends one datagram made of one or more buffers (scatter/gather: the
   * pieces are not concatenated in JS). Never throws.
   */
  send(data: Buffer | readonly Buffer[], port: number, address: string): void {
    if (!this.open) {
      return;
    }
    this.socket.send(data as Buffer, port, address);
  }

  /** Datagrams and bytes queued in user space because the kernel would block (0 when closed). */
  sendQueue(): { datagrams: number; bytes: number } {
    if (!this.open) {
      return { datagrams: 0, bytes: 0 };
    }
    return { datagrams: this.socket.getSendQueueCount(), bytes: this.socket.getSendQueueSize() };
  }

  /** Closes the socket; safe to call twice. */
  close(): Promise<void> {
    if (!this.open) {
      return Promise.resolve();
    }
    this.open = false;
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}
