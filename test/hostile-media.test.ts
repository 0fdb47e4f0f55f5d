/**
 * Issue 12, media half, replayed against a real relay process (dist/cli/wzp.js):
 * attack 4 (BIND redirect and takeover) with a raw socket forging the
 * victim's source address when running as root, and without spoofing (the
 * attacker's BIND from the victim's own socket); attack 7 (a sender far over
 * its profile) against the policing bound; an unforwardable frame; random
 * datagrams from fast-check generators; every rejection in a counter.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ReceivedMedia, WzpClient } from '../src/client/index.js';
import { isWzpError } from '../src/errors/index.js';
import { Identity } from '../src/signal/index.js';
import { createHeader, encodeBind } from '../src/wire/index.js';
import { metricValue } from './cluster.js';
import { sleep, until } from './helpers.js';

const BIN = new URL('../dist/cli/wzp.js', import.meta.url).pathname;
const SPOOF = new URL('../scripts/spoof-udp.py', import.meta.url).pathname;
const IS_ROOT = process.getuid?.() === 0;
const HAS_PYTHON = (() => {
  try {
    execFileSync('python3', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
const SPOOF_SKIP = !IS_ROOT
  ? 'spoofing needs a raw socket: run as root'
  : !HAS_PYTHON
    ? 'spoofing needs python3 (scripts/spoof-udp.py)'
    : null;

interface RelayProc {
  proc: ChildProcess;
  dir: string;
  url: string;
  httpUrl: string;
  output: string[];
}

let relay: RelayProc | null = null;
const clients: WzpClient[] = [];
const sockets: Socket[] = [];

const POLICING_STRIKES = 2;

async function startRelayProcess(): Promise<RelayProc> {
  const dir = mkdtempSync(join(tmpdir(), 'wzp-hostile-'));
  const file = join(dir, 'relay.toml');
  writeFileSync(
    file,
    [
      'udp_host = "127.0.0.1"',
      'udp_port = 0',
      'signal_host = "127.0.0.1"',
      'signal_port = 0',
      'http_host = "127.0.0.1"',
      'http_port = 0',
      `data_dir = ${JSON.stringify(dir)}`,
      'log_level = "info"',
      `policing_strikes = ${POLICING_STRIKES}`,
      'policing_cooldown_ms = 60000',
      '',
    ].join('\n'),
  );
  const proc = spawn(process.execPath, [BIN, 'relay', '--config', file], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  proc.stdout?.on('data', (d: Buffer) => output.push(...String(d).split('\n').filter(Boolean)));
  proc.stderr?.on('data', (d: Buffer) => output.push(...String(d).split('\n').filter(Boolean)));
  await until(() => output.some((l) => l.includes('"relay started"')), 'relay started', 30_000);
  const started = JSON.parse(output.find((l) => l.includes('"relay started"')) as string) as {
    signal: string;
    http: string;
  };
  return { proc, dir, url: started.signal, httpUrl: started.http, output };
}

beforeAll(async () => {
  relay = await startRelayProcess();
}, 40_000);

afterAll(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close(false).catch(() => {})));
  await Promise.all(sockets.splice(0).map((s) => new Promise<void>((r) => s.close(() => r()))));
  const r = relay;
  relay = null;
  if (r !== null) {
    const exited = new Promise<void>((res) => r.proc.once('exit', () => res()));
    r.proc.kill('SIGTERM');
    await Promise.race([exited, sleep(5000)]);
    r.proc.kill('SIGKILL');
    rmSync(r.dir, { recursive: true, force: true });
  }
});

async function joinRoom(room: string, identity?: Identity): Promise<WzpClient> {
  const c = await WzpClient.connect({
    signalUrl: (relay as RelayProc).url,
    room,
    ...(identity === undefined ? {} : { identity }),
  });
  clients.push(c);
  return c;
}

function collect(c: WzpClient): ReceivedMedia[] {
  const got: ReceivedMedia[] = [];
  c.on('media', (m) => got.push(m));
  return got;
}

async function metrics(): Promise<string> {
  return (await fetch(`${(relay as RelayProc).httpUrl}/metrics`)).text();
}

async function socketOn(address: string): Promise<Socket> {
  const s = createSocket('udp4');
  s.on('error', () => {});
  await new Promise<void>((r) => s.bind(0, address, () => r()));
  sockets.push(s);
  return s;
}

const audio = (seq: number) => createHeader({ seq, timestamp: seq * 20, fecRatio: 20 });
let seqBase = 1;

/** `n` frames from `c`, `perTick` every `gapMs` (default 50/s: inside the Opus24k policy), payload `tag-i-…`. */
async function sendPaced(
  c: WzpClient,
  tag: string,
  n: number,
  size = 60,
  perTick = 1,
  gapMs = 20,
): Promise<void> {
  for (let i = 0; i < n; i++) {
    const seq = seqBase++;
    const p = Buffer.alloc(size, 0x61);
    p.write(`${tag}-${i}-`);
    c.sendMedia(audio(seq), p);
    if (i % perTick === perTick - 1) {
      await sleep(gapMs);
    }
  }
}

