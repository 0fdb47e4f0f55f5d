import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isWzpError } from '../errors/index.js';
import {
  CODECS,
  checkFederationFrame,
  createHeader,
  decodeFederationFrame,
  encodeFederationFrame,
  FederationBatcher,
  type FederationEntryInput,
  type MediaHeader,
  originId,
  WireError,
} from './index.js';

const AUDIO = CODECS.filter((c) => c.kind === 'audio').map((c) => c.id);

const entryArb: fc.Arbitrary<FederationEntryInput> = fc
  .record({
    hopLimit: fc.integer({ min: 1, max: 16 }),
    roomHash: fc.uint8Array({ minLength: 8, maxLength: 8 }),
    origin: fc.uint8Array({ minLength: 8, maxLength: 8 }),
    senderTag: fc.integer({ min: 1, max: 0xffff }),
    codecId: fc.constantFrom(...AUDIO),
    streamId: fc.integer({ min: 0, max: 255 }),
    seq: fc.integer({ min: 0, max: 0xffffffff }),
    timestamp: fc.integer({ min: 0, max: 0xffffffff }),
    payload: fc.uint8Array({ maxLength: 120 }),
    quality: fc.option(fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)), {
      nil: null,
    }),
  })
  .map((r) => ({
    hopLimit: r.hopLimit,
    roomHash: Buffer.from(r.roomHash),
    origin: Buffer.from(r.origin),
    senderTag: r.senderTag,
    packet: {
      header: createHeader({
        codecId: r.codecId,
        streamId: r.streamId,
        seq: r.seq,
        timestamp: r.timestamp,
        flags: r.quality === null ? 0 : 0x40,
      }) as MediaHeader,
      payload: Buffer.from(r.payload),
      quality:
        r.quality === null
          ? null
          : {
              lossPct: r.quality[0],
              rtt4ms: r.quality[1],
              jitterMs: r.quality[2],
              bitrateCapKbps: r.quality[3],
            },
    },
  }));

describe('FEDERATION datagram', () => {
  it('round-trips any list of 1..64 valid entries', () => {
    fc.assert(
      fc.property(fc.array(entryArb, { minLength: 1, maxLength: 64 }), (entries) => {
        const bytes = encodeFederationFrame(entries);
        expect(checkFederationFrame(bytes, 0, bytes.length)).toBeNull();
        const back = decodeFederationFrame(bytes);
        expect(back).toHaveLength(entries.length);
        back.forEach((e, i) => {
          const want = entries[i] as FederationEntryInput;
          expect(e.hopLimit).toBe(want.hopLimit);
          expect(e.senderTag).toBe(want.senderTag);
          expect(Buffer.from(e.roomHash)).toEqual(Buffer.from(want.roomHash));
          expect(Buffer.from(e.origin)).toEqual(Buffer.from(want.origin));
          expect(e.packet.header).toEqual(want.packet.header);
          expect(Buffer.from(e.packet.payload)).toEqual(Buffer.from(want.packet.payload));
          expect(e.packet.quality).toEqual(want.packet.quality);
        });
        expect(encodeFederationFrame(back.map((e) => ({ ...e })))).toEqual(bytes);
      }),
      { numRuns: 300 },
    );
  });

  it('random bytes after 0x03 only ever fail with a WireError, and check agrees with decode', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (tail) => {
        const bytes = Buffer.concat([Buffer.from([0x03]), tail]);
        const checked = checkFederationFrame(bytes, 0, bytes.length);
        try {
          decodeFederationFrame(bytes);
          expect(checked).toBeNull();
        } catch (err) {
          expect(err).toBeInstanceOf(WireError);
          expect(isWzpError(err)).toBe(true);
          expect((err as WireError).code).toBe(checked);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('the batcher emits datagrams that decode back to the pushed entries, within its limits', () => {
    fc.assert(
      fc.property(
        fc.array(entryArb, { minLength: 1, maxLength: 80 }),
        fc.integer({ min: 1, max: 12 }),
        fc.integer({ min: 200, max: 1500 }),
        (entries, maxEntries, maxBytes) => {
          const out: Buffer[] = [];
          const b = new FederationBatcher({ maxEntries, maxBytes, onFlush: (d) => out.push(d) });
          const frames = entries.map((e) => encodeFederationFrame([e]).subarray(3 + 21));
          entries.forEach((e, i) => {
            b.push(e.hopLimit, e.roomHash, e.origin, e.senderTag, frames[i] as Buffer);
          });
          b.flush();
          const decoded = out.flatMap((d) => {
            const got = decodeFederationFrame(d);
            expect(got.length).toBeLessThanOrEqual(maxEntries);
            if (got.length > 1) {
              expect(d.length).toBeLessThanOrEqual(maxBytes);
            }
            return got;
          });
          expect(decoded.map((e) => e.senderTag)).toEqual(entries.map((e) => e.senderTag));
          expect(decoded.map((e) => e.packet.header.seq)).toEqual(
            entries.map((e) => e.packet.header.seq),
          );
        },
      ),
      { numRuns: 200 },
    );
  });

  it('origin id is the first 8 bytes of SHA-256 of the key', () => {
    expect(originId(Buffer.alloc(32)).toString('hex')).toBe('66687aadf862bd77');
  });
});
