/**
 * Property and unit tests of the codec: round trips of random valid
 * structures, the robustness contract on random bytes, the compressor and
 * context reproducing any header sequence, the trunk batcher and encoder
 * errors. Golden vectors run in src/conformance/vectors.test.ts.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isWzpError } from '../errors/index.js';
import {
  CODECS,
  checkTrunk,
  codecById,
  codecByName,
  createCompactView,
  createHeader,
  createPacketView,
  decodeCompactFrame,
  decodeFederationDatagram,
  decodeHeader,
  decodeMediaPacket,
  decodeMiniHeader,
  decodeQualityReport,
  decodeTrunk,
  encodeBind,
  encodeFecRatio,
  encodeHeader,
  encodeHeaderInto,
  encodeMediaPacket,
  encodeMediaPacketInto,
  encodeMiniHeader,
  encodeTrunk,
  FLAG_QUALITY,
  FrameType,
  fecRatioValue,
  type MediaHeader,
  MiniCompressor,
  MiniContext,
  parseHex,
  type QualityReport,
  qualityLossPercent,
  qualityRttMs,
  readCompact,
  readHeader,
  readPacket,
  TrunkBatcher,
  WireError,
} from './index.js';

const AUDIO = CODECS.filter((c) => c.kind === 'audio').map((c) => c.id);
const VIDEO = CODECS.filter((c) => c.kind === 'video').map((c) => c.id);

/** Any valid MediaHeader. */
const headerArb: fc.Arbitrary<MediaHeader> = fc
  .record({
    mediaType: fc.constantFrom(0, 1, 2, 3),
    repair: fc.boolean(),
    quality: fc.boolean(),
    k: fc.boolean(),
    e: fc.boolean(),
    audioCodec: fc.constantFrom(...AUDIO),
    videoCodec: fc.constantFrom(...VIDEO),
    anyCodec: fc.constantFrom(...AUDIO, ...VIDEO),
    streamId: fc.integer({ min: 0, max: 255 }),
    fecRatio: fc.integer({ min: 0, max: 200 }),
    seq: fc.integer({ min: 0, max: 0xffffffff }),
    timestamp: fc.integer({ min: 0, max: 0xffffffff }),
    fecBlock: fc.integer({ min: 0, max: 0xffff }),
  })
  .map((r) => {
    const audio = r.mediaType === 0;
    const codecId = audio ? r.audioCodec : r.mediaType === 1 ? r.videoCodec : r.anyCodec;
    const flags =
      (r.repair ? 0x80 : 0) |
      (r.quality ? 0x40 : 0) |
      (!audio && r.k ? 0x20 : 0) |
      (!audio && r.e ? 0x10 : 0);
    return createHeader({
      ...r,
      mediaType: r.mediaType as MediaHeader['mediaType'],
      codecId,
      flags,
    });
  });

const qualityArb: fc.Arbitrary<QualityReport> = fc.record({
  lossPct: fc.integer({ min: 0, max: 255 }),
  rtt4ms: fc.integer({ min: 0, max: 255 }),
  jitterMs: fc.integer({ min: 0, max: 255 }),
  bitrateCapKbps: fc.integer({ min: 0, max: 255 }),
});

/** Calls fn; true if it returned or threw a WireError (the robustness contract). */
function onlyWireErrors(fn: () => unknown): boolean {
  try {
    fn();
    return true;
  } catch (err) {
    return err instanceof WireError && isWzpError(err) && err.code.startsWith('WIRE_');
  }
}

