/**
 * Issue 12 item 9: the checked-in attack corpus (fixtures/attacks/) and
 * fast-check generators for signalling frames and datagrams, replayed
 * against a real `wzp relay` child process while a legitimate 3-person room
 * streams audio. Asserted: the relay never crashes, every rejection is
 * typed (an error code of src/errors/codes.ts) and counted, the room keeps
 * ≥ 99 % delivery. Each test is bounded (< 30 s on the loaded 2-core CI
 * machine) and prints a `[fuzz]` line.
 */
import { createHash } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { Encoder } from '@msgpack/msgpack';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { DATAGRAM_ATTACKS, type RawPeer, SIGNALLING_ATTACKS } from '../src/conformance/attacks.js';
import { ERROR_CODES } from '../src/errors/index.js';
import { encodeSignal } from '../src/signal/index.js';
import { sleep, until } from './helpers.js';
import { cleanup, peer, relay, room, track } from './hostile.js';
import type { LegitRoom } from './legit-room.js';
import { type ChildRelay, CLI, metricSum, metricValue } from './relay-child.js';

const FIXTURES = new URL('../fixtures/attacks/', import.meta.url).pathname;

interface CorpusEntry {
  kind: 'signal' | 'datagram';
  id: string;
  file: string;
  bytes: number;
  sha256: string;
  expect: string;
  description: string;
}

const manifest = JSON.parse(readFileSync(join(FIXTURES, 'manifest.json'), 'utf8')) as CorpusEntry[];

function corpusBytes(e: CorpusEntry): Buffer {
  const raw = readFileSync(join(FIXTURES, e.file));
  return e.file.endsWith('.gz') ? gunzipSync(raw) : raw;
}

afterEach(cleanup);

async function setup(): Promise<{ r: ChildRelay; room: LegitRoom; udpPort: number }> {
  const r = await relay();
  const lr = await room(r, 'legit');
  const udpPort = lr.clients[0]?.answer?.udp_port as number;
  return { r, room: lr, udpPort };
}

async function stranger(address: string): Promise<Socket> {
  const s = createSocket('udp4');
  s.on('error', () => {});
  await new Promise<void>((r) => s.bind(0, address, () => r()));
  return track(s);
}

const KNOWN = new Set(Object.keys(ERROR_CODES));

