/**
 * How the media socket sends: one interface, two implementations.
 *
 * - `dgram`: node:dgram's `socket.send`, one system call per datagram.
 * - `native`: the optional add-on in `native/` (Linux `sendmmsg(2)`): the
 *   fan-out of one input packet to N receivers leaves in one system call.
 *   It writes on the dgram socket's own file descriptor, so receiving,
 *   binding, buffer sizes and closing stay dgram's.
 *
 * Behaviour is the same on both paths, and both count it in `UdpIoStats`:
 * - a datagram larger than a UDP payload can be is not sent, counted as
 *   `oversize` once per destination;
 * - a destination the kernel refuses (EINVAL, EACCES, ENETUNREACH, ...) is
 *   counted by errno code and the other destinations still get the datagram;
 * - when the kernel's send buffer is full (EAGAIN), the datagrams wait in
 *   libuv's send queue (the `wzp_relay_udp_send_queue_*` gauges). The native
 *   path hands the rest of a batch to dgram, and while anything it handed
 *   over is still queued it sends through dgram too, so order is kept.
 * Nothing here throws on the hot path.
 */
import type { Socket } from 'node:dgram';
import { createRequire } from 'node:module';
import { getSystemErrorName } from 'node:util';
import { WzpError } from '../errors/index.js';

/** `auto` uses the add-on when it loaded, else dgram. */
export type UdpIoMode = 'auto' | 'dgram' | 'native';
export type UdpIoPath = 'dgram' | 'native';
export const UDP_IO_PATHS: readonly UdpIoPath[] = ['dgram', 'native'];

/** A UDP destination (a Session fits). `address` null = unbound: skipped. */
export interface UdpDestination {
  readonly port: number;
  readonly address: string | null;
}

/** Plain counters, bridged to Prometheus at scrape time. */
export class UdpIoStats {
  /** Datagrams the kernel accepted. */
  sent = 0;
  /** Datagrams (one per destination) handed to libuv's send queue after EAGAIN (native path). */
  queued = 0;
  /** Send system calls made by the add-on (native path). */
  syscalls = 0;
  /** Failed destinations by code: an errno name (EINVAL, EACCES, ...) or `oversize`. */
  readonly errors = new Map<string, number>();

  /** Told of every counted error (the endpoint's once-per-second summary log). */
  onError: ((code: string, n: number) => void) | null = null;

  countError(code: string, n = 1): void {
    this.errors.set(code, (this.errors.get(code) ?? 0) + n);
    this.onError?.(code, n);
  }
}

export interface UdpIo {
  readonly path: UdpIoPath;
  readonly stats: UdpIoStats;
  /** One datagram made of one or more pieces (not concatenated in JS) to one destination. */
  send(data: Buffer | readonly Buffer[], port: number, address: string): void;
  /** `prefix ‖ buf` (or `buf` alone) to `destinations[0 .. count)`, in one system call when native. */
  sendMany(
    prefix: Buffer | null,
    buf: Buffer,
    destinations: readonly UdpDestination[],
    count: number,
  ): void;
}

/** Largest UDP payload: 65535 - 8 (UDP) - 20 (IPv4 header); IPv6 has no header in the length. */
export function maxDatagram(socketType: 'udp4' | 'udp6'): number {
  return socketType === 'udp6' ? 65527 : 65507;
}

function byteLength(data: Buffer | readonly Buffer[]): number {
  if (Buffer.isBuffer(data)) {
    return data.length;
  }
  let n = 0;
  const list = data as readonly Buffer[];
  for (let i = 0; i < list.length; i++) {
    n += (list[i] as Buffer).length;
  }
  return n;
}

/** The dgram path; the native path also uses it for what the kernel queued. */
export class DgramUdpIo implements UdpIo {
  readonly path: UdpIoPath = 'dgram';
  readonly stats: UdpIoStats;
  private readonly socket: Socket;
  private readonly max: number;
  private readonly pieces: Buffer[] = [Buffer.alloc(0), Buffer.alloc(0)];
  /** Sends handed to dgram whose callback has not run yet. */
  pending = 0;
  /** One callback for every send (no closure per packet): it counts the outcome. */
  private readonly done = (err: Error | null): void => {
    this.pending--;
    if (err === null || err === undefined) {
      this.stats.sent++;
    } else {
      this.stats.countError((err as NodeJS.ErrnoException).code ?? 'unknown');
    }
  };

