/**
 * Hosts the per-datagram engine inside a media worker: the worker's UDP
 * socket, its rooms and sessions (media state only), quality observation,
 * the session-timeout deadline, the stats buffer shared with the main
 * thread, and the batching of events for it (protocol.ts).
 *
 * Nothing here is per packet except the engine itself (engine.ts) and one
 * boolean check that arms the stats publication. Events are queued and
 * posted once per event-loop turn (`setImmediate`), never per datagram;
 * counters reach the main thread through the shared buffer, published once
 * at the end of every event-loop turn that had traffic, and at every
 * heartbeat.
 */
import type { RemoteInfo } from 'node:dgram';
import { type IntervalHistogram, monitorEventLoopDelay, performance } from 'node:perf_hooks';
import {
  type ContextSwitches,
  threadContextSwitches,
  threadCpuSource,
  threadCpuUsage,
} from '../util/thread-cpu.js';
import type { DatagramPath } from './datagram-path.js';
import { DROP_REASONS, type FederationPlane, MediaEngine } from './engine.js';
import { POLICING_KINDS, POLICING_TIERS } from './policer.js';
import {
  DROP_SLOT,
  ENGINE_COUNTERS,
  FANOUT_SLOT,
  MALFORMED_SLOT,
  MEDIA_BYTES_SLOT,
  MEDIA_TYPES,
  type MediaCommand,
  type MediaEvent,
  ownedBytes,
  policedSlot,
  SEND_ERROR_CODES,
  SEND_ERROR_SLOT,
  type SessionDetail,
  type SessionSpec,
  SLOT,
  WIRE_CODES,
  type WorkerInit,
} from './protocol.js';
import { SessionObserver } from './quality-observer.js';
import { RoomState } from './room-state.js';
import { type RemoteRef, type RoomSnapshotSource, Session, type SignalSink } from './session.js';
import { UdpEndpoint } from './udp-endpoint.js';
import { UDP_IO_PATHS } from './udp-io.js';

/** A room as the worker sees it: its media participants. */
export class HostRoom implements RoomSnapshotSource {
  snapshot: readonly { readonly sink: Session }[] = Object.freeze([]);
  readonly state: RoomState;

  constructor(readonly name: string) {
    this.state = new RoomState();
  }

  add(session: Session): void {
    this.snapshot = Object.freeze([...this.snapshot, { sink: session }]);
  }

  remove(session: Session): void {
    this.snapshot = Object.freeze(this.snapshot.filter((p) => p.sink !== session));
  }
}

export interface MediaHostOptions {
  init: Omit<WorkerInit, 'stats'>;
  /** The stats buffer (a view of `WorkerInit.stats`). */
  stats: Float64Array;
  /** Posts a batch of events to the main thread. */
  emit: (events: MediaEvent[]) => void;
}

const NO_SIGNAL: SignalSink = { send() {}, close() {} };
const NO_OBSERVER = { observe: (): boolean => false };

/**
 * A plane that plugs into a worker's host from above (federation media,
 * src/federation/worker-plane.ts): its commands arrive as `ext` commands in
 * order with the host's own, it sees sessions come and go, and it publishes
 * its counters with the host's (into a shared buffer of its own).
 */
export interface MediaHostExtension {
  /** The body of an `ext` command. */
  handle(body: unknown): void;
  /** The remote reference of a participant of another relay (`SessionSpec.remote`). */
  remoteRef(remote: { origin: string; originTag: number }): RemoteRef;
  /** A session joined this worker (local or remote). */
  sessionJoined(session: Session): void;
  /** A session is leaving this worker (before the engine forgets it). */
  sessionLeft(session: Session): void;
  /** Writes the extension's counters (called wherever the host publishes its own). */
  publishStats(): void;
  /** Flushes what is batched (the host is stopping; the socket is still open). */
  close(): void;
}

/** Most datagrams for main-thread stream paths queued in one event-loop turn; beyond, dropped. */
export const MAX_PATH_QUEUE = 4096;

/** Longest time a worker's shared counters trail its traffic (docs/operator.md). */
export const STATS_PUBLISH_MS = 20;

/**
 * A stream path (WebSocket) held by the main thread, as the engine in a
 * worker sees it: datagrams to it go back to the main thread as events.
 */
