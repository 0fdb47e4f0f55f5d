/**
 * The contract between the control plane (main thread) and a media worker
 * (docs/operator.md, "Media workers"): the commands the main thread posts
 * over the worker's MessagePort, the events the worker posts back in
 * batches, and the layout of the SharedArrayBuffer through which the worker
 * publishes its counters and gauges.
 *
 * Every message is structured-clone data (no functions, no class
 * instances). To add a capability, add a command and/or an event here,
 * handle the command in `MediaHost.handle` (host.ts) and the event in the
 * relay (src/server/relay.ts); to add a counter, add a name to
 * `STAT_SCALARS` and write it in `MediaHost.publishStats`. A plane that
 * plugs in from above (federation media, src/federation/worker-plane.ts)
 * has its own commands and events inside `ext` messages and its own shared
 * buffer, so this contract knows nothing about it.
 */
import { ERROR_CODES, type ErrorCode, type WireErrorCode } from '../errors/index.js';
import type { BindGuardOptions } from './bind.js';
import { DROP_REASONS, type ResyncOptions, type TrunkingOptions } from './engine.js';
import type { KeyframeLimits } from './keyframe-cache.js';
import {
  POLICING_KINDS,
  POLICING_TIERS,
  type PolicingConfig,
  type PolicingKind,
  type PolicingTier,
  type SessionPolicy,
} from './policer.js';
import type { SubscriptionChange } from './subscriptions.js';
import type { UdpIoMode, UdpIoPath } from './udp-io.js';

/** The media plane's settings, the same for every worker (from the relay's configuration). */
export interface MediaPlaneSettings {
  udpHost: string;
  /** SO_RCVBUF/SO_SNDBUF request (0 = system default). */
  udpBufferBytes: number;
  /** Send path (udp-io.ts). */
  udpIo: UdpIoMode;
  trunking: TrunkingOptions;
  /** Return-path validation limits of the worker's engine (bind.ts). */
  bind: BindGuardOptions;
  /** Compact-framing resync (BINDING §4.6). */
  resync: Partial<ResyncOptions>;
  /** Keyframe cache bounds (a worker's `relayBytes` is its share of the relay's bound). */
  keyframeLimits: KeyframeLimits;
  /** Media policing limits (policer.ts). */
  policing: Partial<PolicingConfig>;
  /** A session without any datagram for this long times out (a `timeout` event). */
  sessionTimeoutMs: number;
}

/** What a worker is started with (`workerData`). */
export interface WorkerInit extends MediaPlaneSettings {
  /** Index of the worker in its pool (stable across restarts). */
  index: number;
  /** Port to bind (0 = any free port). */
  udpPort: number;
  /** Interval of the heartbeat written into `stats` (stall detection, CPU, loop delay). */
  heartbeatMs: number;
  /** Counters and gauges, laid out as described by `STATS_LENGTH` and friends. */
  stats: SharedArrayBuffer;
  /**
   * Structured-clone data of the worker's extension (a plane that plugs into
   * the host from above, such as federation media), or absent. The worker's
   * entry module reads it (see `runMediaWorker`, worker-run.ts).
   */
  extension?: unknown;
}

/** A participant as the media plane needs it (no signalling, no identity keys). */
export interface SessionSpec {
  id: number;
  tag: number;
  room: string;
  /** 16 bytes. */
  bindToken: Uint8Array;
  canPublish: boolean;
  canSubscribe: boolean;
  /** What the session negotiated, for media policing. */
  policy: SessionPolicy;
  /**
   * Set for a participant of another relay (federation): it only sends, its
   * frames come from the worker's extension, and it has no bind token, no
   * address and no timeout here.
   */
  remote?: { origin: string; originTag: number };
}

/** Commands: main thread → worker, handled in order. */
export type MediaCommand =
  /** Adds a session to its room (creating the room); answered by `joined` with the same `req`. */
  | { type: 'join'; req: number; session: SessionSpec }
  /** Removes a session (its trunk batch is flushed first). Unknown ids are ignored. */
  | { type: 'leave'; id: number }
  /** Changes what a session may do. */
  | { type: 'grants'; id: number; canPublish: boolean; canSubscribe: boolean }
  /** A receiver's SubscriptionUpdate (BINDING §6.3). */
  | { type: 'subscription'; id: number; change: SubscriptionChange }
  /** A receiver's TransportFeedback (BINDING §6.4). */
  | { type: 'feedback'; id: number; rembBps: number; acked: number; nacked: number }
  /** A receiver's ResyncRequest for sender `tag` (BINDING §4.6; the tag was checked). */
  | { type: 'resync'; id: number; tag: number }
  /** Policing follows a recommended audio profile (never below what was negotiated). */
  | { type: 'allowAudio'; id: number; codec: string; frameMs: number }
  /** Answered by `synced` with the same `req` once every earlier command was handled. */
  | { type: 'sync'; req: number }
  /** Asks for per-session statistics; answered by `details` with the same `req`. */
  | { type: 'details'; req: number }
  /** Flushes every trunk batch, closes the socket; answered by `stopped`. */
  | { type: 'stop'; req: number }
  /**
   * A datagram that arrived on a stream path held by the main thread (a
   * WebSocket of /v2/media), keyed by the path's `rinfo.address`.
   */
  | { type: 'pathDatagram'; path: string; data: Uint8Array }
  /** That stream path closed (or now binds a session of another worker). */
  | { type: 'pathClosed'; path: string }
  /** Fault injection (tests, drills): blocks the worker's loop for `ms`. */
  | { type: 'block'; ms: number }
  /** Commands queued in one event-loop turn of the main thread, handled in order. */
  | { type: 'batch'; commands: MediaCommand[] }
  /** Fault injection (tests, drills): throws an uncaught error in the worker. */
  | { type: 'crash'; message: string }
  /** A command for the worker's extension (`MediaHostExtension.handle`), in order with the rest. */
  | { type: 'ext'; body: unknown };

