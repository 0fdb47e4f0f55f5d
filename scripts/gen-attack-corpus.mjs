#!/usr/bin/env node
/**
 * Writes the attack corpus of issue 12 to fixtures/attacks/ from the
 * generators in src/conformance/attacks.ts (run `npm run build` first):
 * one file per attack (frames over 4 KiB gzip-compressed) and manifest.json
 * with the id, file, SHA-256 of the raw bytes, expected rejection and what
 * the attack did before the fixes. test/hostile-fuzz.test.ts replays the
 * files against a relay process and checks that they match the generators.
 * Usage: npm run gen:attacks
 */
import { createHash } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

const ROOT = new URL('..', import.meta.url).pathname;
const { SIGNALLING_ATTACKS, DATAGRAM_ATTACKS } = await import(
  join(ROOT, 'dist', 'conformance', 'attacks.js')
);
const dir = join(ROOT, 'fixtures', 'attacks');
rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });

const entries = [];
function add(kind, attack, bytes) {
  const gz = bytes.length > 4096;
  const file = `${kind}-${attack.id}.bin${gz ? '.gz' : ''}`;
  // mtime 0 in the gzip header: the same bytes give the same file.
  writeFileSync(join(dir, file), gz ? gzipSync(bytes, { level: 9 }) : bytes);
  entries.push({
    kind,
    id: attack.id,
    file,
    bytes: bytes.length,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    expect: attack.expect,
    description: attack.description,
  });
}
for (const a of SIGNALLING_ATTACKS) {
  add('signal', a, a.frame());
}
for (const a of DATAGRAM_ATTACKS) {
  add('datagram', a, a.datagram());
}
writeFileSync(join(dir, 'manifest.json'), `${JSON.stringify(entries, null, 2)}\n`);
console.log(`wrote ${entries.length} attacks to ${dir}`);
