/**
 * A bounded pre-scan of MessagePack bytes, run before anything is decoded.
 *
 * It walks the headers only (string and bin bodies are skipped by length)
 * with an explicit stack of remaining item counts, and stops at the first
 * limit it crosses: a header announcing more items than the limit is
 * refused before any of them is read. Its cost is O(items) and it
 * allocates nothing but the stack (one small typed array per limits
 * object), so a hostile frame costs at most `maxElements` header reads.
 */
import { WzpError } from '../errors/index.js';

/** What one signalling frame may contain. */
export interface DecodeLimits {
  /** Largest frame, in bytes. */
  readonly maxBytes: number;
  /** Deepest nesting of arrays and maps (the top-level value is depth 0). */
  readonly maxDepth: number;
  /** Most items in the whole frame (every value and every map key counts 1). */
  readonly maxElements: number;
  /** Longest string, in bytes. */
  readonly maxStrBytes: number;
  /** Longest bin, in bytes. */
  readonly maxBinBytes: number;
}

/**
 * Limits of a client connection and of a federation link before it is
 * authenticated. The largest legitimate client message (a CallOffer with 32
 * profiles) has about 650 items and depth 4; an AuthToken carries up to
 * 8192 characters. Decoding 1024 items costs well under a millisecond.
 */
export const CLIENT_DECODE_LIMITS: DecodeLimits = Object.freeze({
  maxBytes: 1 << 20,
  maxDepth: 16,
  maxElements: 1024,
  maxStrBytes: 32 << 10,
  maxBinBytes: 1024,
});

/**
 * Limits of messages from an authenticated federation peer or from a relay
 * (what clients decode): room announcements and RoomUpdates list every
 * participant (about 27 items each, path included).
 */
export const PEER_DECODE_LIMITS: DecodeLimits = Object.freeze({
  maxBytes: 1 << 20,
  maxDepth: 16,
  maxElements: 1 << 18,
  maxStrBytes: 32 << 10,
  maxBinBytes: 1024,
});

/** Budget units charged per item on top of the frame's bytes (see `frameCost`). */
export const ELEMENT_COST = 16;
/** Budget units charged per frame, whatever its size (a flood of tiny frames is not free). */
export const FRAME_COST = 256;

/** What a frame of `bytes` bytes and `elements` items costs a connection's decode budget. */
export function frameCost(bytes: number, elements: number): number {
  return FRAME_COST + bytes + ELEMENT_COST * elements;
}

const stacks = new WeakMap<DecodeLimits, Int32Array>();

function stackFor(limits: DecodeLimits): Int32Array {
  let s = stacks.get(limits);
  if (s === undefined) {
    s = new Int32Array(limits.maxDepth + 2);
    stacks.set(limits, s);
  }
  return s;
}

function tooComplex(what: string): WzpError {
  return new WzpError('SIGNAL_TOO_COMPLEX', what);
}

function truncated(): WzpError {
  return new WzpError('SIGNAL_UNDECODABLE', 'not a MessagePack message: truncated');
}

/**
 * Checks `buf` against `limits` without decoding it; returns the number of
 * items (what `frameCost` charges).
 * @throws {WzpError} SIGNAL_TOO_LARGE, SIGNAL_TOO_COMPLEX (depth, items,
 *   string or bin size) or SIGNAL_UNDECODABLE (truncated, 0xc1, ext types,
 *   trailing bytes).
 */
