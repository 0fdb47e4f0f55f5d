/**
 * Input/output of CLI commands, abstracted so commands run in-process in
 * tests. Invalid input is reported as JSON `{"error":{"code","message"}}`
 * on stdout with exit status 2.
 */
import { isWzpError } from '../errors/index.js';

export interface CliIo {
  out(line: string): void;
  err(line: string): void;
  /** Whole standard input (null when it is a terminal or absent). */
  readStdin(): Promise<Buffer | null>;
}

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_INVALID = 2;

export function processIo(): CliIo {
  return {
    out: (line) => process.stdout.write(`${line}\n`),
    err: (line) => process.stderr.write(`${line}\n`),
    readStdin: async () => {
      if (process.stdin.isTTY) {
        return null;
      }
      const chunks: Buffer[] = [];
      for await (const chunk of process.stdin) {
        chunks.push(chunk as Buffer);
      }
      return Buffer.concat(chunks);
    },
  };
}

/** Maps an error to output and an exit status. */
export function reportError(io: CliIo, err: unknown): number {
  if (isWzpError(err)) {
    io.out(JSON.stringify({ error: { code: err.code, message: err.message } }));
    return EXIT_INVALID;
  }
  io.err(`wzp: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  return EXIT_FAILURE;
}
