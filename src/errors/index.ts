import { ERROR_CODES, type ErrorCode } from './codes.js';

export { ERROR_CODES, type ErrorCode, type WireErrorCode } from './codes.js';

/**
 * Base class of every error wzp-relay throws on purpose. Match on `code`
 * (stable, listed in `docs/errors.md`), not on the message.
 */
export class WzpError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown }) {
    super(message ?? ERROR_CODES[code], options);
    this.code = code;
    this.name = 'WzpError';
  }

  /** A plain object for JSON output: `{ code, message }`. */
  toJSON(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

/** True if `err` is a WzpError (optionally with the given code). */
export function isWzpError(err: unknown, code?: ErrorCode): err is WzpError {
  return err instanceof WzpError && (code === undefined || err.code === code);
}