class RemotePath implements DatagramPath {
  readonly kind = 'websocket' as const;
  readonly rinfo: RemoteInfo;

  constructor(
    readonly key: string,
    private readonly host: MediaHost,
  ) {
    this.rinfo = { address: key, port: 0, family: 'IPv4', size: 0 };
  }

  send(data: Buffer | readonly Buffer[]): void {
    // A copy that owns its backing store exactly (the structured clone copies
    // a view's whole ArrayBuffer; `Buffer.from` would hand it Node's 8 KiB
    // pool): the engine may also reuse its buffers before the event leaves.
    this.host.pathSend(this.key, ownedBytes(data));
  }

  attached(): void {
    this.host.pathAttached(this.key);
  }
}

/** The resolution of a busy worker's event-loop delay monitor. */
const LOOP_DELAY_RESOLUTION_MS = 10;

export class MediaHost {
  readonly engine: MediaEngine;
  readonly udp: UdpEndpoint;
  private readonly init: Omit<WorkerInit, 'stats'>;
  private readonly stats: Float64Array;
  private readonly emit: (events: MediaEvent[]) => void;
  private readonly rooms = new Map<string, HostRoom>();
  private readonly sessions = new Map<number, Session>();
  private readonly timedOut = new Set<number>();
  private readonly paths = new Map<string, RemotePath>();
  private pathQueued = 0;
  private pathQueueDropped = 0;
  private pending: MediaEvent[] = [];
  private flushArmed = false;
  private statsArmed = false;
  private statsTimer: NodeJS.Timeout | null = null;
  private readonly heartbeat: NodeJS.Timeout;
  /**
   * Event-loop delay at 10 ms resolution, sampled by its own timer (100
   * wake-ups a second): enabled only while the worker hosts a session. An
   * idle worker measures its delay by the heartbeat's lateness alone, so it
   * wakes 1000 / heartbeatMs times a second (4 by default) instead of ~104.
   */
  private readonly loopDelay: IntervalHistogram;
  private loopDelayFine = false;
  /** When the heartbeat ran last (performance.now()): its lateness is a delay sample. */
  private lastBeatMs = 0;
  private sweepTimer: NodeJS.Timeout | null = null;
  private sweepAt = Number.POSITIVE_INFINITY;
  private stopped = false;
  private readonly cpu: () => number;
  private readonly switches: (() => ContextSwitches) | null;
  private extension: MediaHostExtension | null = null;

  constructor(options: MediaHostOptions) {
    this.init = options.init;
    this.stats = options.stats;
    this.emit = options.emit;
    const init = options.init;
    this.engine = new MediaEngine({
      send: (data, port, address) => this.udp.send(data, port, address),
      sendMany: (prefix, buf, destinations, count) =>
        this.udp.sendMany(prefix, buf, destinations, count),
      trunking: init.trunking,
      bind: init.bind,
      resync: init.resync,
      keyframeLimits: init.keyframeLimits,
      policing: init.policing,
      policingHooks: {
        onWarn: (session, tier, kind) =>
          this.queue({ type: 'policyWarn', id: session.id, tier, kind }),
        onViolation: (session, code, reason) =>
          this.queue({ type: 'policyViolation', id: session.id, code, reason }),
      },
      onKeyframeNeeded: (sender, streamId) =>
        this.queue({ type: 'keyframeNeeded', id: sender.id, streamId }),
      onVideoStream: (sender, streamId) => {
        // At once (once per sender and stream id): the main thread routes PLIs
        // with it, and a receiver may ask for one as soon as this frame reaches it.
        this.queue({ type: 'videoStream', id: sender.id, streamId });
        this.flushEvents();
      },
      onTierChange: (session) =>
        this.queue({
          type: 'tier',
          id: session.id,
          tier: (session.observer as SessionObserver).tier,
        }),
      onRebind: (session, from, to) => this.queue({ type: 'bound', id: session.id, from, to }),
    });
    this.udp = new UdpEndpoint({
      host: init.udpHost,
      port: init.udpPort,
      bufferBytes: init.udpBufferBytes,
      udpIo: init.udpIo,
      onDatagram: (msg, rinfo) => {
        this.engine.onDatagram(msg, rinfo);
        if (!this.statsArmed) {
          this.armStats();
        }
      },
    });
    this.loopDelay = monitorEventLoopDelay({ resolution: LOOP_DELAY_RESOLUTION_MS });
    this.cpu = threadCpuClock();
    this.switches = threadContextSwitches();
    this.heartbeat = setInterval(() => this.beat(), init.heartbeatMs);
    this.heartbeat.unref();
    this.lastBeatMs = performance.now();
    this.beat();
  }

