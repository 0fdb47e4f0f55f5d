/**
 * The media workers as the main thread sees them (docs/operator.md, "Media
 * workers"): N `worker_threads` workers, each with its own UDP socket and
 * port running a `MediaHost`; rooms placed on the least-loaded worker and
 * kept there (sticky: a room never spans workers); commands posted over
 * each worker's port, events received in batches; counters read from each
 * worker's SharedArrayBuffer, so reading them never waits for a worker.
 *
 * Faults: a worker that throws or exits is reported with the sessions it
 * held (`onWorkerLost`) and replaced (with a growing delay if it keeps
 * failing); a worker whose heartbeat is older than `stallMs` is reported
 * stuck (`onStall`), and again when it recovers. A replacement binds the
 * port of the worker it replaces when it can (peers and clients keep it).
 *
 * A plane that plugs in from above (federation media) runs in the workers
 * through `workerEntry` (an entry module that extends the host) and
 * `extension` (its per-worker data); its commands go out with `postExt`,
 * its events come back through `onExtEvent`, and `placeRoom` pins the rooms
 * it serves to the worker that hosts it.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { threadId, Worker } from 'node:worker_threads';
import { type ErrorCode, WzpError } from '../errors/index.js';
import { BIND_ACK_SIZE, BIND_TOKEN_OFFSET, FrameType } from '../wire/index.js';
import type { DatagramPath } from './datagram-path.js';
import {
  createStatsBuffer,
  DROP_SLOT,
  FANOUT_BUCKETS,
  FANOUT_SLOT,
  type MediaCommand,
  type MediaEvent,
  type MediaPlaneSettings,
  ownedBytes,
  type SessionDetail,
  type SessionSpec,
  SLOT,
  STATS_LENGTH,
  type StatScalar,
  type WorkerInit,
  type WorkerMessage,
} from './protocol.js';
import type { UdpIoPath } from './udp-io.js';

export interface MediaWorkerPoolOptions extends MediaPlaneSettings {
  /** Number of workers (≥ 1). */
  count: number;
  /** Module every worker thread runs (default: worker-main, the host without extensions). */
  workerEntry?: URL;
  /** Extension data of worker `index` (`WorkerInit.extension`), asked at every (re)start. */
  extension?: (index: number) => unknown;
  /** The worker a new room must go to, or null for the least-loaded one. */
  placeRoom?: (room: string) => number | null;
  /** An `ext` event of worker `worker`. */
  onExtEvent?: (worker: number, body: unknown) => void;
  /** Port of worker 0; worker i binds `udpPort + i` (0: every worker takes any free port). */
  udpPort: number;
  /** A worker whose heartbeat is older than this is stuck. */
  stallMs: number;
  /** Bound of a join / stop round trip (default 5 s). */
  commandTimeoutMs?: number;
  /** An event of worker `worker`. */
  onEvent: (worker: number, event: MediaEvent) => void;
  /** Worker `worker` died; `sessions` were its sessions (now gone from the media plane). */
  onWorkerLost: (worker: number, sessions: number[], reason: string) => void;
  /** A worker (re)started and listens on `port`. */
  onWorkerStarted?: (worker: number, port: number, restart: boolean) => void;
  /** Worker `worker` became stuck (`silentMs` without a heartbeat) or recovered. */
  onStall?: (worker: number, stuck: boolean, silentMs: number) => void;
}

/** Slots that are gauges: not carried over when a worker is replaced. */
const GAUGES = new Set<number>(
  (
    [
      'heartbeatMs',
      'loopDelayP99',
      'loopDelayMax',
      'sendQueueDatagrams',
      'sendQueueBytes',
      'sessions',
      'rooms',
      'keyframeBytes',
    ] as StatScalar[]
  ).map((n) => SLOT[n]),
);

