/**
 * Rooms and their participants.
 *
 * Each room has a read-write lock: join, leave and other multi-step changes
 * take the write side and are atomic with respect to each other; control
 * readers (admin listing) take the read side. Every write ends by
 * publishing a new frozen `snapshot` array, which is what the per-packet
 * path reads, without any lock or await.
 *
 * Callers do all network work (handshake, auth) before `join`, and send
 * RoomUpdates after it returns, from the snapshot it returns: no I/O
 * happens inside a critical section.
 */
import { WzpError } from '../errors/index.js';
import { RwLock } from './rw-lock.js';

export interface Participant<S> {
  /** Relay-unique id (never reused). */
  readonly id: number;
  /** u16 tag unique within the room, ≥ 1. */
  readonly tag: number;
  readonly fingerprint: string;
  readonly alias: string | null;
  /** null for local participants; the relay label for federated ones. */
  readonly relayLabel: string | null;
  /** True for a participant of another relay (federation): not counted as a session. */
  readonly remote: boolean;
  readonly joinedAtMs: number;
  /** Whatever the transport uses to reach this participant. */
  readonly sink: S;
}

export interface JoinInfo {
  fingerprint: string;
  alias: string | null;
  relayLabel?: string | null;
  /** A federated participant: exempt from max_sessions (still counted in the room limit). */
  remote?: boolean;
}

export interface RoomUpdateBody {
  count: number;
  participants: {
    tag: number;
    fingerprint: string;
    alias: string | null;
    relay_label: string | null;
  }[];
}

export class Room<S, T> {
  readonly name: string;
  /** Relay-side per-room state (created with the room, dropped with it). */
  readonly state: T;
  readonly lock = new RwLock();
  /** Immutable; replaced on every change. */
  snapshot: readonly Participant<S>[] = Object.freeze([]);
  /** Incremented on every published change. */
  version = 0;
  /** Set when the room was removed from its manager (empty). */
  deleted = false;

  constructor(name: string, state: T) {
    this.name = name;
    this.state = state;
  }

  /** Replaces the snapshot (call only under the write lock). */
  publish(next: readonly Participant<S>[]): void {
    this.snapshot = Object.freeze(next.slice());
    this.version++;
  }
}

export interface RoomManagerOptions<T> {
  /** Most sessions across all rooms. */
  maxSessions: number;
  /** Most participants in one room. */
  maxParticipantsPerRoom: number;
  /** Builds the relay-side state of a new room. */
  createState: (name: string) => T;
  /** Clock for joinedAtMs. */
  now?: () => number;
}

export interface JoinResult<S, T> {
  room: Room<S, T>;
  participant: Participant<S>;
  /** The snapshot published by this join. */
  snapshot: readonly Participant<S>[];
}

export interface LeaveResult<S, T> {
  room: Room<S, T>;
  removed: boolean;
  /** The snapshot after the leave (empty if the room was deleted). */
  snapshot: readonly Participant<S>[];
}

const MAX_ROOM_NAME_BYTES = 128;
const MAX_TAG = 0xffff;

/** Validates a room name; throws ROOM_INVALID_NAME. */
export function validateRoomName(name: string): void {
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes === 0 || bytes > MAX_ROOM_NAME_BYTES) {
    throw new WzpError(
      'ROOM_INVALID_NAME',
      `room name must be 1..${MAX_ROOM_NAME_BYTES} UTF-8 bytes, got ${bytes}`,
    );
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
  if (/[\u0000-\u001f\u007f]/.test(name)) {
    throw new WzpError('ROOM_INVALID_NAME', 'room name contains control characters');
  }
}

export class RoomManager<S, T = undefined> {
  private readonly rooms = new Map<string, Room<S, T>>();
  private readonly options: RoomManagerOptions<T>;
  private readonly now: () => number;
  private nextId = 1;
  private sessions = 0;
  private draining = false;

  constructor(options: RoomManagerOptions<T>) {
    this.options = options;
    this.now = options.now ?? Date.now;
  }

  /** Sessions joined or reserved (a join in progress holds a slot). */
  get sessionCount(): number {
    return this.sessions;
  }

  get roomCount(): number {
    return this.rooms.size;
  }

  get isDraining(): boolean {
    return this.draining;
  }

  /** Refuses every later join with RELAY_DRAINING. */
  setDraining(on: boolean): void {
    this.draining = on;
  }

  get(name: string): Room<S, T> | undefined {
    return this.rooms.get(name);
  }

  /** All rooms (a copy of the list). */
  all(): Room<S, T>[] {
    return [...this.rooms.values()];
  }

