/**
 * How the media socket sends and receives: one interface, two implementations.
 *
 * - `dgram`: node:dgram's `socket.send` and `'message'` event, one system
 *   call per datagram each way, a new Buffer and rinfo per received datagram.
 * - `native`: the optional add-on in `native/` (Linux `sendmmsg(2)` and
 *   `recvmmsg(2)`): the fan-out of one input packet to N receivers leaves in
 *   one system call, and up to RECV_SLOTS datagrams arrive per system call
 *   and per JS call, as views of a ring allocated once (NativeUdpReceiver).
 *   It works on the dgram socket's own file descriptor, so binding, buffer
 *   sizes and closing stay dgram's.
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
import type { RemoteInfo, Socket } from 'node:dgram';
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
  /** Datagrams received through the add-on's recvmmsg (native path). */
  received = 0;
  /** recvmmsg system calls (native path; one per wakeup). */
  recvSyscalls = 0;
  /** JS calls of the add-on's receive, one per batch (native path). */
  recvBatches = 0;
  /** Datagrams longer than a ring slot, delivered cut to it (native path; cannot happen for UDP, kept as a check). */
  truncated = 0;
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
  /** How datagrams arrive: `native` (recvmmsg) or `dgram` (the socket's 'message' event). */
  readonly receivePath: UdpIoPath;
  /** True when sends go through a send-only socket on the same port (native path). */
  readonly sendSocket: boolean;
  readonly stats: UdpIoStats;
  /** Stops the native receive (before the socket closes); nothing on the dgram path. */
  close(): void;
  /** One datagram made of one or more pieces (not concatenated in JS) to one destination. */
  send(data: Buffer | readonly Buffer[], port: number, address: string): void;
  /**
   * `prefix ‖ buf` (or `buf` alone) to `destinations[0 .. count)`, in one
   * system call when native. `prefix` may be reused by the caller once this
   * returns: what goes to a send queue is copied.
   */
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
  readonly receivePath: UdpIoPath = 'dgram';
  readonly sendSocket = false;
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

  close(): void {}

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
    // libuv keeps a reference until the datagram left: the caller's prefix is copied (once).
    const p = prefix === null ? null : Buffer.from(prefix);
    for (let i = 0; i < count; i++) {
      const d = destinations[i] as UdpDestination;
      if (d.address !== null) {
        this.sendOne(p, buf, d.port, d.address);
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
  readonly META_SIZE: number;
  readonly META_TEXT: number;
  /** An opaque receiver, or a negative number (-errno, or -1 for bad arguments). */
  recvStart(
    fd: number,
    slots: number,
    slotSize: number,
    ring: Buffer,
    meta: Buffer,
    counters: Float64Array,
    onBatch: (n: number) => void,
  ): object | number;
  recvClose(receiver: object): number;
  /** A send-only socket on `fd`'s address (see native/wzp_udp.c), or -errno. */
  sendSocketOpen(fd: number): number;
  sendSocketClose(fd: number): number;
}

/** The add-on's interface version (native/wzp_udp.c exports it as ABI). */
const ADDON_ABI = 3;

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
    if (addon.ABI !== ADDON_ABI || typeof addon.sendMany !== 'function') {
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

/** dgram's UDPWrap of a socket (its `fd` getter is uv_fileno; `recvStop` stops libuv's reads). */
function socketHandle(socket: Socket): { fd?: unknown; recvStop?: unknown } | undefined {
  // `socket._handle` is deprecated (DEP0112) but the same handle sits under
  // dgram's state symbol (Node 20 and 24).
  const sym = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'state symbol');
  const state = sym === undefined ? undefined : (socket as unknown as Record<symbol, unknown>)[sym];
  return (state as { handle?: { fd?: unknown; recvStop?: unknown } } | undefined)?.handle;
}

/** The file descriptor of a bound dgram socket (Linux), or -1. */
export function socketFd(socket: Socket): number {
  const fd = socketHandle(socket)?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : -1;
}

/** Handles one received datagram; `msg` and `rinfo` are valid only during the call. */
export type DatagramHandler = (msg: Buffer, rinfo: RemoteInfo) => void;

/** Datagrams per recvmmsg call and per JS call (libuv reads up to 32 per wakeup too). */
export const RECV_SLOTS = 32;
/** A ring slot holds any UDP payload (IPv6: 65527 bytes), so nothing is cut. */
const RECV_SLOT_SIZE = 65536;
/** Views are cached per slot and length up to this length (media datagrams); longer ones are made per datagram. */
const VIEW_CACHE_MAX = 2048;
/** Cached source address texts at most; the cache is cleared when it is full. */
const SOURCE_CACHE_MAX = 65536;

/**
 * The native receive: the add-on reads up to RECV_SLOTS datagrams per
 * recvmmsg into a ring allocated here once and calls `onBatch` once per
 * batch. Each datagram reaches the handler as a view of its ring slot with
 * one reused rinfo object, exactly as dgram would deliver it (same address
 * texts, same family names). The ring is overwritten by the next batch, so
 * the handler must copy what it keeps past its return, which the relay does
 * (keyframe cache, trunk batches, pongs; the native send path copies what it
 * hands to libuv's send queue). Views (per slot and length) and address
 * texts are cached: no allocation per datagram or batch in steady state.
 */
export class NativeUdpReceiver {
  private readonly addon: NativeAddon;
  private readonly stats: UdpIoStats;
  private readonly onDatagram: DatagramHandler;
  private readonly onError: (err: Error) => void;
  private readonly ring: Buffer;
  private readonly meta: Buffer;
  private readonly words: Int32Array;
  private readonly counters = new Float64Array(3);
  private readonly metaWords: number;
  private readonly textAt: number;
  private readonly views: (Buffer | undefined)[][] = [];
  private readonly v4 = new Map<number, string>();
  private readonly mapped = new Map<number, string>();
  private readonly rinfo: { address: string; family: 'IPv4' | 'IPv6'; port: number; size: number } =
    { address: '', family: 'IPv4', port: 0, size: 0 };
  private handle: object | null = null;

  constructor(
    addon: NativeAddon,
    stats: UdpIoStats,
    onDatagram: DatagramHandler,
    onError: (err: Error) => void,
  ) {
    this.addon = addon;
    this.stats = stats;
    this.onDatagram = onDatagram;
    this.onError = onError;
    // Slow buffers: their own memory (not the pool), aligned for the add-on's int32/double views.
    this.ring = Buffer.allocUnsafeSlow(RECV_SLOTS * RECV_SLOT_SIZE);
    this.meta = Buffer.alloc(RECV_SLOTS * addon.META_SIZE);
    this.words = new Int32Array(this.meta.buffer, this.meta.byteOffset, this.meta.length >> 2);
    this.metaWords = addon.META_SIZE >> 2;
    this.textAt = addon.META_TEXT;
    for (let i = 0; i < RECV_SLOTS; i++) {
      this.views.push(new Array<Buffer | undefined>(VIEW_CACHE_MAX + 1));
    }
  }

  /**
   * Stops dgram's own reading and starts the add-on's on a dup of `fd`.
   * Null when running, else why not (dgram still receives then).
   */
  start(socket: Socket, fd: number): string | null {
    const handle = socketHandle(socket);
    if (typeof handle?.recvStop !== 'function') {
      return 'the dgram socket has no recvStop';
    }
    const r = this.addon.recvStart(
      fd,
      RECV_SLOTS,
      RECV_SLOT_SIZE,
      this.ring,
      this.meta,
      this.counters,
      this.onBatch,
    );
    if (typeof r === 'number') {
      return `recvStart failed (${r === -1 ? 'bad arguments' : errnoName(-r)})`;
    }
    // From here on the add-on reads; datagrams libuv had already read still
    // arrive through the socket's 'message' listener (the same handler).
    (handle.recvStop as () => number).call(handle);
    this.handle = r;
    return null;
  }

  /** Stops reading (before the socket closes). Safe to call twice. */
  close(): void {
    if (this.handle !== null) {
      this.addon.recvClose(this.handle);
      this.handle = null;
    }
  }

  private readonly onBatch = (n: number): void => {
    const stats = this.stats;
    const counters = this.counters;
    stats.recvSyscalls = counters[0] as number;
    stats.truncated = counters[1] as number;
    if (n < 0) {
      const code = errnoName(-n);
      const err: NodeJS.ErrnoException = new Error(`recvmmsg ${code}`);
      err.code = code;
      err.errno = n;
      err.syscall = 'recvmmsg';
      this.onError(err);
      return;
    }
    stats.recvBatches++;
    stats.received += n;
    const words = this.words;
    const mw = this.metaWords;
    const rinfo = this.rinfo;
    const handler = this.onDatagram;
    for (let i = 0; i < n && this.handle !== null; i++) {
      const m = i * mw;
      const len = words[m] as number;
      const family = words[m + 2] as number;
      if (family === 4) {
        const a = words[m + 3] as number;
        rinfo.address = this.v4.get(a) ?? this.name(this.v4, a, '');
        rinfo.family = 'IPv4';
      } else if (family === 46) {
        const a = words[m + 3] as number;
        rinfo.address = this.mapped.get(a) ?? this.name(this.mapped, a, '::ffff:');
        rinfo.family = 'IPv6';
      } else {
        const at = i * (mw << 2) + this.textAt;
        rinfo.address = this.meta.toString('latin1', at, at + (words[m + 4] as number));
        rinfo.family = 'IPv6';
      }
      rinfo.port = words[m + 1] as number;
      rinfo.size = len;
      handler(this.view(i, len), rinfo);
    }
  };

  /** Ring slot `i`'s first `len` bytes, as a cached view when short. */
  private view(i: number, len: number): Buffer {
    const start = i * RECV_SLOT_SIZE;
    if (len > VIEW_CACHE_MAX) {
      return this.ring.subarray(start, start + len);
    }
    const cache = this.views[i] as (Buffer | undefined)[];
    let v = cache[len];
    if (v === undefined) {
      v = this.ring.subarray(start, start + len);
      cache[len] = v;
    }
    return v;
  }

  private name(cache: Map<number, string>, a: number, prefix: string): string {
    const text = `${prefix}${a >>> 24}.${(a >>> 16) & 0xff}.${(a >>> 8) & 0xff}.${a & 0xff}`;
    if (cache.size >= SOURCE_CACHE_MAX) {
      cache.clear();
    }
    cache.set(a, text);
    return text;
  }
}

function errnoName(errno: number): string {
  try {
    return getSystemErrorName(-errno);
  } catch {
    return `errno_${errno}`;
  }
}

/** Cached parsed destinations at most; the cache is cleared when it is full. */
const ADDRESS_CACHE_MAX = 65536;

/**
 * The native path: `sendmmsg` on dgram's descriptor (or on a send-only socket
 * bound to the same port, see `useSendSocket`), dgram for what the kernel queued.
 */
export class NativeUdpIo implements UdpIo {
  readonly path: UdpIoPath = 'native';
  receivePath: UdpIoPath = 'dgram';
  readonly stats: UdpIoStats;
  private readonly addon: NativeAddon;
  private readonly fd: number;
  /** Where sendmmsg goes: `fd`, or the send-only socket. */
  private sendFd: number;
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
  private lastAddress: string | null = null;
  private lastParsed: number | Buffer = 0;
  private readonly single: UdpDestination[] = [{ port: 0, address: null }];
  private receiver: NativeUdpReceiver | null = null;

  constructor(addon: NativeAddon, socket: Socket, socketType: 'udp4' | 'udp6', fd: number) {
    this.addon = addon;
    this.fd = fd;
    this.sendFd = fd;
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

  /** Takes over the socket's receive (recvmmsg); null when running, else why not. */
  startReceive(
    socket: Socket,
    onDatagram: DatagramHandler,
    onError: (err: Error) => void,
  ): string | null {
    const receiver = new NativeUdpReceiver(this.addon, this.stats, onDatagram, onError);
    const why = receiver.start(socket, this.fd);
    if (why === null) {
      this.receiver = receiver;
      this.receivePath = 'native';
    }
    return why;
  }

  /** True while sends go through a send-only socket. */
  get sendSocket(): boolean {
    return this.sendFd !== this.fd;
  }

  /**
   * Sends through a second socket bound to the same address and port, which
   * nothing polls (the media socket keeps every incoming datagram): each sent
   * datagram then stops waking the media socket's epoll wait queue when the
   * kernel frees it. Call before the port is in use (a datagram arriving while
   * the two sockets are joined could land on the send socket). Null when in
   * use, else why not (sends stay on the media socket).
   */
  useSendSocket(): string | null {
    if (this.sendSocket) {
      return null;
    }
    const r = this.addon.sendSocketOpen(this.fd);
    if (r < 0) {
      return `no send-only socket (${errnoName(-r)})`;
    }
    this.sendFd = r;
    return null;
  }

  close(): void {
    this.receiver?.close();
    this.receiver = null;
    if (this.sendSocket) {
      this.addon.sendSocketClose(this.sendFd);
      // Later sends (none are expected) go to the media socket, never to a reused descriptor.
      this.sendFd = this.fd;
    }
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
      // Earlier datagrams still wait in libuv's queue: keep the order (with
      // copies: see queueRest).
      // (dgram's sendMany copies the prefix itself.)
      this.dgram.sendMany(prefix, Buffer.from(buf), destinations, count);
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
    const handled = this.addon.sendMany(this.sendFd, prefix, buf, this.records, n, out);
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
    // libuv's queue keeps a reference, not a copy, and `buf` may be a view of
    // the receive ring (rewritten by the next batch): the queue gets a copy.
    const p = prefix === null ? null : Buffer.from(prefix);
    const b = Buffer.from(buf);
    for (let k = from; k < n; k++) {
      const d = destinations[this.index[k] as number] as UdpDestination;
      this.dgram.sendOne(p, b, d.port, d.address as string);
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
    // One fan-out usually goes to many receivers behind one address (a NAT, a
    // test host): the last address is checked before the map.
    let parsed: number | Buffer | undefined;
    if (address === this.lastAddress) {
      parsed = this.lastParsed;
    } else {
      parsed = this.cache.get(address);
      if (parsed === undefined) {
        const p = this.parse(address);
        if (p === null) {
          this.stats.countError('bad_address');
          return false;
        }
        parsed = p;
      }
      this.lastAddress = address;
      this.lastParsed = parsed;
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

/** Who gets the received datagrams when the native path takes over the receive. */
export interface UdpReceive {
  onDatagram: DatagramHandler;
  onError: (err: Error) => void;
}

/**
 * Picks the I/O path for a bound socket. `native` without a loadable add-on
 * (or when its receive cannot start) throws UDP_IO_NATIVE_UNAVAILABLE;
 * `auto` falls back to dgram. With `receive`, the native path also takes
 * over the receive (recvmmsg); without it, it only sends. `reason` says
 * why the path was chosen (for the start log).
 */
export function createUdpIo(
  mode: UdpIoMode,
  socket: Socket,
  socketType: 'udp4' | 'udp6',
  receive?: UdpReceive,
): { io: UdpIo; reason: string } {
  if (mode === 'dgram') {
    return { io: new DgramUdpIo(socket, socketType), reason: 'udp_io = "dgram"' };
  }
  const { addon, reason } = loadNativeAddon();
  const fd = addon === null ? -1 : socketFd(socket);
  if (addon !== null && fd >= 0) {
    const io = new NativeUdpIo(addon, socket, socketType, fd);
    if (receive === undefined) {
      return { io, reason: 'add-on loaded (send only)' };
    }
    // WZP_NATIVE_SEND_SOCKET=0 is a diagnostic (bench:forwarding's wzp-native-onesock).
    const noSendSocket =
      process.env.WZP_NATIVE_SEND_SOCKET === '0'
        ? 'send-only socket off (WZP_NATIVE_SEND_SOCKET=0)'
        : io.useSendSocket();
    const sends =
      noSendSocket === null ? 'sendmmsg on a send-only socket' : `sendmmsg; ${noSendSocket}`;
    if (process.env.WZP_NATIVE_RECV_DISABLE === '1') {
      // Diagnostic (bench:forwarding's send-only variant): sendmmsg, dgram receive.
      return {
        io,
        reason: `add-on loaded (${sends}); receive on dgram (WZP_NATIVE_RECV_DISABLE=1)`,
      };
    }
    const failed = io.startReceive(socket, receive.onDatagram, receive.onError);
    if (failed === null) {
      return { io, reason: `add-on loaded (${sends} + recvmmsg)` };
    }
    if (mode === 'native') {
      io.close();
      throw new WzpError(
        'UDP_IO_NATIVE_UNAVAILABLE',
        `udp_io = "native" but the add-on cannot receive: ${failed}`,
      );
    }
    return { io, reason: `add-on loaded (${sends}); receive on dgram (${failed})` };
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