  constructor(socket: Socket, socketType: 'udp4' | 'udp6', stats = new UdpIoStats()) {
    this.socket = socket;
    this.max = maxDatagram(socketType);
    this.stats = stats;
  }

  send(data: Buffer | readonly Buffer[], port: number, address: string): void {
    if (byteLength(data) > this.max) {
      this.stats.countError('oversize');
      return;
    }
    if (badPort(port)) {
      this.stats.countError('EINVAL');
      return;
    }
    this.pending++;
    this.socket.send(data as Buffer, port, address, this.done);
  }

  sendMany(
    prefix: Buffer | null,
    buf: Buffer,
    destinations: readonly UdpDestination[],
    count: number,
  ): void {
    const len = (prefix === null ? 0 : prefix.length) + buf.length;
    if (len > this.max) {
      this.stats.countError('oversize', countBound(destinations, count));
      return;
    }
    for (let i = 0; i < count; i++) {
      const d = destinations[i] as UdpDestination;
      if (d.address !== null) {
        this.sendOne(prefix, buf, d.port, d.address);
      }
    }
  }

  /** dgram copies the piece list before it returns, so one list serves every send. */
  sendOne(prefix: Buffer | null, buf: Buffer, port: number, address: string): void {
    if (badPort(port)) {
      // What the kernel answers for port 0 (dgram itself would throw).
      this.stats.countError('EINVAL');
      return;
    }
    this.pending++;
    if (prefix === null) {
      this.socket.send(buf, port, address, this.done);
      return;
    }
    const pieces = this.pieces;
    pieces[0] = prefix;
    pieces[1] = buf;
    this.socket.send(pieces as unknown as Buffer, port, address, this.done);
  }
}

/** Not a UDP destination port (1..65535). */
function badPort(port: number): boolean {
  return !(port >= 1 && port <= 65535) || (port | 0) !== port;
}

function countBound(destinations: readonly UdpDestination[], count: number): number {
  let n = 0;
  for (let i = 0; i < count; i++) {
    if ((destinations[i] as UdpDestination).address !== null) {
      n++;
    }
  }
  return n;
}

// ── the add-on ─────────────────────────────────────────────────────────────

/** The add-on's functions (native/wzp_udp.c). */
export interface NativeAddon {
  readonly ABI: number;
  readonly RECORD_SIZE: number;
  sendMany(
    fd: number,
    prefix: Buffer | null,
    buf: Buffer,
    records: Buffer,
    count: number,
    out: Int32Array,
  ): number;
  parseAddress(text: string, records: Buffer, offset: number): number;
}

export const NATIVE_ADDON_PATH = new URL('../../native/build/Release/wzp_udp.node', import.meta.url)
  .pathname;

let loaded: { addon: NativeAddon | null; reason: string } | null = null;

/**
 * Loads the add-on once per thread (each worker thread loads its own copy;
 * it keeps no global state). Never throws: `addon` is null with the reason.
 */
export function loadNativeAddon(): { addon: NativeAddon | null; reason: string } {
  if (loaded !== null) {
    return loaded;
  }
  if (process.env.WZP_NATIVE_DISABLE === '1') {
    loaded = { addon: null, reason: 'disabled by WZP_NATIVE_DISABLE=1' };
    return loaded;
  }
  try {
    const addon = createRequire(import.meta.url)(NATIVE_ADDON_PATH) as NativeAddon;
    if (addon.ABI !== 1 || typeof addon.sendMany !== 'function') {
      loaded = { addon: null, reason: `${NATIVE_ADDON_PATH}: unexpected add-on ABI ${addon.ABI}` };
    } else {
      loaded = { addon, reason: 'loaded' };
    }
  } catch (err) {
    const msg = (err as Error).message.split('\n')[0] ?? '';
    loaded = {
      addon: null,
      reason: msg.includes('Cannot find module')
        ? `not built (${NATIVE_ADDON_PATH} is missing; see docs/operator.md, "Native UDP I/O")`
        : `cannot load ${NATIVE_ADDON_PATH}: ${msg}`,
    };
  }
  return loaded;
}

