/**
 * Byte-buffer helpers shared by the signalling and federation WebSockets.
 */
import type { RawData } from 'ws';

/** One contiguous Buffer from what `ws` hands a message handler (no copy when it already is one). */
export function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) {
    return data;
  }
  if (Array.isArray(data)) {
    return Buffer.concat(data);
  }
  return Buffer.from(data);
}

/** Bytes of what `ws` hands a message handler. */
export function rawDataBytes(data: RawData): number {
  if (Array.isArray(data)) {
    let n = 0;
    for (const b of data) {
      n += b.length;
    }
    return n;
  }
  return data.byteLength;
}
