import { describe, expect, it } from 'vitest';
import { createHeader, MediaType } from '../wire/index.js';
import { SessionObserver } from './quality-observer.js';
import { RoomState } from './room-state.js';
import { keyMediaType, keyStreamId, STREAM_KEYS, streamKey } from './stream-key.js';

describe('stream keys', () => {
  it('are distinct for every (media_type, stream_id) and invertible', () => {
    const seen = new Set<number>();
    for (let mt = 0; mt < 4; mt++) {
      for (let id = 0; id < 256; id++) {
        const k = streamKey(mt, id);
        expect(k).toBeLessThan(STREAM_KEYS);
        expect(keyMediaType(k)).toBe(mt);
        expect(keyStreamId(k)).toBe(id);
        seen.add(k);
      }
    }
    expect(seen.size).toBe(STREAM_KEYS);
  });

  it('give audio and video on stream 0 their own statistics (no false loss)', () => {
    const obs = new SessionObserver(new RoomState(), 0);
    const h = createHeader();
    for (let i = 0; i < 500; i++) {
      h.mediaType = MediaType.Audio;
      h.codecId = 0;
      h.seq = i;
      h.timestamp = i * 20;
      obs.observe(h, 80, i * 20, -1, -1);
      for (let j = 0; j < 3; j++) {
        h.mediaType = MediaType.Video;
        h.codecId = 9;
        h.seq = i * 3 + j;
        obs.observe(h, 1000, i * 20, -1, -1);
      }
    }
    const snap = obs.snapshot(10_000);
    expect(snap.map((s) => `${s.media_type}:${s.stream_id}`)).toEqual(['audio:0', 'video:0']);
    for (const s of snap) {
      expect(s.stats.lost).toBe(0);
    }
    expect(obs.tier).toBeGreaterThanOrEqual(2);
  });
});
