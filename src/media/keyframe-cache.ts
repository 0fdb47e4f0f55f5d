/**
 * The SFU keyframe cache: per (sender, video stream_id) the last complete
 * keyframe, so a joiner or a receiver switching layer can start decoding at
 * once instead of waiting for the sender's next keyframe.
 *
 * Assembly: a non-repair video packet with K starts (or continues, same
 * `timestamp_ms`) the keyframe being built; every packet is kept as a FULL
 * compact frame (a MINI is expanded, a FULL is kept byte-identical); the
 * packet with E completes it, and the completed keyframe replaces the
 * previous one of that stream. A non-K packet discards what was being
 * built. Repair (FEC) packets are never cached.
 *
 * Bounds (documented in docs/video.md):
 * - per stream: `streamBytes` (default 200 000 B) for the keyframe being
 *   built and for the complete one; a keyframe above it is not cached;
 * - per room: `roomBytes` of complete keyframes, over it the room's oldest
 *   complete keyframes are evicted;
 * - per relay: `relayBytes`, over it the relay's oldest are evicted.
 * Frames are copied once per keyframe packet (keyframes are a small share
 * of the packets); no other per-packet allocation.
 */
import {
  type CompactView,
  FLAG_FRAME_END,
  FLAG_KEYFRAME,
  FLAG_REPAIR,
  FrameType,
  fullFrameSize,
  writeFullFrameUnchecked,
} from '../wire/index.js';

export interface KeyframeLimits {
  streamBytes: number;
  roomBytes: number;
  relayBytes: number;
}

export const DEFAULT_KEYFRAME_LIMITS: KeyframeLimits = {
  streamBytes: 200_000,
  roomBytes: 4_000_000,
  relayBytes: 64_000_000,
};

/** One room's share of the cache (identity = the room object). */
type RoomKey = object;

/** The keyframe state of one (sender, video stream). */
export class KeyframeSlot {
  /** Frames of the keyframe being assembled. */
  building: Buffer[] = [];
  buildingBytes = 0;
  buildingTs = -1;
  /** The keyframe being assembled went over the per-stream bound: skip its rest. */
  oversize = false;
  /** The last complete keyframe (FULL compact frames, in order), or null. */
  frames: Buffer[] | null = null;
  bytes = 0;
  timestamp = 0;
  completedAt = 0;
  /**
   * Delta (non-K) packets seen since the complete keyframe: 0 means the
   * cached keyframe is the stream's latest frame ("fresh"), so a receiver
   * can switch to it without a decoding gap.
   */
  deltasSince = 0;
  constructor(
    readonly streamId: number,
    readonly room: RoomKey,
  ) {}
}

/** Counters of the cache (read by the metrics bridge). */
export class KeyframeStats {
  /** Complete keyframes replayed to a receiver. */
  hits = 0;
  /** Keyframes a receiver could have used that were not cached. */
  misses = 0;
  /** Complete keyframes evicted by the room or relay bound. */
  evictions = 0;
  /** Keyframes not cached because they exceeded the per-stream bound. */
  oversize = 0;
  /** Complete keyframes cached. */
  stored = 0;
}

export class KeyframeCache {
  readonly stats = new KeyframeStats();
  /** Bytes of complete keyframes held. */
  bytes = 0;
  private readonly complete: KeyframeSlot[] = [];
  private readonly roomBytes = new Map<RoomKey, number>();
  private counter = 0;

  constructor(readonly limits: KeyframeLimits = DEFAULT_KEYFRAME_LIMITS) {}

  /**
   * Feeds one decoded video packet (`view` over `msg`) of a sender. `slots`
   * is the sender's slot array (indexed by stream id), created lazily.
   */
  observe(
    slots: (KeyframeSlot | undefined)[],
    room: RoomKey,
    msg: Buffer,
    view: CompactView,
  ): void {
    const h = view.header;
    if ((h.flags & FLAG_REPAIR) !== 0) {
      return;
    }
    let slot = slots[h.streamId];
    if ((h.flags & FLAG_KEYFRAME) === 0) {
      if (slot !== undefined) {
        if (slot.building.length > 0) {
          slot.building = [];
          slot.buildingBytes = 0;
          slot.buildingTs = -1;
        }
        slot.deltasSince++;
      }
      return;
    }
    if (slot === undefined) {
      slot = new KeyframeSlot(h.streamId, room);
      slots[h.streamId] = slot;
    }
    if (slot.buildingTs !== h.timestamp) {
      slot.building = [];
      slot.buildingBytes = 0;
      slot.buildingTs = h.timestamp;
      slot.oversize = false;
    }
    if (slot.oversize) {
      return; // the rest of a keyframe over the per-stream bound
    }
    const frameLength =
      view.frameType === FrameType.Full ? msg.length : fullFrameSize(view.payloadLength, false);
    if (slot.buildingBytes + frameLength > this.limits.streamBytes) {
      this.stats.oversize++;
      slot.building = [];
      slot.buildingBytes = 0;
      slot.oversize = true;
      return;
    }
    const frame = this.copyFull(msg, view);
    slot.building.push(frame);
    slot.buildingBytes += frame.length;
    if ((h.flags & FLAG_FRAME_END) !== 0) {
      this.completeSlot(slot);
    }
  }

