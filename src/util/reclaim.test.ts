import { describe, expect, it } from 'vitest';
import {
  frameHandled,
  LARGE_FRAME_BYTES,
  RECLAIM_BYTES,
  RECLAIM_MIN_MS,
  reclaimsRequested,
} from './reclaim.js';

describe('reclaiming the buffers of large frames', () => {
  it('one scavenge per RECLAIM_BYTES of large frames, at most every RECLAIM_MIN_MS; small frames never', () => {
    const n0 = reclaimsRequested();
    let now = 1_000_000;
    for (let i = 0; i < 10_000; i++) {
      frameHandled(LARGE_FRAME_BYTES - 1, now++);
    }
    expect(reclaimsRequested()).toBe(n0);
    const perReclaim = RECLAIM_BYTES / LARGE_FRAME_BYTES;
    for (let i = 0; i < perReclaim - 1; i++) {
      frameHandled(LARGE_FRAME_BYTES, now);
    }
    expect(reclaimsRequested()).toBe(n0);
    frameHandled(LARGE_FRAME_BYTES, now);
    expect(reclaimsRequested()).toBe(n0 + 1);
    // Another RECLAIM_BYTES at once: too soon; once RECLAIM_MIN_MS passed, the next large frame.
    for (let i = 0; i < perReclaim; i++) {
      frameHandled(LARGE_FRAME_BYTES, now + RECLAIM_MIN_MS - 1);
    }
    expect(reclaimsRequested()).toBe(n0 + 1);
    frameHandled(LARGE_FRAME_BYTES, now + RECLAIM_MIN_MS);
    expect(reclaimsRequested()).toBe(n0 + 2);
  });

  it('a scavenge frees the backing store of a dead Buffer', async () => {
    // FinalizationRegistry callbacks run after the GC that found the object dead.
    let freed = false;
    const registry = new FinalizationRegistry(() => {
      freed = true;
    });
    (() => {
      registry.register(Buffer.allocUnsafe(LARGE_FRAME_BYTES * 4), 0);
    })();
    let now = 2_000_000;
    for (let round = 0; round < 50 && !freed; round++) {
      for (let i = 0; i < RECLAIM_BYTES / LARGE_FRAME_BYTES; i++) {
        frameHandled(LARGE_FRAME_BYTES, now);
      }
      now += RECLAIM_MIN_MS;
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(freed).toBe(true);
  });
});
