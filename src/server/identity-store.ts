/**
 * The relay's persistent Ed25519 identity: a 32-byte seed stored as 64 hex
 * characters in `<data_dir>/relay-identity` (mode 0600), created on first
 * start.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WzpError } from '../errors/index.js';
import { Identity } from '../signal/index.js';

export const IDENTITY_FILE = 'relay-identity';

export function loadOrCreateIdentity(dataDir: string): { identity: Identity; created: boolean } {
  const path = join(dataDir, IDENTITY_FILE);
  let text: string | null = null;
  try {
    text = readFileSync(path, 'utf8').trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new WzpError('CONFIG_UNREADABLE', `cannot read ${path}: ${(err as Error).message}`);
    }
  }
  if (text !== null) {
    if (!/^[0-9a-f]{64}$/i.test(text)) {
      throw new WzpError('CONFIG_INVALID', `${path} must hold 64 hex characters (an Ed25519 seed)`);
    }
    return { identity: Identity.fromSeed(Buffer.from(text, 'hex')), created: false };
  }
  const seed = randomBytes(32);
  try {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    writeFileSync(path, `${seed.toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    throw new WzpError('CONFIG_UNREADABLE', `cannot create ${path}: ${(err as Error).message}`);
  }
  return { identity: Identity.fromSeed(seed), created: true };
}
