/**
 * `wzp conformance`: checks a WZP implementation.
 *
 * - `--vectors [--adapter CMD]`: the golden vectors against our codec or
 *   any implementation speaking the adapter contract (src/conformance/adapter.ts).
 * - `--signal URL [--signal2 URL]`: black-box scenarios against a running relay.
 * - `wzp conformance adapter`: serves the adapter contract for our codec.
 */
import { exec } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Command } from 'commander';
import {
  AdapterCodec,
  type CaseResult,
  htmlReport,
  jsonReport,
  junitReport,
  loadVectorFiles,
  nativeCodec,
  runAllVectors,
  runScenarios,
  serveAdapter,
  summaryText,
  type VectorCodec,
  verdict,
} from '../../conformance/index.js';
import { WzpError } from '../../errors/index.js';
import { type CliIo, EXIT_FAILURE, EXIT_OK, reportError } from '../io.js';

interface Flags {
  vectors?: boolean;
  adapter?: string;
  fixtures?: string;
  signal?: string;
  signal2?: string;
  globalRoom?: string;
  token?: string;
  sessionTimeoutMs: string;
  shutdownCommand?: string;
  only?: string;
  expectedFailures?: string;
  stepMs: string;
  json?: boolean;
  junit?: string;
  html?: string;
}

export const DEFAULT_FIXTURES = new URL('../../../fixtures/vectors/', import.meta.url).pathname;

/** Vector mode: one case per vector (all directions must pass). */
export async function runVectorMode(
  codec: VectorCodec,
  fixtures: string,
  expected: Set<string>,
): Promise<CaseResult[]> {
  const files = loadVectorFiles(fixtures);
  const results = await runAllVectors(files, codec);
  const cases = new Map<string, CaseResult>();
  for (const f of files) {
    for (const v of f.vectors) {
      const id = `${f.file.replace(/\.json$/, '')}/${v.name}`;
      cases.set(`${f.file}\u0000${v.name}`, {
        id,
        requirement: v.description ?? v.kind,
        section: `SPEC ${v.kind}`,
        level: 'MUST',
        outcome: 'pass',
        reason: 'ok',
        durationMs: 0,
        expectedFailure: expected.has(id),
      });
    }
  }
  for (const r of results) {
    const c = cases.get(`${r.file}\u0000${r.name}`);
    if (c !== undefined && !r.pass) {
      c.outcome = 'fail';
      c.reason =
        c.reason === 'ok'
          ? `${r.direction}: ${r.detail}`
          : `${c.reason}; ${r.direction}: ${r.detail}`;
    }
  }
  return [...cases.values()];
}

function readExpected(file: string | undefined): Set<string> {
  if (file === undefined) {
    return new Set();
  }
  try {
    return new Set(
      readFileSync(file, 'utf8')
        .split('\n')
        .map((l) => l.replace(/#.*/, '').trim())
        .filter((l) => l !== ''),
    );
  } catch (err) {
    throw new WzpError(
      'CONFIG_UNREADABLE',
      `cannot read expected failures ${file}: ${(err as Error).message}`,
    );
  }
}

function emit(io: CliIo, flags: Flags, title: string, cases: CaseResult[]): number {
  if (flags.junit !== undefined) {
    writeFileSync(flags.junit, junitReport(title, cases));
  }
  if (flags.html !== undefined) {
    writeFileSync(flags.html, htmlReport(title, cases));
  }
  io.out(flags.json === true ? jsonReport(title, cases) : summaryText(title, cases));
  return verdict(cases).ok ? EXIT_OK : EXIT_FAILURE;
}

export function registerConformance(
  program: Command,
  io: CliIo,
  setExit: (code: number) => void,
): void {
  const cmd = program
    .command('conformance')
    .description(
      'check a WZP implementation: golden vectors (--vectors) or a running relay (--signal)',
    )
    .option('--vectors', 'run the golden vectors')
    .option(
      '--adapter <command>',
      'implementation to check through the adapter contract (default: ours)',
    )
    .option('--fixtures <dir>', 'vector directory', DEFAULT_FIXTURES)
    .option(
      '--signal <url>',
      'signalling URL of the relay to check, e.g. ws://127.0.0.1:4434/v2/signal',
    )
    .option('--signal2 <url>', 'a second, federated relay (federation scenarios)')
    .option(
      '--global-room <name>',
      'a room both relays bridge (federation scenarios)',
      'wzp-conformance',
    )
    .option('--token <jwt>', 'access token if the relay requires one')
    .option('--session-timeout-ms <ms>', 'the relay session timeout (silence scenario)', '30000')
    .option(
      '--shutdown-command <cmd>',
      'shell command that gracefully stops the relay (shutdown scenario)',
    )
    .option('--only <ids>', 'comma-separated scenario ids')
    .option(
      '--expected-failures <file>',
      'case ids expected to fail, one per line; a passing one fails the run',
    )
    .option('--step-ms <ms>', 'bound of each waiting step', '3000')
    .option('--json', 'print the JSON report instead of the summary')
    .option('--junit <file>', 'write a JUnit XML report')
    .option('--html <file>', 'write a self-contained HTML report')
    .action(async (flags: Flags) => {
      try {
        const expected = readExpected(flags.expectedFailures);
        if (flags.vectors === true) {
          const codec = flags.adapter === undefined ? nativeCodec : new AdapterCodec(flags.adapter);
          try {
            const cases = await runVectorMode(codec, flags.fixtures ?? DEFAULT_FIXTURES, expected);
            setExit(
              emit(io, flags, `WZP v2 vectors — ${flags.adapter ?? 'wzp-relay codec'}`, cases),
            );
          } finally {
            if (codec instanceof AdapterCodec) {
              codec.close();
            }
          }
          return;
        }
        if (flags.signal === undefined) {
          throw new WzpError('CONFIG_INVALID', 'give --vectors or --signal <url>');
        }
        const shutdownCommand = flags.shutdownCommand;
        const results = await runScenarios(
          {
            signalUrl: flags.signal,
            ...(flags.signal2 !== undefined ? { signal2Url: flags.signal2 } : {}),
            ...(flags.globalRoom !== undefined ? { globalRoom: flags.globalRoom } : {}),
            ...(flags.token !== undefined ? { token: flags.token } : {}),
            sessionTimeoutMs: Number(flags.sessionTimeoutMs),
            stepMs: Number(flags.stepMs),
            ...(shutdownCommand !== undefined
              ? {
                  shutdown: () =>
                    new Promise<void>((resolve, reject) =>
                      exec(shutdownCommand, (err) => (err === null ? resolve() : reject(err))),
                    ),
                }
              : {}),
          },
          {
            ...(flags.only !== undefined ? { only: flags.only.split(',') } : {}),
            expectedFailures: expected,
          },
        );
        setExit(emit(io, flags, `WZP v2 relay conformance — ${flags.signal}`, results));
      } catch (err) {
        setExit(reportError(io, err));
      }
    });
  cmd
    .command('adapter')
    .description('serve the adapter contract for our codec on stdin/stdout (reference adapter)')
    .action(async () => {
      const rl = createInterface({ input: process.stdin });
      await serveAdapter(rl, (line) => io.out(line));
      setExit(EXIT_OK);
    });
}
