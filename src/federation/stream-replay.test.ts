import { describe, expect, it } from 'vitest';
import { StreamReplay } from './replay-window.js';

describe('StreamReplay: one window per (media_type, stream_id)', () => {
  it('keeps audio and video of stream 0 apart', () => {
    const r = new StreamReplay();
    // Audio and video both start their own seq at 0 on stream_id 0.
    for (let seq = 0; seq < 2000; seq++) {
      expect(r.check(0, 0, seq)).toBe('new');
      expect(r.check(1, 0, seq)).toBe('new');
    }
    expect(r.check(0, 0, 1999)).toBe('duplicate');
    expect(r.check(1, 0, 1999)).toBe('duplicate');
    // Another stream id of the same media type is another window too.
    expect(r.check(1, 2, 1999)).toBe('new');
  });
});