  /** The federation media plane of this worker, if it hosts one. */
  set federation(plane: FederationPlane | null) {
    this.engine.federation = plane;
  }

  /** Plugs an extension in (before `start`). */
  extend(extension: MediaHostExtension): void {
    this.extension = extension;
  }

  /** Queues an event of the extension (posted with the host's events of this turn). */
  emitExt(body: unknown): void {
    this.queue({ type: 'ext', body });
  }

  /** A session of this worker by id. */
  session(id: number): Session | undefined {
    return this.sessions.get(id);
  }

  /** The sessions of a room of this worker (empty when it has none). */
  roomSessions(name: string): readonly { readonly sink: Session }[] {
    return this.rooms.get(name)?.snapshot ?? [];
  }

  /** Binds the socket; resolves with its port. */
  start(): Promise<number> {
    return this.udp.start();
  }

  handle(cmd: MediaCommand): void {
    switch (cmd.type) {
      case 'batch':
        for (const c of cmd.commands) {
          this.handle(c);
        }
        return;
      case 'join':
        this.join(cmd.session);
        this.queue({ type: 'joined', req: cmd.req });
        return;
      case 'leave':
        this.leave(cmd.id);
        return;
      case 'grants':
      case 'subscription':
      case 'feedback':
      case 'resync':
      case 'allowAudio': {
        const session = this.sessions.get(cmd.id);
        if (session !== undefined) {
          this.applyToSession(session, cmd);
        }
        return;
      }
      case 'details':
        this.queue({ type: 'details', req: cmd.req, sessions: this.details() });
        return;
      case 'sync':
        this.queue({ type: 'synced', req: cmd.req });
        return;
      case 'stop':
        void this.stop().then(() => this.queue({ type: 'stopped', req: cmd.req }));
        return;
      case 'pathDatagram': {
        let path = this.paths.get(cmd.path);
        if (path === undefined) {
          path = new RemotePath(cmd.path, this);
          this.paths.set(cmd.path, path);
        }
        const d = cmd.data;
        this.engine.onDatagram(Buffer.from(d.buffer, d.byteOffset, d.byteLength), path.rinfo, path);
        this.armStats();
        return;
      }
      case 'pathClosed': {
        const path = this.paths.get(cmd.path);
        if (path !== undefined) {
          this.paths.delete(cmd.path);
          this.engine.detachPath(path);
        }
        return;
      }
      case 'block': {
        const end = performance.now() + cmd.ms;
        while (performance.now() < end) {
          // Deliberately stuck (fault injection).
        }
        return;
      }
      case 'crash':
        setImmediate(() => {
          throw new Error(cmd.message);
        });
        return;
      case 'ext':
        this.extension?.handle(cmd.body);
        this.armStats();
        return;
      default:
        return;
    }
  }

  /** A command about one session of this worker (it left: the caller ignores it). */
  private applyToSession(
    s: Session,
    cmd: Extract<
      MediaCommand,
      { type: 'grants' | 'subscription' | 'feedback' | 'resync' | 'allowAudio' }
    >,
  ): void {
    switch (cmd.type) {
      case 'grants':
        s.canPublish = cmd.canPublish;
        s.canSubscribe = cmd.canSubscribe;
        return;
      case 'subscription':
        this.engine.subscription(s, cmd.change);
        return;
      case 'feedback':
        this.engine.feedback(s, cmd.rembBps, cmd.acked, cmd.nacked);
        return;
      case 'resync':
        this.engine.resync(s, cmd.tag);
        return;
      case 'allowAudio':
        this.engine.policer.allowAudio(s, cmd.codec, cmd.frameMs, performance.now());
        return;
    }
  }