export function scanMsgpack(buf: Uint8Array, limits: DecodeLimits): number {
  const end = buf.length;
  if (end > limits.maxBytes) {
    throw new WzpError(
      'SIGNAL_TOO_LARGE',
      `signalling frame of ${end} bytes exceeds ${limits.maxBytes}`,
    );
  }
  if (end === 0) {
    throw truncated();
  }
  const remaining = stackFor(limits);
  const maxDepth = limits.maxDepth;
  const maxElements = limits.maxElements;
  let depth = 0;
  remaining[0] = 1;
  let elements = 0;
  let pos = 0;
  for (;;) {
    if ((remaining[depth] as number) === 0) {
      if (depth === 0) {
        break;
      }
      depth--;
      continue;
    }
    remaining[depth] = (remaining[depth] as number) - 1;
    if (pos >= end) {
      throw truncated();
    }
    elements++;
    const b = buf[pos] as number;
    pos++;
    let children = 0;
    let body = 0;
    let kind = 0; // 0 scalar, 1 str, 2 bin
    if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) {
      // fixint, nil, bool
    } else if (b <= 0x8f) {
      children = (b & 0x0f) * 2;
    } else if (b <= 0x9f) {
      children = b & 0x0f;
    } else if (b <= 0xbf) {
      body = b & 0x1f;
      kind = 1;
    } else {
      switch (b) {
        case 0xc4:
        case 0xd9:
          if (pos + 1 > end) {
            throw truncated();
          }
          body = buf[pos] as number;
          pos += 1;
          kind = b === 0xc4 ? 2 : 1;
          break;
        case 0xc5:
        case 0xda:
          if (pos + 2 > end) {
            throw truncated();
          }
          body = ((buf[pos] as number) << 8) | (buf[pos + 1] as number);
          pos += 2;
          kind = b === 0xc5 ? 2 : 1;
          break;
        case 0xc6:
        case 0xdb:
          if (pos + 4 > end) {
            throw truncated();
          }
          body = readU32(buf, pos);
          pos += 4;
          kind = b === 0xc6 ? 2 : 1;
          break;
        case 0xca:
          body = 4;
          break;
        case 0xcb:
          body = 8;
          break;
        case 0xcc:
        case 0xd0:
          body = 1;
          break;
        case 0xcd:
        case 0xd1:
          body = 2;
          break;
        case 0xce:
        case 0xd2:
          body = 4;
          break;
        case 0xcf:
        case 0xd3:
          body = 8;
          break;
        case 0xdc:
        case 0xde:
          if (pos + 2 > end) {
            throw truncated();
          }
          children = ((buf[pos] as number) << 8) | (buf[pos + 1] as number);
          pos += 2;
          if (b === 0xde) {
            children *= 2;
          }
          break;
        case 0xdd:
        case 0xdf:
          if (pos + 4 > end) {
            throw truncated();
          }
          children = readU32(buf, pos);
          pos += 4;
          if (b === 0xdf) {
            children *= 2;
          }
          break;
        default:
          // 0xc1 (never used) and every ext type (0xc7-0xc9, 0xd4-0xd8).
          throw new WzpError(
            'SIGNAL_UNDECODABLE',
            `not a MessagePack message: type 0x${b.toString(16)} is not accepted`,
          );
      }
    }
    if (kind === 1 && body > limits.maxStrBytes) {
      throw tooComplex(`a string of ${body} bytes exceeds ${limits.maxStrBytes}`);
    }
    if (kind === 2 && body > limits.maxBinBytes) {
      throw tooComplex(`a bin of ${body} bytes exceeds ${limits.maxBinBytes}`);
    }
    pos += body;
    if (pos > end) {
      throw truncated();
    }
    if (children > 0) {
      if (elements + children > maxElements) {
        throw tooComplex(`more than ${maxElements} items in one message`);
      }
      if (children > end - pos) {
        // Every item takes at least one byte.
        throw truncated();
      }
      if (depth === maxDepth) {
        throw tooComplex(`nested deeper than ${maxDepth}`);
      }
      depth++;
      remaining[depth] = children;
    }
  }
  if (pos !== end) {
    throw new WzpError(
      'SIGNAL_UNDECODABLE',
      `not a MessagePack message: ${end - pos} trailing bytes`,
    );
  }
  return elements;
}

function readU32(buf: Uint8Array, pos: number): number {
  return (
    (buf[pos] as number) * 0x1000000 +
    (((buf[pos + 1] as number) << 16) | ((buf[pos + 2] as number) << 8) | (buf[pos + 3] as number))
  );
}