/** The file descriptor of a bound dgram socket (Linux), or -1. */
export function socketFd(socket: Socket): number {
  // `socket._handle` is deprecated (DEP0112) but the same handle sits under
  // dgram's state symbol; its `fd` getter is uv_fileno (Node 20 and 24).
  const sym = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'state symbol');
  const state = sym === undefined ? undefined : (socket as unknown as Record<symbol, unknown>)[sym];
  const fd = (state as { handle?: { fd?: unknown } } | undefined)?.handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : -1;
}

/** Cached parsed destinations at most; the cache is cleared when it is full. */
const ADDRESS_CACHE_MAX = 65536;

/** The native path: `sendmmsg` on dgram's descriptor, dgram for what the kernel queued. */
export class NativeUdpIo implements UdpIo {
  readonly path: UdpIoPath = 'native';
  readonly stats: UdpIoStats;
  private readonly addon: NativeAddon;
  private readonly fd: number;
  private readonly max: number;
  private readonly v6: boolean;
  private readonly dgram: DgramUdpIo;
  private readonly recordSize: number;
  private records: Buffer;
  private view: DataView;
  /** Record index → destination index (unbound destinations are skipped). */
  private index: Int32Array;
  private out: Int32Array;
  /** Address text → IPv4 as an unsigned 32-bit number, or a parsed IPv6 record. */
  private readonly cache = new Map<string, number | Buffer>();
  private readonly single: UdpDestination[] = [{ port: 0, address: null }];

  constructor(addon: NativeAddon, socket: Socket, socketType: 'udp4' | 'udp6', fd: number) {
    this.addon = addon;
    this.fd = fd;
    this.max = maxDatagram(socketType);
    this.v6 = socketType === 'udp6';
    this.stats = new UdpIoStats();
    this.dgram = new DgramUdpIo(socket, socketType, this.stats);
    this.recordSize = addon.RECORD_SIZE;
    this.records = Buffer.alloc(0);
    this.view = new DataView(this.records.buffer);
    this.index = new Int32Array(0);
    this.out = new Int32Array(4);
    this.grow(64);
  }

  send(data: Buffer | readonly Buffer[], port: number, address: string): void {
    let prefix: Buffer | null = null;
    let buf: Buffer;
    if (Buffer.isBuffer(data)) {
      buf = data;
    } else {
      const list = data as readonly Buffer[];
      if (list.length === 2) {
        prefix = list[0] as Buffer;
        buf = list[1] as Buffer;
      } else if (list.length === 1) {
        buf = list[0] as Buffer;
      } else {
        buf = Buffer.concat(list as Buffer[]);
      }
    }
    const one = this.single as [{ port: number; address: string | null }];
    one[0].port = port;
    one[0].address = address;
    this.sendMany(prefix, buf, one, 1);
    one[0].address = null;
  }

  sendMany(
    prefix: Buffer | null,
    buf: Buffer,
    destinations: readonly UdpDestination[],
    count: number,
  ): void {
    const stats = this.stats;
    const len = (prefix === null ? 0 : prefix.length) + buf.length;
    if (len > this.max) {
      stats.countError('oversize', countBound(destinations, count));
      return;
    }
    if (this.dgram.pending > 0) {
      // Earlier datagrams still wait in libuv's queue: keep the order.
      this.dgram.sendMany(prefix, buf, destinations, count);
      return;
    }
    if (count > this.index.length) {
      this.grow(count);
    }
    let n = 0;
    for (let i = 0; i < count; i++) {
      const d = destinations[i] as UdpDestination;
      if (d.address !== null && this.writeRecord(n, d.port, d.address)) {
        this.index[n++] = i;
      }
    }
    if (n === 0) {
      return;
    }
    const out = this.out;
    out[0] = 0;
    out[1] = 0;
    out[2] = 0;
    out[3] = 0;
    const handled = this.addon.sendMany(this.fd, prefix, buf, this.records, n, out);
    stats.sent += out[1] as number;
    stats.syscalls += out[2] as number;
    if (handled < 0) {
      // A usage error of the add-on (it checks its arguments): dgram sends instead.
      stats.countError('native_usage');
      this.queueRest(prefix, buf, destinations, 0, n);
      return;
    }
    if ((out[0] as number) > 0) {
      this.countErrnos();
    }
    if (handled < n) {
      this.queueRest(prefix, buf, destinations, handled, n);
    }
  }

