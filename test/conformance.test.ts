/**
 * The conformance suite: vector mode (our codec, the reference adapter
 * process, a broken adapter) and relay mode against our relay.
 */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runVectorMode } from '../src/cli/commands/conformance.js';
import type { CliIo } from '../src/cli/io.js';
import { runCli } from '../src/cli/program.js';
import {
  AdapterCodec,
  nativeCodec,
  runScenarios,
  SCENARIOS,
  verdict,
} from '../src/conformance/index.js';
import { Identity } from '../src/signal/index.js';
import { startRelay, type TestRelay, until } from './helpers.js';

const FIXTURES = new URL('../fixtures/vectors/', import.meta.url).pathname;
const BIN = new URL('../dist/cli/wzp.js', import.meta.url).pathname;

function io() {
  const out: string[] = [];
  const cli: CliIo = { out: (l) => out.push(l), err: () => {}, readStdin: async () => null };
  return { cli, out };
}

let relay: TestRelay | null = null;
let relay2: TestRelay | null = null;
afterEach(async () => {
  await relay2?.close();
  relay2 = null;
  await relay?.close();
  relay = null;
});

describe('conformance: vector mode', () => {
  it('passes every vector with our codec', async () => {
    const cases = await runVectorMode(nativeCodec, FIXTURES, new Set());
    expect(cases.length).toBeGreaterThanOrEqual(110);
    expect(cases.filter((c) => c.outcome !== 'pass')).toEqual([]);
    expect(verdict(cases).ok).toBe(true);
  });

  it.skipIf(!existsSync(BIN))(
    'passes every vector through the reference adapter process',
    async () => {
      const codec = new AdapterCodec(`"${process.execPath}" "${BIN}" conformance adapter`);
      try {
        const cases = await runVectorMode(codec, FIXTURES, new Set());
        expect(
          cases.filter((c) => c.outcome !== 'pass').map((c) => `${c.id}: ${c.reason}`),
        ).toEqual([]);
      } finally {
        codec.close();
      }
    },
  );

  it('fails a broken implementation with reasons, and a stale expected-failures list fails the run', async () => {
    const broken = new AdapterCodec(
      `"${process.execPath}" -e "process.stdin.on('data',d=>{for(const l of String(d).split('\\\\n'))if(l)console.log(JSON.stringify({ok:false,code:'NOPE'}))})"`,
      2000,
    );
    try {
      const cases = await runVectorMode(broken, FIXTURES, new Set());
      const failed = cases.filter((c) => c.outcome === 'fail');
      expect(failed.length).toBeGreaterThan(40);
      expect(failed[0]?.reason).toMatch(/NOPE/);
      expect(verdict(cases).ok).toBe(false);
    } finally {
      broken.close();
    }
    const stale = await runVectorMode(nativeCodec, FIXTURES, new Set(['media-header/H1']));
    const v = verdict(stale);
    expect(v.stale).toEqual(['media-header/H1']);
    expect(v.ok).toBe(false);
  });

  it('writes JSON, JUnit and HTML reports from the command line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wzp-conf-'));
    const t = io();
    const code = await runCli(
      [
        'conformance',
        '--vectors',
        '--json',
        '--junit',
        join(dir, 'r.xml'),
        '--html',
        join(dir, 'r.html'),
      ],
      t.cli,
    );
    expect(code).toBe(0);
    const report = JSON.parse(t.out.join('\n')) as {
      verdict: { ok: boolean };
      cases: { outcome: string }[];
    };
    expect(report.verdict.ok).toBe(true);
    expect(report.cases.every((c) => c.outcome === 'pass')).toBe(true);
    expect(readFileSync(join(dir, 'r.xml'), 'utf8')).toMatch(
      /<testsuite name=".*" tests="\d+" failures="0"/,
    );
    expect(readFileSync(join(dir, 'r.html'), 'utf8')).toContain('CONFORMANT');
    const failing = join(dir, 'xf.txt');
    writeFileSync(failing, '# stale on purpose\nmedia-header/H2\n');
    expect(
      await runCli(['conformance', '--vectors', '--expected-failures', failing], io().cli),
    ).toBe(1);
  });
});

describe('conformance: relay mode against wzp-relay', () => {
  it('passes every MUST scenario (federation unsupported without a second relay)', async () => {
    // Two media workers: the scenarios' rooms land on both (issue 10).
    relay = await startRelay({ session_timeout_ms: 600, log_level: 'warn', media_workers: 2 });
    const r = relay;
    const results = await runScenarios({
      signalUrl: r.url,
      sessionTimeoutMs: 600,
      stepMs: 3000,
      shutdown: () => r.relay.stop(),
    });
    const notPassing = results
      .filter((x) => x.outcome !== 'pass')
      .map((x) => `${x.id}: ${x.outcome} ${x.reason}`);
    expect(notPassing).toEqual([
      'federation-presence: unsupported needs a second, federated relay (--signal2)',
      'federation-bridge: unsupported needs a second, federated relay (--signal2)',
    ]);
    expect(results.map((x) => x.id).sort()).toEqual(SCENARIOS.map((s) => s.id).sort());
    expect(results.at(-1)?.id).toBe('graceful-shutdown');
  }, 60_000);

  it('passes the federation scenarios against two linked relays', async () => {
    const idA = Identity.generate();
    const idB = Identity.generate();
    const rooms = { global_rooms: ['wzp-conformance'], log_level: 'warn' as const };
    relay = await startRelay(
      { ...rooms, peers: [{ label: 'B', public_key: idB.publicKey.toString('hex') }] },
      idA,
    );
    const a = relay;
    const fedUrl = a.url.replace('/v2/signal', '/v2/federation');
    relay2 = await startRelay(
      {
        ...rooms,
        peers: [{ label: 'A', url: fedUrl, public_key: idA.publicKey.toString('hex') }],
      },
      idB,
    );
    const b = relay2;
    await until(
      () =>
        [a, b].every((r) =>
          [...(r.relay.federation?.links.values() ?? [])].some((l) => l.udpReady),
        ),
      'the link between the relays',
      5000,
    );
    const results = await runScenarios(
      { signalUrl: a.url, signal2Url: b.url, sessionTimeoutMs: 30_000, stepMs: 3000 },
      { only: ['federation-presence', 'federation-bridge'] },
    );
    expect(results.map((x) => `${x.id}: ${x.outcome} ${x.reason}`)).toEqual([
      'federation-presence: pass ok',
      'federation-bridge: pass ok',
    ]);
  }, 30_000);

  it('runs selected scenarios from the command line with a JSON report', async () => {
    relay = await startRelay({ log_level: 'warn' });
    const t = io();
    const code = await runCli(
      [
        'conformance',
        '--signal',
        relay.url,
        '--only',
        'join-fanout,no-echo,version-missing',
        '--json',
      ],
      t.cli,
    );
    const report = JSON.parse(t.out.join('\n')) as { cases: { id: string; outcome: string }[] };
    expect(report.cases.map((c) => [c.id, c.outcome])).toEqual([
      ['join-fanout', 'pass'],
      ['no-echo', 'pass'],
      ['version-missing', 'pass'],
    ]);
    expect(code).toBe(0);
  });
});