/** Per-session numbers for the operator API (`/v2/rooms`). */
export interface SessionDetail {
  id: number;
  bound: boolean;
  address: string | null;
  /** 'udp', 'websocket' (a stream path), or null while unbound. */
  transport: string | null;
  packetsIn: number;
  bytesIn: number;
  packetsOut: number;
  bytesOut: number;
  idleMs: number;
  streams: { stream_id: number; stats: unknown }[];
  /** What the session receives from each sender (layer, bytes), for `/v2/rooms`. */
  receiving: {
    tag: number;
    video_layer: number | null;
    bytes: number;
    packets: number;
    switches: number;
  }[];
  subscriptions: unknown;
}

/** Events: worker → main thread, posted in batches (`{ type: 'events', events }`). */
export type MediaEvent =
  | { type: 'joined'; req: number }
  /** A BIND (re)bound a session to `to`; `from` is null for the first bind. */
  | { type: 'bound'; id: number; from: string | null; to: string }
  /** The session's quality tier changed (the main thread decides the room tier). */
  | { type: 'tier'; id: number; tier: number }
  /** The session sent its first video on a stream id (PLI routing on the main thread). */
  | { type: 'videoStream'; id: number; streamId: number }
  /** The relay needs a keyframe of `streamId` from the session (a layer switch up). */
  | { type: 'keyframeNeeded'; id: number; streamId: number }
  /** Policing: the session's media went over a limit (first warning). */
  | { type: 'policyWarn'; id: number; tier: PolicingTier; kind: PolicingKind }
  /** Policing: a sustained violator, to be hung up. */
  | { type: 'policyViolation'; id: number; code: string; reason: string }
  /** No datagram from the session for `sessionTimeoutMs`. */
  | { type: 'timeout'; id: number }
  /** A datagram for a stream path held by the main thread. */
  | { type: 'pathSend'; path: string; data: Uint8Array }
  /** A BIND through that stream path was accepted. */
  | { type: 'pathAttached'; path: string }
  | { type: 'details'; req: number; sessions: SessionDetail[] }
  | { type: 'synced'; req: number }
  | { type: 'stopped'; req: number }
  /** An event of the worker's extension (`MediaHost.emitExt`). */
  | { type: 'ext'; body: unknown };

/** Messages a worker posts on its port. */
export type WorkerMessage =
  | {
      type: 'ready';
      port: number;
      ioPath: UdpIoPath | null;
      receivePath: UdpIoPath | null;
      /** Sends go through a send-only socket on the same port (native path). */
      sendSocket: boolean;
      ioReason: string;
    }
  /** The worker could not start (then exits). */
  | { type: 'failed'; code: ErrorCode; message: string }
  | { type: 'events'; events: MediaEvent[] };

// ── shared counters ─────────────────────────────────────────────────────────

/** Engine counters copied from `EngineStats` (same names). */
export const ENGINE_COUNTERS = [
  'datagramsIn',
  'bytesIn',
  'mediaIn',
  'packetsForwarded',
  'bytesForwarded',
  'datagramsOut',
  'trunkFrames',
  'trunkEntries',
  'binds',
  'rebinds',
  'bindChallenges',
  'bindConfirms',
  'pings',
  'resyncs',
  'fullChain',
  'fullResync',
  'fullAnchor',
] as const;

export type EngineCounter = (typeof ENGINE_COUNTERS)[number];

