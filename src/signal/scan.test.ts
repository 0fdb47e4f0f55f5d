import { Decoder, Encoder } from '@msgpack/msgpack';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isWzpError } from '../errors/index.js';
import { decodeSignal } from './codec.js';
import {
  CLIENT_DECODE_LIMITS,
  type DecodeLimits,
  PEER_DECODE_LIMITS,
  scanMsgpack,
} from './scan.js';

const enc = new Encoder({ useBigInt64: false });
const dec = new Decoder({ useBigInt64: false, maxExtLength: 0 });

function codeOf(f: () => unknown): string {
  try {
    f();
    return 'ok';
  } catch (err) {
    return isWzpError(err) ? err.code : `untyped: ${String(err)}`;
  }
}

/** Items of a decoded value, counted the way the scanner counts them. */
function items(v: unknown): number {
  if (Array.isArray(v)) {
    return 1 + v.reduce((n: number, x) => n + items(x), 0);
  }
  if (v !== null && typeof v === 'object' && !(v instanceof Uint8Array)) {
    return 1 + Object.entries(v).reduce((n, [, x]) => n + 1 + items(x), 0);
  }
  return 1;
}

const value = fc.letrec((tie) => ({
  leaf: fc.oneof(
    fc.integer(),
    fc.double({ noNaN: true }),
    fc.boolean(),
    fc.constant(null),
    fc.string({ maxLength: 40 }),
    fc.uint8Array({ maxLength: 40 }),
    fc.integer({ min: -(2 ** 53) + 1, max: 2 ** 53 - 1 }),
  ),
  node: fc.oneof(
    { depthSize: 'small' },
    tie('leaf'),
    fc.array(tie('node'), { maxLength: 8 }),
    fc.dictionary(fc.string({ maxLength: 8 }), tie('node'), { maxKeys: 6 }),
  ),
})).node;

describe('scanMsgpack', () => {
  it('accepts what the encoder writes and counts every item', () => {
    fc.assert(
      fc.property(value, (v) => {
        const bytes = enc.encode(v);
        expect(scanMsgpack(bytes, PEER_DECODE_LIMITS)).toBe(items(dec.decode(bytes)));
      }),
      { numRuns: 500 },
    );
  });

  it('is total on arbitrary bytes: a count or a typed rejection, and decoding after it is typed too', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        try {
          scanMsgpack(bytes, CLIENT_DECODE_LIMITS);
        } catch (err) {
          expect(isWzpError(err)).toBe(true);
          return;
        }
        // The scanner accepted: the decoder may still refuse (non-string map keys, …), typed.
        expect(codeOf(() => decodeSignal(bytes, CLIENT_DECODE_LIMITS))).not.toMatch(/^untyped/);
      }),
      { numRuns: 3000 },
    );
  });

  it('refuses the measured attack frames at their first headers, in well under a millisecond each', () => {
    const nested = Buffer.alloc(1_048_000, 0x91);
    const wide = enc.encode({ Ping: Array.from({ length: 100_000 }, () => ({})) });
    const deepMaps = Buffer.concat([
      Buffer.alloc(3000, 0x81).map((_, i) => (i % 3 === 0 ? 0x81 : i % 3 === 1 ? 0xa1 : 0x61)),
      Buffer.from([0xc0]),
    ]);
    const hugeStr = Buffer.from([0xdb, 0x00, 0x10, 0x00, 0x00]);
    const hugeArray = Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff]);
    const cases: [Uint8Array, string][] = [
      [nested, 'SIGNAL_TOO_COMPLEX'],
      [wide, 'SIGNAL_TOO_COMPLEX'],
      [deepMaps, 'SIGNAL_TOO_COMPLEX'],
      [hugeStr, 'SIGNAL_TOO_COMPLEX'],
      [hugeArray, 'SIGNAL_TOO_COMPLEX'],
      [Buffer.alloc((1 << 20) + 1, 0x90), 'SIGNAL_TOO_LARGE'],
    ];
    for (const [frame, code] of cases) {
      expect(codeOf(() => scanMsgpack(frame, CLIENT_DECODE_LIMITS))).toBe(code);
      // The fastest of 20 runs: robust to the scheduler of a loaded machine.
      let best = Number.POSITIVE_INFINITY;
      for (let i = 0; i < 20; i++) {
        const t0 = performance.now();
        codeOf(() => scanMsgpack(frame, CLIENT_DECODE_LIMITS));
        best = Math.min(best, performance.now() - t0);
      }
      expect(best).toBeLessThan(1);
    }
  });

  it('bounds depth, items, string and bin sizes exactly at the limit', () => {
    const limits: DecodeLimits = {
      maxBytes: 1 << 20,
      maxDepth: 3,
      maxElements: 10,
      maxStrBytes: 5,
      maxBinBytes: 2,
    };
    expect(codeOf(() => scanMsgpack(enc.encode([[[1]]]), limits))).toBe('ok');
    expect(codeOf(() => scanMsgpack(enc.encode([[[[1]]]]), limits))).toBe('SIGNAL_TOO_COMPLEX');
    expect(scanMsgpack(enc.encode([1, 2, 3, 4, 5, 6, 7, 8, 9]), limits)).toBe(10);
    expect(codeOf(() => scanMsgpack(enc.encode([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]), limits))).toBe(
      'SIGNAL_TOO_COMPLEX',
    );
    expect(codeOf(() => scanMsgpack(enc.encode('abcde'), limits))).toBe('ok');
    expect(codeOf(() => scanMsgpack(enc.encode('abcdef'), limits))).toBe('SIGNAL_TOO_COMPLEX');
    expect(codeOf(() => scanMsgpack(Uint8Array.from([0xc4, 2, 1, 2]), limits))).toBe('ok');
    expect(codeOf(() => scanMsgpack(Uint8Array.from([0xc4, 3, 1, 2, 3]), limits))).toBe(
      'SIGNAL_TOO_COMPLEX',
    );
  });

  it('rejects truncation, trailing bytes, 0xc1 and ext types as undecodable', () => {
    for (const bytes of [
      [],
      [0x92, 0x01],
      [0xa5, 0x61],
      [0xcd, 0x01],
      [0x01, 0x02],
      [0xc1],
      [0xd4, 0x01, 0x02],
      [0xc7, 0x01, 0x01, 0x00],
    ]) {
      expect(codeOf(() => scanMsgpack(Uint8Array.from(bytes), CLIENT_DECODE_LIMITS))).toBe(
        'SIGNAL_UNDECODABLE',
      );
    }
  });

  it('is what decodeSignal runs first', () => {
    expect(codeOf(() => decodeSignal(Buffer.alloc(1000, 0x91), CLIENT_DECODE_LIMITS))).toBe(
      'SIGNAL_TOO_COMPLEX',
    );
    expect(codeOf(() => decodeSignal(enc.encode({ Ping: { timestamp_ms: 1 } })))).toBe('ok');
  });
});