  private join(spec: SessionSpec): void {
    const now = performance.now();
    let room = this.rooms.get(spec.room);
    if (room === undefined) {
      room = new HostRoom(spec.room);
      this.rooms.set(spec.room, room);
    }
    const remote =
      spec.remote === undefined ? null : (this.extension?.remoteRef(spec.remote) ?? spec.remote);
    const observer = remote === null ? new SessionObserver(room.state, now) : null;
    const session = new Session({
      id: spec.id,
      tag: spec.tag,
      fingerprint: '',
      alias: null,
      room,
      bindToken: Buffer.from(spec.bindToken),
      signal: NO_SIGNAL,
      observer: observer ?? NO_OBSERVER,
      canPublish: spec.canPublish,
      canSubscribe: spec.canSubscribe,
      nowMs: now,
      remote,
    });
    observer?.attach(session);
    room.add(session);
    this.sessions.set(session.id, session);
    this.fineLoopDelay(true);
    if (remote === null) {
      // A remote participant has no bind token, address or policing here:
      // its frames arrive through the extension, already rate-limited.
      this.engine.policer.configure(session, spec.policy, now);
      this.engine.register(session);
      this.scheduleSweep(now + this.init.sessionTimeoutMs);
    }
    this.extension?.sessionJoined(session);
    this.armStats();
  }

  private leave(id: number): void {
    const session = this.sessions.get(id);
    if (session === undefined) {
      return;
    }
    this.sessions.delete(id);
    this.timedOut.delete(id);
    this.fineLoopDelay(this.sessions.size > 0);
    this.extension?.sessionLeft(session);
    this.engine.unregister(session);
    const room = session.room;
    if (room instanceof HostRoom) {
      room.state.forget(session);
      room.remove(session);
      if (room.snapshot.length === 0 && this.rooms.get(room.name) === room) {
        this.rooms.delete(room.name);
      }
    }
    this.armStats();
  }

  private details(): SessionDetail[] {
    const now = performance.now();
    const out: SessionDetail[] = [];
    for (const s of this.sessions.values()) {
      out.push({
        id: s.id,
        bound: s.address !== null,
        address: s.address === null ? null : `${s.address}:${s.port}`,
        transport: s.address === null ? null : (s.path?.kind ?? 'udp'),
        packetsIn: s.packetsIn,
        bytesIn: s.bytesIn,
        packetsOut: s.packetsOut,
        bytesOut: s.bytesOut,
        idleMs: Math.round(now - s.lastDatagramMs),
        streams: s.observer instanceof SessionObserver ? s.observer.snapshot(now) : [],
        receiving: receivingOf(s, s.room.snapshot),
        subscriptions: subscriptionsOf(s),
      });
    }
    return out;
  }

  /** Flushes what is batched, stops the timers, closes the socket. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) {
      return;
    }
    this.stopped = true;
    this.extension?.close();
    this.engine.close();
    clearInterval(this.heartbeat);
    if (this.sweepTimer !== null) {
      clearTimeout(this.sweepTimer);
    }
    await this.udp.close();
    this.fineLoopDelay(false);
    if (this.statsTimer !== null) {
      clearTimeout(this.statsTimer);
      this.statsTimer = null;
    }
    this.publishStats();
  }

  // ── events ──────────────────────────────────────────────────────────────

  /** A datagram for a main-thread stream path (bounded per event-loop turn). */
  pathSend(key: string, data: Uint8Array): void {
    if (this.pathQueued >= MAX_PATH_QUEUE) {
      this.pathQueueDropped++;
      return;
    }
    this.pathQueued++;
    this.queue({ type: 'pathSend', path: key, data });
  }

  pathAttached(key: string): void {
    this.queue({ type: 'pathAttached', path: key });
  }

  private queue(event: MediaEvent): void {
    this.pending.push(event);
    if (!this.flushArmed) {
      this.flushArmed = true;
      setImmediate(() => this.flushEvents());
    }
  }

  private flushEvents(): void {
    this.flushArmed = false;
    if (this.pending.length === 0) {
      return;
    }
    const batch = this.pending;
    this.pending = [];
    this.pathQueued = 0;
    // Counters first, so that the main thread never sees an event before
    // the traffic that caused it is counted.
    this.publishStats();
    this.emit(batch);
  }