describe('round trips of random valid structures', () => {
  it('MediaHeader', () => {
    fc.assert(
      fc.property(headerArb, (h) => {
        const bytes = encodeHeader(h);
        expect(bytes).toHaveLength(16);
        expect(decodeHeader(bytes)).toEqual(h);
      }),
    );
  });

  it('media packet with and without a QualityReport; payload is a view', () => {
    fc.assert(
      fc.property(
        headerArb,
        fc.uint8Array({ maxLength: 1500 }),
        fc.option(qualityArb, { nil: null }),
        (h, payload, q) => {
          const bytes = encodeMediaPacket({ header: h, payload, quality: q });
          const p = decodeMediaPacket(bytes);
          expect(p.header).toEqual({
            ...h,
            flags: q === null ? h.flags & ~FLAG_QUALITY : h.flags | FLAG_QUALITY,
          });
          expect(Buffer.from(p.payload).equals(Buffer.from(payload))).toBe(true);
          expect(p.payload.buffer).toBe(bytes.buffer);
          expect(p.quality).toEqual(q);
        },
      ),
    );
  });

  it('mini header and trunk', () => {
    fc.assert(
      fc.property(
        fc.record({
          seqDelta: fc.integer({ min: 0, max: 255 }),
          timestampDelta: fc.integer({ min: 0, max: 0xffff }),
          payloadLength: fc.integer({ min: 0, max: 0xffff }),
        }),
        (m) => {
          expect(decodeMiniHeader(encodeMiniHeader(m))).toEqual(m);
        },
      ),
    );
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            tag: fc.integer({ min: 0, max: 0xffff }),
            data: fc.uint8Array({ maxLength: 300 }),
          }),
          {
            maxLength: 12,
          },
        ),
        (entries) => {
          const back = decodeTrunk(encodeTrunk(entries));
          expect(back.map((e) => [e.tag, Buffer.from(e.data).toString('hex')])).toEqual(
            entries.map((e) => [e.tag, Buffer.from(e.data).toString('hex')]),
          );
        },
      ),
    );
  });
});

describe('robustness: random bytes', () => {
  it('never throw anything but WireError, and the non-throwing readers never throw', () => {
    const view = createPacketView();
    const cview = createCompactView();
    const header = createHeader();
    const ctx = new MiniContext();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), (raw) => {
        const bytes = Buffer.from(raw);
        readHeader(bytes, 0, bytes.length, header);
        readPacket(bytes, 0, bytes.length, view);
        readCompact(bytes, 0, bytes.length, ctx, cview);
        checkTrunk(bytes, 0, bytes.length);
        return (
          onlyWireErrors(() => decodeHeader(bytes)) &&
          onlyWireErrors(() => decodeMediaPacket(bytes)) &&
          onlyWireErrors(() => decodeCompactFrame(bytes, ctx)) &&
          onlyWireErrors(() => decodeTrunk(bytes)) &&
          onlyWireErrors(() => decodeQualityReport(bytes)) &&
          onlyWireErrors(() => decodeMiniHeader(bytes)) &&
          onlyWireErrors(() => decodeFederationDatagram(bytes))
        );
      }),
      { numRuns: 5000 },
    );
    // The context still works after all that.
    const c2 = new MiniContext();
    const comp = new MiniCompressor();
    const h = createHeader({ seq: 9 });
    decodeCompactFrame(comp.encode(h, Buffer.from('a')), c2);
    h.seq = 10;
    expect(decodeCompactFrame(comp.encode(h, Buffer.from('b')), c2).header.seq).toBe(10);
  });

  it('biased random frames (valid prefix, random tail) obey the same contract', () => {
    fc.assert(
      fc.property(
        headerArb,
        fc.uint8Array({ maxLength: 40 }),
        fc.integer({ min: 0, max: 3 }),
        (h, tail, type) => {
          const bytes = Buffer.concat([Buffer.from([type]), encodeHeader(h), Buffer.from(tail)]);
          return onlyWireErrors(() => decodeCompactFrame(bytes, new MiniContext()));
        },
      ),
    );
  });
});