/** Scalar slots of a worker's stats buffer, in order. */
export const STAT_SCALARS = [
  /** `Date.now()` at the worker's last heartbeat. */
  'heartbeatMs',
  /** CPU seconds used by the worker thread (user + system). */
  'cpuSeconds',
  /** Event-loop delay of the last heartbeat period, p99 and max, in seconds. */
  'loopDelayP99',
  'loopDelayMax',
  /** Context switches of the worker thread (Linux; 0 elsewhere): wake-ups, and preemptions. */
  'ctxSwitchesVoluntary',
  'ctxSwitchesInvoluntary',
  'sendQueueDatagrams',
  'sendQueueBytes',
  'sessions',
  'rooms',
  /** Datagrams for main-thread stream paths dropped because too many were queued. */
  'pathQueueDropped',
  /** Send path in use: 0 none yet, 1 + index in `UDP_IO_PATHS`. */
  'udpIoPath',
  /** Datagrams the kernel would not take at once and that waited in dgram's queue. */
  'udpQueued',
  /** Receive path in use: 0 none yet, 1 + index in `UDP_IO_PATHS`. */
  'udpRecvPath',
  /** Receive system calls and JavaScript batches of the native receive (recvmmsg). */
  'udpRecvSyscalls',
  'udpRecvBatches',
  /** Keyframe cache (keyframe-cache.ts): counters, and the bytes held (a gauge). */
  'keyframeHits',
  'keyframeMisses',
  'keyframeEvictions',
  'keyframeOversize',
  'keyframeBytes',
  /** Simulcast layer switches (layer-selector.ts). */
  'layerSwitchesUp',
  'layerSwitchesDown',
  /** Policing: packets over a limit but forwarded (mode observe). */
  'policedObserved',
  ...ENGINE_COUNTERS,
] as const;

export type StatScalar = (typeof STAT_SCALARS)[number];

/** Index of each scalar slot. */
export const SLOT = Object.freeze(
  Object.fromEntries(STAT_SCALARS.map((name, i) => [name, i])) as Record<StatScalar, number>,
);

/** Wire error codes a malformed media datagram is counted under. */
export const WIRE_CODES = Object.keys(ERROR_CODES).filter((c) =>
  c.startsWith('WIRE_'),
) as WireErrorCode[];

/** First slot of the drop counters (one per `DROP_REASONS` entry, same order). */
export const DROP_SLOT = STAT_SCALARS.length;
/** First slot of the malformed-by-code counters (one per `WIRE_CODES` entry). */
export const MALFORMED_SLOT = DROP_SLOT + DROP_REASONS.length;
/** Send errors are counted under these codes (any other errno counts as `other`). */
export const SEND_ERROR_CODES = [
  'EMSGSIZE',
  'ENOBUFS',
  'EAGAIN',
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPERM',
  'EACCES',
  'EINVAL',
  'oversize',
  'unknown',
  'other',
] as const;
/** First slot of the send error counters (one per `SEND_ERROR_CODES` entry). */
export const SEND_ERROR_SLOT = MALFORMED_SLOT + WIRE_CODES.length;
/** First slot of the fan-out histogram (as `EngineStats.fanout`). */
export const FANOUT_SLOT = SEND_ERROR_SLOT + SEND_ERROR_CODES.length;
export const FANOUT_BUCKETS = 65;
/** First slot of the bytes forwarded by media type (index = media_type). */
export const MEDIA_BYTES_SLOT = FANOUT_SLOT + FANOUT_BUCKETS;
export const MEDIA_TYPES = 4;
/** First slot of the policed drops, kind-major (`POLICING_KINDS` × `POLICING_TIERS`). */
export const POLICED_SLOT = MEDIA_BYTES_SLOT + MEDIA_TYPES;
/** Slot of the policed drops of `kind` in `tier`. */
export function policedSlot(kind: PolicingKind, tier: PolicingTier): number {
  return (
    POLICED_SLOT +
    POLICING_KINDS.indexOf(kind) * POLICING_TIERS.length +
    POLICING_TIERS.indexOf(tier)
  );
}
/** Float64 slots of one worker's stats buffer. */
export const STATS_LENGTH = POLICED_SLOT + POLICING_KINDS.length * POLICING_TIERS.length;

/** A zeroed stats buffer for one worker. */
export function createStatsBuffer(): SharedArrayBuffer {
  return new SharedArrayBuffer(STATS_LENGTH * Float64Array.BYTES_PER_ELEMENT);
}

/**
 * `data` as bytes that own their backing store exactly. A structured clone
 * (postMessage) copies a view's whole ArrayBuffer: a 100-byte Buffer cut
 * from Node's 8 KiB pool, or a slice of a socket read, would cross threads
 * as kilobytes.
 */
export function ownedBytes(data: Uint8Array | readonly Uint8Array[]): Uint8Array {
  if (data instanceof Uint8Array) {
    if (data.byteOffset === 0 && data.byteLength === data.buffer.byteLength) {
      return data;
    }
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
  }
  let length = 0;
  for (const p of data) {
    length += p.byteLength;
  }
  const out = new Uint8Array(length);
  let at = 0;
  for (const p of data) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}
