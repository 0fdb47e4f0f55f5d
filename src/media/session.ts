/**
 * Relay-side state of one participant session: identity, UDP binding, the
 * decode context of its outgoing flow, and what its receivers already hold.
 * Everything here is touched by the event loop only; nothing is locked.
 */
import { type MediaHeader, MiniContext, type TrunkBatcher } from '../wire/index.js';
import { AvState } from './av-state.js';
import type { DatagramPath } from './datagram-path.js';
import type { Downstream } from './subscriptions.js';

/**
 * A sender's audio fan-out resolved once (engine.ts `planFor`): the receivers
 * of its room that want its audio, each with its flow. Valid while the room
 * snapshot is the one it was built from and nobody dropped it: a receiver of
 * the room that changes its subscriptions drops the plans of that room's
 * senders (no other room's), a sender that loses a flow drops its own. The
 * per-packet path still checks each receiver's binding, `closed` and grant.
 */
export interface FanoutPlan {
  readonly snapshot: readonly unknown[];
  readonly receivers: Session[];
  readonly downs: Downstream[];
}

/** Minimal view of a room the hot path needs: the published participant snapshot. */
export interface RoomSnapshotSource {
  readonly name: string;
  /** Immutable array of participants, replaced (never mutated) on every change. */
  readonly snapshot: readonly { readonly sink: Session }[];
}

/** Sends signalling messages to the session's client (WebSocket), never throws. */
export interface SignalSink {
  send(message: unknown): void;
  close(code?: number, reason?: string): void;
}

/** Per-packet quality hook of a session (implemented in src/media/quality-observer.ts). */
export interface PacketObserver {
  /**
   * Observes one decoded packet (the header object is reused: do not keep it).
   * Returns true when the session's quality tier changed. `lossByte`/`rttByte`
   * are the QualityReport bytes, or -1 when the packet has none.
   */
  observe(
    header: MediaHeader,
    bytes: number,
    nowMs: number,
    lossByte: number,
    rttByte: number,
  ): boolean;
}

/** Federation state of a global room (owned by src/federation; opaque here). */
export interface GlobalRoomRef {
  readonly name: string;
}

/** What a participant of another relay carries (owned by src/federation). */
export interface RemoteRef {
  /** Origin relay id, 16 hex characters. */
  readonly origin: string;
  /** The participant's tag at its origin relay. */
  readonly originTag: number;
}

export interface SessionInit {
  id: number;
  tag: number;
  fingerprint: string;
  alias: string | null;
  room: RoomSnapshotSource;
  bindToken: Buffer;
  signal: SignalSink;
  observer: PacketObserver;
  canPublish: boolean;
  canSubscribe: boolean;
  nowMs: number;
  /** Set for a participant of another relay. */
  remote?: RemoteRef | null;
}

export class Session {
  readonly id: number;
  readonly tag: number;
  readonly fingerprint: string;
  readonly alias: string | null;
  readonly room: RoomSnapshotSource;
  readonly bindToken: Buffer;
  readonly bindKey: string;
  readonly signal: SignalSink;
  readonly observer: PacketObserver;
  /** Grants (a media worker may change them with a `grants` command). */
  canPublish: boolean;
  canSubscribe: boolean;
  readonly createdMs: number;

  /** Bound UDP source (null until the first BIND). */
  address: string | null = null;
  port = 0;
  /** The stream path (WebSocket) the session is bound through; null for UDP. */
  path: DatagramPath | null = null;
  /** Last time any datagram arrived from this session (ms, performance clock). */
  lastDatagramMs: number;
  /** Decode context of the frames this session sends. */
  readonly ctx: MiniContext = new MiniContext();
  /** Audio/video state: MINI chaining, simulcast layers, keyframes, subscriptions (av-state.ts). */
  readonly av = new AvState();
  /** Trunk batcher of the frames sent TO this session (trunking mode only). */
  batcher: TrunkBatcher | null = null;
  /** Incremented whenever the batcher flushes; stale deadlines are ignored. */
  batchGeneration = 0;
  /** Deadline item of this session's trunk batch (one object, reused for every batch). */
  readonly flushItem = {
    onDeadline: (generation: number): void => {
      if (generation === this.batchGeneration) {
        this.batcher?.flush();
      }
    },
  };
  /** Federation: the global room of a local session (its media also goes to peers). */
  globalRoom: GlobalRoomRef | null = null;
  /** Federation: non-null for a participant of another relay (no UDP address, no signalling). */
  readonly remote: RemoteRef | null;
  /** This session's audio fan-out as a sender (null until its first audio packet). */
  fanout: FanoutPlan | null = null;
  /** Set once the session ended; the hot path skips closed sessions. */
  closed = false;

  packetsIn = 0;
  bytesIn = 0;
  packetsOut = 0;
  bytesOut = 0;

  constructor(init: SessionInit) {
    this.id = init.id;
    this.tag = init.tag;
    this.fingerprint = init.fingerprint;
    this.alias = init.alias;
    this.room = init.room;
    this.bindToken = init.bindToken;
    this.bindKey = init.bindToken.toString('hex');
    this.signal = init.signal;
    this.observer = init.observer;
    this.canPublish = init.canPublish;
    this.canSubscribe = init.canSubscribe;
    this.createdMs = init.nowMs;
    this.lastDatagramMs = init.nowMs;
    this.remote = init.remote ?? null;
    this.av.rx.onChange = () => {
      // Every sender whose plan may hold (or leave out) this receiver is in its room.
      const peers = this.room.snapshot;
      for (let i = 0; i < peers.length; i++) {
        (peers[i] as { readonly sink: Session }).sink.fanout = null;
      }
    };
    this.av.onFlowsChange = () => {
      this.fanout = null;
    };
  }

  /** True once a BIND pinned a UDP address. */
  get bound(): boolean {
    return this.address !== null;
  }
}
