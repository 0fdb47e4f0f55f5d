/**
 * Media policing (tiers A-E, escalation) on simulated time: what passes,
 * what is dropped and counted, and the bound on what receivers can get.
 */
import { describe, expect, it } from 'vitest';
import { codecByName, createHeader, FLAG_KEYFRAME, FLAG_REPAIR, MediaType } from '../wire/index.js';
import {
  audioCeilingBytes,
  audioMaxPps,
  DRIFT_MIN_PACKETS,
  Policer,
  VIDEO_KEYFRAME_BURST_BYTES,
} from './policer.js';

const opus24 = { audioCodec: 'Opus24k', frameMs: 20, videoKbps: null };

function audio(seq: number, ts = seq * 20, flags = 0) {
  return createHeader({ seq, timestamp: ts, flags, codecId: 0 });
}

describe('Policer', () => {
  it('derives the original limits (reference §5.2 table)', () => {
    expect(audioCeilingBytes(codecByName('Opus24k') as never)).toBe(10_350);
    expect(audioCeilingBytes(codecByName('ComfortNoise') as never)).toBe(250);
    expect(audioMaxPps(20)).toBe(225);
    expect(audioMaxPps(40)).toBe(112);
  });

  it('passes a legitimate Opus24k stream untouched for a minute', () => {
    const p = new Policer({ mode: 'hangup' });
    const s = {};
    p.configure(s, opus24, 0);
    let passed = 0;
    for (let i = 0; i < 3000; i++) {
      if (p.admit(s, audio(i), 60 + (i % 40), i * 20)) {
        passed++;
      }
    }
    expect(passed).toBe(3000);
    expect(p.stats.warnings).toBe(0);
  });

  it('attack 7: 470 pps of 1 KB on Opus24k is dropped whole by tier D', () => {
    const p = new Policer();
    const s = {};
    p.configure(s, opus24, 0);
    let passed = 0;
    for (let i = 0; i < 470 * 3; i++) {
      if (p.admit(s, audio(i), 1000, (i * 1000) / 470)) {
        passed++;
      }
    }
    expect(passed).toBe(0);
    expect(p.stats.dropped.audio.D).toBe(470 * 3);
  });

  it('bounds a flood inside the size bound to rate × t + burst (tiers A and B)', () => {
    const p = new Policer({ burstMs: 1000 });
    const s = {};
    p.configure(s, opus24, 0);
    let bytes = 0;
    let packets = 0;
    const seconds = 10;
    for (let i = 0; i < 470 * seconds; i++) {
      // Timestamps advance properly so tier C does not decide it.
      if (p.admit(s, audio(i), 300, (i * 1000) / 470)) {
        bytes += 16 + 300;
        packets++;
      }
    }
    expect(bytes).toBeLessThanOrEqual(10_350 * seconds + 10_350);
    expect(packets).toBeLessThanOrEqual(225 * seconds + 225);
    expect(bytes).toBeGreaterThan(10_350 * seconds * 0.9);
    expect(p.stats.dropped.audio.A).toBeGreaterThan(0);
  });

  it('tier C: timestamps advancing under half a frame per packet are dropped', () => {
    const p = new Policer();
    const s = {};
    p.configure(s, opus24, 0);
    const results: boolean[] = [];
    for (let i = 0; i < 100; i++) {
      results.push(p.admit(s, audio(i, i * 5), 40, i * 20));
    }
    expect(results.slice(0, DRIFT_MIN_PACKETS).every(Boolean)).toBe(true);
    expect(results.slice(DRIFT_MIN_PACKETS + 1).some(Boolean)).toBe(false);
    expect(p.stats.dropped.audio.C).toBeGreaterThanOrEqual(100 - DRIFT_MIN_PACKETS - 1);
    // Repair packets and DTX gaps (timestamps jumping ahead) are not drift.
    const q = new Policer();
    q.configure(s, opus24, 0);
    let ok = 0;
    for (let i = 0; i < 100; i++) {
      const dtx = i * 20 + (i > 50 ? 5000 : 0);
      ok += q.admit(s, audio(i, dtx), 40, i * 20) ? 1 : 0;
      ok += q.admit(s, audio(1000 + i, 0, FLAG_REPAIR), 40, i * 20 + 1) ? 1 : 0;
    }
    expect(ok).toBe(200);
  });

  it('tier C: tracks the first 8 audio streams of a session apart; a seq gap over 1000 re-anchors', () => {
    const p = new Policer();
    const s = {};
    p.configure(s, opus24, 0);
    const on = (streamId: number, seq: number, ts: number) =>
      createHeader({ seq, timestamp: ts, codecId: 0, streamId });
    let t = 0;
    // Streams 0..7 take the 8 slots; stream 7 drifts (its timestamp never moves).
    for (let id = 0; id < 8; id++) {
      expect(p.admit(s, on(id, 0, 0), 40, t++)).toBe(true);
    }
    let drifting = 0;
    let untracked = 0;
    for (let i = 1; i <= DRIFT_MIN_PACKETS + 20; i++) {
      t += 20;
      drifting += p.admit(s, on(7, i, 0), 40, t) ? 1 : 0;
      // A 9th stream drifting the same way is not judged by tier C (no slot).
      untracked += p.admit(s, on(8, i, 0), 40, t + 1) ? 1 : 0;
      // Stream 0 moves on properly meanwhile.
      expect(p.admit(s, on(0, i, i * 20), 40, t + 2)).toBe(true);
    }
    expect(drifting).toBe(DRIFT_MIN_PACKETS - 1);
    expect(untracked).toBe(DRIFT_MIN_PACKETS + 20);
    expect(p.stats.dropped.audio.C).toBe(21);
    // Stream 0 jumps 2000 packets ahead with its timestamp only 100 ms on: a restart, judged from there.
    const base = DRIFT_MIN_PACKETS + 20;
    t += 20;
    expect(p.admit(s, on(0, base + 2000, base * 20 + 100), 40, t)).toBe(true);
    for (let i = 1; i <= DRIFT_MIN_PACKETS + 5; i++) {
      t += 20;
      expect(p.admit(s, on(0, base + 2000 + i, base * 20 + 100 + i * 20), 40, t)).toBe(true);
    }
    expect(p.stats.dropped.audio.C).toBe(21);
  });

  it('tier C: a start-up burst stamped at encoder output (25 frames within 5 ms), then real time, passes', () => {
    // What a WebCodecs client stamping chunks with performance.now() sends after its encoder
    // started (or its main thread stalled for 500 ms): 25 frames, timestamps 0..4 ms.
    const p = new Policer();
    const s = {};
    p.configure(s, opus24, 0);
    let passed = 0;
    for (let i = 0; i < 500; i++) {
      const ts = i < 25 ? Math.floor(i / 5) : 500 + (i - 25) * 20;
      passed += p.admit(s, audio(i, ts), 80, ts) ? 1 : 0;
    }
    expect(passed).toBe(500);
    expect(p.stats.warnings).toBe(0);
  });

  it('tier D: a payload bound scales with the negotiated frame duration', () => {
    const p = new Policer();
    const s = {};
    // Opus24k in 40 ms frames: payloads up to 2 × 160 × 2 = 640 B.
    p.configure(s, { ...opus24, frameMs: 40 }, 0);
    expect(p.admit(s, audio(0, 0), 600, 0)).toBe(true);
    expect(p.admit(s, audio(1, 40), 641, 40)).toBe(false);
    expect(p.stats.dropped.audio.D).toBe(1);
  });

  it('video: a keyframe burst passes even on a low announced bitrate; the rate still bounds', () => {
    const p = new Policer({ videoHeadroom: 1.5, burstMs: 1000 });
    const s = {};
    // 100 kbit/s announced: 1 s of the bucket is 18.75 KB, smaller than one keyframe.
    p.configure(s, { ...opus24, videoKbps: 100 }, 0);
    let seq = 0;
    const send = (bytes: number, t: number, key: boolean) => {
      let ok = 0;
      for (let off = 0; off < bytes; off += 1000) {
        const h = createHeader({
          mediaType: MediaType.Video,
          codecId: 9,
          seq: seq++,
          timestamp: t,
          flags: key ? FLAG_KEYFRAME : 0,
        });
        const n = Math.min(1000, bytes - off);
        ok += p.admit(s, h, n, t) ? 16 + n : 0;
      }
      return ok;
    };
    // A 60 KB keyframe at once: every packet passes.
    let passed = send(60_000, 0, true);
    expect(passed).toBe(60 * 1016);
    expect(p.stats.dropped.video.A + p.stats.dropped.video.B).toBe(0);
    // 10 s of 1 Mbit/s (10× the announcement): at most rate × t + the keyframe burst passes.
    for (let t = 50; t <= 10_000; t += 50) {
      passed += send(6250, t, false);
    }
    const rate = p.meter(s, 0).video.bytesPerSec;
    expect(rate).toBe(((100 * 1000) / 8) * 1.5);
    expect(passed).toBeLessThanOrEqual(rate * 10 + VIDEO_KEYFRAME_BURST_BYTES);
    expect(passed).toBeGreaterThan(rate * 10 * 0.9);
    expect(p.stats.dropped.video.A + p.stats.dropped.video.B).toBeGreaterThan(0);
  });

  it('meters video separately, from the announced bitrate with headroom', () => {
    const p = new Policer({ videoHeadroom: 1.5 });
    const s = {};
    p.configure(s, { ...opus24, videoKbps: 1000 }, 0);
    let vbytes = 0;
    const seconds = 5;
    // 4 Mbit/s of video in 1100-byte packets, plus normal audio.
    for (let t = 0; t < seconds * 1000; t += 2) {
      const h = createHeader({ mediaType: MediaType.Video, codecId: 9, seq: t, timestamp: t });
      if (p.admit(s, h, 1000, t)) {
        vbytes += 1016;
      }
      if (t % 20 === 0) {
        expect(p.admit(s, audio(t / 20), 60, t)).toBe(true);
      }
    }
    const rate = (1000 * 1000 * 1.5) / 8;
    expect(vbytes).toBeLessThanOrEqual(rate * seconds + rate);
    expect(vbytes).toBeGreaterThan(rate * seconds * 0.9);
    expect(p.stats.dropped.video.A).toBeGreaterThan(0);
    expect(p.stats.dropped.audio.A + p.stats.dropped.audio.B).toBe(0);
  });

  it('warns once, then hangs up a sustained violator after `strikes` seconds; observe and off forward', () => {
    const events: string[] = [];
    const p = new Policer(
      { strikes: 3 },
      {
        onWarn: (_o, tier) => events.push(`warn ${tier}`),
        onViolation: (_o, code) => events.push(`hangup ${code}`),
      },
    );
    const s = {};
    p.configure(s, opus24, 0);
    for (let i = 0; i < 470 * 5; i++) {
      p.admit(s, audio(i), 1000, (i * 1000) / 470);
    }
    expect(events).toEqual(['warn D', 'hangup MEDIA_POLICY_VIOLATION']);
    const o = new Policer({ mode: 'observe' });
    o.configure(s, opus24, 0);
    expect(o.admit(s, audio(0), 1000, 0)).toBe(true);
    expect(o.stats.observed).toBe(1);
    const off = new Policer({ mode: 'off' });
    expect(off.admit(s, audio(0), 60_000, 0)).toBe(true);
  });

  it('follows a recommended better profile, never lowering the negotiated one', () => {
    const p = new Policer();
    const s = {};
    p.configure(s, opus24, 0);
    p.allowAudio(s, 'Opus6k', 40, 0);
    expect(p.meter(s, 0).audio.bytesPerSec).toBe(10_350);
    p.allowAudio(s, 'Opus64k', 20, 0);
    expect(p.meter(s, 0).audio.bytesPerSec).toBe(27_600);
  });
});