  /** EAGAIN: records [from, n) go to libuv's send queue through dgram. */
  private queueRest(
    prefix: Buffer | null,
    buf: Buffer,
    destinations: readonly UdpDestination[],
    from: number,
    n: number,
  ): void {
    this.stats.queued += n - from;
    for (let k = from; k < n; k++) {
      const d = destinations[this.index[k] as number] as UdpDestination;
      this.dgram.sendOne(prefix, buf, d.port, d.address as string);
    }
  }

  private countErrnos(): void {
    const out = this.out;
    const pairs = out[3] as number;
    for (let p = 0; p < pairs; p++) {
      const errno = out[5 + 2 * p] as number;
      let name: string;
      try {
        name = getSystemErrorName(-errno);
      } catch {
        name = `errno_${errno}`;
      }
      this.stats.countError(name);
    }
  }

  /** Writes destination `i`'s record; false when the address is no IP literal (counted). */
  private writeRecord(i: number, port: number, address: string): boolean {
    if (badPort(port)) {
      this.stats.countError('EINVAL');
      return false;
    }
    let parsed = this.cache.get(address);
    if (parsed === undefined) {
      const p = this.parse(address);
      if (p === null) {
        this.stats.countError('bad_address');
        return false;
      }
      parsed = p;
    }
    const off = i * this.recordSize;
    const rec = this.records;
    rec[off + 2] = port >>> 8;
    rec[off + 3] = port & 0xff;
    if (typeof parsed === 'number') {
      rec[off] = 4;
      this.view.setUint32(off + 8, parsed, false);
    } else {
      parsed.copy(rec, off, 0, 24);
      rec[off + 2] = port >>> 8;
      rec[off + 3] = port & 0xff;
    }
    return true;
  }

  private parse(address: string): number | Buffer | null {
    const tmp = Buffer.alloc(this.recordSize);
    const family = this.addon.parseAddress(address, tmp, 0);
    let value: number | Buffer;
    if (family === 4 && !this.v6) {
      value = tmp.readUInt32BE(8);
    } else if (family === 4) {
      // IPv4 destination on an IPv6 socket: its IPv4-mapped address.
      const mapped = Buffer.alloc(this.recordSize);
      mapped[0] = 6;
      mapped[18] = 0xff;
      mapped[19] = 0xff;
      tmp.copy(mapped, 20, 8, 12);
      value = mapped;
    } else if (family === 6) {
      value = tmp;
    } else {
      return null;
    }
    if (this.cache.size >= ADDRESS_CACHE_MAX) {
      this.cache.clear();
    }
    this.cache.set(address, value);
    return value;
  }

  /** Grows the record, index and result arrays (only when a larger batch than ever arrives). */
  private grow(count: number): void {
    let cap = Math.max(64, this.index.length);
    while (cap < count) {
      cap *= 2;
    }
    this.records = Buffer.alloc(cap * this.recordSize);
    this.view = new DataView(this.records.buffer, this.records.byteOffset, this.records.byteLength);
    this.index = new Int32Array(cap);
    this.out = new Int32Array(4 + 2 * cap);
  }
}

/**
 * Picks the send path for a bound socket. `native` without a loadable
 * add-on throws UDP_IO_NATIVE_UNAVAILABLE; `auto` falls back to dgram.
 * `reason` says why the path was chosen (for the start log).
 */
export function createUdpIo(
  mode: UdpIoMode,
  socket: Socket,
  socketType: 'udp4' | 'udp6',
): { io: UdpIo; reason: string } {
  if (mode === 'dgram') {
    return { io: new DgramUdpIo(socket, socketType), reason: 'udp_io = "dgram"' };
  }
  const { addon, reason } = loadNativeAddon();
  const fd = addon === null ? -1 : socketFd(socket);
  if (addon !== null && fd >= 0) {
    return { io: new NativeUdpIo(addon, socket, socketType, fd), reason: 'add-on loaded' };
  }
  const why = addon === null ? reason : 'the dgram socket exposes no file descriptor';
  if (mode === 'native') {
    throw new WzpError(
      'UDP_IO_NATIVE_UNAVAILABLE',
      `udp_io = "native" but the native add-on is unavailable: ${why}`,
    );
  }
  return { io: new DgramUdpIo(socket, socketType), reason: `native add-on ${why}` };
}