interface Pending {
  resolve: (event: MediaEvent) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

class WorkerSlot {
  worker: Worker | null = null;
  /** Commands queued in this event-loop turn (posted together at its end). */
  outbox: MediaCommand[] = [];
  /** postMessage calls to the worker, and the commands they carried (all incarnations). */
  messages = 0;
  commands = 0;
  port = 0;
  /** The port a replacement binds first (the one of the worker it replaces); 0 = any. */
  preferredPort = 0;
  ready = false;
  stuck = false;
  restarts = 0;
  /** Consecutive failures without a healthy period in between (restart backoff). */
  failures = 0;
  startedAt = 0;
  stats = new Float64Array(createStatsBuffer());
  /** Counters of the previous incarnations of this worker. */
  readonly retired = new Float64Array(STATS_LENGTH);
  readonly sessions = new Set<number>();
  readonly rooms = new Set<string>();
  readonly pending = new Map<number, Pending>();
  error: string | null = null;
  /** Code of the error a worker failed to start with. */
  errorCode: ErrorCode | null = null;
  ioPath: UdpIoPath | null = null;
  receivePath: UdpIoPath | null = null;
  sendSocket = false;
  ioReason = '';

  constructor(readonly index: number) {}

  /** Counter (or gauge) `slot` including previous incarnations. */
  value(slot: number): number {
    const live = this.stats[slot] as number;
    return GAUGES.has(slot) ? live : (this.retired[slot] as number) + live;
  }
}

export class MediaWorkerPool {
  private readonly options: MediaWorkerPoolOptions;
  private readonly slots: WorkerSlot[];
  private readonly roomSlot = new Map<string, WorkerSlot>();
  private readonly sessionSlot = new Map<number, WorkerSlot>();
  /** Bind token (hex) → session id, to route a stream path's BIND to its worker. */
  private readonly tokenSession = new Map<string, number>();
  private readonly sessionToken = new Map<number, string>();
  /** Main-thread stream paths by key, and the worker each one's datagrams go to. */
  private readonly paths = new Map<string, { path: DatagramPath; slot: WorkerSlot | null }>();
  private nextReq = 1;
  private stopping = false;
  private stopped: Promise<void> | null = null;
  private watchdog: NodeJS.Timeout | null = null;
  private readonly heartbeatMs: number;

  constructor(options: MediaWorkerPoolOptions) {
    if (options.count < 1) {
      throw new WzpError('CONFIG_INVALID', 'media_workers must be at least 1');
    }
    this.options = options;
    this.slots = Array.from({ length: options.count }, (_, i) => new WorkerSlot(i));
    this.heartbeatMs = Math.max(10, Math.min(250, Math.floor(options.stallMs / 4)));
  }

  get size(): number {
    return this.slots.length;
  }

  /**
   * Queues a command for the extension of worker `index` (in order with the
   * pool's own commands; dropped while that worker is down).
   */
  postExt(index: number, body: unknown): void {
    const slot = this.slots[index];
    if (slot !== undefined) {
      this.post(slot, { type: 'ext', body });
    }
  }

  /** True while worker `index` serves. */
  isReady(index: number): boolean {
    return this.slots[index]?.ready === true;
  }

  /** Send paths in use by the serving workers. */
  ioPaths(): UdpIoPath[] {
    return this.slots.map((s) => s.ioPath).filter((p): p is UdpIoPath => p !== null);
  }

  /** Receive paths in use by the serving workers. */
  receivePaths(): UdpIoPath[] {
    return this.slots.map((s) => s.receivePath).filter((p): p is UdpIoPath => p !== null);
  }

  /** Serving workers whose sends go through a send-only socket. */
  sendSockets(): number {
    return this.slots.filter((s) => s.ready && s.sendSocket).length;
  }

  /** Send and receive path of worker 0 and why they were chosen (start log). */
  get ioChoice(): { path: UdpIoPath | null; receive: UdpIoPath | null; reason: string } {
    const s = this.slots[0] as WorkerSlot;
    return { path: s.ioPath, receive: s.receivePath, reason: s.ioReason };
  }

  /** Starts every worker; resolves with their ports (index order). */
  async start(): Promise<number[]> {
    await Promise.all(this.slots.map((s) => this.spawn(s, false)));
    this.armWatchdog();
    return this.slots.map((s) => s.port);
  }

  /** Ports of the workers (0 while a worker is restarting). */
  get ports(): number[] {
    return this.slots.map((s) => s.port);
  }

  /** Port of worker `index`. */
  portOf(index: number): number {
    return this.slots[index]?.port ?? 0;
  }

  /**
   * The port worker `index` has, or while it is being replaced the one its
   * replacement binds again (0 before its first start).
   */
  stablePortOf(index: number): number {
    const slot = this.slots[index];
    return slot === undefined ? 0 : slot.port || slot.preferredPort;
  }

