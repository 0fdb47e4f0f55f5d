/**
 * The `wzp relay` command as a real child process: starts on flags and
 * environment, serves clients, and on SIGTERM sends Hangup to everyone and
 * exits 0 within the shutdown bound.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { WzpClient } from '../src/client/index.js';
import { until } from './helpers.js';

const CLI = new URL('../dist/cli/wzp.js', import.meta.url).pathname;

let child: ChildProcess | null = null;
afterEach(() => {
  if (child !== null && child.exitCode === null) {
    child.kill('SIGKILL');
  }
  child = null;
});

async function spawnRelay(args: string[] = []): Promise<{
  proc: ChildProcess;
  lines: Record<string, unknown>[];
  signalPort: number;
  httpPort: number;
}> {
  const dataDir = mkdtempSync(join(tmpdir(), 'wzp-relay-'));
  const proc = spawn(
    process.execPath,
    [
      CLI,
      'relay',
      '--udp-host',
      '127.0.0.1',
      '--udp-port',
      '0',
      '--signal-host',
      '127.0.0.1',
      '--signal-port',
      '0',
      '--http-host',
      '127.0.0.1',
      '--http-port',
      '0',
      ...args,
    ],
    {
      env: { ...process.env, WZP_DATA_DIR: dataDir, WZP_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  child = proc;
  const lines: Record<string, unknown>[] = [];
  let buf = '';
  proc.stdout?.on('data', (d: Buffer) => {
    buf += d.toString();
    let i = buf.indexOf('\n');
    while (i >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not a log line
      }
      i = buf.indexOf('\n');
    }
  });
  await until(() => lines.some((l) => l.msg === 'relay started'), 'relay started', 10_000);
  const started = lines.find((l) => l.msg === 'relay started') as { signal: string; http: string };
  return {
    proc,
    lines,
    signalPort: Number(started.signal.split(':')[2]?.split('/')[0]),
    httpPort: Number(started.http.split(':')[2]),
  };
}

describe.skipIf(!existsSync(CLI))('wzp relay (child process)', () => {
  it('creates its identity, serves a client, and on SIGTERM hangs up and exits 0', async () => {
    const { proc, lines, signalPort, httpPort } = await spawnRelay();
    expect(lines.some((l) => l.msg === 'created relay identity')).toBe(true);
    const client = await WzpClient.connect({
      signalUrl: `ws://127.0.0.1:${signalPort}/v2/signal`,
      room: 'proc',
    });
    const reasons: unknown[] = [];
    client.on('hangup', (h) => reasons.push(h.reason));
    expect((await fetch(`http://127.0.0.1:${httpPort}/readyz`)).status).toBe(200);
    const exited = new Promise<number | null>((resolve) =>
      proc.once('exit', (code) => resolve(code)),
    );
    const t0 = Date.now();
    proc.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(Date.now() - t0).toBeLessThan(6000);
    expect(reasons).toEqual(['Shutdown']);
    expect(lines.some((l) => l.msg === 'relay stopped')).toBe(true);
    await client.close(false);
  });

  it('exits 2 with a typed JSON error on an invalid configuration', async () => {
    const proc = spawn(process.execPath, [CLI, 'relay', '--udp-port', '99999'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    let out = '';
    proc.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const code = await new Promise<number | null>((resolve) => proc.once('exit', resolve));
    expect(code).toBe(2);
    expect(JSON.parse(out.trim())).toMatchObject({ error: { code: 'CONFIG_INVALID' } });
  });
});
