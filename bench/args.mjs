// Command-line options of the benchmark scripts: `--name` flags and `--name value` options.
const argv = process.argv.slice(2);

/** True when `--name` was given. */
export const flag = (name) => argv.includes(name);

/** The value after `--name`, or undefined. */
export const opt = (name) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined);

/**
 * Checks the command line against a script's flags and options before it
 * runs: `--help` prints `usage` and exits 0; an unknown argument or an option
 * without its value prints the error and `usage` and exits 2. (A benchmark
 * that ignored a mistyped option would run for half an hour measuring
 * something else.)
 */
export function checkArgs(usage, { flags = [], options = [] }) {
  const fail = (why) => {
    process.stderr.write(`${why}\n\n${usage.trim()}\n`);
    process.exit(2);
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--help' || a === '-h') {
      process.stdout.write(`${usage.trim()}\n`);
      process.exit(0);
    } else if (options.includes(a)) {
      const v = argv[i + 1];
      if (v === undefined || v.startsWith('--')) {
        fail(`${a} needs a value`);
      }
      i++;
    } else if (!flags.includes(a)) {
      fail(`unknown argument: ${a}`);
    }
  }
}