  /** Worker of a session, or -1. */
  workerOf(sessionId: number): number {
    return this.sessionSlot.get(sessionId)?.index ?? -1;
  }

  /** Worker that owns `room`, or -1. */
  workerOfRoom(room: string): number {
    return this.roomSlot.get(room)?.index ?? -1;
  }

  /** True when at least one worker serves and none is stuck. */
  get healthy(): boolean {
    return this.slots.some((s) => s.ready) && !this.slots.some((s) => s.stuck);
  }

  /** Per-worker state for metrics and /v2 views. */
  workers(): {
    index: number;
    port: number;
    ready: boolean;
    stuck: boolean;
    restarts: number;
    sessions: number;
    rooms: number;
    /** postMessage calls to the worker and the commands they carried. */
    messages: number;
    commands: number;
  }[] {
    return this.slots.map((s) => ({
      messages: s.messages,
      commands: s.commands,
      index: s.index,
      port: s.port,
      ready: s.ready,
      stuck: s.stuck,
      restarts: s.restarts,
      sessions: s.sessions.size,
      rooms: s.rooms.size,
    }));
  }

  /** Stat `slot` of worker `index` (counters include replaced incarnations). */
  stat(index: number, slot: number): number {
    return this.slots[index]?.value(slot) ?? 0;
  }

  /** Stat `slot` summed over every worker. */
  total(slot: number): number {
    let sum = 0;
    for (const s of this.slots) {
      sum += s.value(slot);
    }
    return sum;
  }

  /** Drop counter of `DROP_REASONS[i]` summed over every worker. */
  dropped(i: number): number {
    return this.total(DROP_SLOT + i);
  }

  /** The fan-out histogram summed over every worker. */
  fanout(): Float64Array {
    const out = new Float64Array(FANOUT_BUCKETS);
    for (const s of this.slots) {
      for (let i = 0; i < FANOUT_BUCKETS; i++) {
        out[i] = (out[i] as number) + s.value(FANOUT_SLOT + i);
      }
    }
    return out;
  }

  /**
   * Adds a session to the worker owning its room (placing a new room on the
   * least-loaded worker). Resolves with the worker index once the worker
   * has it, so that its first BIND finds it.
   * @throws {WzpError} MEDIA_WORKER_UNAVAILABLE
   */
  async join(spec: SessionSpec): Promise<number> {
    const slot = this.assign(spec.room);
    slot.sessions.add(spec.id);
    this.sessionSlot.set(spec.id, slot);
    if (spec.remote === undefined) {
      // A participant of another relay has no bind token of its own.
      const token = Buffer.from(spec.bindToken).toString('hex');
      this.tokenSession.set(token, spec.id);
      this.sessionToken.set(spec.id, token);
    }
    try {
      await this.request(slot, (req) => ({ type: 'join', req, session: spec }));
    } catch (err) {
      slot.sessions.delete(spec.id);
      if (this.sessionSlot.get(spec.id) === slot) {
        this.sessionSlot.delete(spec.id);
      }
      throw err;
    }
    return slot.index;
  }

  /**
   * A command for the worker of session `cmd.id` (subscriptions, feedback,
   * resync, policing): dropped when the session has no worker (it left, or
   * its worker is down).
   */
  toSession(
    cmd: Extract<MediaCommand, { type: 'subscription' | 'feedback' | 'resync' | 'allowAudio' }>,
  ): void {
    const slot = this.sessionSlot.get(cmd.id);
    if (slot !== undefined) {
      this.post(slot, cmd);
    }
  }

  /**
   * Resolves once the worker of `sessionId` handled every command posted
   * before (at once in-process, or for a session without a worker).
   */
  async settled(sessionId: number, timeoutMs = 1000): Promise<void> {
    const slot = this.sessionSlot.get(sessionId);
    if (slot !== undefined) {
      await this.drained(slot.index, timeoutMs);
    }
  }

  /**
   * Resolves once worker `index` handled every command posted before (its
   * outbox included). Resolves at once when that worker is down: there is
   * nothing to wait for until its replacement replays the state.
   */
  async drained(index: number, timeoutMs = 1000): Promise<void> {
    const slot = this.slots[index];
    if (slot === undefined || !slot.ready) {
      return;
    }
    await this.request(slot, (req) => ({ type: 'sync', req }), timeoutMs);
  }

