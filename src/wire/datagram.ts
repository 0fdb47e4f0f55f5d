/**
 * Control datagrams of the UDP binding (protocol/BINDING.md). Every datagram
 * starts with a frame-type byte:
 *
 * ```text
 * BIND...  | 0x10, 0x11, 0x14, 0x15: see bind.ts
 * PING     | 0x12 | u64 (8)    |      either way
 * PONG     | 0x13 | u64 (8)    |      answer with the same u64
 * TRUNK    | 0x02 | TrunkFrame |      relay → client media
 * ```
 * Control datagrams have an exact size; anything else is rejected.
 */
import { FrameType } from './constants.js';
import type { WireResult } from './error.js';

/** Size of PING and PONG datagrams. */
export const PING_DATAGRAM_SIZE = 9;

/** Checks a PING/PONG datagram's length (type byte already matched). */
export function checkPingDatagram(off: number, end: number): WireResult {
  const n = end - off;
  if (n < PING_DATAGRAM_SIZE) {
    return 'WIRE_TRUNCATED';
  }
  return n > PING_DATAGRAM_SIZE ? 'WIRE_TRAILING_BYTES' : null;
}

/** Builds a PING (or PONG) datagram carrying a u64 given as a bigint. */
export function encodePing(value: bigint, type: number = FrameType.Ping): Buffer {
  const buf = Buffer.allocUnsafe(PING_DATAGRAM_SIZE);
  buf[0] = type;
  buf.writeBigUInt64BE(BigInt.asUintN(64, value), 1);
  return buf;
}

/** Reads the u64 of a PING/PONG datagram (length already checked). */
export function readPingValue(buf: Buffer, off = 0): bigint {
  return buf.readBigUInt64BE(off + 1);
}