  // ── session timeout (deadline-driven) ────────────────────────────────────

  private scheduleSweep(at: number): void {
    if (this.stopped || at >= this.sweepAt) {
      return;
    }
    if (this.sweepTimer !== null) {
      clearTimeout(this.sweepTimer);
    }
    this.sweepAt = at;
    this.sweepTimer = setTimeout(() => this.sweep(), Math.max(0, at - performance.now()) + 1);
    this.sweepTimer.unref();
  }

  private sweep(): void {
    this.sweepTimer = null;
    this.sweepAt = Number.POSITIVE_INFINITY;
    const now = performance.now();
    const timeout = this.init.sessionTimeoutMs;
    let next = Number.POSITIVE_INFINITY;
    for (const s of this.sessions.values()) {
      if (this.timedOut.has(s.id) || s.remote !== null) {
        continue;
      }
      const deadline = s.lastDatagramMs + timeout;
      if (deadline <= now) {
        this.timedOut.add(s.id);
        this.queue({ type: 'timeout', id: s.id });
      } else if (deadline < next) {
        next = deadline;
      }
    }
    if (next !== Number.POSITIVE_INFINITY) {
      this.scheduleSweep(next);
    }
  }

  // ── shared counters ──────────────────────────────────────────────────────

  /**
   * Publishes the counters STATS_PUBLISH_MS after the first traffic since the
   * last publish: one copy per period under load instead of one per event
   * loop turn (a turn can be a single datagram; the copy cost ~3 % of the
   * worker's time at 80 k packets/s when it ran every turn).
   */
  private armStats(): void {
    if (this.statsArmed || this.stopped) {
      return;
    }
    this.statsArmed = true;
    this.statsTimer = setTimeout(this.publishNow, STATS_PUBLISH_MS);
  }

  private readonly publishNow = (): void => {
    this.statsArmed = false;
    this.statsTimer = null;
    this.publishStats();
  };

  /** Turns the 10 ms loop-delay monitor on (the worker hosts sessions) or off. */
  private fineLoopDelay(on: boolean): void {
    if (on === this.loopDelayFine || (on && this.stopped)) {
      return;
    }
    this.loopDelayFine = on;
    if (on) {
      this.loopDelay.enable();
    } else {
      this.loopDelay.disable();
    }
  }

  private beat(): void {
    const out = this.stats;
    out[SLOT.heartbeatMs] = Date.now();
    out[SLOT.cpuSeconds] = this.cpu();
    const cs = this.switches?.();
    if (cs !== undefined) {
      out[SLOT.ctxSwitchesVoluntary] = cs.voluntary;
      out[SLOT.ctxSwitchesInvoluntary] = cs.involuntary;
    }
    // The heartbeat's own lateness: Node re-arms an interval from when its
    // callback ran, so this is how long the loop was busy when it was due.
    const now = performance.now();
    const late = Math.max(0, now - this.lastBeatMs - this.init.heartbeatMs) / 1e3;
    this.lastBeatMs = now;
    const h = this.loopDelay;
    if (h.count > 0) {
      // The monitor records the time between its ticks: less its resolution,
      // how late a tick ran (a quiet loop reads ~0, as the heartbeat does).
      const res = LOOP_DELAY_RESOLUTION_MS / 1e3;
      out[SLOT.loopDelayP99] = Math.max(0, h.percentile(99) / 1e9 - res);
      out[SLOT.loopDelayMax] = Math.max(h.max / 1e9 - res, late, 0);
    } else {
      out[SLOT.loopDelayP99] = late;
      out[SLOT.loopDelayMax] = late;
    }
    h.reset();
    this.publishStats();
  }

