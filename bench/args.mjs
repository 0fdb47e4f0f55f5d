// Command-line options of the benchmark scripts: `--name` flags and `--name value` options.
const argv = process.argv.slice(2);

/** True when `--name` was given. */
export const flag = (name) => argv.includes(name);

/** The value after `--name`, or undefined. */
export const opt = (name) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined);
