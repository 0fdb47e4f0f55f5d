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
