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
