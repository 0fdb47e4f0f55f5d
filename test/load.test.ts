import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { formatLoadReport, runLoad, validateOptions } from '../src/load/index.js';
import { startRelay, type TestRelay } from './helpers.js';

let relay: TestRelay | null = null;
afterEach(async () => {
  await relay?.close();
  relay = null;
});

describe('wzp load', () => {
  it('measures delivery, loss, duplicates and latency against a relay (in-process generator)', async () => {
    relay = await startRelay({ log_level: 'warn' });
    const report = await runLoad({
      signalUrl: relay.url,
      rooms: 2,
      participants: 3,
      pps: 50,
      sizeMin: 60,
      sizeMax: 120,
      mini: true,
      durationS: 1,
      workers: 0,
      encrypt: false,
      relayPid: process.pid,
    });
    expect(report.joined).toBe(6);
    expect(report.sent).toBeGreaterThan(200);
    expect(report.expected).toBe(report.sent * 2);
    expect(report.delivered).toBe(report.expected);
    expect(report.lossPct).toBe(0);
    expect(report.duplicates).toBe(0);
    expect(report.latencyMs.p50).toBeGreaterThan(0);
    expect(report.latencyMs.p99).toBeGreaterThanOrEqual(report.latencyMs.p50);
    expect(report.relay?.rssBytes).toBeGreaterThan(0);
    expect(formatLoadReport(report)).toContain('loss');
  });

  it('works with encrypted payloads', async () => {
    relay = await startRelay({ log_level: 'warn' });
    const report = await runLoad({
      signalUrl: relay.url,
      rooms: 1,
      participants: 2,
      pps: 50,
      sizeMin: 100,
      sizeMax: 100,
      mini: false,
      durationS: 0.5,
      workers: 0,
      encrypt: true,
    });
    expect(report.delivered).toBe(report.expected);
    expect(report.delivered).toBeGreaterThan(20);
  });

  it('rejects options that cannot describe a load test, naming the option', () => {
    const base = {
      signalUrl: 'ws://127.0.0.1:1/v2/signal',
      rooms: 1,
      participants: 2,
      pps: 50,
      sizeMin: 100,
      sizeMax: 100,
      mini: false,
      durationS: 1,
      workers: 0,
      encrypt: false,
    };
    expect(() => validateOptions(base)).not.toThrow();
    expect(() => validateOptions({ ...base, participants: 1 })).toThrow(/at least 2/);
    expect(() => validateOptions({ ...base, rooms: Number.NaN })).toThrow(/rooms/);
    expect(() => validateOptions({ ...base, sizeMin: 200, sizeMax: 100 })).toThrow(/size/);
    expect(() => validateOptions({ ...base, durationS: 0 })).toThrow(/duration/);
    expect(() => validateOptions({ ...base, pps: 2.5 })).toThrow(/pps/);
  });

  const BIN = new URL('../dist/cli/wzp.js', import.meta.url).pathname;
  it.skipIf(!existsSync(BIN))(
    'runs in worker processes from the command line and prints JSON',
    async () => {
      relay = await startRelay({ log_level: 'warn' });
      const run = await promisify(execFile)(
        process.execPath,
        [
          BIN,
          'load',
          relay.url,
          '--rooms',
          '2',
          '--participants',
          '2',
          '--duration',
          '1',
          '--workers',
          '2',
          '--json',
          '--no-progress',
        ],
        { encoding: 'utf8', timeout: 20_000 },
      );
      const report = JSON.parse(run.stdout) as {
        joined: number;
        workers: number;
        sent: number;
        delivered: number;
        expected: number;
        lossPct: number;
      };
      expect(report.workers).toBe(2);
      expect(report.sent).toBeGreaterThan(100);
      expect(report.expected).toBe(report.sent);
      expect(report.delivered).toBe(report.expected);
      expect(report.lossPct).toBe(0);
      expect(report.joined).toBe(4);
    },
  );
});
