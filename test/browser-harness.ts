/**
 * Headless Chromium for the browser tests and the browser bench: finds
 * Debian's chromium, writes tone WAV files for the fake microphone,
 * launches a browser per tone with fake devices, and a Goertzel filter to
 * recognise a tone in decoded audio.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';

const CANDIDATES = [
  process.env.CHROMIUM_PATH,
  '/usr/bin/chromium',
  '/usr/bin/chromium-browser',
  '/usr/bin/google-chrome',
].filter((p): p is string => p !== undefined && p !== '');

/** The Chromium binary, or null when none is installed. */
export function findChromium(): string | null {
  return CANDIDATES.find((p) => existsSync(p)) ?? null;
}

/**
 * A 16-bit mono WAV: `seconds` of a sine at `hz`. With `burst`, the tone is
 * on for `burst.onMs` every `burst.periodMs` (silence otherwise), for
 * latency measurements.
 */
export function toneWav(
  path: string,
  hz: number,
  seconds: number,
  burst?: { onMs: number; periodMs: number },
): void {
  const rate = 48_000;
  const n = Math.round(rate * seconds);
  const buf = Buffer.alloc(44 + n * 2);
  buf.write('RIFF', 0);
  buf.writeUInt32LE(36 + n * 2, 4);
  buf.write('WAVE', 8);
  buf.write('fmt ', 12);
  buf.writeUInt32LE(16, 16);
  buf.writeUInt16LE(1, 20);
  buf.writeUInt16LE(1, 22);
  buf.writeUInt32LE(rate, 24);
  buf.writeUInt32LE(rate * 2, 28);
  buf.writeUInt16LE(2, 32);
  buf.writeUInt16LE(16, 34);
  buf.write('data', 36);
  buf.writeUInt32LE(n * 2, 40);
  for (let i = 0; i < n; i++) {
    const t = i / rate;
    const on = burst === undefined || (t * 1000) % burst.periodMs < burst.onMs;
    const v = on ? Math.sin(2 * Math.PI * hz * t) * 0.5 : 0;
    buf.writeInt16LE(Math.round(v * 32767), 44 + i * 2);
  }
  writeFileSync(path, buf);
}

export interface LaunchedBrowser {
  browser: Browser;
  dir: string;
  close(): Promise<void>;
}

/** One headless Chromium whose fake microphone plays `wav`. */
export async function launchWithTone(
  executablePath: string,
  wav: string,
): Promise<LaunchedBrowser> {
  const dir = mkdtempSync(join(tmpdir(), 'wzp-chromium-'));
  const browser = await puppeteer.launch({
    executablePath,
    headless: true,
    userDataDir: dir,
    protocolTimeout: 60_000,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-dev-shm-usage',
      '--use-fake-ui-for-media-stream',
      '--use-fake-device-for-media-stream',
      `--use-file-for-fake-audio-capture=${wav}`,
      '--autoplay-policy=no-user-gesture-required',
    ],
  });
  return {
    browser,
    dir,
    async close() {
      await browser.close().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Share of the signal's energy at `hz` (Goertzel), 0..1. */
export function toneShare(samples: ArrayLike<number>, hz: number, rate = 48_000): number {
  const n = samples.length;
  if (n === 0) {
    return 0;
  }
  const k = Math.round((n * hz) / rate);
  const w = (2 * Math.PI * k) / n;
  const coeff = 2 * Math.cos(w);
  let s1 = 0;
  let s2 = 0;
  let energy = 0;
  for (let i = 0; i < n; i++) {
    const x = samples[i] as number;
    energy += x * x;
    const s0 = x + coeff * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  const power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
  // A pure tone at the bin puts n/2 · energy into the Goertzel power.
  return energy === 0 ? 0 : Math.min(1, power / ((n / 2) * energy));
}

export interface PageStats {
  room: string;
  participants: number;
  peers: Record<
    string,
    {
      alias: string | null;
      audioFramesDecoded: number;
      videoFramesDecoded: number;
      audioLevel: number;
    }
  >;
}

/** `window.wzpStats()` of a page (null before the call started). */
export async function wzpStats(page: Page): Promise<PageStats | null> {
  return page.evaluate(
    () => (globalThis as unknown as { wzpStats?: () => unknown }).wzpStats?.() ?? null,
  ) as Promise<PageStats | null>;
}

/** `getStats()` of the page's call. */
export async function callStats(page: Page): Promise<{
  state: string;
  tag: number;
  reconnects: number;
  e2ee: { enabled: boolean; impl: string | null };
  sent: { audioPackets: number; audioFrames: number; videoPackets: number; videoFrames: number };
  peers: {
    tag: number;
    alias: string | null;
    audioPackets: number;
    audioFramesDecoded: number;
    audioHighestSeq: number;
    audioLost: number;
    decryptFailures: number;
    e2ee: string;
  }[];
} | null> {
  return page.evaluate(() => {
    const call = (globalThis as unknown as { wzpCall?: { getStats(): unknown } }).wzpCall;
    return call === undefined ? null : call.getStats();
  }) as never;
}

/** The last second of decoded audio from `tag` in the page. */
export async function recentAudio(page: Page, tag: number): Promise<number[]> {
  return page.evaluate((t) => {
    const call = (globalThis as unknown as { wzpCall?: { recentAudio(tag: number): Float32Array } })
      .wzpCall;
    return call === undefined ? [] : Array.from(call.recentAudio(t));
  }, tag);
}

export async function waitFor(
  cond: () => Promise<boolean> | boolean,
  what: string,
  ms: number,
  stepMs = 100,
): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (await cond()) {
      return;
    }
    if (Date.now() > end) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
