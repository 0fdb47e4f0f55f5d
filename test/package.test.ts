/**
 * The package imports by its name (Node's self-reference through
 * package.json "exports", so this runs against the built dist/) and exposes
 * the public API: client, wire codec, errors, signalling codec, conformance.
 */
import { describe, expect, it } from 'vitest';

describe('import "wzp-relay"', () => {
  it('exposes the client, the wire codec, errors, signalling and conformance', async () => {
    const api = await import('wzp-relay');
    for (const name of [
      'WzpClient',
      'readHeader',
      'decodeHeader',
      'encodeHeader',
      'WzpError',
      'ERROR_CODES',
      'encodeSignal',
      'decodeSignal',
      'runAllVectors',
    ]) {
      expect(api, name).toHaveProperty(name);
    }
    const header = Buffer.from('02400000002a000030390000000f1206', 'hex');
    expect(api.decodeHeader(header).seq).toBe(12345);
  });
});