async function untilAsync(cond: () => Promise<boolean>, what: string, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    }
    await sleep(50);
  }
}

const startsWith = (got: ReceivedMedia[], tag: string) =>
  got.filter((m) => m.payload.toString('latin1').startsWith(`${tag}-`));

/** Attack 4 setup: attacker + talker in one room, victim + mate in another. */
async function attack4Rooms(suffix: string) {
  const attacker = await joinRoom(`x-${suffix}`);
  const talker = await joinRoom(`x-${suffix}`);
  const victim = await joinRoom(`y-${suffix}`);
  const mate = await joinRoom(`y-${suffix}`);
  return {
    attacker,
    talker,
    victim,
    mate,
    gotAttacker: collect(attacker),
    gotVictim: collect(victim),
  };
}

async function assertNoRedirect(r: Awaited<ReturnType<typeof attack4Rooms>>): Promise<void> {
  await sendPaced(r.talker, 'x', 100, 100);
  await sendPaced(r.mate, 'y', 100);
  await until(
    () => startsWith(r.gotVictim, 'y').length >= 100,
    'the victim keeps its media',
    10_000,
  );
  await until(
    () => startsWith(r.gotAttacker, 'x').length >= 100,
    'the attacker keeps receiving at its own address',
    10_000,
  );
  await sleep(300);
  const redirected = startsWith(r.gotVictim, 'x').reduce((n, m) => n + m.frame.length, 0);
  console.log(
    `[hostile] attack-4 ${JSON.stringify({
      redirected_bytes: redirected,
      victim_frames: startsWith(r.gotVictim, 'y').length,
      attacker_frames: startsWith(r.gotAttacker, 'x').length,
    })}`,
  );
  expect(redirected).toBe(0);
}

