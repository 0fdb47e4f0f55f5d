#!/usr/bin/env node
/**
 * npm install hook: builds the optional sendmmsg add-on (native/) with the
 * node-gyp that ships with npm, offline: the Node headers come from the
 * installed Node (`--nodedir`, e.g. /usr for /usr/bin/node), never from a
 * download. Any failure is logged and exits 0: the relay then runs on
 * node:dgram (udp_io = "auto"). WZP_SKIP_NATIVE=1 skips the build.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const NATIVE = join(ROOT, 'native');
const say = (msg) => console.log(`wzp-relay native add-on: ${msg}`);
const fallback = 'the relay will use node:dgram (udp_io = "auto")';

function nodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    join(
      dirname(process.execPath),
      '..',
      'lib',
      'node_modules',
      'npm',
      'node_modules',
      'node-gyp',
      'bin',
      'node-gyp.js',
    ),
  ];
  return candidates.find((p) => p !== undefined && p !== '' && existsSync(p));
}

function nodeDir() {
  const candidates = [process.env.npm_config_nodedir, join(dirname(process.execPath), '..')];
  return candidates.find(
    (d) => d !== undefined && d !== '' && existsSync(join(d, 'include', 'node', 'node_api.h')),
  );
}

function main() {
  if (process.env.WZP_SKIP_NATIVE === '1') {
    say(`skipped (WZP_SKIP_NATIVE=1); ${fallback}`);
    return;
  }
  if (process.platform !== 'linux') {
    say(`skipped (sendmmsg is Linux-only, this is ${process.platform}); ${fallback}`);
    return;
  }
  if (!existsSync(join(NATIVE, 'binding.gyp'))) {
    say(`skipped (no native/binding.gyp); ${fallback}`);
    return;
  }
  const gyp = nodeGyp();
  if (gyp === undefined) {
    say(`not built: node-gyp not found (it ships with npm); ${fallback}`);
    return;
  }
  const dir = nodeDir();
  if (dir === undefined) {
    say(
      `not built: no Node headers beside ${process.execPath} (include/node/node_api.h); set npm_config_nodedir to a directory that has them (this script never downloads them); ${fallback}`,
    );
    return;
  }
  const started = Date.now();
  const r = spawnSync(process.execPath, [gyp, 'rebuild', `--nodedir=${dir}`], {
    cwd: NATIVE,
    encoding: 'utf8',
    timeout: 180_000,
    env: { ...process.env, npm_config_nodedir: dir },
  });
  if (r.status !== 0) {
    const out = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n').slice(-12).join('\n');
    const why = r.error?.message ?? `node-gyp exited with ${r.status ?? r.signal}`;
    say(`not built (${why}; a C compiler, make and python3 are needed):\n${out}\n${fallback}`);
    return;
  }
  say(`built native/build/Release/wzp_udp.node in ${Date.now() - started} ms (headers: ${dir})`);
}

try {
  main();
} catch (err) {
  say(`not built (${err instanceof Error ? err.message : String(err)}); ${fallback}`);
}
process.exit(0);
