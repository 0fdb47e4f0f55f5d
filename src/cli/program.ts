/** The `wzp` command tree; every command registers itself here. */
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { registerCall } from './commands/call.js';
import { registerClient } from './commands/client.js';
import { registerConformance } from './commands/conformance.js';
import { registerDecode } from './commands/decode.js';
import { registerIdentity } from './commands/identity.js';
import { registerLoad } from './commands/load.js';
import { registerRelay } from './commands/relay.js';
import { registerToken } from './commands/token.js';
import type { CliIo } from './io.js';

function version(): string {
  try {
    const pkg = JSON.parse(
      readFileSync(new URL('../../package.json', import.meta.url), 'utf8'),
    ) as {
      version?: string;
    };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

/** Runs `wzp` with `argv` (without node and script); resolves with the exit status. */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  let exit = 0;
  const setExit = (code: number): void => {
    exit = code;
  };
  const program = new Command('wzp')
    .description('wzp-relay: WZP v2 SFU relay, protocol analyzer and tools')
    .version(version())
    .configureOutput({ writeOut: (s) => io.out(s.trimEnd()), writeErr: (s) => io.err(s.trimEnd()) })
    .exitOverride();
  registerRelay(program, io, setExit);
  registerDecode(program, io, setExit);
  registerClient(program, io, setExit);
  registerToken(program, io, setExit);
  registerConformance(program, io, setExit);
  registerLoad(program, io, setExit);
  registerIdentity(program, io, setExit);
  registerCall(program, io, setExit);
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    const code = (err as { exitCode?: number }).exitCode;
    return typeof code === 'number' ? code : 1;
  }
  return exit;
}
