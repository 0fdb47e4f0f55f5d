/** `wzp load`: a load generator for WZP relays (see src/load). */
import { SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { formatLoadReport, runLoad } from '../../load/index.js';
import { type CliIo, EXIT_OK, reportError } from '../io.js';

interface Flags {
  rooms: string;
  participants: string;
  pps: string;
  size: string;
  mini: boolean;
  duration: string;
  workers: string;
  encrypt: boolean;
  token?: string;
  relayPid?: string;
  video?: string;
  videoScale: string;
  keyframeInterval: string;
  maxLayer?: string;
  json: boolean;
  progress: boolean;
}

export function registerLoad(program: Command, io: CliIo, setExit: (code: number) => void): void {
  program
    .command('load')
    .description('load-test a relay: N rooms × M participants sending timestamped media')
    .argument('<signal-url>', 'e.g. ws://127.0.0.1:4434/v2/signal')
    .option('--rooms <n>', 'rooms', '10')
    .option('--participants <n>', 'participants per room', '3')
    .option('--pps <n>', 'packets per second per sender', '50')
    .option('--size <bytes>', 'payload size, or a range MIN-MAX', '100')
    .option('--mini', 'use MINI frames (default: every frame FULL)', false)
    .option('--duration <s>', 'sending time in seconds', '10')
    .option('--workers <n>', 'worker processes (0 = this process)', '2')
    .option('--encrypt', 'encrypt payloads (ChaCha20-Poly1305)', false)
    .option('--token <jwt>', 'access token')
    .option('--relay-pid <pid>', 'local relay process to sample CPU and RSS from')
    .option(
      '--video <layers>',
      'every participant also sends simulcast video: layers as stream ids, e.g. 0,1,2',
    )
    .option('--video-scale <x>', 'scale the layer bitrates (150 k, 600 k, 2.5 Mbit/s) by x', '1')
    .option('--keyframe-interval <frames>', 'video frames between keyframes', '60')
    .option('--max-layer <n>', 'receivers cap every sender at this layer')
    .option('--json', 'print the JSON report', false)
    .option('--no-progress', 'no progress bar')
    .action(async (url: string, f: Flags) => {
      try {
        const [min, max] = f.size.split('-').map(Number);
        const durationS = Number(f.duration);
        const bar =
          f.progress && !f.json
            ? new SingleBar({
                format: 'load [{bar}] {value}/{total} s | sent {sent} | delivered {delivered}',
                stopOnComplete: false,
                hideCursor: true,
              })
            : null;
        bar?.start(durationS, 0, { sent: 0, delivered: 0 });
        const report = await runLoad({
          signalUrl: url,
          rooms: Number(f.rooms),
          participants: Number(f.participants),
          pps: Number(f.pps),
          sizeMin: min ?? 100,
          sizeMax: max ?? min ?? 100,
          mini: f.mini,
          durationS,
          workers: Number(f.workers),
          encrypt: f.encrypt,
          ...(f.video !== undefined
            ? {
                video: {
                  layers: f.video.split(',').map((x) => Number(x.trim())),
                  bitrateScale: Number(f.videoScale),
                  keyframeInterval: Number(f.keyframeInterval),
                  ...(f.maxLayer !== undefined ? { maxLayer: Number(f.maxLayer) } : {}),
                },
              }
            : {}),
          ...(f.token !== undefined ? { token: f.token } : {}),
          ...(f.relayPid !== undefined ? { relayPid: Number(f.relayPid) } : {}),
          onProgress: (p) =>
            bar?.update(Math.min(durationS, Math.round(p.elapsedS)), {
              sent: p.sent,
              delivered: p.delivered,
            }),
        });
        bar?.update(durationS);
        bar?.stop();
        io.out(f.json ? JSON.stringify(report, null, 2) : formatLoadReport(report));
        setExit(EXIT_OK);
      } catch (err) {
        setExit(reportError(io, err));
      }
    });
}