describe('MiniCompressor + MiniContext', () => {
  const stepArb = fc.record({
    change: fc.constantFrom('none', 'none', 'none', 'field', 'jump', 'back'),
    header: headerArb,
    seqStep: fc.integer({ min: 0, max: 300 }),
    tsStep: fc.integer({ min: 0, max: 70_000 }),
    payload: fc.uint8Array({ maxLength: 2000 }),
    quality: fc.option(qualityArb, { nil: null, freq: 8 }),
  });

  it('reproduce any header sequence exactly', () => {
    fc.assert(
      fc.property(
        headerArb,
        fc.array(stepArb, { minLength: 1, maxLength: 120 }),
        (start, steps) => {
          const comp = new MiniCompressor();
          const ctx = new MiniContext();
          let h = { ...start };
          let sinceFull = 0;
          steps.forEach((s, i) => {
            if (s.change === 'field') {
              h = { ...s.header };
            } else if (s.change === 'jump') {
              h = {
                ...h,
                seq: (h.seq + s.seqStep * 1000) >>> 0,
                timestamp: (h.timestamp + s.tsStep * 10) >>> 0,
              };
            } else if (s.change === 'back') {
              h = { ...h, seq: (h.seq - 1 - s.seqStep) >>> 0 };
            } else {
              h = {
                ...h,
                seq: (h.seq + (s.seqStep % 4)) >>> 0,
                timestamp: (h.timestamp + (s.tsStep % 100)) >>> 0,
              };
            }
            const frame = comp.encode(h, s.payload, s.quality);
            const f = decodeCompactFrame(frame, ctx);
            const expectedFlags =
              s.quality === null ? h.flags & ~FLAG_QUALITY : h.flags | FLAG_QUALITY;
            expect(f.header).toEqual({ ...h, flags: expectedFlags });
            expect(Buffer.from(f.payload).equals(Buffer.from(s.payload))).toBe(true);
            expect(f.quality).toEqual(s.quality);
            if (i === 0) {
              expect(f.frameType).toBe('full');
            }
            sinceFull = f.frameType === 'full' ? 1 : sinceFull + 1;
            expect(sinceFull).toBeLessThanOrEqual(50);
          });
        },
      ),
      { numRuns: 300 },
    );
  });

  it('sends FULL first, every 50th frame, on field changes and on overflowing deltas', () => {
    const comp = new MiniCompressor();
    const types: number[] = [];
    const h = createHeader({ fecRatio: 10 });
    for (let i = 0; i < 101; i++) {
      h.seq = i;
      h.timestamp = i * 20;
      types.push(comp.encode(h, Buffer.from('x'))[0] as number);
    }
    expect(types.map((t, i) => (t === FrameType.Full ? i : -1)).filter((i) => i >= 0)).toEqual([
      0, 50, 100,
    ]);
    h.fecBlock = 1; // a field other than seq/ts changes
    h.seq++;
    expect(comp.encode(h, Buffer.from('x'))[0]).toBe(FrameType.Full);
    h.seq += 256; // seq delta does not fit a u8
    expect(comp.encode(h, Buffer.from('x'))[0]).toBe(FrameType.Full);
    h.seq += 1;
    h.timestamp += 70_000; // timestamp delta does not fit a u16
    expect(comp.encode(h, Buffer.from('x'))[0]).toBe(FrameType.Full);
    h.seq += 1;
    expect(comp.encode(h, Buffer.from('x'))[0]).toBe(FrameType.Mini);
    h.seq += 1;
    expect(
      comp.encode(h, Buffer.from('x'), {
        lossPct: 0,
        rtt4ms: 0,
        jitterMs: 0,
        bitrateCapKbps: 200,
      })[0],
    ).toBe(FrameType.Full);
    comp.reset();
    h.seq += 1;
    expect(comp.encode(h, Buffer.from('x'))[0]).toBe(FrameType.Full);
  });
});

describe('TrunkBatcher', () => {
  function batcher(opts: { maxEntries?: number; maxBytes?: number; prefixByte?: number }) {
    const frames: { frame: Buffer; entries: number }[] = [];
    const b = new TrunkBatcher({
      ...opts,
      onFlush: (frame, entries) => frames.push({ frame: Buffer.from(frame), entries }),
    });
    return { b, frames };
  }

  it('flushes at max entries', () => {
    const { b, frames } = batcher({ maxEntries: 3 });
    b.push(1, Buffer.from('a'));
    b.push(2, Buffer.from('b'));
    expect(frames).toHaveLength(0);
    b.push(3, Buffer.from('c'));
    expect(frames).toHaveLength(1);
    expect(decodeTrunk(frames[0]?.frame as Buffer).map((e) => e.tag)).toEqual([1, 2, 3]);
  });

  it('respects max bytes (reference: 120 bytes, 50-byte payloads → 2 per frame)', () => {
    const { b, frames } = batcher({ maxBytes: 120 });
    for (let i = 0; i < 3; i++) {
      b.push(i, Buffer.alloc(50, i));
    }
    expect(frames).toHaveLength(1);
    expect(frames[0]?.entries).toBe(2);
    expect(frames[0]?.frame).toHaveLength(110);
    expect(b.pendingEntries).toBe(1);
    expect(b.flush()).toBe(true);
    expect(b.flush()).toBe(false);
    expect(frames).toHaveLength(2);
  });

  it('writes the prefix byte and sends an oversize entry alone', () => {
    const { b, frames } = batcher({ maxBytes: 100, prefixByte: 0x02 });
    b.push(9, Buffer.alloc(10));
    b.push(7, Buffer.alloc(300));
    expect(frames).toHaveLength(2);
    expect(frames[0]?.frame[0]).toBe(0x02);
    expect(decodeTrunk(frames[1]?.frame as Buffer, 1)[0]?.data).toHaveLength(300);
  });

  it('every flushed frame decodes back to the pushed entries, in order', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            tag: fc.integer({ min: 0, max: 0xffff }),
            len: fc.integer({ min: 0, max: 400 }),
          }),
          {
            maxLength: 60,
          },
        ),
        fc.integer({ min: 1, max: 12 }),
        fc.integer({ min: 64, max: 1500 }),
        (entries, maxEntries, maxBytes) => {
          const { b, frames } = batcher({ maxEntries, maxBytes, prefixByte: 2 });
          entries.forEach((e, i) => {
            b.push(e.tag, Buffer.alloc(e.len, i % 256));
          });
          b.flush();
          const back = frames.flatMap((f) => {
            const d = decodeTrunk(f.frame, 1);
            expect(d.length).toBeLessThanOrEqual(maxEntries);
            if (d.length > 1) {
              expect(f.frame.length).toBeLessThanOrEqual(maxBytes);
            }
            return d;
          });
          expect(back.map((e) => [e.tag, e.data.length])).toEqual(
            entries.map((e) => [e.tag, e.len]),
          );
        },
      ),
    );
  });
});