  /** Copies the engine's plain counters into the shared buffer. */
  publishStats(): void {
    this.extension?.publishStats();
    const out = this.stats;
    const st = this.engine.stats;
    for (let i = 0; i < ENGINE_COUNTERS.length; i++) {
      const name = ENGINE_COUNTERS[i] as (typeof ENGINE_COUNTERS)[number];
      out[SLOT[name]] = st[name];
    }
    for (let i = 0; i < DROP_REASONS.length; i++) {
      out[DROP_SLOT + i] = st.dropped[DROP_REASONS[i] as (typeof DROP_REASONS)[number]];
    }
    for (let i = 0; i < WIRE_CODES.length; i++) {
      out[MALFORMED_SLOT + i] = st.malformedByCode.get(WIRE_CODES[i] as never) ?? 0;
    }
    out.set(st.fanout, FANOUT_SLOT);
    for (let i = 0; i < MEDIA_TYPES; i++) {
      out[MEDIA_BYTES_SLOT + i] = st.bytesByMediaType[i] ?? 0;
    }
    const kf = this.engine.keyframes;
    out[SLOT.keyframeHits] = kf.stats.hits;
    out[SLOT.keyframeMisses] = kf.stats.misses;
    out[SLOT.keyframeEvictions] = kf.stats.evictions;
    out[SLOT.keyframeOversize] = kf.stats.oversize;
    out[SLOT.keyframeBytes] = kf.bytes;
    const ls = this.engine.layerStats;
    out[SLOT.layerSwitchesUp] = ls.switchesUp;
    out[SLOT.layerSwitchesDown] = ls.switchesDown;
    const pol = this.engine.policer.stats;
    out[SLOT.policedObserved] = pol.observed;
    for (const kind of POLICING_KINDS) {
      for (const tier of POLICING_TIERS) {
        out[policedSlot(kind, tier)] = pol.dropped[kind][tier];
      }
    }
    const q = this.udp.sendQueue();
    out[SLOT.sendQueueDatagrams] = q.datagrams;
    out[SLOT.sendQueueBytes] = q.bytes;
    out[SLOT.sessions] = this.sessions.size;
    out[SLOT.rooms] = this.rooms.size;
    out[SLOT.pathQueueDropped] = this.pathQueueDropped;
    const path = this.udp.ioPath;
    out[SLOT.udpIoPath] = path === null ? 0 : 1 + UDP_IO_PATHS.indexOf(path);
    const io = this.udp.ioStats;
    out[SLOT.udpQueued] = io.queued;
    const recv = this.udp.receivePath;
    out[SLOT.udpRecvPath] = recv === null ? 0 : 1 + UDP_IO_PATHS.indexOf(recv);
    out[SLOT.udpRecvSyscalls] = io.recvSyscalls;
    out[SLOT.udpRecvBatches] = io.recvBatches;
    if (io.errors.size > 0) {
      out.fill(0, SEND_ERROR_SLOT, SEND_ERROR_SLOT + SEND_ERROR_CODES.length);
      for (const [code, n] of io.errors) {
        const i = SEND_ERROR_CODES.indexOf(code as (typeof SEND_ERROR_CODES)[number]);
        const slot = SEND_ERROR_SLOT + (i < 0 ? SEND_ERROR_CODES.length - 1 : i);
        out[slot] = (out[slot] as number) + n;
      }
    }
  }
}

/** What `receiver` gets from each sender of its room (`/v2/rooms`). */
export function receivingOf(
  receiver: Session,
  participants: readonly { readonly sink: Session }[],
): SessionDetail['receiving'] {
  const out: SessionDetail['receiving'] = [];
  for (const p of participants) {
    const d = p.sink.av.down.get(receiver);
    if (p.sink === receiver || d === undefined) {
      continue;
    }
    out.push({
      tag: p.sink.tag,
      video_layer: d.layer < 0 ? null : d.layer,
      bytes: d.bytes,
      packets: d.packets,
      switches: d.switchesUp + d.switchesDown,
    });
  }
  return out;
}

/** A receiver's subscriptions and feedback estimate (`/v2/rooms`). */
export function subscriptionsOf(s: Session): SessionDetail['subscriptions'] {
  const rx = s.av.rx;
  return {
    default: { ...rx.defaults },
    senders: rx.overrides(),
    remb_bps: rx.rembBps < 0 ? null : rx.rembBps,
  };
}

/**
 * CPU seconds of the calling thread (see threadCpuUsage), else the event
 * loop's active time (an approximation) where only the process's is known.
 */
function threadCpuClock(): () => number {
  if (threadCpuSource() === 'process') {
    return () => performance.eventLoopUtilization().active / 1000;
  }
  return () => {
    const t = threadCpuUsage();
    return (t.user + t.system) / 1e6;
  };
}
