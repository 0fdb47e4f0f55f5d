import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../errors/index.js';
import { nativeCodec } from './native-codec.js';
import { loadVectorFiles, runAllVectors, runVector } from './vectors.js';

const DIR = new URL('../../fixtures/vectors/', import.meta.url).pathname;
const files = loadVectorFiles(DIR);
const all = files.flatMap((f) => f.vectors.map((v) => ({ file: f.file, v })));

describe('golden vectors against our codec', () => {
  it.each(all.map(({ file, v }) => [`${file} ${v.name}`, file, v] as const))(
    '%s',
    async (_label, file, v) => {
      const results = await runVector(file, v, nativeCodec);
      expect(results.length).toBeGreaterThan(0);
      for (const r of results) {
        expect(r.pass, `${r.direction}: ${r.detail}`).toBe(true);
      }
      // Decoding twice gives the same answer (no state leaks between calls).
      const again = await runVector(file, v, nativeCodec);
      expect(again.map((r) => r.pass)).toEqual(results.map((r) => r.pass));
    },
  );

  it('covers every reference vector, every decode error code and at least 40 invalid inputs', async () => {
    const names = new Set(all.map(({ v }) => v.name));
    for (const ref of [
      'H1',
      'H2',
      'H3',
      'H4',
      'P1',
      'Q1',
      'Q2',
      'Q3-zero',
      'Q3-clamp',
      'M1',
      'M2',
      'M3',
      'M4',
      'M5',
      'M6-M7',
      'T1',
      'T2',
      'T3',
      'D3-general',
    ]) {
      expect(names.has(ref), ref).toBe(true);
    }
    for (const room of ['general', 'android', 'podcast', 'call-c1']) {
      expect(names.has(`room-hash-${room}`)).toBe(true);
    }
    const invalid = all.filter(
      ({ v }) => v.error !== undefined || v.frames?.some((f) => f.error !== undefined),
    );
    expect(invalid.length).toBeGreaterThanOrEqual(40);
    const codes = new Set(
      all.flatMap(({ v }) => [v.error, ...(v.frames ?? []).map((f) => f.error)]).filter(Boolean),
    );
    const decodeCodes = Object.keys(ERROR_CODES).filter(
      (c) =>
        c.startsWith('WIRE_') &&
        !['WIRE_FIELD_RANGE', 'WIRE_BUFFER_TOO_SMALL', 'WIRE_BAD_HEX'].includes(c),
    );
    for (const code of decodeCodes) {
      expect(codes.has(code), code).toBe(true);
    }
    const results = await runAllVectors(files, nativeCodec);
    expect(results.filter((r) => r.direction === 'encode').length).toBeGreaterThan(20);
  });
});
