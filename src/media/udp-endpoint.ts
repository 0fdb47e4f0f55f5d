/**
 * The relay's UDP socket: one bound socket, one datagram handler, sends with
 * an explicit destination. Send errors are counted, never thrown.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { WzpError } from '../errors/index.js';
import {
  createUdpIo,
  type UdpDestination,
  type UdpIo,
  type UdpIoMode,
  type UdpIoPath,
  UdpIoStats,
} from './udp-io.js';

export interface UdpEndpointOptions {
  host: string;
  port: number;
  /** SO_RCVBUF / SO_SNDBUF request in bytes (the kernel may cap it). */
  bufferBytes?: number;
  /**
   * Called for every received datagram. Must not throw. `msg` and `rinfo`
   * are valid only during the call (on the native path they are views of a
   * receive ring and one reused object): copy what is kept.
   */
  onDatagram: (msg: Buffer, rinfo: RemoteInfo) => void;
  /** Called when the socket reports an error (for example a failed send). */
  onError?: (err: Error) => void;
  /**
   * Send and socket errors by code, at most once per second (the first error
   * at once, then a summary of the rest at the end of the second): for
   * logging a flood of errors in O(1) lines per second.
   */
  onErrorSummary?: (counts: Record<string, number>) => void;
  /** Send path (src/media/udp-io.ts); default `auto`. */
  udpIo?: UdpIoMode;
}

export class UdpEndpoint {
  private readonly socket: Socket;
  private readonly options: UdpEndpointOptions;
  private readonly type: 'udp4' | 'udp6';
  private open = false;
  private io: UdpIo | null = null;
  /** Why the send path was chosen (set by start). */
  ioReason = '';

  constructor(options: UdpEndpointOptions) {
    this.options = options;
    const type = options.host.includes(':') ? 'udp6' : 'udp4';
    this.type = type;
    this.socket = createSocket({ type, reuseAddr: false });
    this.socket.on('message', options.onDatagram);
    this.socket.on('error', (err) => {
      this.errorLog.note((err as NodeJS.ErrnoException).code ?? 'socket_error', 1);
      options.onError?.(err);
    });
  }

  /** Errors since the last summary (see `onErrorSummary`). */
  private readonly errorLog = new ErrorSummary((counts) => this.options.onErrorSummary?.(counts));

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
        // Sizes first: the native path's send-only socket copies the send buffer's.
        const size = this.options.bufferBytes;
        if (size !== undefined && size > 0) {
          try {
            this.socket.setRecvBufferSize(size);
            this.socket.setSendBufferSize(size);
          } catch {
            // The kernel limit (net.core.rmem_max) may refuse; the default still works.
          }
        }
        try {
          const chosen = createUdpIo(this.options.udpIo ?? 'auto', this.socket, this.type, {
            onDatagram: this.options.onDatagram,
            // A receive error of the add-on is the socket's, as dgram reports it.
            onError: (err) => this.socket.emit('error', err),
          });
          this.io = chosen.io;
          this.ioReason = chosen.reason;
          chosen.io.stats.onError = (code, n) => this.errorLog.note(code, n);
        } catch (err) {
          this.socket.close();
          reject(err);
          return;
        }
        this.open = true;
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
    if (this.open) {
      (this.io as UdpIo).send(data, port, address);
    }
  }

  /** `prefix ‖ buf` to `destinations[0 .. count)`: one system call on the native path. Never throws. */
  sendMany(
    prefix: Buffer | null,
    buf: Buffer,
    destinations: readonly UdpDestination[],
    count: number,
  ): void {
    if (this.open) {
      (this.io as UdpIo).sendMany(prefix, buf, destinations, count);
    }
  }

  /** The send path in use (null before start). */
  get ioPath(): UdpIoPath | null {
    return this.io?.path ?? null;
  }

  /** True when the native path sends through a send-only socket on this port. */
  get sendSocket(): boolean {
    return this.io?.sendSocket ?? false;
  }

  /** The receive path in use (null before start). */
  get receivePath(): UdpIoPath | null {
    return this.io?.receivePath ?? null;
  }

  /** Send outcomes of the current path (empty before start). */
  get ioStats(): UdpIoStats {
    return this.io?.stats ?? EMPTY_STATS;
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
    this.errorLog.close();
    this.io?.close();
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}

/**
 * Counts errors by code and reports them at most once per `intervalMs`: the
 * first error of a quiet period at once, later ones summed into one report
 * when the interval ends (one unref'd timer, armed only while errors wait).
 */
export class ErrorSummary {
  private pending = new Map<string, number>();
  private lastReport = Number.NEGATIVE_INFINITY;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly report: (counts: Record<string, number>) => void,
    private readonly intervalMs = 1000,
    private readonly now: () => number = () => performance.now(),
  ) {}

  note(code: string, n: number): void {
    this.pending.set(code, (this.pending.get(code) ?? 0) + n);
    const now = this.now();
    if (now - this.lastReport >= this.intervalMs) {
      this.flush(now);
    } else if (this.timer === null) {
      this.timer = setTimeout(
        () => {
          this.timer = null;
          this.flush(this.now());
        },
        this.lastReport + this.intervalMs - now,
      );
      this.timer.unref();
    }
  }

  close(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  private flush(now: number): void {
    if (this.pending.size === 0) {
      return;
    }
    this.lastReport = now;
    const counts = Object.fromEntries(this.pending);
    this.pending = new Map();
    this.report(counts);
  }
}

const EMPTY_STATS = new UdpIoStats();