  /** Removes a session from its worker. Idempotent. */
  leave(sessionId: number): void {
    const token = this.sessionToken.get(sessionId);
    if (token !== undefined) {
      this.sessionToken.delete(sessionId);
      this.tokenSession.delete(token);
    }
    const slot = this.sessionSlot.get(sessionId);
    if (slot === undefined) {
      return;
    }
    this.sessionSlot.delete(sessionId);
    slot.sessions.delete(sessionId);
    this.post(slot, { type: 'leave', id: sessionId });
  }

  /**
   * A datagram from a stream path held by this thread (WebSocket media).
   * It goes to the worker of the session its BINDs name: a BIND is routed
   * by its token, and every later datagram of the path follows it; before
   * any known BIND, datagrams go to worker 0 (which drops and counts them).
   * Datagrams cross threads in the per-turn batch of `post` (not one
   * message each); the WebSocket path costs a copy the UDP path does not.
   */
  pathDatagram(path: DatagramPath, msg: Buffer): void {
    const key = path.rinfo.address;
    let entry = this.paths.get(key);
    if (entry === undefined) {
      entry = { path, slot: null };
      this.paths.set(key, entry);
    }
    const first = this.slots[0] as WorkerSlot;
    if (
      msg.length >= BIND_ACK_SIZE &&
      (msg[0] === FrameType.Bind || msg[0] === FrameType.BindConfirm)
    ) {
      const id = this.tokenSession.get(msg.toString('hex', BIND_TOKEN_OFFSET, BIND_ACK_SIZE));
      const slot = id === undefined ? undefined : this.sessionSlot.get(id);
      if (slot !== undefined && slot !== entry.slot) {
        if (entry.slot !== null) {
          // The path now binds a session of another worker: the old one lets go of it.
          this.post(entry.slot, { type: 'pathClosed', path: key });
        }
        entry.slot = slot;
      }
    }
    const target = entry.slot ?? first;
    this.post(target, { type: 'pathDatagram', path: key, data: ownedBytes(msg) });
  }

  /** A stream path closed: its worker forgets the binding. */
  pathClosed(path: DatagramPath): void {
    const key = path.rinfo.address;
    const entry = this.paths.get(key);
    this.paths.delete(key);
    const first = this.slots[0] as WorkerSlot;
    if (entry?.slot !== null && entry?.slot !== undefined) {
      this.post(entry.slot, { type: 'pathClosed', path: key });
    }
    // Worker 0 may hold an unbound stand-in for it as well.
    if (entry?.slot !== first) {
      this.post(first, { type: 'pathClosed', path: key });
    }
  }

  /** The room has no participant left: a later join may place it anywhere. */
  releaseRoom(room: string): void {
    const slot = this.roomSlot.get(room);
    if (slot !== undefined) {
      this.roomSlot.delete(room);
      slot.rooms.delete(room);
    }
  }

  /** Changes a session's grants. */
  grants(sessionId: number, canPublish: boolean, canSubscribe: boolean): void {
    const slot = this.sessionSlot.get(sessionId);
    if (slot !== undefined) {
      this.post(slot, { type: 'grants', id: sessionId, canPublish, canSubscribe });
    }
  }

  /**
   * Per-session numbers from every worker that answers within `timeoutMs`
   * (operator API; never used by /metrics).
   */
  async details(timeoutMs = 500): Promise<Map<number, SessionDetail>> {
    const out = new Map<number, SessionDetail>();
    await Promise.all(
      this.slots
        .filter((s) => s.ready)
        .map(async (s) => {
          try {
            const e = await this.request(s, (req) => ({ type: 'details', req }), timeoutMs);
            if (e.type === 'details') {
              for (const d of e.sessions) {
                out.set(d.id, d);
              }
            }
          } catch {
            // A busy or restarting worker: its sessions are shown without numbers.
          }
        }),
    );
    return out;
  }

  /** Fault injection (tests, drills): sends a raw command to worker `index`. */
  inject(index: number, cmd: Extract<MediaCommand, { type: 'block' | 'crash' }>): void {
    const slot = this.slots[index];
    if (slot !== undefined) {
      this.post(slot, cmd);
    }
  }