  /**
   * Adds a participant. `makeSink` receives the allocated id and tag and
   * builds the sink synchronously inside the critical section (no I/O).
   * @throws {WzpError} RELAY_DRAINING, ROOM_INVALID_NAME, SESSION_LIMIT, ROOM_FULL, ROOM_TAGS_EXHAUSTED
   */
  async join(
    roomName: string,
    info: JoinInfo,
    makeSink: (ids: { id: number; tag: number; room: Room<S, T> }) => S,
  ): Promise<JoinResult<S, T>> {
    if (this.draining) {
      throw new WzpError('RELAY_DRAINING');
    }
    validateRoomName(roomName);
    const remote = info.remote === true;
    // Reserve the session slot synchronously so concurrent joins cannot overshoot.
    if (!remote && this.sessions >= this.options.maxSessions) {
      throw new WzpError(
        'SESSION_LIMIT',
        `the relay holds its maximum of ${this.options.maxSessions} sessions`,
      );
    }
    if (!remote) {
      this.sessions++;
    }
    try {
      for (;;) {
        const room = this.roomFor(roomName);
        const result = await room.lock.runWrite(() => {
          if (room.deleted) {
            return null; // emptied and removed while we waited: retry on the new room
          }
          if (this.draining) {
            throw new WzpError('RELAY_DRAINING');
          }
          const current = room.snapshot;
          if (current.length >= this.options.maxParticipantsPerRoom) {
            throw new WzpError(
              'ROOM_FULL',
              `room ${JSON.stringify(roomName)} already has ${current.length} participants`,
            );
          }
          const tag = lowestFreeTag(current);
          const id = this.nextId++;
          const participant: Participant<S> = Object.freeze({
            id,
            tag,
            fingerprint: info.fingerprint,
            alias: info.alias,
            relayLabel: info.relayLabel ?? null,
            remote,
            joinedAtMs: this.now(),
            sink: makeSink({ id, tag, room }),
          });
          room.publish([...current, participant]);
          return { room, participant, snapshot: room.snapshot };
        });
        if (result !== null) {
          return result;
        }
      }
    } catch (err) {
      if (!remote) {
        this.sessions--;
      }
      this.dropIfEmpty(roomName);
      throw err;
    }
  }

  /** Removes a participant; idempotent. Deletes the room when it empties. */
  async leave(room: Room<S, T>, participantId: number): Promise<LeaveResult<S, T>> {
    return room.lock.runWrite(() => {
      const current = room.snapshot;
      const next = current.filter((p) => p.id !== participantId);
      if (next.length === current.length) {
        return { room, removed: false, snapshot: current };
      }
      const leaving = current.find((p) => p.id === participantId);
      if (leaving !== undefined && !leaving.remote) {
        this.sessions--;
      }
      room.publish(next);
      if (next.length === 0) {
        room.deleted = true;
        if (this.rooms.get(room.name) === room) {
          this.rooms.delete(room.name);
        }
      }
      return { room, removed: true, snapshot: room.snapshot };
    });
  }

  /** A consistent copy of every room's participants, taken under read locks. */
  async list(): Promise<{ room: Room<S, T>; participants: readonly Participant<S>[] }[]> {
    const rooms = this.all();
    return Promise.all(
      rooms.map((room) => room.lock.runRead(() => ({ room, participants: room.snapshot }))),
    );
  }

  private roomFor(name: string): Room<S, T> {
    let room = this.rooms.get(name);
    if (room === undefined) {
      room = new Room<S, T>(name, this.options.createState(name));
      this.rooms.set(name, room);
    }
    return room;
  }

  private dropIfEmpty(name: string): void {
    const room = this.rooms.get(name);
    if (room !== undefined && room.snapshot.length === 0 && !room.lock.writeLocked) {
      room.deleted = true;
      this.rooms.delete(name);
    }
  }
}

/** The RoomUpdate body of a snapshot. */
export function roomUpdateOf<S>(snapshot: readonly Participant<S>[]): RoomUpdateBody {
  return {
    count: snapshot.length,
    participants: snapshot.map((p) => ({
      tag: p.tag,
      fingerprint: p.fingerprint,
      alias: p.alias,
      relay_label: p.relayLabel,
    })),
  };
}

function lowestFreeTag<S>(snapshot: readonly Participant<S>[]): number {
  const used = new Set<number>();
  for (const p of snapshot) {
    used.add(p.tag);
  }
  for (let tag = 1; tag <= MAX_TAG; tag++) {
    if (!used.has(tag)) {
      return tag;
    }
  }
  throw new WzpError('ROOM_TAGS_EXHAUSTED');
}
