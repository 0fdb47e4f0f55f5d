import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { verifyToken } from '../auth/token.js';
import type { CliIo } from './io.js';
import { runCli } from './program.js';

function io(stdin: Buffer | null = null) {
  const out: string[] = [];
  const err: string[] = [];
  const cli: CliIo = {
    out: (l) => out.push(l),
    err: (l) => err.push(l),
    readStdin: async () => stdin,
  };
  return { cli, out, err, json: () => out.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

const P1 = '02400002002000000064000007d000017465737420617564696f20646174612068657265194b0a64';

describe('wzp decode', () => {
  it('decodes a media packet given as hex arguments (spaces and colons allowed)', async () => {
    const t = io();
    expect(
      await runCli(['decode', P1.slice(0, 10), `${P1.slice(10, 20)}:${P1.slice(20)}`], t.cli),
    ).toBe(0);
    const [obj] = t.json();
    expect(obj).toMatchObject({
      kind: 'media',
      header: { seq: 100, codec_id: 2 },
      quality_report: { loss_pct: 25 },
    });
  });

  it('detects compact frames and binding control datagrams; --kind selects trunk and binding', async () => {
    const t = io();
    await runCli(['decode', '1200000000000000ff'], t.cli);
    await runCli(['decode', '--kind', 'trunk', '000100070001ff'], t.cli);
    await runCli(
      ['decode', '--kind', 'federation', '0feae16d55365acf0200000000000000000100000014000068 69'],
      t.cli,
    );
    const [ping, trunk, fed] = t.json();
    expect(ping).toMatchObject({ frame_type: 'PING', value: '255' });
    expect(trunk).toMatchObject({ kind: 'trunk', count: 1, entries: [{ tag: 7, data_hex: 'ff' }] });
    expect(fed).toMatchObject({ room_hash: '0feae16d55365acf', packet: { payload_hex: '6869' } });
  });

  it('decodes a file of one datagram per line with a shared context and reports bad lines inline', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wzp-decode-'));
    const file = join(dir, 'capture.txt');
    writeFileSync(
      file,
      [
        '# a FULL then a MINI of one flow',
        '0002000000000a00000000000000000000617564696f',
        '010100140005617564696f',
        'zz',
        '',
      ].join('\n'),
    );
    const t = io();
    expect(await runCli(['decode', '--file', file], t.cli)).toBe(2);
    const lines = t.json();
    expect(lines[0]).toMatchObject({ line: 2, frame_type: 'full' });
    expect(lines[1]).toMatchObject({
      line: 3,
      frame_type: 'mini',
      header: { seq: 1, timestamp_ms: 20 },
    });
    expect(lines[2]).toMatchObject({ line: 4, error: { code: 'WIRE_BAD_HEX' } });
  });

  it('reads hex or raw bytes from stdin', async () => {
    const hexIn = io(Buffer.from(`${P1}\n`));
    expect(await runCli(['decode'], hexIn.cli)).toBe(0);
    expect(hexIn.json()[0]).toMatchObject({ kind: 'media' });
    const rawIn = io(Buffer.from(P1, 'hex'));
    expect(await runCli(['decode', '--pretty'], rawIn.cli)).toBe(0);
    const pretty = JSON.parse(rawIn.out.join('\n')) as {
      header: { codec: string; flag_names: string[] };
    };
    expect(pretty.header.codec).toBe('Opus6k');
    expect(pretty.header.flag_names).toEqual(['quality']);
  });

  it('exits 2 with the error code as JSON on invalid input', async () => {
    const t = io();
    expect(await runCli(['decode', '0240'], t.cli)).toBe(2);
    expect(t.json()[0]).toEqual({
      error: { code: 'WIRE_TRUNCATED', message: 'MediaHeader needs 16 bytes, got 2' },
    });
    const u = io();
    expect(await runCli(['decode', '7f00'], u.cli)).toBe(2);
    expect(u.json()[0]).toMatchObject({ error: { code: 'WIRE_UNKNOWN_FRAME_TYPE' } });
    const v = io();
    expect(await runCli(['decode', '--kind', 'nonsense', '00'], v.cli)).toBe(2);
  });

  it('rejects an empty datagram as WIRE_TRUNCATED with exit 2, for every kind', async () => {
    for (const kind of ['auto', 'media', 'compact', 'trunk', 'binding', 'federation']) {
      for (const args of [[''], ['  '], ['', '']]) {
        const t = io();
        expect(await runCli(['decode', '--kind', kind, ...args], t.cli)).toBe(2);
        expect(t.json()).toEqual([
          { error: { code: 'WIRE_TRUNCATED', message: 'empty datagram' } },
        ]);
      }
    }
  });

  it('prints the demo', async () => {
    const t = io();
    expect(await runCli(['decode', '--demo'], t.cli)).toBe(0);
    const lines = t.json();
    expect(lines).toHaveLength(4);
    expect(lines[3]).toMatchObject({
      frame_type: 'TRUNK',
      entries: [{ tag: 7, frame_type: 'mini', header: { seq: 1 } }],
    });
  });
});

describe('wzp token', () => {
  it('mints a token the relay accepts', async () => {
    const t = io();
    const secret = 'cli-test-secret-0123456789';
    expect(
      await runCli(['token', '--secret', secret, '--room', 'general', '--no-publish'], t.cli),
    ).toBe(0);
    const v = await verifyToken(t.out[0] as string, secret);
    expect(v.grants).toEqual({ room: 'general', publish: false, subscribe: true, call: false });
  });
});

const BIN = new URL('../../dist/cli/wzp.js', import.meta.url).pathname;
describe.skipIf(!existsSync(BIN))('the compiled wzp binary', () => {
  it('decodes and exits 2 on bad input', () => {
    const ok = spawnSync(process.execPath, [BIN, 'decode', P1], { encoding: 'utf8' });
    expect(ok.status).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ kind: 'media' });
    const bad = spawnSync(process.execPath, [BIN, 'decode', '02'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(JSON.parse(bad.stdout)).toMatchObject({ error: { code: 'WIRE_TRUNCATED' } });
    const empty = spawnSync(process.execPath, [BIN, 'decode', '--kind', 'compact', ''], {
      encoding: 'utf8',
    });
    expect(empty.status).toBe(2);
    expect(JSON.parse(empty.stdout)).toEqual({
      error: { code: 'WIRE_TRUNCATED', message: 'empty datagram' },
    });
  });
});
