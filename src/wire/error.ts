import { type WireErrorCode, WzpError } from '../errors/index.js';

export type { WireErrorCode };

/** The wire codec's one error class; `code` is always a `WIRE_*` code. */
export class WireError extends WzpError {
  declare readonly code: WireErrorCode;

  constructor(code: WireErrorCode, message?: string) {
    super(code, message);
    this.name = 'WireError';
  }
}

/** Result of the non-throwing decoders: `null` means success. */
export type WireResult = WireErrorCode | null;
