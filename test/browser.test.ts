/**
 * The browser client and the web app in real headless Chromium (Debian's
 * chromium, driven by puppeteer-core) against a real relay: two browsers
 * with fake devices playing different tones, a Node client in the same
 * room, then mute, the dashboard, and a relay restart. Two browser launches
 * for the whole file (the fake microphone file is per launch).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HubClient, type ReceivedMedia, WzpClient } from '../src/client/index.js';
import { FLAG_KEYFRAME, MediaType } from '../src/wire/index.js';
import {
  callStats,
  findChromium,
  type LaunchedBrowser,
  launchWithTone,
  recentAudio,
  toneShare,
  toneWav,
  waitFor,
  wzpStats,
} from './browser-harness.js';
import { startRelay, type TestRelay } from './helpers.js';
import { REDIS_BIN, TestRedis } from './redis.js';

const chromium = findChromium();
if (chromium === null) {
  console.warn(
    'browser tests SKIPPED: no chromium found (set CHROMIUM_PATH or `apt-get install -y chromium`; .ci/run installs it)',
  );
}

const ROOT = new URL('..', import.meta.url).pathname;
const ROOM_KEY = 'k7Qm3xVb9TzLp2sWnYc8RfGh4JdKa6EuXo1iPqBvM0w';
const TONE = { A: 440, B: 880 };

describe.skipIf(chromium === null)('browser client in headless Chromium', () => {
  let dir = '';
  let relay: TestRelay;
  let signalPort = 0;
  let httpPort = 0;
  let a: LaunchedBrowser;
  let b: LaunchedBrowser;
  let pageA: Page;
  let pageB: Page;
  let node: WzpClient;
  const nodeGot: ReceivedMedia[] = [];
  const nodeErrors: string[] = [];
  let tagA = 0;
  let tagB = 0;
  let pingTimer: NodeJS.Timeout | undefined;
  /** Screenshots go to docs/img with UPDATE_DOCS=1 (the user guide's pictures), else a temp dir. */
  let shots = '';

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wzp-browser-test-'));
    shots = process.env.UPDATE_DOCS === '1' ? join(ROOT, 'docs', 'img') : dir;
    mkdirSync(shots, { recursive: true });
    const { buildWeb } = (await import(join(ROOT, 'scripts', 'build-web.mjs'))) as {
      buildWeb: () => Promise<string>;
    };
    await buildWeb();
    toneWav(join(dir, 'a.wav'), TONE.A, 30);
    toneWav(join(dir, 'b.wav'), TONE.B, 30);
    relay = await startRelay({ log_level: 'info' });
    signalPort = relay.relay.ports.signalPort;
    httpPort = relay.relay.ports.httpPort;
    [a, b] = await Promise.all([
      launchWithTone(chromium as string, join(dir, 'a.wav')),
      launchWithTone(chromium as string, join(dir, 'b.wav')),
    ]);
    // A Node client over UDP in the same room, with the room key: it must authenticate both.
    node = await relay.connect('lobby', {
      alias: 'node',
      // The web app reads a 43-character key as base64url (32 bytes).
      roomKey: Buffer.from(ROOM_KEY, 'base64url'),
    });
    node.on('media', (m) => nodeGot.push(m));
    // A receive-only client keeps its session alive with PINGs (BINDING §4).
    pingTimer = setInterval(() => void node.ping().catch(() => {}), 3000);
    node.on('decodeError', (e) => nodeErrors.push(e));
  }, 120_000);

  afterAll(async () => {
    clearInterval(pingTimer);
    await a?.close();
    await b?.close();
    await relay?.close();
    if (dir !== '') {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  const url = (name: string, extra = '') =>
    `http://127.0.0.1:${signalPort}/?room=lobby&name=${name}&join=1&video=320x240${extra}#key=${ROOM_KEY}`;

  it('two pages and a Node client: audio both ways with the right tone, video, E2EE checked by the Node client, one tile each', async () => {
    pageA = await a.browser.newPage();
    pageB = await b.browser.newPage();
    const logs: string[] = [];
    for (const [n, p] of [
      ['A', pageA],
      ['B', pageB],
    ] as const) {
      p.on('console', (m) => logs.push(`${n}: ${m.text()}`));
      p.on('pageerror', (e) => logs.push(`${n} error: ${(e as Error).message}`));
    }
    // B uses the pure-JS cipher, A WebCrypto's where the browser has it: each must open the
    // other's payloads.
    await pageA.goto(url('alice'));
    await pageB.goto(url('bob', '&cipher=js'));
    try {
      await waitFor(
        async () =>
          (await wzpStats(pageA))?.participants === 2 &&
          (await wzpStats(pageB))?.participants === 2,
        'both pages see two others',
        30_000,
      );
    } catch (err) {
      console.log(logs.join('\n'));
      throw err;
    }
    const sa = await callStats(pageA);
    const sb = await callStats(pageB);
    tagA = sa?.tag ?? 0;
    tagB = sb?.tag ?? 0;
    // A asks for 'auto': WebCrypto's ChaCha20-Poly1305 where this Chromium has it ('raw-secret',
    // Chromium ≥ 156), else the pure-JS cipher. The page is probed independently of the client.
    const nativeChaCha = await pageA.evaluate(async () => {
      try {
        const key = await crypto.subtle.importKey(
          'raw-secret' as 'raw',
          new Uint8Array(32),
          { name: 'ChaCha20-Poly1305' },
          false,
          ['encrypt'],
        );
        await crypto.subtle.encrypt(
          { name: 'ChaCha20-Poly1305', iv: new Uint8Array(12) } as unknown as Parameters<
            typeof crypto.subtle.encrypt
          >[0],
          key,
          new Uint8Array(1),
        );
        return true;
      } catch {
        return false;
      }
    });
    console.log(
      `[browser] ${await a.browser.version()}: WebCrypto ChaCha20-Poly1305 ${nativeChaCha}`,
    );
    expect(sa?.e2ee).toEqual({ enabled: true, impl: nativeChaCha ? 'webcrypto' : 'js' });
    expect(sb?.e2ee).toEqual({ enabled: true, impl: 'js' });
    // Warm up, then measure a window: frames B decoded from A against frames A sent.
    await waitFor(
      async () => ((await wzpStats(pageB))?.peers[tagA]?.audioFramesDecoded ?? 0) > 50,
      'B decodes A',
      30_000,
    ).catch((err) => {
      console.log(logs.join('\n'));
      throw err;
    });
    // Frames decoded in a window against the frames the sender numbered in it (its audio seq).
    const peerOf = (st: Awaited<ReturnType<typeof callStats>>, tag: number) =>
      st?.peers.find((p) => p.tag === tag);
    const before = await Promise.all([callStats(pageA), callStats(pageB)]);
    // At least 8 s, and until each side has sent 150 frames in the window (a starved machine
    // captures audio slower than real time), at most 40 s.
    const windowStart = Date.now();
    let after = before;
    for (;;) {
      await new Promise((r) => setTimeout(r, 1000));
      after = await Promise.all([callStats(pageA), callStats(pageB)]);
      const sentIn = (who: 0 | 1, from: number) =>
        (peerOf(after[who], from)?.audioHighestSeq ?? 0) -
        (peerOf(before[who], from)?.audioHighestSeq ?? 0);
      const elapsed = Date.now() - windowStart;
      if (
        elapsed >= 40_000 ||
        (elapsed >= 8000 && sentIn(0, tagB) >= 150 && sentIn(1, tagA) >= 150)
      ) {
        break;
      }
    }
    const window = (who: 0 | 1, from: number) => {
      const p0 = peerOf(before[who], from);
      const p1 = peerOf(after[who], from);
      return {
        sent: (p1?.audioHighestSeq ?? 0) - (p0?.audioHighestSeq ?? 0),
        decoded: (p1?.audioFramesDecoded ?? 0) - (p0?.audioFramesDecoded ?? 0),
        arrived: (p1?.audioPackets ?? 0) - (p0?.audioPackets ?? 0),
        decryptFailures: p1?.decryptFailures ?? 0,
      };
    };
    const aFromB = window(0, tagB);
    const bFromA = window(1, tagA);
    console.log({ aFromB, bFromA });
    // Legitimate browser media is never policed (issue 12 item 7): no tier dropped any of it.
    const policed = relay.relay.mediaPoliced();
    console.log({ policed });
    expect(relay.logs.filter((l) => l.msg === 'media over its policed limits')).toEqual([]);
    expect(policed).toBe(0);
    // 400 frames of 20 ms would be real time; a loaded 2-core machine captures less.
    expect(aFromB.sent).toBeGreaterThan(100);
    expect(bFromA.sent).toBeGreaterThan(100);
    expect(aFromB.decoded / aFromB.sent).toBeGreaterThanOrEqual(0.9);
    expect(bFromA.decoded / bFromA.sent).toBeGreaterThanOrEqual(0.9);
    expect(aFromB.decryptFailures + bFromA.decryptFailures).toBe(0);
    const statsA = await wzpStats(pageA);
    const statsB = await wzpStats(pageB);
    // Each recognises the other's tone in what it decoded (its last second; a starved machine
    // decodes in bursts with gaps, so wait for a full second of it).
    await waitFor(
      async () =>
        toneShare(await recentAudio(pageA, tagB), TONE.B) > 0.5 &&
        toneShare(await recentAudio(pageB, tagA), TONE.A) > 0.5,
      "each hears the other's tone",
      20_000,
    ).catch(() => {});
    const heardByA = await recentAudio(pageA, tagB);
    const heardByB = await recentAudio(pageB, tagA);
    const shares = {
      aHearsB: toneShare(heardByA, TONE.B),
      aHearsA: toneShare(heardByA, TONE.A),
      bHearsA: toneShare(heardByB, TONE.A),
      bHearsB: toneShare(heardByB, TONE.B),
    };
    console.log(shares);
    expect(shares.aHearsB).toBeGreaterThan(0.5);
    expect(shares.bHearsA).toBeGreaterThan(0.5);
    expect(shares.aHearsA).toBeLessThan(0.1);
    expect(shares.bHearsB).toBeLessThan(0.1);
    // Video frames decoded both ways.
    expect(statsA?.peers[tagB]?.videoFramesDecoded ?? 0).toBeGreaterThan(20);
    expect(statsB?.peers[tagA]?.videoFramesDecoded ?? 0).toBeGreaterThan(20);
    expect(statsA?.peers[tagB]?.alias).toBe('bob');
    expect(statsA?.room).toBe('lobby');
    // The Node client authenticated both browsers' payloads (audio and video).
    const fromA = nodeGot.filter((m) => m.senderTag === tagA);
    const fromB = nodeGot.filter((m) => m.senderTag === tagB);
    expect(fromA.filter((m) => m.header.mediaType === MediaType.Audio).length).toBeGreaterThan(150);
    expect(fromB.filter((m) => m.header.mediaType === MediaType.Audio).length).toBeGreaterThan(150);
    expect(fromA.filter((m) => m.header.mediaType === MediaType.Video).length).toBeGreaterThan(20);
    expect(nodeErrors.filter((e) => e.includes('authentication'))).toEqual([]);
    // What the browsers send, against the policer's limits (docs/operator.md, media policing):
    // audio payload sizes, video bytes/s and the largest keyframe, as the Node client got them.
    const sentShape = (from: ReceivedMedia[]) => {
      const audioSizes = from
        .filter((m) => m.header.mediaType === MediaType.Audio)
        .map((m) => m.frame.length);
      const video = from.filter((m) => m.header.mediaType === MediaType.Video);
      const keyframes = new Map<string, number>();
      for (const m of video) {
        if ((m.header.flags & FLAG_KEYFRAME) !== 0) {
          const k = `${m.header.streamId}/${m.header.timestamp}`;
          keyframes.set(k, (keyframes.get(k) ?? 0) + m.frame.length);
        }
      }
      const ts = video.map((m) => m.header.timestamp);
      const seconds = Math.max(1, Math.max(...ts) - Math.min(...ts)) / 1000;
      return {
        audioFrameBytes: [Math.min(...audioSizes), Math.max(...audioSizes)],
        videoBytesPerSec: Math.round(video.reduce((n, m) => n + m.frame.length, 0) / seconds),
        largestKeyframe: Math.max(0, ...keyframes.values()),
      };
    };
    console.log({ sentByA: sentShape(fromA), sentByB: sentShape(fromB) });
    // The screenshot shows one tile per participant (self, the other page, the Node client).
    expect(await pageA.$$eval('.tile', (t) => t.length)).toBe(3);
    await pageA.setViewport({ width: 1100, height: 720 });
    await new Promise((r) => setTimeout(r, 500));
    await pageA.screenshot({ path: join(shots, 'web-call.png') });
  }, 150_000);

  it('mute stops audio packets; unmute resumes them', async () => {
    const audioFromA = () =>
      nodeGot.filter((m) => m.senderTag === tagA && m.header.mediaType === MediaType.Audio).length;
    await pageA.click('#mute');
    await new Promise((r) => setTimeout(r, 600));
    const sentAtMute = (await callStats(pageA))?.sent.audioPackets ?? 0;
    const gotAtMute = audioFromA();
    await new Promise((r) => setTimeout(r, 2000));
    expect((await callStats(pageA))?.sent.audioPackets).toBe(sentAtMute);
    expect(audioFromA()).toBe(gotAtMute);
    expect(await pageA.$eval('#mute', (b) => b.textContent)).toBe('Unmute');
    // Video keeps flowing while muted.
    const videoBefore = (await wzpStats(pageB))?.peers[tagA]?.videoFramesDecoded ?? 0;
    await waitFor(
      async () => ((await wzpStats(pageB))?.peers[tagA]?.videoFramesDecoded ?? 0) > videoBefore + 5,
      'video while muted',
      15_000,
    );
    await pageA.click('#mute');
    await waitFor(() => audioFromA() > gotAtMute + 20, 'audio after unmute', 15_000).catch(
      async (err) => {
        console.log(
          JSON.stringify([
            await callStats(pageA),
            relay.logs
              .filter((l) => String(l.msg).includes('session') || String(l.msg).includes('joined'))
              .map((l) => [l.msg, l.reason, l.session, l.tag]),
          ]),
        );
        throw err;
      },
    );
  }, 60_000);

  it('the dashboard renders the room with its participants', async () => {
    const page = await a.browser.newPage();
    await page.setViewport({ width: 1200, height: 800 });
    await page.goto(`http://127.0.0.1:${httpPort}/dashboard`);
    await page.waitForSelector('body[data-ready="1"]', { timeout: 20_000 });
    await new Promise((r) => setTimeout(r, 2500));
    const rows = await page.$$eval('#rooms tbody tr', (trs) =>
      trs.map((tr) =>
        Array.from(tr.querySelectorAll('td')).map(
          (td) => (td as { textContent: string | null }).textContent ?? '',
        ),
      ),
    );
    expect(rows).toHaveLength(3);
    expect(rows[0]?.[0]).toBe('lobby');
    expect(rows.map((r) => r[2]).sort()).toEqual(['alice', 'bob', 'node']);
    expect(rows.map((r) => r[5]).sort()).toEqual(['udp', 'websocket', 'websocket']);
    expect(await page.$eval('#pps-legend', (e) => e.textContent)).toMatch(/in \d+\/s/);
    await page.screenshot({ path: join(shots, 'dashboard.png') });
    await page.close();
  }, 60_000);

  it('pages reconnect after the relay restarts, with a new handshake and bind', async () => {
    await relay.close();
    relay = await startRelay({ log_level: 'info', signal_port: signalPort, http_port: httpPort });
    await waitFor(
      async () => {
        const [x, y] = [await callStats(pageA), await callStats(pageB)];
        return x?.state === 'connected' && y?.state === 'connected' && (x?.reconnects ?? 0) >= 1;
      },
      'both pages reconnected',
      40_000,
    );
    await waitFor(
      async () =>
        (await wzpStats(pageA))?.participants === 1 && (await wzpStats(pageB))?.participants === 1,
      'both pages see each other again',
      20_000,
    );
    const tagB2 = (await callStats(pageB))?.tag ?? 0;
    await waitFor(
      async () => ((await wzpStats(pageA))?.peers[tagB2]?.audioFramesDecoded ?? 0) > 25,
      'audio after the restart',
      20_000,
    );
    expect(relay.relay.mediaPaths.size).toBe(2);
  }, 90_000);

  // ── direct calls (issue 16): the web app's hub UI ──────────────────────────

  let callA: Page;
  let callB: Page;
  let fpA = '';
  let fpB = '';
  const home = (name: string) => `http://127.0.0.1:${signalPort}/?name=${name}&video=320x240`;
  const visible = (p: Page, sel: string) =>
    p.$eval(sel, (e) => !(e as unknown as { hidden: boolean }).hidden).catch(() => false);
  const text = (p: Page, sel: string) =>
    p.$eval(sel, (e) => (e as unknown as { textContent: string | null }).textContent ?? '');
  const setContacts = (p: Page, fps: string[]) =>
    p.$eval(
      '#contacts',
      (e, v) => {
        (e as unknown as { value: string }).value = v;
      },
      fps.join('\n'),
    );
  const contactsShown = (p: Page) =>
    p.$$eval('#presence li', (lis) =>
      lis.map((li) => (li as unknown as { dataset: { fingerprint: string } }).dataset.fingerprint),
    );

  it('direct call in the web app: presence per the contacts policy, A calls B, B accepts, both in call-<id> with the call key, each decodes the other', async () => {
    // The lobby pages leave (a loaded 2-core machine runs two pages at a time, not four).
    await pageA?.close();
    await pageB?.close();
    callA = await a.browser.newPage();
    callB = await b.browser.newPage();
    await callA.goto(home('alice'));
    await callB.goto(home('bob'));
    // Each browser's identity (IndexedDB) is shown before going online.
    const identityOf = (p: Page) =>
      p.$eval('body', (e) => (e as unknown as { dataset: { identity?: string } }).dataset.identity);
    await waitFor(
      async () =>
        (await identityOf(callA)) !== undefined && (await identityOf(callB)) !== undefined,
      'identities',
      15_000,
    );
    fpA = (await identityOf(callA)) as string;
    fpB = (await identityOf(callB)) as string;
    expect(fpA).toMatch(/^([0-9a-f]{4}:){7}[0-9a-f]{4}$/);
    expect(fpA).not.toBe(fpB);
    expect(await text(callA, '#my-fp')).toBe(fpA);
    // A lists B; B lists nobody yet: under the default policy ("contacts") neither sees the other.
    await setContacts(callA, [fpB]);
    await callA.click('#go-online');
    await callB.click('#go-online');
    for (const p of [callA, callB]) {
      await waitFor(async () => (await text(p, '#hub-state')) === 'online', 'online', 15_000);
    }
    expect(await contactsShown(callA)).toEqual([]);
    expect(await contactsShown(callB)).toEqual([]);
    // Now B lists A too (a new registration): both see each other.
    await setContacts(callB, [fpA]);
    await callB.click('#go-online');
    await waitFor(
      async () =>
        (await contactsShown(callA)).includes(fpB) && (await contactsShown(callB)).includes(fpA),
      'mutual contacts shown',
      15_000,
    );
    expect(await text(callA, '#presence li .who')).toContain('bob');
    // The identity survives a reload (IndexedDB).
    await callA.reload();
    await waitFor(async () => (await identityOf(callA)) !== undefined, 'identity again', 15_000);
    expect(await identityOf(callA)).toBe(fpA);
    expect(await callA.$eval('#contacts', (e) => (e as unknown as { value: string }).value)).toBe(
      fpB,
    );
    await callA.click('#go-online');
    await waitFor(async () => (await contactsShown(callA)).includes(fpB), 'B shown again', 15_000);

    // A calls B from the contact list: A sees it ring, B gets the incoming dialog.
    await callA.click(`#presence li[data-fingerprint="${fpB}"] button`);
    await waitFor(async () => await visible(callB, '#ring'), 'incoming call dialog', 15_000);
    expect(await text(callB, '#ring-title')).toBe('alice is calling');
    expect(await text(callB, '#ring-fp')).toBe(fpA);
    expect(await visible(callB, '#ring-accept')).toBe(true);
    await waitFor(
      async () => (await text(callA, '#ring-status')) === 'Ringing…',
      'caller sees ringing',
      10_000,
    );
    expect(await visible(callA, '#ring-cancel')).toBe(true);
    await callB.setViewport({ width: 900, height: 860 });
    await callB.evaluate(() =>
      (globalThis as unknown as { scrollTo(x: number, y: number): void }).scrollTo(0, 0),
    );
    await callB.screenshot({ path: join(shots, 'web-incoming-call.png') });
    await callB.click('#ring-accept');
    // Both join the same call-<id> room, end-to-end encrypted with the derived key.
    await waitFor(
      async () =>
        (await wzpStats(callA))?.participants === 1 && (await wzpStats(callB))?.participants === 1,
      'both in the call room',
      30_000,
    );
    const room = (await wzpStats(callA))?.room ?? '';
    expect(room).toMatch(/^call-[A-Za-z0-9_-]+$/);
    expect((await wzpStats(callB))?.room).toBe(room);
    const sa = await callStats(callA);
    const sb = await callStats(callB);
    expect(sa?.e2ee.enabled).toBe(true);
    expect(sb?.e2ee.enabled).toBe(true);
    const tA = sa?.tag ?? -1;
    const tB = sb?.tag ?? -1;
    await waitFor(
      async () =>
        ((await wzpStats(callA))?.peers[tB]?.audioFramesDecoded ?? 0) > 60 &&
        ((await wzpStats(callB))?.peers[tA]?.audioFramesDecoded ?? 0) > 60,
      'each decodes the other',
      30_000,
    );
    const [ea, eb] = [await callStats(callA), await callStats(callB)];
    expect(ea?.peers[0]?.e2ee).toBe('encrypted');
    expect(eb?.peers[0]?.e2ee).toBe('encrypted');
    expect((ea?.peers[0]?.decryptFailures ?? 1) + (eb?.peers[0]?.decryptFailures ?? 1)).toBe(0);
    // Each recognises the other's tone in the last second it decoded (a starved machine may
    // decode in bursts with gaps: wait for a full second of it).
    await waitFor(
      async () =>
        toneShare(await recentAudio(callA, tB), TONE.B) > 0.5 &&
        toneShare(await recentAudio(callB, tA), TONE.A) > 0.5,
      "each hears the other's tone",
      20_000,
    );
    expect(toneShare(await recentAudio(callA, tB), TONE.A)).toBeLessThan(0.1);
    expect(await text(callA, '#room-name')).toBe('Call with bob');
    await callA.setViewport({ width: 1100, height: 720 });
    await callA.screenshot({ path: join(shots, 'web-direct-call.png') });
    // A hangs up: B's app leaves the call room too, both are back online and idle.
    await callA.click('#leave');
    await waitFor(
      async () => (await visible(callB, '#join-view')) && (await visible(callA, '#join-view')),
      'both back on the start view',
      15_000,
    );
    expect(await text(callB, '#call-error')).toBe('Call ended: the call ended');
    expect(await text(callA, '#hub-state')).toBe('online');
  }, 60_000);

  it('direct call: B rejects (A sees declined); A cancels while ringing (B sees a missed call)', async () => {
    await callA.click(`#presence li[data-fingerprint="${fpB}"] button`);
    await waitFor(async () => await visible(callB, '#ring'), 'incoming call dialog', 15_000);
    await callB.click('#ring-reject');
    await waitFor(
      async () => (await text(callA, '#call-error')) === 'Call not connected: declined',
      'caller told declined',
      15_000,
    );
    expect(await visible(callA, '#ring')).toBe(false);
    expect(await visible(callB, '#ring')).toBe(false);
    expect((await wzpStats(callA)) === null && (await wzpStats(callB)) === null).toBe(true);
    // Again, and A cancels before B answers.
    await callA.click(`#presence li[data-fingerprint="${fpB}"] button`);
    await waitFor(async () => await visible(callB, '#ring'), 'incoming call dialog', 15_000);
    await waitFor(
      async () => (await text(callA, '#ring-status')) === 'Ringing…',
      'caller sees ringing',
      10_000,
    );
    await callA.click('#ring-cancel');
    await waitFor(async () => !(await visible(callB, '#ring')), 'callee dialog gone', 15_000);
    expect(await text(callB, '#call-error')).toBe('Missed call from alice');
    expect(await text(callA, '#call-error')).toBe('Call cancelled');
    // The relay counted one rejected and one cancelled call.
    const calls = (await (await fetch(`${relay.httpUrl}/metrics`)).text())
      .split('\n')
      .filter((l) => l.startsWith('wzp_calls_total'));
    expect(calls.find((l) => l.includes('outcome="rejected"'))).toMatch(/ 1$/);
    expect(calls.find((l) => l.includes('outcome="cancelled"'))).toMatch(/ 1$/);
  }, 60_000);

  it('a Node HubClient calls the page: the page derives the same call key (the Node client authenticates its payloads); the page leaves the call when its hub connection drops', async () => {
    const carol = await HubClient.connect({
      url: `ws://127.0.0.1:${signalPort}/v2/hub`,
      alias: 'carol',
    });
    let nodeCall: WzpClient | null = null;
    try {
      const { setup } = carol.call(fpB);
      setup.catch(() => {});
      await waitFor(async () => await visible(callB, '#ring'), 'incoming call dialog', 15_000);
      expect(await text(callB, '#ring-title')).toBe('carol is calling');
      await callB.click('#ring-accept');
      const s = await setup;
      const got: ReceivedMedia[] = [];
      const errors: string[] = [];
      nodeCall = await WzpClient.connect({
        signalUrl: s.relayUrl,
        room: s.room,
        identity: carol.identity,
        roomKey: s.roomKey,
        alias: 'carol',
      });
      nodeCall.on('media', (m) => got.push(m));
      nodeCall.on('decodeError', (e) => errors.push(e));
      const c = nodeCall;
      const ping = setInterval(() => void c.ping().catch(() => {}), 2000);
      try {
        await waitFor(
          () => got.filter((m) => m.header.mediaType === MediaType.Audio).length > 50,
          'Node decrypts the page audio',
          30_000,
        );
      } finally {
        clearInterval(ping);
      }
      expect(errors.filter((e) => e.includes('authentication'))).toEqual([]);
      expect((await wzpStats(callB))?.room).toBe(s.room);
      // The page loses its hub connection: the relay ends the call (carol gets a Hangup) and
      // the page leaves the call room by itself.
      const hungUp = new Promise((resolve) => carol.once('hangup', resolve));
      await callB.evaluate(() =>
        (globalThis as unknown as { wzpHub: { close(): void } }).wzpHub.close(),
      );
      await hungUp;
      await waitFor(async () => await visible(callB, '#join-view'), 'page leaves the call', 15_000);
      expect(await text(callB, '#call-error')).toBe(
        'Call ended: the connection to the hub was lost',
      );
      expect(await text(callB, '#hub-state')).toBe('offline');
    } finally {
      await nodeCall?.close(false).catch(() => {});
      await carol.close();
    }
  }, 60_000);

  // ── simulcast and subscriptions (issue 13) ──────────────────────────────────

  let simA: Page;
  let simB: Page;
  let simTagA = 0;
  let simNode: WzpClient | null = null;
  const simGot: ReceivedMedia[] = [];
  const peerStat = async (p: Page, tag: number) =>
    (await callStats(p))?.peers.find((x) => x.tag === tag) as unknown as
      | {
          videoLayer: number | null;
          videoSize: [number, number] | null;
          videoFramesDecoded: number;
          audioFramesDecoded: number;
          subscription: { video: boolean; maxLayer: number };
        }
      | undefined;
  /** B's tile of A: its inline style (the grid decides the size otherwise). */
  const styleTileOfA = (style: string) =>
    simB.$eval(
      `.tile[data-tile="${simTagA}"]`,
      (e, st) => {
        (e as unknown as { style: { cssText: string } }).style.cssText = st;
      },
      style,
    );

  it('simulcast: three layers from three encoders; a big tile gets the full layer, a small one layer 0, a hidden one no video', async () => {
    await callA?.close();
    await callB?.close();
    const room = (name: string) =>
      `http://127.0.0.1:${signalPort}/?room=simul&name=${name}&join=1&video=320x240`;
    simA = await a.browser.newPage();
    simB = await b.browser.newPage();
    await simB.setViewport({ width: 1600, height: 700 });
    await simA.goto(room('sa'));
    await simB.goto(room('sb'));
    simNode = await relay.connect('simul', { alias: 'node-sim' });
    simNode.on('media', (m) => simGot.push(m));
    await waitFor(
      async () => (await wzpStats(simB))?.participants === 2,
      'B sees A and the Node client',
      30_000,
    );
    simTagA = (await callStats(simA))?.tag ?? -1;
    // A encodes three layers: ¼, ½ and full size of its 320×240 camera.
    await waitFor(
      async () =>
        (
          (await callStats(simA)) as unknown as { layers: { frames: number }[] } | null
        )?.layers.every((l) => l.frames > 10) ?? false,
      'three layers encoded',
      20_000,
    );
    const layers = (
      (await callStats(simA)) as unknown as {
        layers: { streamId: number; width: number; height: number }[];
      }
    ).layers.map((l) => [l.streamId, l.width, l.height]);
    expect(layers).toEqual([
      [0, 80, 60],
      [1, 160, 120],
      [2, 320, 240],
    ]);
    // B's tile of A is wide (three tiles in 1600 px: > 480 px each): the relay forwards layer 2, B decodes 320×240.
    await waitFor(
      async () => {
        const st = await peerStat(simB, simTagA);
        return st?.videoLayer === 2 && st.videoSize?.[0] === 320 && st.videoFramesDecoded > 5;
      },
      'B decodes the full layer',
      30_000,
    ).catch(async (err) => {
      // What the receiver, the sender and the relay saw (for a failure on a loaded machine).
      const sa = (await callStats(simA)) as unknown as { layers: unknown; sent: unknown };
      console.log(
        JSON.stringify({
          receiver: await peerStat(simB, simTagA),
          senderLayers: sa?.layers,
          sent: sa?.sent,
          policed: relay.relay.mediaPoliced(),
        }),
      );
      throw err;
    });
    // The Node client (no subscription) gets one layer at a time: runs of one stream id (it
    // may start on a lower layer that had a keyframe first), settling on the highest.
    const nodeVideo = () =>
      simGot.filter((m) => m.senderTag === simTagA && m.header.mediaType === MediaType.Video);
    await waitFor(() => nodeVideo().length > 60, 'Node gets video', 15_000);
    const ids = nodeVideo().map((m) => m.header.streamId);
    const runs = ids.filter((id, i) => i === 0 || id !== ids[i - 1]);
    expect(runs.length).toBeLessThanOrEqual(3);
    expect(runs.at(-1)).toBe(2);
    expect(new Set(ids.slice(-30))).toEqual(new Set([2]));

    // A small tile: B asks for max_layer 0 and decodes the 80×60 layer.
    await styleTileOfA('width: 150px; aspect-ratio: 4 / 3;');
    await waitFor(
      async () => {
        const st = await peerStat(simB, simTagA);
        return st?.subscription.maxLayer === 0 && st.videoLayer === 0 && st.videoSize?.[0] === 80;
      },
      'B switched to layer 0',
      15_000,
    );
    const decodedAt0 = (await peerStat(simB, simTagA))?.videoFramesDecoded ?? 0;
    await waitFor(
      async () => ((await peerStat(simB, simTagA))?.videoFramesDecoded ?? 0) > decodedAt0 + 10,
      'B decodes layer 0',
      15_000,
    );
    // The relay says the same: B receives A on layer 0.
    const rooms = (await (await fetch(`${relay.httpUrl}/v2/rooms`)).json()) as {
      rooms: {
        name: string;
        participants: { alias: string; receiving: { tag: number; video_layer: number | null }[] }[];
      }[];
    };
    const bAtRelay = rooms.rooms
      .find((r) => r.name === 'simul')
      ?.participants.find((x) => x.alias === 'sb');
    expect(bAtRelay?.receiving.find((r) => r.tag === simTagA)?.video_layer).toBe(0);

    // Hidden tile: video off (audio keeps coming).
    await styleTileOfA('display: none;');
    await waitFor(
      async () => (await peerStat(simB, simTagA))?.subscription.video === false,
      'B unsubscribed video',
      10_000,
    );
    await new Promise((r) => setTimeout(r, 600));
    const off0 = await peerStat(simB, simTagA);
    await new Promise((r) => setTimeout(r, 2000));
    const off1 = await peerStat(simB, simTagA);
    expect((off1?.videoFramesDecoded ?? 0) - (off0?.videoFramesDecoded ?? 0)).toBeLessThanOrEqual(
      1,
    );
    expect((off1?.audioFramesDecoded ?? 0) - (off0?.audioFramesDecoded ?? 0)).toBeGreaterThan(25);

    // Shown again at full size: layer 2 again.
    await styleTileOfA('');
    await waitFor(
      async () => {
        const st = await peerStat(simB, simTagA);
        return st?.subscription.video === true && st.videoLayer === 2 && st.videoSize?.[0] === 320;
      },
      'B back on layer 2',
      15_000,
    );
  }, 60_000);

  it('a PLI makes the sender send a keyframe of that layer', async () => {
    const node = simNode as WzpClient;
    const keyframesAt = () =>
      simGot
        .filter(
          (m) =>
            m.senderTag === simTagA &&
            m.header.mediaType === MediaType.Video &&
            m.header.streamId === 2 &&
            (m.header.flags & FLAG_KEYFRAME) !== 0,
        )
        .map((m) => m.header.timestamp);
    const plis0 = (await callStats(simA))?.sent as unknown as { plisReceived: number };
    // Periodic keyframes come every 100 frames (5 s at 20 fps): five PLIs each answered within
    // 2 s would happen by chance with probability 0.4^5 (1 %); answered they are in tens of ms.
    const delays: number[] = [];
    for (let i = 0; i < 5; i++) {
      const before = new Set(keyframesAt()).size;
      const t0 = Date.now();
      node.requestKeyframe(simTagA, 2);
      // The relay forwards at most one PLI per 200 ms per (sender, stream) and sends its own:
      // one that was suppressed is asked again after a second (still inside the 2 s).
      const again = setTimeout(() => node.requestKeyframe(simTagA, 2), 1000);
      await waitFor(
        () => new Set(keyframesAt()).size > before,
        `keyframe after PLI ${i + 1}`,
        2000,
        10,
      )
        .then(() => delays.push(Date.now() - t0))
        .catch(() => {})
        .finally(() => clearTimeout(again));
      // Past the relay's PLI suppression (200 ms per sender and stream).
      await new Promise((r) => setTimeout(r, 300));
    }
    console.log({ pliToKeyframeMs: delays, policed: relay.relay.mediaPoliced() });
    expect(delays).toHaveLength(5);
    const plis1 = (await callStats(simA))?.sent as unknown as { plisReceived: number };
    expect(plis1.plisReceived - plis0.plisReceived).toBeGreaterThanOrEqual(5);
    await simNode?.close(false).catch(() => {});
    simNode = null;
  }, 60_000);

  it.skipIf(REDIS_BIN === null)(
    'fleet: a page that reaches another relay follows the Redirect to the room home',
    async () => {
      await simA?.close();
      await simB?.close();
      const redis = await TestRedis.start();
      const fleet = {
        directory_url: redis.url,
        fleet_key: randomBytes(32).toString('hex'),
        fleet_mode: 'redirect' as const,
        fleet_refresh_ms: 300,
        fleet_ttl_ms: 1200,
        log_level: 'info' as const,
      };
      const started: TestRelay[] = [];
      let home: WzpClient | null = null;
      try {
        const f1 = await startRelay({ ...fleet, relay_label: 'f1' });
        started.push(f1);
        const f2 = await startRelay({ ...fleet, relay_label: 'f2' });
        started.push(f2);
        const fleetSize = async (r: TestRelay) =>
          ((await (await fetch(`${r.httpUrl}/v2/fleet`)).json()) as { relays: unknown[] }).relays
            .length;
        await waitFor(
          async () => (await fleetSize(f1)) === 2 && (await fleetSize(f2)) === 2,
          'both relays in the directory',
          15_000,
        );
        // The room's home is f1 (a Node client made it there).
        const got: ReceivedMedia[] = [];
        home = await f1.connect('fleet-room', { alias: 'home-node' });
        home.on('media', (m) => got.push(m));
        const h = home;
        const ping = setInterval(() => void h.ping().catch(() => {}), 2000);
        try {
          // The page is served by f2 and joins there: f2 redirects it to f1.
          const page = await a.browser.newPage();
          const f2Port = f2.relay.ports.signalPort;
          await page.goto(`http://127.0.0.1:${f2Port}/?room=fleet-room&name=roamer&join=1&video=0`);
          await waitFor(
            async () => (await wzpStats(page))?.participants === 1,
            'the page meets the Node client',
            30_000,
          );
          const st = (await callStats(page)) as unknown as {
            relayUrl: string;
            redirects: number;
            tag: number;
          };
          expect(st.redirects).toBe(1);
          expect(st.relayUrl).toBe(f1.url);
          await waitFor(
            () =>
              got.filter((m) => m.senderTag === st.tag && m.header.mediaType === MediaType.Audio)
                .length > 25,
            'the page audio at the home',
            20_000,
          );
          const redirects = (await (await fetch(`${f2.httpUrl}/metrics`)).text())
            .split('\n')
            .find((l) => l.startsWith('wzp_fleet_redirects_total'));
          expect(Number(redirects?.split(' ').at(-1))).toBeGreaterThanOrEqual(1);
          await page.close();
        } finally {
          clearInterval(ping);
        }
      } finally {
        await home?.close(false).catch(() => {});
        for (const r of started.reverse()) {
          await r.close().catch(() => {});
        }
        await redis.stop();
      }
    },
    60_000,
  );
});
