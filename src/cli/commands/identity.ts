/**
 * `wzp identity`: prints (creating it on first use) the relay identity kept
 * in the data directory: the public key and fingerprint federation peers
 * put in their `[[peers]]` entry.
 */
import { join } from 'node:path';
import type { Command } from 'commander';
import { DEFAULT_CONFIG } from '../../config/index.js';
import { relayId } from '../../federation/index.js';
import { IDENTITY_FILE, loadOrCreateIdentity } from '../../server/identity-store.js';
import { type CliIo, EXIT_OK, reportError } from '../io.js';

export function registerIdentity(
  program: Command,
  io: CliIo,
  setExit: (code: number) => void,
): void {
  program
    .command('identity')
    .description('print the relay identity (created on first use): public key, fingerprint')
    .option('--data-dir <dir>', 'directory of the relay identity', DEFAULT_CONFIG.data_dir)
    .option('--label <label>', 'label to put in the printed [[peers]] snippet', 'this-relay')
    .option('--toml', 'print a [[peers]] entry for other relays instead of JSON', false)
    .action((f: { dataDir: string; label: string; toml: boolean }) => {
      try {
        const { identity, created } = loadOrCreateIdentity(f.dataDir);
        const publicKey = identity.publicKey.toString('hex');
        if (f.toml) {
          io.out(
            `[[peers]]\nlabel = ${JSON.stringify(f.label)}\npublic_key = "${publicKey}"\n# url = "ws://<host>:<signal_port>/v2/federation"`,
          );
        } else {
          io.out(
            JSON.stringify({
              public_key: publicKey,
              fingerprint: identity.fingerprint,
              relay_id: relayId(identity.publicKey),
              file: join(f.dataDir, IDENTITY_FILE),
              created,
            }),
          );
        }
        setExit(EXIT_OK);
      } catch (err) {
        setExit(reportError(io, err));
      }
    });
}
