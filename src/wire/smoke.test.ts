import { describe, expect, it } from 'vitest';
import {
  createHeader,
  decodeCompactFrame,
  decodeMediaPacket,
  decodeTrunk,
  encodeHeader,
  encodeTrunk,
  MiniCompressor,
  MiniContext,
  parseHex,
  roomHashHex,
} from './index.js';

describe('wire smoke', () => {
  it('H1 and P1', () => {
    const h1 = parseHex('02 40 00 00 00 2A 00 00 30 39 00 0F 12 06 00 07 00 00 00 00');
    const p = decodeMediaPacket(h1);
    expect(p.header.seq).toBe(12345);
    expect(p.header.timestamp).toBe(987654);
    const p1 = parseHex(
      '02 40 00 02 00 20 00 00 00 64 00 00 07 D0 00 01 74 65 73 74 20 61 75 64 69 6F 20 64 61 74 61 20 68 65 72 65 19 4B 0A 64',
    );
    const pk = decodeMediaPacket(p1);
    expect(pk.payload.toString()).toBe('test audio data here');
    expect(pk.quality).toEqual({ lossPct: 25, rtt4ms: 75, jitterMs: 10, bitrateCapKbps: 100 });
  });
  it('M6/M7 compact', () => {
    const ctx = new MiniContext();
    const f0 = decodeCompactFrame(
      parseHex('00 02 00 00 00 00 0A 00 00 00 00 00 00 00 00 00 00 61 75 64 69 6F'),
      ctx,
    );
    expect(f0.frameType).toBe('full');
    const f1 = decodeCompactFrame(parseHex('01 01 00 14 00 05 61 75 64 69 6F'), ctx);
    expect(f1.header.seq).toBe(1);
    expect(f1.header.timestamp).toBe(20);
    const comp = new MiniCompressor();
    const h = createHeader({ fecRatio: 10 });
    expect(comp.encode(h, Buffer.from('audio')).toString('hex')).toBe(
      '0002000000000a000000000000000000006175646 96f'.replace(/ /g, ''),
    );
    h.seq = 1;
    h.timestamp = 20;
    expect(comp.encode(h, Buffer.from('audio')).toString('hex')).toBe('010100140005617564696f');
    expect(encodeHeader(h).length).toBe(16);
  });
  it('T2 and room hash', () => {
    const t2 = parseHex(
      '00 03 00 01 00 05 68 65 6C 6C 6F 00 02 00 06 77 6F 72 6C 64 21 01 00 00 01 78',
    );
    const e = decodeTrunk(t2);
    expect(e.map((x) => x.tag)).toEqual([1, 2, 256]);
    expect(encodeTrunk(e).equals(t2)).toBe(true);
    expect(roomHashHex('general')).toBe('0feae16d55365acf');
  });
});
