/**
 * `wzp client <signal-url> <room>`: joins a room, sends a synthetic audio
 * stream (Opus24k-shaped, 50 packets/s, a QualityReport every 50 frames)
 * and prints what it receives as JSON lines.
 */
import type { Command } from 'commander';
import { WzpClient } from '../../client/index.js';
import { createHeader, qualityFromPathStats } from '../../wire/index.js';
import { type CliIo, EXIT_OK, reportError } from '../io.js';

export function registerClient(program: Command, io: CliIo, setExit: (code: number) => void): void {
  program
    .command('client')
    .description('join a room, send a synthetic audio stream, print what arrives')
    .argument('<signal-url>', 'e.g. ws://127.0.0.1:4434/v2/signal')
    .argument('<room>', 'room name')
    .option('--token <jwt>', 'access token')
    .option('--alias <name>', 'display name')
    .option('--seconds <n>', 'stop after n seconds (0 = until Ctrl-C)', '0')
    .option('--pps <n>', 'packets per second', '50')
    .option('--quiet', 'print only room updates and a summary', false)
    .action(
      async (
        url: string,
        room: string,
        o: { token?: string; alias?: string; seconds: string; pps: string; quiet: boolean },
      ) => {
        let client: WzpClient;
        try {
          client = await WzpClient.connect({
            signalUrl: url,
            room,
            ...(o.token !== undefined ? { token: o.token } : {}),
            alias: o.alias ?? null,
          });
        } catch (err) {
          setExit(reportError(io, err));
          return;
        }
        io.out(
          JSON.stringify({
            event: 'joined',
            tag: client.tag,
            udp_port: client.answer?.udp_port,
            profile: client.answer?.chosen_profile.codec,
          }),
        );
        let received = 0;
        // The first RoomUpdate usually arrives while the UDP bind is still in flight.
        if (client.lastRoomUpdate !== null) {
          io.out(JSON.stringify({ event: 'room_update', ...client.lastRoomUpdate }));
        }
        client.on('roomUpdate', (u) => io.out(JSON.stringify({ event: 'room_update', ...u })));
        client.on('qualityDirective', (d) =>
          io.out(
            JSON.stringify({
              event: 'quality_directive',
              codec: d.recommended_profile.codec,
              reason: d.reason,
            }),
          ),
        );
        client.on('hangup', (h) => io.out(JSON.stringify({ event: 'hangup', reason: h.reason })));
        client.on('media', (m) => {
          received++;
          if (!o.quiet) {
            io.out(
              JSON.stringify({
                event: 'media',
                from: m.senderTag,
                frame: m.frameType,
                seq: m.header.seq,
                ts: m.header.timestamp,
                bytes: m.payload.length,
              }),
            );
          }
        });
        const pps = Math.max(1, Number(o.pps));
        const frameMs = 1000 / pps;
        let seq = 0;
        const start = performance.now();
        const header = createHeader({ fecRatio: 20 });
        const payload = Buffer.alloc(60);
        const timer = setInterval(() => {
          header.seq = seq;
          header.timestamp = Math.round(seq * frameMs) >>> 0;
          payload.writeUInt32BE(seq, 0);
          client.sendMedia(header, payload, seq % 50 === 0 ? qualityFromPathStats(0, 20, 2) : null);
          seq++;
        }, frameMs);
        await new Promise<void>((resolve) => {
          const seconds = Number(o.seconds);
          if (seconds > 0) {
            setTimeout(resolve, seconds * 1000);
          }
          process.once('SIGINT', () => resolve());
          client.once('close', () => resolve());
          client.once('hangup', () => resolve());
        });
        clearInterval(timer);
        await client.close();
        io.out(
          JSON.stringify({
            event: 'summary',
            sent: seq,
            received,
            seconds: (performance.now() - start) / 1000,
          }),
        );
        setExit(EXIT_OK);
      },
    );
}
