import { describe, expect, it } from 'vitest';
import {
  createCompactView,
  createHeader,
  FLAG_FRAME_END,
  FLAG_KEYFRAME,
  FLAG_REPAIR,
  MediaType,
  MiniContext,
  readCompact,
  writeFullFrameUnchecked,
} from '../wire/index.js';
import { KeyframeCache, type KeyframeSlot } from './keyframe-cache.js';

function packet(seq: number, ts: number, flags: number, size: number, streamId = 0) {
  const h = createHeader({
    mediaType: MediaType.Video,
    codecId: 9,
    streamId,
    seq,
    timestamp: ts,
    flags,
  });
  const payload = Buffer.alloc(size, seq & 0xff);
  const msg = Buffer.alloc(17 + size);
  writeFullFrameUnchecked(h, payload, null, msg, 0);
  const view = createCompactView();
  expect(readCompact(msg, 0, msg.length, new MiniContext(), view)).toBeNull();
  return { msg, view };
}

function feed(
  cache: KeyframeCache,
  slots: (KeyframeSlot | undefined)[],
  room: object,
  seq: number,
  ts: number,
  flags: number,
  size: number,
  streamId = 0,
): void {
  const p = packet(seq, ts, flags, size, streamId);
  cache.observe(slots, room, p.msg, p.view);
}

const K = FLAG_KEYFRAME;
const KE = FLAG_KEYFRAME | FLAG_FRAME_END;

describe('keyframe cache', () => {
  it('assembles K packets up to E, replaces it with a newer keyframe, ignores repair packets', () => {
    const cache = new KeyframeCache({
      streamBytes: 10_000,
      roomBytes: 100_000,
      relayBytes: 100_000,
    });
    const slots: (KeyframeSlot | undefined)[] = [];
    const room = {};
    feed(cache, slots, room, 1, 100, K, 500);
    feed(cache, slots, room, 2, 100, K | FLAG_REPAIR, 500);
    feed(cache, slots, room, 3, 100, KE, 500);
    const slot = cache.get(slots, 0);
    expect(slot?.frames?.map((f) => f.readUInt32BE(7))).toEqual([1, 3]);
    expect(cache.bytes).toBe(2 * 517);
    feed(cache, slots, room, 4, 133, 0, 100);
    expect(cache.get(slots, 0)?.deltasSince).toBe(1);
    feed(cache, slots, room, 5, 166, KE, 700);
    expect(cache.get(slots, 0)?.frames?.map((f) => f.readUInt32BE(7))).toEqual([5]);
    expect(cache.bytes).toBe(717);
    cache.dropSender(slots);
    expect(cache.bytes).toBe(0);
    expect(cache.get(slots, 0)).toBeNull();
  });

  it('drops an incomplete keyframe at a delta packet and never caches one over the stream bound', () => {
    const cache = new KeyframeCache({ streamBytes: 1000, roomBytes: 100_000, relayBytes: 100_000 });
    const slots: (KeyframeSlot | undefined)[] = [];
    const room = {};
    feed(cache, slots, room, 1, 100, K, 300);
    feed(cache, slots, room, 2, 133, 0, 300);
    feed(cache, slots, room, 3, 133, FLAG_FRAME_END, 300);
    expect(cache.get(slots, 0)).toBeNull();
    for (let i = 0; i < 5; i++) {
      feed(cache, slots, room, 10 + i, 200, i === 4 ? KE : K, 400);
    }
    expect(cache.get(slots, 0)).toBeNull();
    expect(cache.stats.oversize).toBe(1);
    expect(cache.bytes).toBe(0);
  });

  it('evicts the oldest keyframes over the room and relay bounds', () => {
    const cache = new KeyframeCache({ streamBytes: 5000, roomBytes: 2500, relayBytes: 3500 });
    const a = {};
    const b = {};
    const s1: (KeyframeSlot | undefined)[] = [];
    const s2: (KeyframeSlot | undefined)[] = [];
    const s3: (KeyframeSlot | undefined)[] = [];
    feed(cache, s1, a, 1, 10, KE, 983); // 1000 B
    feed(cache, s2, a, 1, 10, KE, 983);
    expect(cache.bytesOfRoom(a)).toBe(2000);
    feed(cache, s3, a, 1, 10, KE, 983); // room a over 2500: s1 goes
    expect(cache.get(s1, 0)).toBeNull();
    expect(cache.bytesOfRoom(a)).toBe(2000);
    const t1: (KeyframeSlot | undefined)[] = [];
    const t2: (KeyframeSlot | undefined)[] = [];
    feed(cache, t1, b, 1, 10, KE, 983);
    feed(cache, t2, b, 1, 10, KE, 983); // relay over 3500: the oldest (s2) goes
    expect(cache.get(s2, 0)).toBeNull();
    expect(cache.bytes).toBeLessThanOrEqual(3500);
    expect(cache.stats.evictions).toBe(2);
  });
});