/** Every sample of the rejection counters (signalling errors, dropped datagrams) of a scrape. */
function rejectionCounters(m: string): string[] {
  return m
    .split('\n')
    .filter((l) =>
      /^wzp_relay_(signal_errors_total|datagrams_dropped_total|media_policed_total)\{/.test(l),
    );
}

/** Target: every rejection is in a counter that does not change between two scrapes. */
async function expectStableCounters(r: ChildRelay): Promise<void> {
  const a = rejectionCounters(await r.metrics());
  const b = rejectionCounters(await r.metrics());
  expect(a.length).toBeGreaterThan(0);
  expect(b).toEqual(a);
}

describe.skipIf(!existsSync(CLI))('attack corpus and fuzzing against a relay process', () => {
  it('the checked-in corpus is what the generators make (npm run gen:attacks)', () => {
    const generated = [
      ...SIGNALLING_ATTACKS.map((a) => ({
        kind: 'signal',
        id: a.id,
        bytes: a.frame(),
        expect: a.expect,
      })),
      ...DATAGRAM_ATTACKS.map((a) => ({
        kind: 'datagram',
        id: a.id,
        bytes: a.datagram(),
        expect: a.expect,
      })),
    ];
    expect(manifest.map((e) => `${e.kind}/${e.id}`)).toEqual(
      generated.map((g) => `${g.kind}/${g.id}`),
    );
    for (const [i, e] of manifest.entries()) {
      const bytes = corpusBytes(e);
      expect(bytes.length, e.id).toBe(e.bytes);
      expect(createHash('sha256').update(bytes).digest('hex'), e.id).toBe(e.sha256);
      expect(bytes.equals(generated[i]?.bytes as Buffer), e.id).toBe(true);
      expect(e.expect, e.id).toBe(generated[i]?.expect);
    }
  });

  it('every corpus file replayed from disk gets its typed, counted rejection; the room keeps ≥ 99 %', async () => {
    const t0 = performance.now();
    const { r, room, udpPort } = await setup();
    room.start();
    const m0 = await r.metrics();
    // Signalling: each frame before any handshake, on its own connection.
    const signals = manifest.filter((e) => e.kind === 'signal');
    for (const e of signals) {
      const p = peer(r.url);
      await p.open();
      p.send(corpusBytes(e));
      expect(await p.nextError(0), e.id).toBe(e.expect);
      p.close();
    }
    // Datagrams: each from a stranger's socket, a different address per attack (per-source limits).
    const datagrams = manifest.filter((e) => e.kind === 'datagram');
    for (const [i, e] of datagrams.entries()) {
      const s = await stranger(`127.0.7.${i + 1}`);
      s.send(corpusBytes(e), udpPort, '127.0.0.1');
    }
    const reasons = new Map<string, number>();
    for (const e of datagrams) {
      reasons.set(e.expect, (reasons.get(e.expect) ?? 0) + 1);
    }
    const dropped = (m: string, reason: string) =>
      metricValue(m, 'wzp_relay_datagrams_dropped_total', `reason="${reason}"`);
    let m1 = '';
    await until(
      () => {
        void r.metrics().then((m) => {
          m1 = m;
        });
        return [...reasons].every(([reason, n]) => dropped(m1, reason) - dropped(m0, reason) >= n);
      },
      'every corpus datagram counted under its reason',
      10_000,
    );
    for (const e of signals) {
      expect(
        metricValue(m1, 'wzp_relay_signal_errors_total', `code="${e.expect}"`) -
          metricValue(m0, 'wzp_relay_signal_errors_total', `code="${e.expect}"`),
        e.id,
      ).toBeGreaterThan(0);
    }
    const d = await room.stop();
    const seconds = (performance.now() - t0) / 1000;
    console.log(
      `[fuzz] corpus ${JSON.stringify({ signal: signals.length, datagram: datagrams.length, delivery_pct: Math.round(d.delivery * 10_000) / 100, seconds: Math.round(seconds * 10) / 10 })}`,
    );
    expect(d.delivery).toBeGreaterThanOrEqual(0.99);
    expect(r.proc.exitCode).toBeNull();
    expect(seconds).toBeLessThan(30);
  }, 30_000);

  it('fast-check signalling frames (bytes, msgpack values, message envelopes, mutated messages) on joined and fresh connections: typed, counted, no crash, room ≥ 99 %', async () => {
    const t0 = performance.now();
    const { r, room } = await setup();
    const enc = new Encoder({ ignoreUndefined: true });
    const TYPES = [
      'CallOffer',
      'CallAnswer',
      'AuthToken',
      'Ping',
      'Pong',
      'Hangup',
      'Error',
      'PictureLossIndication',
      'SubscriptionUpdate',
      'TransportFeedback',
      'ResyncRequest',
      'FederationHello',
      'GlobalRoomActive',
      'RegisterPresence',
      'DirectCallOffer',
      'CallSignalForward',
      'Nope',
      '__proto__',
      'constructor',
    ];
    const value = fc.oneof(
      fc.jsonValue({ depthSize: 'small' }),
      fc.uint8Array({ maxLength: 64 }),
      fc.integer(),
      fc.double(),
    );
    const valid = [
      encodeSignal({ type: 'Ping', body: { version: 1, timestamp_ms: 1 } }),
      encodeSignal({ type: 'ResyncRequest', body: { version: 1, tag: 1 } }),
    ];
    const frame = fc.oneof(
      fc.uint8Array({ minLength: 0, maxLength: 2048 }),
      value.map((v) => enc.encode(v)),
      fc
        .tuple(fc.constantFrom(...TYPES), fc.oneof(value, fc.dictionary(fc.string(), value)))
        .map(([t, body]) => enc.encode({ [t]: body })),
      fc
        .tuple(
          fc.constantFrom(...valid),
          fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
          fc.nat(),
        )
        .map(([base, flips, cut]) => {
          const b = Buffer.from(base);
          for (const [at, v] of flips) {
            b[at % b.length] = v;
          }
          return b.subarray(0, Math.max(1, b.length - (cut % 4)));
        }),
    );
    const samples = fc.sample(frame, { numRuns: 1200, seed: 1212 });
    // Every connection of this test (cleanup closes them).
    const all: RawPeer[] = [];
    const connect = (): RawPeer => {
      const p = peer(r.url);
      all.push(p);
      return p;
    };
    const joined: RawPeer[] = [];
    for (let i = 0; i < 8; i++) {
      const p = connect();
      await p.join('fuzz');
      joined.push(p);
    }
    room.start();
    await sleep(200);
    const m0 = await r.metrics();
    // 1200 frames in ~3 s: 8 joined connections at ~40/s each (inside the 50/s rate), every
    // tenth frame on a fresh connection before its handshake.
    let fresh = 0;
    let replaced = 0;
    for (let i = 0; i < samples.length; i++) {
      const f = samples[i] as Uint8Array;
      if (i % 10 === 9) {
        const p = connect();
        fresh++;
        void p.open().then(
          () => p.send(f),
          () => {},
        );
      } else {
        const k = i % joined.length;
        let p = joined[k] as RawPeer;
        if (!p.isOpen) {
          // Closed by a typed rejection (or a fuzzed Hangup): a new participant takes its place.
          p = connect();
          await p.join('fuzz');
          joined[k] = p;
          replaced++;
        }
        p.send(f);
      }
      if (i % 40 === 39) {
        await sleep(100);
      }
    }
    await sleep(1200);
    const d = await room.stop();
    const m1 = await r.metrics();
    const codes = all.flatMap((p) => p.errorCodes());
    const unknown = codes.filter((c) => !KNOWN.has(c));
    const counted =
      metricSum(m1, 'wzp_relay_signal_errors_total') -
      metricSum(m0, 'wzp_relay_signal_errors_total');
    const histogram: Record<string, number> = {};
    for (const c of codes) {
      histogram[c] = (histogram[c] ?? 0) + 1;
    }
    const seconds = (performance.now() - t0) / 1000;
    console.log(
      `[fuzz] signalling ${JSON.stringify({ frames: samples.length, fresh, replaced, replies_standing_for: codes.length, counted, delivery_pct: Math.round(d.delivery * 10_000) / 100, seconds: Math.round(seconds * 10) / 10, codes: histogram })}`,
    );
    expect(unknown).toEqual([]);
    await expectStableCounters(r);
    // Every rejection a reply stands for was counted (replies still pending are counted too).
    expect(counted).toBeGreaterThanOrEqual(codes.length);
    expect(codes.length).toBeGreaterThan(samples.length / 2);
    expect(d.delivery).toBeGreaterThanOrEqual(0.99);
    expect(r.proc.exitCode).toBeNull();
    // Still serving: a new participant joins and pings.
    const after = peer(r.url);
    await after.join('after');
    after.signal({ type: 'Ping', body: { version: 1, timestamp_ms: 9 } });
    await until(() => after.received.some((m) => m.type === 'Pong'), 'Pong after the fuzz', 10_000);
    expect(seconds).toBeLessThan(30);
  }, 30_000);

  it('fast-check datagrams from strangers while the room streams: all counted, no crash, room ≥ 99 %', async () => {
    const t0 = performance.now();
    const { r, room, udpPort } = await setup();
    const types = [0x00, 0x01, 0x02, 0x03, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0xff];
    const datagram = fc.oneof(
      fc.uint8Array({ minLength: 0, maxLength: 1400 }),
      fc
        .tuple(fc.constantFrom(...types), fc.uint8Array({ minLength: 0, maxLength: 120 }))
        .map(([t, rest]) => Uint8Array.from([t, ...rest])),
      fc
        .tuple(fc.constantFrom(0x10, 0x15), fc.uint8Array({ minLength: 32, maxLength: 47 }))
        .map(([t, rest]) => Uint8Array.from([t, ...rest])),
    );
    const samples = fc.sample(datagram, { numRuns: 3000, seed: 99 });
    const s = [
      await stranger('127.0.8.1'),
      await stranger('127.0.8.2'),
      await stranger('127.0.8.3'),
    ];
    room.start();
    await sleep(200);
    const m0 = await r.metrics();
    for (let i = 0; i < samples.length; i++) {
      (s[i % 3] as Socket).send(samples[i] as Uint8Array, udpPort, '127.0.0.1');
      if (i % 30 === 29) {
        await sleep(5);
      }
    }
    let m1 = '';
    const droppedDelta = () =>
      metricSum(m1, 'wzp_relay_datagrams_dropped_total') -
      metricSum(m0, 'wzp_relay_datagrams_dropped_total');
    await until(
      () => {
        void r.metrics().then((m) => {
          m1 = m;
        });
        return droppedDelta() >= samples.length;
      },
      'every stranger datagram counted',
      15_000,
    );
    await sleep(300);
    await expectStableCounters(r);
    const d = await room.stop();
    const seconds = (performance.now() - t0) / 1000;
    console.log(
      `[fuzz] datagrams ${JSON.stringify({ datagrams: samples.length, dropped_counted: droppedDelta(), delivery_pct: Math.round(d.delivery * 10_000) / 100, seconds: Math.round(seconds * 10) / 10 })}`,
    );
    expect(d.delivery).toBeGreaterThanOrEqual(0.99);
    expect(r.proc.exitCode).toBeNull();
    expect(seconds).toBeLessThan(30);
  }, 30_000);
});
