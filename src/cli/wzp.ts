#!/usr/bin/env node
import { processIo } from './io.js';
import { runCli } from './program.js';

// A closed pipe (e.g. `wzp decode ... | head`) ends the command quietly.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') {
    process.exit(0);
  }
  throw err;
});

process.exitCode = await runCli(process.argv.slice(2), processIo());
