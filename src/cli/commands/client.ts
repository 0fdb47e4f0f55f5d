/**
 * `wzp client <signal-url> <room>`: joins a room, sends a synthetic audio
 * stream (Opus24k-shaped, 50 packets/s, a QualityReport every 50 frames) or,
 * with `--video`, audio plus simulcast video layers with keyframes (answering
 * PLIs), and prints what it receives as JSON lines, with per-sender,
 * per-stream receive statistics (`--stats`, and in the summary).
 */
import type { Command } from 'commander';
import {
  AvSource,
  ReceiveStats,
  runSource,
  videoOfferProfiles,
  WzpClient,
} from '../../client/index.js';
import { WzpError } from '../../errors/index.js';
import { createHeader, FLAG_KEYFRAME, qualityFromPathStats } from '../../wire/index.js';
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
    .option('--quiet', 'print only room updates, statistics and a summary', false)
    .option(
      '--video <layers>',
      'also send video: simulcast layers as stream ids, e.g. 0,1,2 (0 low 150 kbit/s, 1 mid 600, 2 high 2500)',
    )
    .option('--no-audio', 'with --video: send no audio')
    .option(
      '--keyframe-interval <frames>',
      'video frames between keyframes (and on every PLI)',
      '60',
    )
    .option('--video-scale <x>', 'scale every layer bitrate by x', '1')
    .option('--max-layer <n>', 'receive at most this video layer (SubscriptionUpdate)')
    .option(
      '--stats <s>',
      'print per-sender, per-stream receive statistics every s seconds (0: in the summary only)',
      '0',
    )
    .action(
      async (
        url: string,
        room: string,
        o: {
          token?: string;
          alias?: string;
          seconds: string;
          pps: string;
          quiet: boolean;
          video?: string;
          audio: boolean;
          keyframeInterval: string;
          videoScale: string;
          maxLayer?: string;
          stats: string;
        },
      ) => {
        let layers: number[] = [];
        try {
          layers = parseLayers(o.video);
          for (const [name, v] of [
            ['--keyframe-interval', o.keyframeInterval],
            ['--video-scale', o.videoScale],
            ['--stats', o.stats],
            ...(o.maxLayer === undefined ? [] : [['--max-layer', o.maxLayer]]),
          ] as const) {
            if (!Number.isFinite(Number(v)) || Number(v) < 0) {
              throw new WzpError('CONFIG_INVALID', `${name} must be a number ≥ 0, got ${v}`);
            }
          }
        } catch (err) {
          setExit(reportError(io, err));
          return;
        }
        let client: WzpClient;
        try {
          client = await WzpClient.connect({
            signalUrl: url,
            room,
            ...(o.token !== undefined ? { token: o.token } : {}),
            alias: o.alias ?? null,
            ...(layers.length > 0
              ? { profiles: videoOfferProfiles(layers, Number(o.videoScale)) }
              : {}),
            ...(o.maxLayer === undefined
              ? {}
              : { subscription: { maxLayer: Math.min(2, Math.floor(Number(o.maxLayer))) } }),
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
        const stats = new ReceiveStats();
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
          stats.note(m.senderTag, m.header, m.payload.length, m.frameType === 'full');
          if (!o.quiet) {
            io.out(
              JSON.stringify({
                event: 'media',
                from: m.senderTag,
                media: m.header.mediaType === 1 ? 'video' : 'audio',
                stream_id: m.header.streamId,
                frame: m.frameType,
                key: (m.header.flags & FLAG_KEYFRAME) !== 0,
                seq: m.header.seq,
                ts: m.header.timestamp,
                bytes: m.payload.length,
              }),
            );
          }
        });
        const start = performance.now();
        let seq = 0;
        let stopSending: () => void;
        let sentVideo: number[] = [];
        let sentKeyframes: number[] = [];
        if (layers.length > 0) {
          const source = new AvSource({
            audio: o.audio,
            layers,
            keyframeInterval: Math.max(1, Math.floor(Number(o.keyframeInterval))),
            bitrateScale: Number(o.videoScale),
          });
          client.on('signal', (msg) => {
            if (msg.type === 'PictureLossIndication') {
              source.requestKeyframe(msg.body.stream_id);
              if (!o.quiet) {
                io.out(
                  JSON.stringify({
                    event: 'pli',
                    stream_id: msg.body.stream_id,
                    tag: msg.body.tag,
                  }),
                );
              }
            }
          });
          const run = runSource(source, (h, p) => {
            client.sendMedia(h, p);
            seq++;
          });
          stopSending = () => run.stop();
          sentVideo = source.sent.video;
          sentKeyframes = source.sent.keyframes;
        } else {
          const pps = Math.max(1, Number(o.pps));
          const frameMs = 1000 / pps;
          const header = createHeader({ fecRatio: 20 });
          const payload = Buffer.alloc(60);
          const timer = setInterval(() => {
            header.seq = seq;
            header.timestamp = Math.round(seq * frameMs) >>> 0;
            payload.writeUInt32BE(seq, 0);
            client.sendMedia(
              header,
              payload,
              seq % 50 === 0 ? qualityFromPathStats(0, 20, 2) : null,
            );
            seq++;
          }, frameMs);
          stopSending = () => clearInterval(timer);
        }
        const statsEvery = Number(o.stats);
        const statsTimer =
          statsEvery > 0
            ? setInterval(
                () => io.out(JSON.stringify({ event: 'stats', senders: stats.snapshot() })),
                statsEvery * 1000,
              )
            : null;
        await new Promise<void>((resolve) => {
          const seconds = Number(o.seconds);
          if (seconds > 0) {
            setTimeout(resolve, seconds * 1000);
          }
          process.once('SIGINT', () => resolve());
          client.once('close', () => resolve());
          client.once('hangup', () => resolve());
        });
        stopSending();
        if (statsTimer !== null) {
          clearInterval(statsTimer);
        }
        await client.close();
        io.out(
          JSON.stringify({
            event: 'summary',
            sent: seq,
            ...(layers.length > 0
              ? {
                  sent_video: layers.map((l) => ({
                    stream_id: l,
                    packets: sentVideo[l] ?? 0,
                    keyframes: sentKeyframes[l] ?? 0,
                  })),
                }
              : {}),
            received,
            seconds: (performance.now() - start) / 1000,
            senders: stats.snapshot(),
          }),
        );
        setExit(EXIT_OK);
      },
    );
}

/** `--video 0,1,2` → [0, 1, 2]: distinct simulcast stream ids 0..2. */
export function parseLayers(text: string | undefined): number[] {
  if (text === undefined || text.trim() === '') {
    return [];
  }
  const layers = text.split(',').map((x) => Number(x.trim()));
  if (
    layers.some((l) => !Number.isInteger(l) || l < 0 || l > 2) ||
    new Set(layers).size !== layers.length
  ) {
    throw new WzpError(
      'CONFIG_INVALID',
      `--video takes distinct layers 0, 1, 2 separated by commas, got ${text}`,
    );
  }
  return layers;
}
