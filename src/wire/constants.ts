/**
 * Constants of the WZP wire format v2 (see protocol/SPEC.md).
 */

/** Size of a MediaHeader v2 in bytes. */
export const MEDIA_HEADER_SIZE = 16;
/** The only header version this codec speaks (byte 0 of a MediaHeader). */
export const WIRE_VERSION = 2;

/** Flags byte (header byte 1). */
export const FLAG_REPAIR = 0x80;
export const FLAG_QUALITY = 0x40;
export const FLAG_KEYFRAME = 0x20;
export const FLAG_FRAME_END = 0x10;
export const FLAG_RESERVED_MASK = 0x0f;

/** Header field offsets. */
export const OFF_VERSION = 0;
export const OFF_FLAGS = 1;
export const OFF_MEDIA_TYPE = 2;
export const OFF_CODEC_ID = 3;
export const OFF_STREAM_ID = 4;
export const OFF_FEC_RATIO = 5;
export const OFF_SEQ = 6;
export const OFF_TIMESTAMP = 10;
export const OFF_FEC_BLOCK = 14;

/** Largest fec_ratio byte accepted (2.0). */
export const FEC_RATIO_MAX = 200;

/** media_type values. */
export const MediaType = {
  Audio: 0,
  Video: 1,
  Data: 2,
  Control: 3,
} as const;
export type MediaType = (typeof MediaType)[keyof typeof MediaType];
export const MEDIA_TYPE_NAMES = ['Audio', 'Video', 'Data', 'Control'] as const;

/** QualityReport trailer size. */
export const QUALITY_REPORT_SIZE = 4;
/** MiniHeader v2 size. */
export const MINI_HEADER_SIZE = 5;
/** A FULL frame is sent at least every this many frames. */
export const MINI_FULL_INTERVAL = 50;

/** Datagram frame-type bytes (byte 0 of every datagram of the UDP binding). */
export const FrameType = {
  /** Compact FULL: a media packet follows. */
  Full: 0x00,
  /** Compact MINI: a 5-byte MiniHeader and the payload follow. */
  Mini: 0x01,
  /** Relay → client TrunkFrame of tagged compact frames. */
  Trunk: 0x02,
  /** Relay ↔ relay federation media. */
  Federation: 0x03,
  /** Client → relay: bind this source address to a session (token, zero padding). */
  Bind: 0x10,
  /** Relay → client: bind accepted (echoes the token). */
  BindAck: 0x11,
  /** Relay → client: prove this address receives (token ‖ challenge). */
  BindChallenge: 0x14,
  /** Client → relay: the challenge echoed from the same address (token ‖ challenge). */
  BindConfirm: 0x15,
  /** Either way: keep-alive / RTT probe with a u64. */
  Ping: 0x12,
  /** Answer to Ping with the same u64. */
  Pong: 0x13,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** Trunk frame limits. */
export const TRUNK_HEADER_SIZE = 2;
export const TRUNK_ENTRY_OVERHEAD = 4;
export const TRUNK_DEFAULT_MAX_ENTRIES = 10;
export const TRUNK_DEFAULT_MTU = 1200;

/** Federation media datagram (D3): 8-byte room hash, then a media packet. */
export const ROOM_HASH_SIZE = 8;

/** FEDERATION datagram: 0x03 ‖ count u16 ‖ entries. */
export const FEDERATION_HEADER_SIZE = 3;
/** hop_limit 1 + room_hash 8 + origin 8 + sender_tag 2 + len 2. */
export const FEDERATION_ENTRY_OVERHEAD = 21;
export const FEDERATION_MAX_ENTRIES = 64;
export const FEDERATION_MAX_HOPS = 16;
/** Origin relay id: SHA-256(relay public key)[0..8]. */
export const ORIGIN_ID_SIZE = 8;

/** Largest UDP payload over IPv4 (65 535 − 20 IP − 8 UDP). */
export const UDP_MAX_PAYLOAD = 65_507;
/**
 * Largest FULL compact frame the relay can forward in one datagram on every
 * path: a FEDERATION entry adds 3 + 21 bytes, a single-entry TRUNK 7. Larger
 * frames (a MINI counts by its expanded FULL size) are rejected at ingress.
 */
export const MAX_FORWARDED_FULL_FRAME =
  UDP_MAX_PAYLOAD - FEDERATION_HEADER_SIZE - FEDERATION_ENTRY_OVERHEAD;

/** Bind token size. */
export const BIND_TOKEN_SIZE = 16;
