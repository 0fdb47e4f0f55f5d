/**
 * The relay's media send path (udp_io) end to end: which path runs is in the
 * start log and a metric, fan-out and oversize behave the same on both (this
 * file runs in both vitest projects), and `udp_io = "native"` without the
 * add-on fails at start with a typed error.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import type { WzpClient } from '../src/client/index.js';
import { loadConfig } from '../src/config/index.js';
import { loadNativeAddon } from '../src/media/udp-io.js';
import { createHeader } from '../src/wire/index.js';
import { collect, sleep, startRelay, TEST_UDP_IO, type TestRelay, until } from './helpers.js';

const CLI = new URL('../dist/cli/wzp.js', import.meta.url).pathname;
const native = loadNativeAddon();
const EXPECTED = TEST_UDP_IO === 'dgram' || native.addon === null ? 'dgram' : 'native';

let current: TestRelay | null = null;
afterEach(async () => {
  await current?.close();
  current = null;
});

async function metrics(r: TestRelay): Promise<string> {
  return (await fetch(`${r.httpUrl}/metrics`)).text();
}

const audio = (seq: number) => createHeader({ seq, timestamp: seq * 20, fecRatio: 20 });

describe(`relay udp_io (${TEST_UDP_IO}: runs on ${EXPECTED}${native.addon === null ? `; native add-on ${native.reason}` : ''})`, () => {
  it('says which path runs in the start log and in wzp_relay_udp_io', async () => {
    current = await startRelay();
    const started = current.logs.find((l) => l.msg === 'relay started');
    expect(started?.udp_io).toBe(EXPECTED);
    // The native path receives with recvmmsg too.
    expect(started?.udp_io_receive).toBe(EXPECTED);
    expect(typeof started?.udp_io_reason).toBe('string');
    const other = EXPECTED === 'native' ? 'dgram' : 'native';
    const m = await metrics(current);
    expect(m).toContain(`wzp_relay_udp_io{path="${EXPECTED}"} 1`);
    expect(m).toContain(`wzp_relay_udp_io{path="${other}"} 0`);
    expect(m).toContain(`wzp_relay_udp_recv_io{path="${EXPECTED}"} 1`);
    expect(m).toContain(`wzp_relay_udp_recv_io{path="${other}"} 0`);
    // The native path sends through a send-only socket on the worker's port.
    expect(m).toContain(`wzp_relay_udp_send_sockets ${EXPECTED === 'native' ? 1 : 0}`);
    if (EXPECTED === 'native') {
      expect(started?.udp_io_reason).toContain('send-only socket');
    }
  });

  it('fans a room of 6 out; a frame too large to forward is counted at ingress, not sent', async () => {
    current = await startRelay();
    const clients: WzpClient[] = [];
    for (let i = 0; i < 6; i++) {
      clients.push(await current.connect('io'));
    }
    const [a] = clients as [WzpClient];
    await until(() => a.lastRoomUpdate?.count === 6, 'RoomUpdate with 6');
    const got = clients.map((c) => collect(c));
    for (let seq = 0; seq < 10; seq++) {
      clients.forEach((c, i) => {
        c.sendMedia(audio(seq), Buffer.from(`p${i}-${seq}`));
      });
      await sleep(1);
    }
    await until(() => got.every((g) => g.length >= 50), 'every frame (5 senders x 10)');
    // A frame that fits one datagram but not with the 7-byte trunk prefix in front.
    const overhead = a.sendMedia(audio(99), Buffer.alloc(10)).length - 10;
    await until(() => got.every((g, i) => i === 0 || g.length === 51), 'the small frame');
    const frame = a.sendMedia(audio(100), Buffer.alloc(65_507 - 3 - overhead));
    expect(frame.length).toBe(65_504);
    // Issue 12 item 8: such a frame is rejected at ingress (counted once, never sent).
    const end = Date.now() + 5000;
    let m = '';
    while (
      !m.includes('wzp_relay_datagrams_dropped_total{reason="oversize"} 1') &&
      Date.now() < end
    ) {
      await sleep(20);
      m = await metrics(current);
    }
    expect(m).toContain('wzp_relay_datagrams_dropped_total{reason="oversize"} 1');
    expect(m).not.toContain('wzp_relay_udp_send_errors_total{code="oversize"}');
    await sleep(50);
    expect(got.map((g) => g.length)).toEqual([50, 51, 51, 51, 51, 51]);
    if (EXPECTED === 'native') {
      // Every datagram came through recvmmsg batches (BINDs, pings and 62 media frames at least).
      const batches = Number(/wzp_relay_udp_recv_batches_total (\d+)/.exec(m)?.[1]);
      const calls = Number(/wzp_relay_udp_recv_syscalls_total (\d+)/.exec(m)?.[1]);
      expect(batches).toBeGreaterThan(0);
      expect(calls).toBeGreaterThanOrEqual(batches);
    } else {
      expect(m).toContain('wzp_relay_udp_recv_batches_total 0');
    }
  });
});

describe('udp_io configuration', () => {
  it('reads TOML, WZP_UDP_IO and rejects an unknown path', () => {
    expect(loadConfig().udp_io).toBe('auto');
    expect(loadConfig({ env: { WZP_UDP_IO: 'dgram' } }).udp_io).toBe('dgram');
    expect(() => loadConfig({ env: { WZP_UDP_IO: 'io_uring' } })).toThrow(/udp_io/);
  });

  it.skipIf(!existsSync(CLI))(
    '--udp-io native without the add-on exits 2 with UDP_IO_NATIVE_UNAVAILABLE',
    async () => {
      const proc = spawn(
        process.execPath,
        [CLI, 'relay', '--udp-io', 'native', '--udp-host', '127.0.0.1', '--udp-port', '0'],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
          env: {
            ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'TEST_UDP_IO')),
            WZP_NATIVE_DISABLE: '1',
            WZP_LOG_LEVEL: 'silent',
          },
        },
      );
      let out = '';
      proc.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
      });
      const code = await new Promise<number | null>((resolve) => proc.once('exit', resolve));
      expect(code).toBe(2);
      expect(JSON.parse(out.trim().split('\n').pop() ?? '')).toMatchObject({
        error: { code: 'UDP_IO_NATIVE_UNAVAILABLE' },
      });
    },
  );
});