  /** Fault injection (tests, drills): terminates worker `index` as a crash would. */
  kill(index: number): Promise<number> {
    return this.slots[index]?.worker?.terminate() ?? Promise.resolve(0);
  }

  /** Flushes and closes every worker (bounded by the command timeout). Idempotent. */
  stop(): Promise<void> {
    this.stopped ??= this.doStop();
    return this.stopped;
  }

  private async doStop(): Promise<void> {
    this.stopping = true;
    if (this.watchdog !== null) {
      clearTimeout(this.watchdog);
    }
    await Promise.all(
      this.slots.map(async (s) => {
        if (s.worker === null) {
          return;
        }
        try {
          await this.request(s, (req) => ({ type: 'stop', req }));
        } catch {
          // stuck or gone: terminated below
        }
        await s.worker?.terminate();
      }),
    );
  }

  // ── internals ────────────────────────────────────────────────────────────

  private assign(room: string): WorkerSlot {
    const owner = this.roomSlot.get(room);
    if (owner !== undefined) {
      if (!owner.ready) {
        throw new WzpError('MEDIA_WORKER_UNAVAILABLE', `the media worker of room ${room} is down`);
      }
      return owner;
    }
    const pinned = this.options.placeRoom?.(room) ?? null;
    if (pinned !== null) {
      const slot = this.slots[pinned];
      if (slot === undefined || !slot.ready) {
        throw new WzpError('MEDIA_WORKER_UNAVAILABLE', `media worker ${pinned} is down`);
      }
      this.roomSlot.set(room, slot);
      slot.rooms.add(room);
      return slot;
    }
    let best: WorkerSlot | null = null;
    for (const s of this.slots) {
      if (!s.ready || s.stuck) {
        continue;
      }
      if (
        best === null ||
        s.sessions.size < best.sessions.size ||
        (s.sessions.size === best.sessions.size && s.rooms.size < best.rooms.size)
      ) {
        best = s;
      }
    }
    if (best === null) {
      throw new WzpError('MEDIA_WORKER_UNAVAILABLE', 'no media worker is serving');
    }
    this.roomSlot.set(room, best);
    best.rooms.add(room);
    return best;
  }

  /**
   * Queues a command for the worker. Everything queued in one event-loop
   * turn leaves as one `batch` message (in order) at the end of the turn,
   * so a burst of WebSocket datagrams or signalling costs one postMessage
   * per worker per turn, not one per datagram.
   */
  private post(slot: WorkerSlot, cmd: MediaCommand): void {
    if (slot.worker === null || !slot.ready) {
      return;
    }
    slot.outbox.push(cmd);
    if (slot.outbox.length === 1) {
      setImmediate(() => this.flushOutbox(slot));
    }
  }

  private flushOutbox(slot: WorkerSlot): void {
    const commands = slot.outbox;
    if (commands.length === 0) {
      return;
    }
    slot.outbox = [];
    if (slot.worker !== null && slot.ready) {
      slot.messages++;
      slot.commands += commands.length;
      slot.worker.postMessage(
        commands.length === 1 ? commands[0] : ({ type: 'batch', commands } satisfies MediaCommand),
      );
    }
  }

