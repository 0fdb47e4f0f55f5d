/**
 * Every stable error code of wzp-relay, in one place.
 *
 * The code is the contract: messages may change between releases, codes do
 * not. `docs/errors.md` is generated from this table (`npm run docs:errors`)
 * and a test fails when the two drift apart.
 */
export const ERROR_CODES = {
  // ── wire codec (src/wire) ────────────────────────────────────────────────
  WIRE_TRUNCATED: 'The buffer ends before the structure it announces is complete.',
  WIRE_BAD_VERSION: 'MediaHeader byte 0 is not the wire version 0x02.',
  WIRE_RESERVED_BITS: 'A reserved flag bit (mask 0x0F of the flags byte) is set.',
  WIRE_UNKNOWN_MEDIA_TYPE: 'media_type is not 0 (audio), 1 (video), 2 (data) or 3 (control).',
  WIRE_UNKNOWN_CODEC: 'codec_id is not in the codec table (0-9, 11, 12).',
  WIRE_CODEC_MEDIA_MISMATCH:
    'An audio codec on a video packet or a video codec on an audio packet.',
  WIRE_VIDEO_FLAGS_ON_AUDIO: 'The keyframe or frame-end flag is set on an audio packet.',
  WIRE_FEC_RATIO_RANGE: 'fec_ratio is above 200 (a ratio above 2.0).',
  WIRE_MISSING_QUALITY_REPORT: 'The Q flag is set but fewer than 4 bytes follow the header.',
  WIRE_UNKNOWN_FRAME_TYPE:
    'The datagram starts with a frame-type byte this implementation does not know.',
  WIRE_NO_BASELINE: 'A MINI frame arrived before any FULL frame gave its stream a baseline header.',
  WIRE_TRAILING_BYTES: 'Bytes remain after the last element of a length-delimited structure.',
  WIRE_FIELD_RANGE: 'A field given to an encoder does not fit its wire width.',
  WIRE_BUFFER_TOO_SMALL: 'The caller-supplied output buffer cannot hold the encoded bytes.',
  WIRE_BAD_HEX: 'Hex input has an odd length or a non-hex character.',
  WIRE_BAD_COUNT: 'A FEDERATION datagram declares 0 entries or more than 64.',
  WIRE_BAD_HOP_LIMIT: 'A FEDERATION entry has hop_limit 0 or above 16.',
  WIRE_BAD_SENDER_TAG: 'A FEDERATION entry has sender_tag 0 (tags start at 1).',
  WIRE_BAD_PADDING: 'A BIND datagram has a non-zero byte in its padding after the token.',
  WIRE_TOO_LARGE:
    'A datagram exceeds the size its type allows (a BIND over 1200 bytes, a media frame whose forwarded form does not fit one UDP datagram).',

  // ── signalling (src/signal) ──────────────────────────────────────────────
  SIGNAL_TOO_LARGE: 'A signalling frame exceeds the 1 MiB limit.',
  SIGNAL_UNDECODABLE: 'A signalling frame is not valid msgpack, or not a binary frame.',
  SIGNAL_UNKNOWN_VARIANT: 'A signalling message names a variant this relay does not know.',
  SIGNAL_INVALID: 'A known signalling variant has missing or ill-typed fields.',
  SIGNAL_FORBIDDEN_KEY: 'A signalling map uses a key such as __proto__ or constructor.',
  SIGNAL_UNEXPECTED: 'A valid message arrived at a point of the session where it is not allowed.',
  SIGNAL_RATE_LIMITED: 'Too many signalling messages in a short time.',
  SIGNAL_HANDSHAKE_TIMEOUT: 'The handshake did not complete in time.',
  SIGNAL_TOO_COMPLEX:
    'A signalling frame nests too deeply, holds too many items, or a string or bin that is too long (checked before decoding).',
  SIGNAL_OVER_BUDGET:
    'A connection spent its decode budget (bytes and items per second); it is closed.',
  SIGNAL_SLOW_READER:
    'A connection does not read what the relay sends; its send buffer reached the cap and it is closed.',
  SIGNAL_UNKNOWN_TAG: 'A ResyncRequest names a participant tag that is no sender of the room.',

  // ── handshake and auth ───────────────────────────────────────────────────
  AUTH_FAILED: 'The access token is missing, malformed, expired or does not grant this room.',
  BAD_SIGNATURE: 'The Ed25519 signature of a CallOffer does not verify.',
  PROTOCOL_VERSION_MISMATCH: 'The client does not speak protocol version 2.',
  NO_COMMON_PROFILE: 'None of the offered quality profiles is acceptable.',

  // ── rooms (src/room) ─────────────────────────────────────────────────────
  ROOM_FULL: 'The room already holds the maximum number of participants.',
  ROOM_INVALID_NAME: 'The room name is empty, too long or contains control characters.',
  SESSION_LIMIT: 'The relay already holds the maximum number of sessions.',
  SESSION_LIMIT_SUBJECT: 'The access token subject already holds its maximum number of sessions.',
  SESSION_LIMIT_IDENTITY: 'The identity key already holds its maximum number of sessions.',
  ROOM_TAGS_EXHAUSTED: 'No free participant tag is left in the room.',
  RELAY_DRAINING: 'The relay is shutting down and refuses new sessions.',

  // ── media policing (src/media/policer.ts) ───────────────────────────────────
  MEDIA_POLICED:
    'Warning: media of this session exceeded its policed limits (tiers A-E); the excess is dropped.',
  MEDIA_POLICY_VIOLATION:
    'Code of Hangup PolicyViolation: media stayed over its policed limits for policing_strikes seconds.',
  POLICY_COOLDOWN:
    'This identity was hung up for a policy violation and may not rejoin until its cool-down ends.',

  // ── configuration (src/config) ───────────────────────────────────────────
  CONFIG_INVALID: 'The configuration (file, environment or flags) failed validation.',
  CONFIG_UNREADABLE: 'The configuration file could not be read or parsed.',

  // ── media transport (src/media) ────────────────────────────────────────────
  TRANSPORT_BIND_FAILED: 'A listening socket could not be bound.',
  TRANSPORT_CLOSED: 'The operation needs a socket or connection that is already closed.',
  TRANSPORT_TIMEOUT: 'A network operation did not complete in time.',
  UDP_IO_NATIVE_UNAVAILABLE:
    'udp_io = "native" was asked for but the native sendmmsg add-on is not built or does not load.',
  TRANSPORT_CONNECTION_LIMIT:
    'Too many concurrent connections from one source address, or the relay is at its connection capacity.',
  MEDIA_WORKER_UNAVAILABLE:
    'No media worker can take the session (all down or stuck), or one did not answer in time.',
  MEDIA_WORKER_FAILED:
    'The media worker holding the session threw or exited; its sessions end with Hangup Error.',

  // ── federation (src/federation) ──────────────────────────────────────────
  FEDERATION_UNKNOWN_PEER: 'A relay presented a key that is not in the peer list.',
  FEDERATION_BAD_CHALLENGE: 'A federation peer failed the signed challenge.',
  FEDERATION_DUPLICATE_LINK: 'A second link to a peer that already has one was refused.',
  FEDERATION_WRONG_KEY:
    'The relay answering at a configured peer URL presented a key other than the configured one.',
  FEDERATION_NOT_CONFIGURED: 'A federation link was attempted but this relay has no peers.',
  FEDERATION_SELF_LINK: 'A relay tried to link to itself (its own key is in the peer list).',
  FEDERATION_LINK_DOWN: 'The federation link closed or missed its heartbeat deadline.',

  // ── fleet (src/fleet) ────────────────────────────────────────────────────
  FLEET_DIRECTORY_UNAVAILABLE:
    'The room directory (Redis) cannot be reached, so a new room cannot be placed now.',
  FLEET_ROOM_MOVED:
    'The room moved to another relay (a newer epoch); this copy closed. Rejoin through any relay.',
  FLEET_REDIRECT_LOOP: 'A client was redirected more often than it allows (a misconfigured fleet).',
  FLEET_UNTRUSTED_RECORD:
    'A directory record is malformed, stale, or not signed by a trusted key; it was ignored.',

  // ── direct calls (src/calls) ─────────────────────────────────────────────
  HUB_NOT_REGISTERED: 'A hub message other than RegisterPresence arrived before registration.',
  HUB_ALREADY_REGISTERED: 'A second RegisterPresence on a registered hub connection.',
  HUB_BAD_REGISTRATION:
    'The RegisterPresence signature does not verify, or the key differs from the token subject.',
  HUB_REGISTER_TIMEOUT: 'No RegisterPresence arrived in time after the hub connection opened.',
  CALL_NOT_FOUND: 'The call id is unknown, or the target is registered on no reachable relay.',
  CALL_DUPLICATE_ID: 'A DirectCallOffer reuses the id of a call that exists.',
  CALL_BAD_OFFER:
    'A DirectCallOffer is not signed by its identity_pub or names another caller fingerprint.',
  CALL_BAD_ANSWER: 'An accepting DirectCallAnswer lacks keys or its signature does not verify.',
  CALL_NOT_PARTY: 'A signal or room join for a call by someone who is not one of its two parties.',
  CALL_OFFER_RATE: 'The caller sent more call offers per minute than allowed.',
  CALL_TOO_MANY: 'The identity already has the maximum number of concurrent calls.',
  CALL_TOO_MANY_RINGING: 'The callee already has the maximum number of ringing calls.',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** Codes of the wire codec only. */
export type WireErrorCode = Extract<ErrorCode, `WIRE_${string}`>;
