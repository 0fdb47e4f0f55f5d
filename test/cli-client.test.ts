import { afterEach, describe, expect, it } from 'vitest';
import type { CliIo } from '../src/cli/io.js';
import { runCli } from '../src/cli/program.js';
import { collect, startRelay, type TestRelay } from './helpers.js';

let r: TestRelay | null = null;
afterEach(async () => {
  await r?.close();
  r = null;
});

describe('wzp client', () => {
  it('joins, streams synthetic audio and prints what it receives', async () => {
    r = await startRelay();
    const peer = await r.connect('cli');
    const got = collect(peer);
    const out: string[] = [];
    const io: CliIo = { out: (l) => out.push(l), err: () => {}, readStdin: async () => null };
    const sending = setInterval(() => {
      peer.sendMedia(
        {
          flags: 0,
          mediaType: 0,
          codecId: 0,
          streamId: 0,
          fecRatio: 0,
          seq: got.length,
          timestamp: 0,
          fecBlock: 0,
        },
        Buffer.from('hi'),
      );
    }, 50);
    const code = await runCli(
      ['client', r.url, 'cli', '--seconds', '1', '--pps', '50', '--alias', 'bot'],
      io,
    );
    clearInterval(sending);
    expect(code).toBe(0);
    const events = out.map(
      (l) => JSON.parse(l) as { event: string; sent?: number; received?: number },
    );
    expect(events[0]?.event).toBe('joined');
    expect(events.some((e) => e.event === 'room_update')).toBe(true);
    expect(events.some((e) => e.event === 'media')).toBe(true);
    const summary = events.at(-1);
    expect(summary?.event).toBe('summary');
    expect(summary?.sent).toBeGreaterThan(30);
    expect(got.length).toBeGreaterThan(30);
    // UDP media may overtake the RoomUpdate on the WebSocket; later frames carry the fingerprint.
    expect(got.at(-1)?.senderFingerprint).not.toBeNull();
  });
});

interface StreamStats {
  media: string;
  stream_id: number;
  packets: number;
  keyframes: number;
  missing: number;
}
interface Event {
  event: string;
  tag?: number;
  sent?: number;
  received?: number;
  senders?: { tag: number; streams: StreamStats[] }[];
  sent_video?: { stream_id: number; packets: number; keyframes: number }[];
}

describe('wzp client --video', () => {
  it('sends audio plus simulcast layers with keyframes and prints per-sender, per-stream statistics', async () => {
    r = await startRelay();
    const viewer = await r.connect('cli-av');
    const got = collect(viewer);
    const outCam: string[] = [];
    const outRx: string[] = [];
    const io = (out: string[]): CliIo => ({
      out: (l) => out.push(l),
      err: () => {},
      readStdin: async () => null,
    });
    const [camCode, rxCode] = await Promise.all([
      runCli(
        [
          'client',
          r.url,
          'cli-av',
          '--seconds',
          '3',
          '--video',
          '0,1,2',
          '--video-scale',
          '0.1',
          '--keyframe-interval',
          '30',
          '--quiet',
        ],
        io(outCam),
      ),
      runCli(
        [
          'client',
          r.url,
          'cli-av',
          '--seconds',
          '3',
          '--max-layer',
          '0',
          '--stats',
          '1',
          '--quiet',
        ],
        io(outRx),
      ),
    ]);
    expect([camCode, rxCode]).toEqual([0, 0]);
    const cam = outCam.map((l) => JSON.parse(l) as Event);
    const rx = outRx.map((l) => JSON.parse(l) as Event);
    const camTag = cam[0]?.tag as number;
    const camSummary = cam.at(-1) as Event;
    expect(camSummary.event).toBe('summary');
    // Three layers sent, each with keyframes.
    expect(camSummary.sent_video?.map((v) => v.stream_id)).toEqual([0, 1, 2]);
    for (const v of camSummary.sent_video ?? []) {
      expect(v.packets).toBeGreaterThan(20);
      expect(v.keyframes).toBeGreaterThanOrEqual(1);
    }
    // The capped receiver: statistics during the run and in the summary, audio and layer 0 only.
    expect(rx.filter((e) => e.event === 'stats').length).toBeGreaterThanOrEqual(1);
    const fromCam = (rx.at(-1) as Event).senders?.find((s) => s.tag === camTag);
    const kinds = (fromCam?.streams ?? []).map((s) => `${s.media}:${s.stream_id}`);
    expect(kinds).toEqual(['audio:0', 'video:0']);
    const audio = fromCam?.streams[0] as StreamStats;
    const video = fromCam?.streams[1] as StreamStats;
    expect(audio.packets).toBeGreaterThan(100);
    expect(audio.missing).toBe(0);
    expect(video.packets).toBeGreaterThan(20);
    expect(video.keyframes).toBeGreaterThanOrEqual(1);
    // The uncapped viewer ends on the highest layer, one at a time.
    const layers = got
      .filter((m) => m.senderTag === camTag && m.header.mediaType === 1)
      .map((m) => m.header.streamId);
    expect(layers.at(-1)).toBe(2);
  }, 20_000);

  it('rejects bad layer lists with CONFIG_INVALID', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const io: CliIo = {
      out: (l) => out.push(l),
      err: (l) => err.push(l),
      readStdin: async () => null,
    };
    const code = await runCli(['client', 'ws://127.0.0.1:1/v2/signal', 'x', '--video', '0,3'], io);
    expect(code).not.toBe(0);
    expect([...out, ...err].join('\n')).toContain('CONFIG_INVALID');
  });
});
