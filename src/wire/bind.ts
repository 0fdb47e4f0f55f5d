/**
 * Return-path validated binding of a UDP source to a session
 * (protocol/BINDING.md §4.5). Four datagrams, each starting with its
 * frame-type byte:
 *
 * ```text
 * BIND           | 0x10 | token (16) | zero padding       client → relay, 33..1200 B (48 recommended)
 * BIND_CHALLENGE | 0x14 | token (16) | challenge (16)     relay → client, 33 B
 * BIND_CONFIRM   | 0x15 | token (16) | challenge (16)     client → relay, 33 B, the challenge echoed
 * BIND_ACK       | 0x11 | token (16) |                    relay → client, 17 B
 * ```
 *
 * A BIND is never shorter than the challenge it provokes (33 B), so the
 * relay cannot be used as an amplifier towards a spoofed source. All
 * offsets and sizes of these datagrams live here; the relay's policy
 * (what a valid challenge is) lives in src/media/bind.ts.
 */
import { BIND_TOKEN_SIZE, FrameType } from './constants.js';
import { WireError, type WireResult } from './error.js';

/** Offset of the token in every bind datagram. */
export const BIND_TOKEN_OFFSET = 1;
/** Size of the challenge in BIND_CHALLENGE / BIND_CONFIRM. */
export const BIND_CHALLENGE_SIZE = 16;
/** Offset of the challenge in BIND_CHALLENGE / BIND_CONFIRM. */
export const BIND_CHALLENGE_OFFSET = BIND_TOKEN_OFFSET + BIND_TOKEN_SIZE;
/** Size of BIND_CHALLENGE and BIND_CONFIRM (type ‖ token ‖ challenge). */
export const BIND_CHALLENGE_DATAGRAM_SIZE = BIND_CHALLENGE_OFFSET + BIND_CHALLENGE_SIZE;
/** Smallest BIND accepted: never smaller than the BIND_CHALLENGE it provokes. */
export const BIND_MIN_SIZE = BIND_CHALLENGE_DATAGRAM_SIZE;
/** Size clients SHOULD send. */
export const BIND_RECOMMENDED_SIZE = 48;
/** Largest BIND accepted (bounds the cost of checking the padding). */
export const BIND_MAX_SIZE = 1200;
/** Size of BIND_ACK (type ‖ token). */
export const BIND_ACK_SIZE = BIND_TOKEN_OFFSET + BIND_TOKEN_SIZE;

/**
 * Checks a BIND datagram in `buf[off, end)` (type byte already matched):
 * 33..1200 bytes, every byte after the token zero.
 */
export function checkBind(buf: Uint8Array, off: number, end: number): WireResult {
  const n = end - off;
  if (n < BIND_MIN_SIZE) {
    return 'WIRE_TRUNCATED';
  }
  if (n > BIND_MAX_SIZE) {
    return 'WIRE_TOO_LARGE';
  }
  for (let i = off + BIND_CHALLENGE_OFFSET; i < end; i++) {
    if (buf[i] !== 0) {
      return 'WIRE_BAD_PADDING';
    }
  }
  return null;
}

/** Checks a BIND_CHALLENGE or BIND_CONFIRM datagram's length (exactly 33 bytes). */
export function checkBindChallenge(off: number, end: number): WireResult {
  const n = end - off;
  if (n < BIND_CHALLENGE_DATAGRAM_SIZE) {
    return 'WIRE_TRUNCATED';
  }
  return n > BIND_CHALLENGE_DATAGRAM_SIZE ? 'WIRE_TRAILING_BYTES' : null;
}

/** Checks a BIND_ACK datagram's length (exactly 17 bytes). */
export function checkBindAck(off: number, end: number): WireResult {
  const n = end - off;
  if (n < BIND_ACK_SIZE) {
    return 'WIRE_TRUNCATED';
  }
  return n > BIND_ACK_SIZE ? 'WIRE_TRAILING_BYTES' : null;
}

function checkToken(token: Uint8Array): void {
  if (token.length !== BIND_TOKEN_SIZE) {
    throw new WireError(
      'WIRE_FIELD_RANGE',
      `bind token must be ${BIND_TOKEN_SIZE} bytes, got ${token.length}`,
    );
  }
}

/** Builds a BIND: 0x10 ‖ token ‖ zero padding up to `size` bytes (33..1200, default 48). */
export function encodeBind(token: Uint8Array, size: number = BIND_RECOMMENDED_SIZE): Buffer {
  checkToken(token);
  if (!Number.isInteger(size) || size < BIND_MIN_SIZE || size > BIND_MAX_SIZE) {
    throw new WireError(
      'WIRE_FIELD_RANGE',
      `a BIND is ${BIND_MIN_SIZE}..${BIND_MAX_SIZE} bytes, got ${size}`,
    );
  }
  const buf = Buffer.alloc(size);
  buf[0] = FrameType.Bind;
  buf.set(token, BIND_TOKEN_OFFSET);
  return buf;
}

/** Builds a BIND_ACK: 0x11 ‖ token. */
export function encodeBindAck(token: Uint8Array): Buffer {
  checkToken(token);
  const buf = Buffer.allocUnsafe(BIND_ACK_SIZE);
  buf[0] = FrameType.BindAck;
  buf.set(token, BIND_TOKEN_OFFSET);
  return buf;
}

/**
 * Writes `type ‖ token ‖ challenge` (BIND_CHALLENGE or BIND_CONFIRM) into
 * `out` at `off`; the token is copied from `tokenSrc[tokenOff, +16)`.
 * Returns the bytes written (33). The caller guarantees the sizes.
 */