  private request(
    slot: WorkerSlot,
    make: (req: number) => MediaCommand,
    timeoutMs = this.options.commandTimeoutMs ?? 5000,
  ): Promise<MediaEvent> {
    const req = this.nextReq++;
    return new Promise<MediaEvent>((resolve, reject) => {
      if (!slot.ready) {
        reject(new WzpError('MEDIA_WORKER_UNAVAILABLE', `media worker ${slot.index} is down`));
        return;
      }
      const timer = setTimeout(() => {
        slot.pending.delete(req);
        reject(
          new WzpError(
            'MEDIA_WORKER_UNAVAILABLE',
            `media worker ${slot.index} did not answer in ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      timer.unref();
      slot.pending.set(req, { resolve, reject, timer });
      this.post(slot, make(req));
    });
  }

  private onEvents(slot: WorkerSlot, events: MediaEvent[]): void {
    for (const e of events) {
      if (
        e.type === 'joined' ||
        e.type === 'details' ||
        e.type === 'stopped' ||
        e.type === 'synced'
      ) {
        const p = slot.pending.get(e.req);
        if (p !== undefined) {
          slot.pending.delete(e.req);
          clearTimeout(p.timer);
          p.resolve(e);
        }
        continue;
      }
      if (e.type === 'ext') {
        this.options.onExtEvent?.(slot.index, e.body);
        continue;
      }
      if (e.type === 'pathSend' || e.type === 'pathAttached') {
        const entry = this.paths.get(e.path);
        if (entry === undefined) {
          continue;
        }
        if (e.type === 'pathAttached') {
          entry.path.attached();
        } else {
          const d = e.data;
          entry.path.send(Buffer.from(d.buffer, d.byteOffset, d.byteLength));
        }
        continue;
      }
      // Events of sessions that already left this worker are stale.
      if ('id' in e && this.sessionSlot.get(e.id) !== slot) {
        continue;
      }
      this.options.onEvent(slot.index, e);
    }
  }

  private init(slot: WorkerSlot): WorkerInit {
    const o = this.options;
    return {
      index: slot.index,
      udpHost: o.udpHost,
      udpPort: o.udpPort === 0 ? slot.preferredPort : o.udpPort + slot.index,
      udpBufferBytes: o.udpBufferBytes,
      udpIo: o.udpIo,
      trunking: o.trunking,
      bind: o.bind,
      resync: o.resync,
      keyframeLimits: {
        ...o.keyframeLimits,
        relayBytes: Math.floor(o.keyframeLimits.relayBytes / this.slots.length),
      },
      policing: o.policing,
      sessionTimeoutMs: o.sessionTimeoutMs,
      heartbeatMs: this.heartbeatMs,
      stats: slot.stats.buffer as SharedArrayBuffer,
      ...(o.extension === undefined ? {} : { extension: o.extension(slot.index) }),
    };
  }

  private async spawn(slot: WorkerSlot, restart: boolean): Promise<void> {
    slot.error = null;
    slot.errorCode = null;
    slot.startedAt = Date.now();
    slot.stats = new Float64Array(createStatsBuffer());
    const worker = startWorker(this.init(slot), this.options.workerEntry);
    slot.worker = worker;
    await new Promise<void>((resolve, reject) => {
      let started = false;
      worker.on('message', (m: WorkerMessage) => {
        if (m.type === 'events') {
          this.onEvents(slot, m.events);
        } else if (m.type === 'failed') {
          slot.error = m.message;
          slot.errorCode = m.code;
        } else if (m.type === 'ready') {
          started = true;
          slot.port = m.port;
          slot.preferredPort = m.port;
          slot.ioPath = m.ioPath;
          slot.receivePath = m.receivePath;
          slot.sendSocket = m.sendSocket;
          slot.ioReason = m.ioReason;
          slot.ready = true;
          this.options.onWorkerStarted?.(slot.index, slot.port, restart);
          resolve();
        }
      });
      worker.on('error', (err) => {
        slot.error = err.message;
      });
      worker.on('exit', (code) => {
        if (!started) {
          reject(
            new WzpError(
              slot.errorCode ?? 'MEDIA_WORKER_FAILED',
              `media worker ${slot.index} failed to start (exit ${code}): ${slot.error ?? ''}`,
            ),
          );
        }
        this.onExit(slot, worker, code);
      });
    });
  }

  private onExit(slot: WorkerSlot, worker: Worker, code: number): void {
    if (slot.worker !== worker) {
      return;
    }
    const wasReady = slot.ready;
    slot.worker = null;
    slot.outbox = [];
    slot.ready = false;
    slot.stuck = false;
    slot.port = 0;
    for (const p of slot.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new WzpError('MEDIA_WORKER_FAILED', `media worker ${slot.index} exited`));
    }
    slot.pending.clear();
    // Counters of the dead incarnation stay readable in its buffer.
    for (let i = 0; i < STATS_LENGTH; i++) {
      if (!GAUGES.has(i)) {
        slot.retired[i] = (slot.retired[i] as number) + (slot.stats[i] as number);
      }
    }
    slot.stats = new Float64Array(createStatsBuffer());
    const sessions = [...slot.sessions];
    slot.sessions.clear();
    for (const id of sessions) {
      this.sessionSlot.delete(id);
      const token = this.sessionToken.get(id);
      if (token !== undefined) {
        this.sessionToken.delete(id);
        this.tokenSession.delete(token);
      }
    }
    for (const entry of this.paths.values()) {
      if (entry.slot === slot) {
        entry.slot = null;
      }
    }
    for (const room of slot.rooms) {
      this.roomSlot.delete(room);
    }
    slot.rooms.clear();
    if (this.stopping || !wasReady) {
      return;
    }
    const reason = slot.error ?? `exited with code ${code}`;
    this.options.onWorkerLost(slot.index, sessions, reason);
    // A worker that keeps dying is restarted less and less often.
    slot.failures = Date.now() - slot.startedAt > 30_000 ? 1 : slot.failures + 1;
    slot.restarts++;
    this.respawn(slot);
  }

  /** Starts a replacement after the backoff delay; one that fails to start is retried. */
  private respawn(slot: WorkerSlot): void {
    const delay = Math.min(5000, 50 * 2 ** (slot.failures - 1));
    const timer = setTimeout(() => {
      if (this.stopping) {
        return;
      }
      this.spawn(slot, true).then(
        () => this.armWatchdog(),
        () => {
          // Its old port may be taken now: the next attempt takes any.
          slot.preferredPort = 0;
          slot.failures++;
          this.respawn(slot);
        },
      );
    }, delay);
    timer.unref();
  }

  /** Sleeps until the earliest moment a worker could become stuck. */
  private armWatchdog(): void {
    if (this.stopping) {
      return;
    }
    if (this.watchdog !== null) {
      clearTimeout(this.watchdog);
      this.watchdog = null;
    }
    const now = Date.now();
    const stall = this.options.stallMs;
    let next = Number.POSITIVE_INFINITY;
    for (const s of this.slots) {
      if (!s.ready) {
        continue;
      }
      const beat = s.stats[SLOT.heartbeatMs] as number;
      const silent = now - beat;
      const stuck = silent > stall;
      if (stuck !== s.stuck) {
        s.stuck = stuck;
        this.options.onStall?.(s.index, stuck, silent);
      }
      if (!stuck) {
        s.failures = 0;
      }
      // Stuck: check again a heartbeat later (recovery); else at the deadline.
      const at = stuck ? now + this.heartbeatMs : beat + stall + 1;
      if (at < next) {
        next = at;
      }
    }
    if (next === Number.POSITIVE_INFINITY) {
      return;
    }
    this.watchdog = setTimeout(() => this.armWatchdog(), Math.max(1, next - now));
    this.watchdog.unref();
  }
}

/**
 * Starts a worker running worker-main. From compiled JavaScript that is
 * `worker-main.js` beside this file. When this file runs as TypeScript (the
 * test runner), the TypeScript entry is bundled once per process with
 * esbuild (a development dependency) and every worker loads the bundle.
 */
function startWorker(init: WorkerInit, entry?: URL): Worker {
  const self = import.meta.url;
  const main =
    entry ?? new URL(self.endsWith('.ts') ? './worker-main.ts' : './worker-main.js', self);
  return new Worker(main.href.endsWith('.ts') ? devBundle(self, main) : main, {
    workerData: init,
  });
}

/** Bundles of TypeScript entries, by entry URL. */
const bundles = new Map<string, URL>();

function devBundle(self: string, entry: URL): URL {
  const cached = bundles.get(entry.href);
  if (cached !== undefined) {
    return cached;
  }
  const require = createRequire(self);
  const esbuild = require('esbuild') as typeof import('esbuild');
  const dir = fileURLToPath(new URL('../../node_modules/.cache/wzp-media-worker/', self));
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `worker-${process.pid}-${threadId}-${bundles.size}.mjs`);
  esbuild.buildSync({
    entryPoints: [fileURLToPath(entry)],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    outfile: file,
    logLevel: 'silent',
    // Every bundled module resolves its relative URLs (the native add-on) as from src/media.
    define: { 'import.meta.url': JSON.stringify(new URL('./worker-main.ts', self).href) },
  });
  process.once('exit', () => rmSync(file, { force: true }));
  const url = pathToFileURL(file);
  bundles.set(entry.href, url);
  return url;
}
