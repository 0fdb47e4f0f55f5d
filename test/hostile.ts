/**
 * The attack window of the issue 12 tests against a relay child process:
 * relays, legitimate rooms, raw peers and sockets are tracked (`cleanup`
 * closes them; run it in afterEach), and `begin` / `end` bracket an attack
 * with the targets every signalling attack is held to: the legitimate room
 * keeps ≥ 99 % delivery, no frame blocks the relay's event loop for more
 * than 20 ms, relay RSS grows by less than 64 MB. Each window prints its
 * numbers on a `[hostile]` line (docs/operator.md, "Hostile input").
 */
import { expect } from 'vitest';
import { RawPeer } from '../src/conformance/attacks.js';
import { sleep } from './helpers.js';
import { type LegitRoom, legitRoom } from './legit-room.js';
import {
  type ChildOptions,
  type ChildRelay,
  framesSlowerThan,
  metricValue,
  startChildRelay,
} from './relay-child.js';

export const MB = 1 << 20;
/** Issue 12: relay RSS grows by less than this during an attack (every Node version). */
export const RSS_GROWTH_TARGET = 64 * MB;

let relays: ChildRelay[] = [];
let rooms: LegitRoom[] = [];
let peers: RawPeer[] = [];
let sockets: Closable[] = [];

/** A TCP socket (destroy) or a UDP socket (close). */
type Closable = { destroy(): void } | { close(): void };

/** Closes everything the helpers below started (afterEach). */
export async function cleanup(): Promise<void> {
  for (const p of peers) {
    p.close();
  }
  for (const s of sockets) {
    if ('destroy' in s) {
      s.destroy();
    } else {
      s.close();
    }
  }
  await Promise.all(rooms.map((r) => r.close()));
  await Promise.all(relays.map((r) => r.stop()));
  relays = [];
  rooms = [];
  peers = [];
  sockets = [];
}

/** A relay child process, stopped by `cleanup`. */
export async function relay(options: ChildOptions = {}): Promise<ChildRelay> {
  const r = await startChildRelay(options);
  relays.push(r);
  return r;
}

/** A legitimate 3-person room on `r` (signalling from `signalLocalAddress` when given). */
export async function room(
  r: ChildRelay,
  name: string,
  signalLocalAddress?: string,
): Promise<LegitRoom> {
  const lr = await legitRoom(
    r.url,
    name,
    signalLocalAddress === undefined ? {} : { signalLocalAddress },
  );
  rooms.push(lr);
  return lr;
}

/** A raw signalling peer, closed by `cleanup`. */
export function peer(url: string, options: ConstructorParameters<typeof RawPeer>[1] = {}): RawPeer {
  const p = new RawPeer(url, options);
  peers.push(p);
  return p;
}

/** Tracks a socket for `cleanup`; returns it. */
export function track<T extends Closable>(socket: T): T {
  sockets.push(socket);
  return socket;
}

export function report(attack: string, numbers: Record<string, unknown>): void {
  console.log(`[hostile] ${attack} ${JSON.stringify(numbers)}`);
}

export interface Window {
  rss0: number;
  m0: string;
  t0: number;
}

/** Starts the room streaming and takes the baseline (after a warm-up that includes its steady state). */
export async function begin(r: ChildRelay, lr: LegitRoom): Promise<Window> {
  lr.start();
  await sleep(300);
  return { rss0: r.rss(), m0: await r.metrics(), t0: performance.now() };
}

/**
 * Per-frame histograms of the relay, by report prefix: `<metric>_seconds`
 * (wall) and `<metric>_cpu_seconds` (main-thread CPU).
 */
export const FRAME_HISTOGRAMS = {
  signal: 'wzp_relay_signal_frame',
  federation: 'wzp_federation_frame',
} as const;

export interface EndOptions {
  /** More numbers for the report line. */
  extra?: Record<string, unknown>;
  /** Which per-frame histograms the 20 ms target is checked on (default: signal). */
  frames?: readonly (keyof typeof FRAME_HISTOGRAMS)[];
}

/** Ends the window: delivery, per-frame time, RSS growth, with the common target assertions. */
export async function end(
  attack: string,
  r: ChildRelay,
  lr: LegitRoom,
  w: Window,
  options: EndOptions = {},
): Promise<string> {
  const d = await lr.stop();
  const m1 = await r.metrics();
  const rssGrowth = r.rss() - w.rss0;
  const delta = (name: string): number => metricValue(m1, name) - metricValue(w.m0, name);
  const numbers: Record<string, unknown> = {
    seconds: Math.round(performance.now() - w.t0) / 1000,
    delivery_pct: Math.round(d.delivery * 10_000) / 100,
    received: d.received,
    expected: d.expected,
  };
  const slowest: Record<string, number> = {};
  for (const family of options.frames ?? ['signal']) {
    const metric = FRAME_HISTOGRAMS[family];
    const cpu = `${metric}_cpu_seconds`;
    const wall = `${metric}_seconds`;
    const over = (name: string): number =>
      framesSlowerThan(m1, '0.02', name) - framesSlowerThan(w.m0, '0.02', name);
    const slow = over(cpu);
    const slowWall = over(wall);
    // The signal family keeps its unprefixed names (docs/operator.md quotes them).
    const p = family === 'signal' ? '' : `${family}_`;
    numbers[`${p}frames`] = delta(`${wall}_count`);
    numbers[`${p}frames_over_20ms_cpu`] = slow;
    numbers[`${p}frames_over_20ms_wall`] = slowWall;
    numbers[`${p}frame_cpu_sum_ms`] = Math.round(delta(`${cpu}_sum`) * 1e5) / 100;
    numbers[`${p}frame_wall_sum_ms`] = Math.round(delta(`${wall}_sum`) * 1e5) / 100;
    slowest[family] = Math.min(slow, slowWall);
  }
  report(attack, {
    ...numbers,
    rss_growth_mb: Math.round((rssGrowth / MB) * 10) / 10,
    eventloop_lag_max_ms:
      Math.round(metricValue(m1, 'wzp_nodejs_eventloop_lag_max_seconds') * 1e4) / 10,
    ...options.extra,
  });
  expect(d.delivery).toBeGreaterThanOrEqual(0.99);
  // A frame that blocks the loop > 20 ms spends > 20 ms both in wall time and in main-thread CPU
  // (main-thread CPU <= wall). Wall alone is inflated by a loaded machine; the CPU count is the
  // main thread's: process.threadCpuUsage on Node 24, /proc/thread-self/stat (10 ms ticks, so a
  // reading above 20 ms still means more than 20 ms) on Node 20; media workers and V8's background
  // threads are not in it. The target holds when either count is zero.
  for (const [family, n] of Object.entries(slowest)) {
    expect(n, `${family} frames over 20 ms`).toBe(0);
  }
  expect(rssGrowth).toBeLessThan(RSS_GROWTH_TARGET);
  return m1;
}
