/**
 * Measures how well a receiver recovers from loss on the relay → receiver
 * hop (BINDING.md §4.6): a sender and a receiver join a room of a real relay;
 * the receiver's media goes through a {@link LossyUdpProxy}; the sender sends
 * encrypted media (nonce from `seq`, BINDING.md §4.3) from an {@link AvSource};
 * the result counts the frames the receiver decoded **and** decrypted, against
 * the frames sent. Used by `bench/resync.mjs` and the tests.
 */
import { randomBytes } from 'node:crypto';
import type { MediaHeader } from '../wire/index.js';
import { WzpClient } from './client.js';
import { LossyUdpProxy } from './lossy-proxy.js';
import { AvSource, type AvSourceOptions, readPayloadInfo, runSource } from './media-source.js';

export interface LossRecoveryOptions {
  signalUrl: string;
  room?: string;
  /** Relay → receiver loss in percent (default 5). */
  lossPct?: number;
  /** How long the sender sends (ms, default 6000). */
  durationMs?: number;
  /** What the sender sends (default: audio only, the longest MINI chains). */
  source?: AvSourceOptions;
  /** The receiver asks for resync when a frame fails (default true). */
  autoResync?: boolean;
  seed?: number;
}

export interface LossRecoveryResult {
  /** Frames (compact frames, one packet each) the sender sent. */
  sent: number;
  /**
   * Frames the relay sent towards the receiver (one TRUNK datagram each, seen
   * by the proxy): with simulcast only one layer of the sender's is forwarded.
   */
  forwarded: number;
  /** Bytes of those datagrams. */
  forwardedBytes: number;
  /** Of them, dropped by the proxy (relay → receiver). */
  dropped: number;
  /** Distinct frames the receiver decoded and authenticated, whose payload matches the header. */
  decoded: number;
  /** Frames that reached the receiver but failed (no baseline, authentication). */
  failed: number;
  /** ResyncRequests the receiver sent. */
  resyncs: number;
  /** decoded / forwarded: the target of issue 11 is ≥ 0.94 at 5 % loss. */
  share: number;
  /** decoded / (forwarded − dropped): 1 means every frame not itself lost was recovered. */
  shareOfDelivered: number;
}

const keyOf = (h: MediaHeader): number => h.mediaType * 2 ** 40 + h.streamId * 2 ** 32 + h.seq;

export async function measureLossRecovery(
  options: LossRecoveryOptions,
): Promise<LossRecoveryResult> {
  const room = options.room ?? `loss-${randomBytes(4).toString('hex')}`;
  const roomKey = randomBytes(32);
  const sender = await WzpClient.connect({ signalUrl: options.signalUrl, room, roomKey });
  let receiver: WzpClient | null = null;
  let proxy: LossyUdpProxy | null = null;
  try {
    const relayPort = sender.answer?.udp_port ?? 0;
    proxy = await LossyUdpProxy.start({
      relayPort,
      lossPct: options.lossPct ?? 5,
      seed: options.seed ?? 1,
    });
    receiver = await WzpClient.connect({
      signalUrl: options.signalUrl,
      room,
      roomKey,
      udpPort: proxy.port,
      autoResync: options.autoResync ?? true,
    });
    const rx = receiver;
    await waitFor(
      () =>
        sender.lastRoomUpdate?.count === 2 &&
        rx.lastRoomUpdate?.count === 2 &&
        rx.lastRoomUpdate.participants.some((p) => p.tag === sender.tag),
      5000,
    );
    const sent = new Set<number>();
    const decoded = new Set<number>();
    let failed = 0;
    rx.on('media', (m) => {
      if (m.senderTag !== sender.tag) {
        return;
      }
      const info = readPayloadInfo(m.payload);
      const kindOk = info !== null && (info.kind === 'audio') === (m.header.mediaType === 0);
      if (kindOk) {
        decoded.add(keyOf(m.header));
      }
    });
    rx.on('decodeError', () => {
      failed++;
    });
    const source = new AvSource(options.source ?? { audio: true });
    const run = runSource(source, (h, p) => {
      sent.add(keyOf(h));
      sender.sendMedia(h, p);
    });
    await new Promise((r) => setTimeout(r, options.durationMs ?? 6000));
    run.stop();
    // Let the last frames arrive.
    const p = proxy;
    let seen = -1;
    await waitFor(() => {
      const n = p.passed + p.dropped;
      const settled = n === seen;
      seen = n;
      return settled && n > 0;
    }, 2000).catch(() => {});
    const dropped = proxy.dropped;
    const forwarded = proxy.passed + proxy.dropped;
    let ok = 0;
    for (const k of decoded) {
      if (sent.has(k)) {
        ok++;
      }
    }
    return {
      sent: sent.size,
      forwarded,
      forwardedBytes: proxy.bytes,
      dropped,
      decoded: ok,
      failed,
      resyncs: rx.resyncsSent,
      share: forwarded === 0 ? 0 : ok / forwarded,
      shareOfDelivered: forwarded - dropped <= 0 ? 0 : ok / (forwarded - dropped),
    };
  } finally {
    await Promise.all([sender.close(false), receiver?.close(false)]).catch(() => {});
    await proxy?.close();
  }
}

async function waitFor(cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) {
      throw new Error(`condition not met within ${ms} ms`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}