describe.skipIf(!existsSync(BIN))('hostile media against a relay process (issue 12)', () => {
  it.skipIf(SPOOF_SKIP !== null)(
    `attack 4, spoofed source via a raw socket: 0 bytes redirected, the victim keeps its media${SPOOF_SKIP === null ? '' : ` (skipped: ${SPOOF_SKIP})`}`,
    async () => {
      const r = await attack4Rooms('spoof');
      // The port of the attacker's own token (with media workers, the port of its room's worker).
      const relayPort = r.attacker.answer?.udp_port as number;
      const before = metricValue(await metrics(), 'wzp_relay_binds_total', { kind: 'challenge' });
      // The attacker's own token, from the victim's address, repeated (it renewed the redirect).
      const bind = encodeBind(r.attacker.answer?.bind_token as Buffer).toString('hex');
      execFileSync('python3', [
        SPOOF,
        '127.0.0.1',
        String(r.victim.localPort),
        '127.0.0.1',
        String(relayPort),
        bind,
        '5',
      ]);
      await untilAsync(
        async () =>
          metricValue(await metrics(), 'wzp_relay_binds_total', { kind: 'challenge' }) >=
          before + 5,
        'challenges to the spoofed address',
        5000,
      );
      await assertNoRedirect(r);
    },
  );

  it('attack 4, takeover without spoofing (the attacker BIND from the victim socket): nothing moves, the victim recovers nothing because it lost nothing', async () => {
    const r = await attack4Rooms('takeover');
    for (let i = 0; i < 5; i++) {
      r.victim.sendDatagram(encodeBind(r.attacker.answer?.bind_token as Buffer));
    }
    await sleep(100);
    await assertNoRedirect(r);
    // The attacker leaves: the victim's media is unaffected.
    await r.attacker.close();
    const before = startsWith(r.gotVictim, 'y').length;
    await sendPaced(r.mate, 'y', 50);
    await until(
      () => startsWith(r.gotVictim, 'y').length >= before + 50,
      'victim media after the attacker left',
      10_000,
    );
  });

  it('attack 7: receivers get at most the policy bitrate plus burst; the violator is warned, hung up, and refused during the cool-down', async () => {
    const identity = Identity.generate();
    const sender = await joinRoom('z', identity);
    const receiver = await joinRoom('z');
    const got = collect(receiver);
    const errors: string[] = [];
    sender.on('relayError', (e) => errors.push(e.code));
    const hangups: unknown[] = [];
    sender.on('hangup', (h) => hangups.push(h.reason));
    // Opus24k (Good): tier A 10 350 B/s, tier B 225 packets/s, burst 1 s, tier D 320 B.
    // 1 KB payloads (attack 7 as measured, ~470 packets/s): nothing passes tier D.
    await sendPaced(sender, 'big', 100, 1000, 5, 10);
    await sleep(200);
    expect(got).toHaveLength(0);
    // 300-byte payloads (inside D) at ~470 packets/s for 3 s: tiers A/B bound what passes,
    // and the second violating second hangs the sender up (policing_strikes = 2).
    const start = performance.now();
    await sendPaced(sender, 'flood', 1410, 300, 5, 10);
    const seconds = (performance.now() - start) / 1000;
    await sleep(300);
    const bytes = got.reduce((n, m) => n + 16 + m.payload.length, 0);
    console.log(
      `[hostile] attack-7 ${JSON.stringify({
        seconds: Math.round(seconds * 100) / 100,
        sent_packets: 1410,
        sent_bytes: 1410 * 316,
        received_packets: got.length,
        received_bytes: bytes,
        bound_bytes: Math.round(10_350 * seconds + 10_350),
        bound_packets: Math.round(225 * seconds + 225),
      })}`,
    );
    expect(got.length).toBeGreaterThan(0);
    expect(bytes).toBeLessThanOrEqual(10_350 * seconds + 10_350);
    expect(got.length).toBeLessThanOrEqual(225 * seconds + 225);
    await until(() => errors.includes('MEDIA_POLICED'), 'the warning', 5000);
    await until(() => hangups.length > 0, 'Hangup PolicyViolation', 10_000);
    expect(hangups[0]).toEqual({
      PolicyViolation: { code: 'MEDIA_POLICY_VIOLATION', reason: expect.any(String) },
    });
    // The same identity may not rejoin during the cool-down.
    let refused: unknown = null;
    try {
      await joinRoom('z', identity);
    } catch (err) {
      refused = err;
    }
    expect(isWzpError(refused) && refused.code).toBe('POLICY_COOLDOWN');
    const m = await metrics();
    expect(
      metricValue(m, 'wzp_relay_media_policed_total', { kind: 'audio', tier: 'A' }) +
        metricValue(m, 'wzp_relay_media_policed_total', { kind: 'audio', tier: 'B' }),
    ).toBeGreaterThan(0);
    expect(metricValue(m, 'wzp_relay_media_policed_total', { kind: 'audio', tier: 'D' })).toBe(100);
    expect(metricValue(m, 'wzp_relay_policy_actions_total', { action: 'hangup' })).toBe(1);
    expect(metricValue(m, 'wzp_relay_policy_actions_total', { action: 'cooldown_refused' })).toBe(
      1,
    );
  });

  it('send path: a frame whose forwarded datagram cannot fit is rejected at ingress and counted', async () => {
    const a = await joinRoom('big');
    const b = await joinRoom('big');
    const got = collect(b);
    for (const size of [65_490, 65_483 - 17 + 1]) {
      a.sendMedia(audio(seqBase++), Buffer.alloc(size, 1));
    }
    a.sendMedia(audio(seqBase++), Buffer.from('small'));
    await until(() => got.length === 1, 'the small frame');
    await sleep(200);
    expect(got[0]?.payload.toString()).toBe('small');
    await untilAsync(
      async () =>
        metricValue(await metrics(), 'wzp_relay_datagrams_dropped_total', {
          reason: 'oversize',
        }) === 2,
      'two oversize drops',
      5000,
    );
  });

  it('fast-check datagrams from a stranger and from a participant never disturb a room; every stranger datagram is counted', async () => {
    const a = await joinRoom('fuzz');
    const b = await joinRoom('fuzz');
    const gotB = collect(b);
    const decodeErrors: string[] = [];
    b.on('decodeError', (e) => decodeErrors.push(e));
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
    const samples = fc.sample(datagram, { numRuns: 1500, seed: 12 });
    const stranger = await socketOn('127.0.0.3');
    const relayPort = a.answer?.udp_port as number;
    const droppedBefore = sumDropped(await metrics());
    for (let i = 0; i < samples.length; i++) {
      stranger.send(samples[i] as Uint8Array, relayPort, '127.0.0.1');
      if (i % 20 === 19) {
        await sleep(3);
      }
    }
    // Nothing a stranger sends is accepted: every datagram is dropped and counted
    // (paced, so loopback loses none).
    // Nothing a stranger sends is accepted: every datagram is dropped and counted (paced, so
    // loopback loses none). ≥: the exact equality needs the CounterBridge fix of issue 12 item 5.
    await untilAsync(
      async () => sumDropped(await metrics()) - droppedBefore >= samples.length,
      'every stranger datagram counted',
      10_000,
    );
    // The same garbage from a bound participant's own socket.
    for (let i = 0; i < samples.length; i++) {
      a.sendDatagram(samples[i] as Uint8Array);
      if (i % 20 === 19) {
        await sleep(3);
      }
    }
    await sendPaced(a, 'alive', 50);
    await until(() => startsWith(gotB, 'alive').length === 50, 'the room still works', 10_000);
    expect(decodeErrors).toEqual([]);
    expect(relay?.proc.exitCode).toBeNull();
  });
});

function sumDropped(text: string): number {
  let n = 0;
  for (const line of text.split('\n')) {
    const m = /^wzp_relay_datagrams_dropped_total\{[^}]*\} ([0-9.e+]+)$/.exec(line);
    if (m !== null) {
      n += Number(m[1]);
    }
  }
  return n;
}