export function writeBindChallengeUnchecked(
  type: number,
  tokenSrc: Uint8Array,
  tokenOff: number,
  challenge: Uint8Array,
  out: Uint8Array,
  off: number,
): number {
  out[off] = type;
  out.set(tokenSrc.subarray(tokenOff, tokenOff + BIND_TOKEN_SIZE), off + BIND_TOKEN_OFFSET);
  out.set(challenge.subarray(0, BIND_CHALLENGE_SIZE), off + BIND_CHALLENGE_OFFSET);
  return BIND_CHALLENGE_DATAGRAM_SIZE;
}

/** Builds a BIND_CHALLENGE (0x14) or, with `type`, a BIND_CONFIRM (0x15). */
export function encodeBindChallenge(
  token: Uint8Array,
  challenge: Uint8Array,
  type: number = FrameType.BindChallenge,
): Buffer {
  checkToken(token);
  if (challenge.length !== BIND_CHALLENGE_SIZE) {
    throw new WireError(
      'WIRE_FIELD_RANGE',
      `a bind challenge is ${BIND_CHALLENGE_SIZE} bytes, got ${challenge.length}`,
    );
  }
  if (type !== FrameType.BindChallenge && type !== FrameType.BindConfirm) {
    throw new WireError('WIRE_FIELD_RANGE', `0x${type.toString(16)} is not a challenge type`);
  }
  const buf = Buffer.allocUnsafe(BIND_CHALLENGE_DATAGRAM_SIZE);
  writeBindChallengeUnchecked(type, token, 0, challenge, buf, 0);
  return buf;
}

/** Builds the BIND_CONFIRM answering a BIND_CHALLENGE datagram (same token and challenge). */
export function confirmOf(challengeDatagram: Uint8Array): Buffer {
  const buf = Buffer.from(challengeDatagram.subarray(0, BIND_CHALLENGE_DATAGRAM_SIZE));
  buf[0] = FrameType.BindConfirm;
  return buf;
}

/** True when `buf[off, end)` carries `token` at the token offset. */
export function bindTokenEquals(
  buf: Uint8Array,
  off: number,
  end: number,
  token: Uint8Array,
): boolean {
  if (end - off < BIND_ACK_SIZE || token.length !== BIND_TOKEN_SIZE) {
    return false;
  }
  const base = off + BIND_TOKEN_OFFSET;
  for (let i = 0; i < BIND_TOKEN_SIZE; i++) {
    if (buf[base + i] !== token[i]) {
      return false;
    }
  }
  return true;
}

/** The token of a bind datagram as 32 hex characters (length already checked). */
export function bindTokenHex(buf: Buffer, off = 0): string {
  return buf.toString('hex', off + BIND_TOKEN_OFFSET, off + BIND_TOKEN_OFFSET + BIND_TOKEN_SIZE);
}

/** JSON form of a bind datagram (vectors, `wzp decode`). */
export interface BindJson {
  frame_type: 'BIND' | 'BIND_CHALLENGE' | 'BIND_CONFIRM' | 'BIND_ACK';
  token: string;
  /** BIND_CHALLENGE / BIND_CONFIRM only. */
  challenge?: string;
  /** BIND only: total datagram size. */
  size?: number;
}

/** Decodes any of the four bind datagrams (throws {@link WireError}). */
export function decodeBindDatagram(buf: Buffer): BindJson {
  const type = buf.length > 0 ? (buf[0] as number) : -1;
  const fail = (code: WireResult, what: string): never => {
    throw new WireError(code ?? 'WIRE_TRUNCATED', `${what}: ${buf.length} bytes`);
  };
  switch (type) {
    case FrameType.Bind: {
      const bad = checkBind(buf, 0, buf.length);
      if (bad !== null) {
        fail(bad, 'BIND is 33..1200 bytes with zero padding');
      }
      return { frame_type: 'BIND', token: bindTokenHex(buf), size: buf.length };
    }
    case FrameType.BindChallenge:
    case FrameType.BindConfirm: {
      const bad = checkBindChallenge(0, buf.length);
      if (bad !== null) {
        fail(bad, 'BIND_CHALLENGE/BIND_CONFIRM is 33 bytes');
      }
      return {
        frame_type: type === FrameType.BindChallenge ? 'BIND_CHALLENGE' : 'BIND_CONFIRM',
        token: bindTokenHex(buf),
        challenge: buf.toString(
          'hex',
          BIND_CHALLENGE_OFFSET,
          BIND_CHALLENGE_OFFSET + BIND_CHALLENGE_SIZE,
        ),
      };
    }
    case FrameType.BindAck: {
      const bad = checkBindAck(0, buf.length);
      if (bad !== null) {
        fail(bad, 'BIND_ACK is 17 bytes');
      }
      return { frame_type: 'BIND_ACK', token: bindTokenHex(buf) };
    }
    default:
      throw new WireError(
        'WIRE_UNKNOWN_FRAME_TYPE',
        `0x${Math.max(type, 0).toString(16).padStart(2, '0')} is not a bind datagram`,
      );
  }
}

/** Encodes the JSON form back to bytes (throws {@link WireError}). */
export function encodeBindDatagram(json: BindJson): Buffer {
  const token = Buffer.from(json.token, 'hex');
  switch (json.frame_type) {
    case 'BIND':
      return encodeBind(token, json.size ?? BIND_RECOMMENDED_SIZE);
    case 'BIND_ACK':
      return encodeBindAck(token);
    case 'BIND_CHALLENGE':
    case 'BIND_CONFIRM':
      return encodeBindChallenge(
        token,
        Buffer.from(json.challenge ?? '', 'hex'),
        json.frame_type === 'BIND_CHALLENGE' ? FrameType.BindChallenge : FrameType.BindConfirm,
      );
    default:
      throw new WireError('WIRE_FIELD_RANGE', `unknown bind frame_type ${String(json.frame_type)}`);
  }
}
