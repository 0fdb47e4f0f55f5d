/**
 * Room hashes and the federation media datagram (D3).
 *
 * ```text
 * +----------------------+-----------------------------------------+
 * | room_hash (8 bytes)  | media packet (MediaHeader ‖ payload ‖ QR) |
 * +----------------------+-----------------------------------------+
 * ```
 * room_hash = SHA-256(UTF-8 canonical room name)[0..8].
 */
import { createHash } from 'node:crypto';
import { ROOM_HASH_SIZE } from './constants.js';
import { WireError } from './error.js';
import { decodeMediaPacket, encodeMediaPacket, type MediaPacket } from './packet.js';

/** Prefix hashed into the "hashed room name" clients may use instead of the raw name. */
export const HASHED_ROOM_PREFIX = 'featherchat-group:';

/** SHA-256(name)[0..8] as 8 bytes. */
export function roomHash(name: string): Buffer {
  return createHash('sha256').update(name, 'utf8').digest().subarray(0, ROOM_HASH_SIZE);
}

/** {@link roomHash} as 16 lowercase hex characters. */
export function roomHashHex(name: string): string {
  return roomHash(name).toString('hex');
}

/** hex(SHA-256("featherchat-group:" ‖ name)[0..16]): 32 lowercase hex characters. */
export function hashedRoomName(name: string): string {
  return createHash('sha256')
    .update(HASHED_ROOM_PREFIX + name, 'utf8')
    .digest()
    .subarray(0, 16)
    .toString('hex');
}

export interface FederationDatagram {
  /** View of the 8-byte room hash. */
  roomHash: Buffer;
  packet: MediaPacket;
}

/** Decodes `room_hash ‖ media packet`. @throws {WireError} */
export function decodeFederationDatagram(
  buf: Buffer,
  off = 0,
  end = buf.length,
): FederationDatagram {
  if (end - off < ROOM_HASH_SIZE) {
    throw new WireError(
      'WIRE_TRUNCATED',
      `federation datagram needs 8 bytes of room hash, got ${Math.max(0, end - off)}`,
    );
  }
  return {
    roomHash: buf.subarray(off, off + ROOM_HASH_SIZE),
    packet: decodeMediaPacket(buf, off + ROOM_HASH_SIZE, end),
  };
}

/** Encodes `room_hash ‖ media packet`. @throws {WireError} */
export function encodeFederationDatagram(hash: Uint8Array, packet: MediaPacket): Buffer {
  if (hash.length !== ROOM_HASH_SIZE) {
    throw new WireError('WIRE_FIELD_RANGE', `room hash must be 8 bytes, got ${hash.length}`);
  }
  return Buffer.concat([hash, encodeMediaPacket(packet)]);
}
