import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isWzpError, WzpError } from '../errors/index.js';
import { DEFAULT_CONFIG, loadConfig, parseConfigToml, renderConfigDocs } from './index.js';

function failure(fn: () => unknown): WzpError {
  try {
    fn();
  } catch (err) {
    if (err instanceof WzpError) {
      return err;
    }
    throw err;
  }
  throw new Error('expected a failure');
}

function tomlFile(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'wzp-config-'));
  const path = join(dir, 'relay.toml');
  writeFileSync(path, text);
  return path;
}

describe('config', () => {
  it('has the documented defaults', () => {
    expect(DEFAULT_CONFIG.udp_port).toBe(4433);
    expect(DEFAULT_CONFIG.signal_port).toBe(4434);
    expect(DEFAULT_CONFIG.http_port).toBe(9090);
    expect(DEFAULT_CONFIG.session_timeout_ms).toBe(30_000);
    expect(DEFAULT_CONFIG.trunking).toBe(false);
    expect(loadConfig()).toEqual(DEFAULT_CONFIG);
  });

  it('layers file < env < flags', () => {
    const file = tomlFile('udp_port = 5000\nsignal_port = 5001\ntrunking = true\n');
    const cfg = loadConfig({
      file,
      env: { WZP_SIGNAL_PORT: '6001', WZP_HTTP_PORT: '6002', PATH: '/bin' },
      overrides: { http_port: 7002 },
    });
    expect(cfg.udp_port).toBe(5000);
    expect(cfg.signal_port).toBe(6001);
    expect(cfg.http_port).toBe(7002);
    expect(cfg.trunking).toBe(true);
    expect(loadConfig({ env: { WZP_CONFIG: file } }).udp_port).toBe(5000);
    expect(loadConfig({ env: { WZP_TRUNKING: 'yes' } }).trunking).toBe(true);
  });

  it('rejects unknown keys with the source and a suggestion', () => {
    const e1 = failure(() => parseConfigToml('udp_prot = 1', 'relay.toml'));
    expect(e1.code).toBe('CONFIG_INVALID');
    expect(e1.message).toBe('relay.toml: unknown key "udp_prot" (did you mean "udp_port"?)');
    const e2 = failure(() => loadConfig({ env: { WZP_UDP_PROT: '1' } }));
    expect(e2.message).toContain('WZP_UDP_PROT');
    expect(e2.message).toContain('WZP_UDP_PORT');
    const e3 = failure(() => loadConfig({ overrides: { bogus: 1 } as never }));
    expect(e3.message).toContain('unknown key "bogus"');
  });

  it('rejects bad types and ranges naming the key', () => {
    const e1 = failure(() => loadConfig({ env: { WZP_UDP_PORT: '70000' } }));
    expect(e1.code).toBe('CONFIG_INVALID');
    expect(e1.message).toContain('udp_port');
    const e2 = failure(() => parseConfigToml('trunk_mtu = "big"', 'f.toml'));
    expect(e2.message).toContain('trunk_mtu');
    const e3 = failure(() => loadConfig({ overrides: { auth_secret: 'short' } }));
    expect(e3.message).toContain('auth_secret');
  });

  it('reports unreadable and unparsable files', () => {
    expect(
      isWzpError(
        failure(() => loadConfig({ file: '/nonexistent/relay.toml' })),
        'CONFIG_UNREADABLE',
      ),
    ).toBe(true);
    expect(failure(() => parseConfigToml('udp_port = = 1', 'x.toml')).code).toBe(
      'CONFIG_UNREADABLE',
    );
  });

  it('renders a documentation table of every key', () => {
    const md = renderConfigDocs();
    expect(md).toContain('| `udp_port` | `WZP_UDP_PORT` | `4433` |');
    expect(md.split('\n').length).toBeGreaterThan(20);
  });
});
