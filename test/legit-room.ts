/**
 * The legitimate 3-person room of the hostile-input targets: three real
 * clients (WebSocket signalling + UDP media) each sending 50 audio frames
 * per second; delivery is what arrived of what the other two sent.
 */
import { WzpClient } from '../src/client/index.js';
import { createHeader } from '../src/wire/index.js';
import { until } from './helpers.js';

export interface LegitRoom {
  clients: WzpClient[];
  start(): void;
  /** Stops sending, waits for stragglers, returns the delivery ratio (0–1). */
  stop(): Promise<{ sent: number; expected: number; received: number; delivery: number }>;
  close(): Promise<void>;
}

export async function legitRoom(
  url: string,
  room: string,
  options: { signalLocalAddress?: string; timeoutMs?: number } = {},
): Promise<LegitRoom> {
  const clients: WzpClient[] = [];
  for (let i = 0; i < 3; i++) {
    clients.push(
      await WzpClient.connect({
        signalUrl: url,
        room,
        alias: `legit-${i}`,
        timeoutMs: options.timeoutMs ?? 10_000,
        ...(options.signalLocalAddress === undefined
          ? {}
          : { signalLocalAddress: options.signalLocalAddress }),
      }),
    );
  }
  await until(() => clients.every((c) => c.lastRoomUpdate?.count === 3), 'room of 3', 10_000);
  const received = [0, 0, 0];
  clients.forEach((c, i) => {
    c.on('media', () => {
      received[i] = (received[i] as number) + 1;
    });
  });
  let seq = 0;
  let timer: NodeJS.Timeout | null = null;
  const payload = Buffer.alloc(60, 0x55);
  return {
    clients,
    start() {
      timer = setInterval(() => {
        for (const c of clients) {
          c.sendMedia(createHeader({ seq, timestamp: seq * 20, fecRatio: 20 }), payload);
        }
        seq++;
      }, 20);
    },
    async stop() {
      if (timer !== null) {
        clearInterval(timer);
      }
      const expected = seq * 3 * 2;
      const total = (): number => received.reduce((a, b) => a + b, 0);
      await until(() => total() >= expected, 'stragglers', 1000).catch(() => {});
      return {
        sent: seq * 3,
        expected,
        received: total(),
        delivery: expected === 0 ? 1 : total() / expected,
      };
    },
    async close() {
      if (timer !== null) {
        clearInterval(timer);
      }
      await Promise.all(clients.map((c) => c.close(false)));
    },
  };
}