describe('codec table lookups', () => {
  it('finds every codec by id and by name, and nothing for other ids', () => {
    const ids = new Set(CODECS.map((c) => c.id));
    for (const c of CODECS) {
      expect(codecById(c.id)).toBe(c);
      expect(codecByName(c.name)).toBe(c);
    }
    for (let id = -1; id <= 256; id++) {
      if (!ids.has(id)) {
        expect(codecById(id)).toBeUndefined();
      }
    }
    expect(codecById(1.5)).toBeUndefined();
    expect(codecByName('constructor')).toBeUndefined();
  });
});

describe('encoder errors and helpers', () => {
  it('reject out-of-range fields, invalid headers and short buffers with typed codes', () => {
    const code = (fn: () => unknown) => {
      try {
        fn();
      } catch (err) {
        return (err as WireError).code;
      }
      return null;
    };
    expect(code(() => encodeHeader(createHeader({ seq: 2 ** 32 })))).toBe('WIRE_FIELD_RANGE');
    expect(code(() => encodeHeader(createHeader({ streamId: -1 })))).toBe('WIRE_FIELD_RANGE');
    expect(code(() => encodeHeader(createHeader({ codecId: 10 })))).toBe('WIRE_UNKNOWN_CODEC');
    expect(code(() => encodeHeader(createHeader({ flags: 0x01 })))).toBe('WIRE_RESERVED_BITS');
    expect(code(() => encodeHeaderInto(createHeader(), Buffer.alloc(15)))).toBe(
      'WIRE_BUFFER_TOO_SMALL',
    );
    expect(
      code(() =>
        encodeMediaPacketInto(
          { header: createHeader(), payload: Buffer.alloc(10), quality: null },
          Buffer.alloc(20),
        ),
      ),
    ).toBe('WIRE_BUFFER_TOO_SMALL');
    expect(
      code(() => encodeMiniHeader({ seqDelta: 256, timestampDelta: 0, payloadLength: 0 })),
    ).toBe('WIRE_FIELD_RANGE');
    expect(code(() => encodeTrunk([{ tag: 70000, data: Buffer.alloc(1) }]))).toBe(
      'WIRE_FIELD_RANGE',
    );
    expect(code(() => encodeBind(Buffer.alloc(15)))).toBe('WIRE_FIELD_RANGE');
    expect(code(() => parseHex('abc'))).toBe('WIRE_BAD_HEX');
    expect(code(() => parseHex('zz'))).toBe('WIRE_BAD_HEX');
    expect(parseHex('0x02:40 00').toString('hex')).toBe('024000');
  });

  it('convert fec ratios and report fields', () => {
    expect(encodeFecRatio(2.0)).toBe(200);
    expect(fecRatioValue(encodeFecRatio(0.5))).toBeCloseTo(0.5, 2);
    expect(encodeFecRatio(3)).toBe(200);
    expect(encodeFecRatio(Number.NaN)).toBe(0);
    expect(
      qualityLossPercent({ lossPct: 128, rtt4ms: 25, jitterMs: 0, bitrateCapKbps: 0 }),
    ).toBeCloseTo(50.2, 1);
    expect(qualityRttMs({ lossPct: 0, rtt4ms: 25, jitterMs: 0, bitrateCapKbps: 0 })).toBe(100);
  });
});
