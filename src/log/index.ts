/**
 * Structured logging (pino). One root logger per relay, a child per module.
 * Nothing is logged per packet above `debug`.
 */
import { type DestinationStream, type LevelWithSilent, type Logger, pino } from 'pino';

export type { Logger };

export interface LoggerOptions {
  level?: LevelWithSilent;
  name?: string;
  /** Where JSON lines go (default: stdout). */
  destination?: DestinationStream;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const base = {
    level: options.level ?? 'info',
    name: options.name ?? 'wzp-relay',
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return options.destination === undefined ? pino(base) : pino(base, options.destination);
}

/** A child logger tagged with the module name. */
export function childLogger(logger: Logger, module: string): Logger {
  return logger.child({ module });
}
