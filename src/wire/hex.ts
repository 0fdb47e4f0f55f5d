import { WireError } from './error.js';

/**
 * Parses hex text: whitespace, ':' and '-' separators and a leading `0x`
 * are ignored; case-insensitive. @throws {WireError} WIRE_BAD_HEX
 */
export function parseHex(text: string): Buffer {
  let clean = text.trim();
  if (clean.startsWith('0x') || clean.startsWith('0X')) {
    clean = clean.slice(2);
  }
  clean = clean.replace(/[\s:-]/g, '');
  if (clean.length % 2 !== 0) {
    throw new WireError('WIRE_BAD_HEX', `hex input has an odd number of digits (${clean.length})`);
  }
  const bad = /[^0-9a-fA-F]/.exec(clean);
  if (bad !== null) {
    throw new WireError(
      'WIRE_BAD_HEX',
      `not a hex digit: ${JSON.stringify(bad[0])} at position ${bad.index}`,
    );
  }
  return Buffer.from(clean, 'hex');
}

/** Lowercase hex without separators. */
export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}
