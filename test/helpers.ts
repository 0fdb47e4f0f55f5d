/**
 * Shared helpers of the integration tests: an in-process relay on
 * 127.0.0.1 with ephemeral ports, clients, and bounded waiting.
 */
import { Writable } from 'node:stream';
import { type ClientOptions, type ReceivedMedia, WzpClient } from '../src/client/index.js';
import { loadConfig, type RelayConfigInput } from '../src/config/index.js';
import { createLogger } from '../src/log/index.js';
import { Relay } from '../src/server/relay.js';
import { Identity } from '../src/signal/index.js';
import {
  decodeCompactFrame,
  FrameType,
  MiniContext,
  writeHeaderUnchecked,
} from '../src/wire/index.js';

/** The media send path the relay tests run on (TEST_UDP_IO, default auto). */
export const TEST_UDP_IO = (process.env.TEST_UDP_IO ?? 'auto') as 'auto' | 'dgram' | 'native';

/** Media workers of the relays the tests start (TEST_MEDIA_WORKERS, default 1). */
export const TEST_MEDIA_WORKERS = Number(process.env.TEST_MEDIA_WORKERS ?? 1);

export interface TestRelay {
  relay: Relay;
  url: string;
  httpUrl: string;
  logs: Record<string, unknown>[];
  clients: WzpClient[];
  connect(room: string, options?: Partial<ClientOptions>): Promise<WzpClient>;
  close(): Promise<void>;
}

export async function startRelay(
  overrides: Partial<RelayConfigInput> = {},
  identity: Identity = Identity.generate(),
): Promise<TestRelay> {
  const config = loadConfig({
    overrides: {
      udp_host: '127.0.0.1',
      udp_port: 0,
      signal_host: '127.0.0.1',
      signal_port: 0,
      http_host: '127.0.0.1',
      http_port: 0,
      log_level: 'debug',
      // The media send path under test: the vitest project `udp-dgram` sets dgram
      // (vitest.config.ts); otherwise native when the add-on is built.
      udp_io: TEST_UDP_IO,
      // One worker keeps the many short relays of the suite cheap; the vitest
      // project `workers-2` sets TEST_MEDIA_WORKERS=2 (vitest.config.ts); tests
      // of placement across workers ask for more.
      media_workers: TEST_MEDIA_WORKERS,
      ...overrides,
    },
  });
  const logs: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split('\n')) {
        if (line.trim() !== '') {
          logs.push(JSON.parse(line) as Record<string, unknown>);
        }
      }
      cb();
    },
  });
  const relay = new Relay({
    config,
    identity,
    logger: createLogger({ level: config.log_level, destination }),
  });
  const ports = await relay.start();
  const url = `ws://127.0.0.1:${ports.signalPort}/v2/signal`;
  const clients: WzpClient[] = [];
  return {
    relay,
    url,
    httpUrl: `http://127.0.0.1:${ports.httpPort}`,
    logs,
    clients,
    async connect(room, options = {}) {
      const c = await WzpClient.connect({ signalUrl: url, room, ...options });
      clients.push(c);
      return c;
    },
    async close() {
      await Promise.all(clients.map((c) => c.close(false)));
      await relay.stop();
    },
  };
}

/** Waits until `cond()` holds, polling every 5 ms, failing after `ms`. */
export async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** `until` for a condition that has to ask something (HTTP, Redis): polls every 50 ms. */
export async function untilAsync(
  cond: () => Promise<boolean>,
  what: string,
  ms = 3000,
): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Collects every media event of a client. */
export function collect(client: WzpClient): ReceivedMedia[] {
  const got: ReceivedMedia[] = [];
  client.on('media', (m) => got.push(m));
  return got;
}

/**
 * What a receiver gets of a sender's compact frames: the same bytes, except
 * that a MINI frame whose number (1-based) is a multiple of `anchor` arrives
 * as its FULL form (the header it stands for, its payload).
 */
export function expandAnchors(frames: Buffer[], anchor = 10): Buffer[] {
  const ctx = new MiniContext();
  return frames.map((f, k) => {
    const { header, payload } = decodeCompactFrame(f, ctx);
    if (f[0] !== FrameType.Mini || (k + 1) % anchor !== 0) {
      return f;
    }
    const full = Buffer.alloc(1 + 16 + payload.length);
    full[0] = FrameType.Full;
    writeHeaderUnchecked(header, full, 1);
    Buffer.from(payload).copy(full, 17);
    return full;
  });
}