  /** The complete keyframe of `streamId` in `slots`, or null. */
  get(slots: readonly (KeyframeSlot | undefined)[] | null, streamId: number): KeyframeSlot | null {
    const slot = slots?.[streamId];
    return slot !== undefined && slot.frames !== null ? slot : null;
  }

  /** Drops every keyframe of a sender (it left). */
  dropSender(slots: (KeyframeSlot | undefined)[] | null): void {
    if (slots === null) {
      return;
    }
    for (let i = 0; i < slots.length; i++) {
      const s = slots[i];
      if (s !== undefined) {
        this.release(s);
        s.building = [];
        s.buildingBytes = 0;
      }
    }
    slots.length = 0;
  }

  /** Bytes of complete keyframes held for one room. */
  bytesOfRoom(room: RoomKey): number {
    return this.roomBytes.get(room) ?? 0;
  }

  /** Complete keyframes held. */
  get entries(): number {
    return this.complete.length;
  }

  private completeSlot(slot: KeyframeSlot): void {
    const frames = slot.building;
    const bytes = slot.buildingBytes;
    const timestamp = slot.buildingTs;
    slot.building = [];
    slot.buildingBytes = 0;
    slot.buildingTs = -1;
    this.release(slot);
    const limits = this.limits;
    if (bytes > limits.roomBytes || bytes > limits.relayBytes) {
      this.stats.oversize++;
      return;
    }
    while (this.bytes + bytes > limits.relayBytes && this.evictOldest(null)) {}
    while (this.bytesOfRoom(slot.room) + bytes > limits.roomBytes && this.evictOldest(slot.room)) {}
    slot.frames = frames;
    slot.bytes = bytes;
    slot.timestamp = timestamp;
    slot.completedAt = ++this.counter;
    slot.deltasSince = 0;
    this.complete.push(slot);
    this.bytes += bytes;
    this.roomBytes.set(slot.room, this.bytesOfRoom(slot.room) + bytes);
    this.stats.stored++;
  }

  /** Evicts the oldest complete keyframe (of `room`, or of the relay when null). */
  private evictOldest(room: RoomKey | null): boolean {
    let oldest: KeyframeSlot | null = null;
    for (const s of this.complete) {
      if (
        (room === null || s.room === room) &&
        (oldest === null || s.completedAt < oldest.completedAt)
      ) {
        oldest = s;
      }
    }
    if (oldest === null) {
      return false;
    }
    this.release(oldest);
    this.stats.evictions++;
    return true;
  }

  private release(slot: KeyframeSlot): void {
    if (slot.frames === null) {
      return;
    }
    const i = this.complete.indexOf(slot);
    if (i >= 0) {
      this.complete.splice(i, 1);
    }
    this.bytes -= slot.bytes;
    const left = this.bytesOfRoom(slot.room) - slot.bytes;
    if (left <= 0) {
      this.roomBytes.delete(slot.room);
    } else {
      this.roomBytes.set(slot.room, left);
    }
    slot.frames = null;
    slot.bytes = 0;
  }

  /** The packet as a FULL compact frame of its own (a copy). */
  private copyFull(msg: Buffer, view: CompactView): Buffer {
    if (view.frameType === FrameType.Full) {
      return Buffer.from(msg.subarray(0, msg.length));
    }
    const payload = msg.subarray(view.payloadOffset, view.payloadOffset + view.payloadLength);
    const buf = Buffer.allocUnsafe(fullFrameSize(view.payloadLength, false));
    writeFullFrameUnchecked(view.header, payload, null, buf, 0);
    return buf;
  }
}
