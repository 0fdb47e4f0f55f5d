/**
 * Structured logging (pino). One root logger per relay, a child per module.
 * Nothing is logged per packet above `debug`.
 *
 * Format: JSON lines, one object per record, unless the output is a
 * terminal, where records are rendered for a person by pino-pretty (time,
 * level, module, message, then the fields). A pipe, a file or a log shipper
 * always gets JSON.
 */
import { type DestinationStream, type LevelWithSilent, type Logger, pino } from 'pino';
import pinoPretty from 'pino-pretty';

export type { Logger };

/** `auto`: pretty when the output is a terminal, JSON otherwise. */
export type LogFormat = 'auto' | 'json' | 'pretty';

export interface LoggerOptions {
  level?: LevelWithSilent;
  name?: string;
  /** Where records go (default: stdout). */
  destination?: DestinationStream | NodeJS.WritableStream;
  /** Default `auto`. */
  format?: LogFormat;
}

/**
 * The format `auto` resolves to for an output stream: pretty only for a
 * terminal (`isTTY`), JSON for everything else.
 */
export function resolveLogFormat(
  format: LogFormat,
  output: { isTTY?: boolean } | undefined,
): 'json' | 'pretty' {
  if (format !== 'auto') {
    return format;
  }
  return output?.isTTY === true ? 'pretty' : 'json';
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const base = {
    level: options.level ?? 'info',
    name: options.name ?? 'wzp-relay',
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  const output = options.destination ?? process.stdout;
  const format = resolveLogFormat(options.format ?? 'auto', output as { isTTY?: boolean });
  if (format === 'pretty') {
    // In-thread and synchronous: a terminal is for a person at human rates;
    // production output (not a TTY) keeps pino's plain JSON path.
    const stream = pinoPretty({
      destination: output,
      sync: true,
      colorize:
        process.env.NO_COLOR === undefined && (output as { isTTY?: boolean }).isTTY === true,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname,name,module',
      messageFormat: '{if module}[{module}] {end}{msg}',
      hideObject: false,
    });
    return pino(base, stream);
  }
  return options.destination === undefined
    ? pino(base)
    : pino(base, options.destination as DestinationStream);
}

/** A child logger tagged with the module name. */
export function childLogger(logger: Logger, module: string): Logger {
  return logger.child({ module });
}
