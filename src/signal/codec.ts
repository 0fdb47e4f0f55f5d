/**
 * MessagePack encoding of SignalMessages with strict, typed rejection.
 */
import { Decoder, Encoder } from '@msgpack/msgpack';
import { WzpError } from '../errors/index.js';
import {
  isVariantName,
  type OutgoingSignal,
  type SignalMessage,
  UNIT_VARIANTS,
  type UnitVariantName,
  VARIANTS,
} from './messages.js';
import { type DecodeLimits, PEER_DECODE_LIMITS, scanMsgpack } from './scan.js';

/** Largest signalling frame accepted (1 MiB). */
export const SIGNAL_MAX_FRAME_BYTES = 1 << 20;
/** The only protocol version this relay speaks. */
export const PROTOCOL_VERSION = 2;

const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

// A backstop only: every frame is scanned against its DecodeLimits first.
const decoder = new Decoder({
  maxStrLength: SIGNAL_MAX_FRAME_BYTES,
  maxBinLength: 64 * 1024,
  maxArrayLength: 1 << 20,
  maxMapLength: 1 << 20,
  maxExtLength: 0,
  useBigInt64: false,
});
const encoder = new Encoder({ ignoreUndefined: true, useBigInt64: false });

/** Encodes a message as one binary frame. */
export function encodeSignal(msg: OutgoingSignal): Uint8Array {
  if (msg.body === null) {
    return encoder.encode(msg.type);
  }
  return encoder.encode({ [msg.type]: msg.body });
}

/** `limits` as DecodeLimits: a number is the frame size limit on top of the peer limits. */
export function decodeLimits(limits: number | DecodeLimits | undefined): DecodeLimits {
  if (limits === undefined) {
    return PEER_DECODE_LIMITS;
  }
  if (typeof limits === 'number') {
    return limits === PEER_DECODE_LIMITS.maxBytes
      ? PEER_DECODE_LIMITS
      : Object.freeze({ ...PEER_DECODE_LIMITS, maxBytes: limits });
  }
  return limits;
}

/**
 * Decodes one frame: scans it against `limits` (a number is a frame size
 * limit), then decodes and validates it.
 * @throws {WzpError} SIGNAL_TOO_LARGE, SIGNAL_TOO_COMPLEX, SIGNAL_UNDECODABLE,
 *   SIGNAL_FORBIDDEN_KEY, SIGNAL_UNKNOWN_VARIANT or SIGNAL_INVALID.
 */
export function decodeSignal(frame: Uint8Array, limits?: number | DecodeLimits): SignalMessage {
  scanMsgpack(frame, decodeLimits(limits));
  return decodeScannedSignal(frame);
}

/**
 * Decodes a frame `scanMsgpack` has already accepted (callers that charge
 * the scan's item count to a budget before decoding).
 */
export function decodeScannedSignal(frame: Uint8Array): SignalMessage {
  let raw: unknown;
  try {
    raw = decoder.decode(frame);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (message.includes('__proto__')) {
      throw new WzpError('SIGNAL_FORBIDDEN_KEY', 'map key __proto__ is not allowed');
    }
    throw new WzpError('SIGNAL_UNDECODABLE', `not a MessagePack message: ${message}`);
  }
  checkKeys(raw, 0);
  if (typeof raw === 'string') {
    if ((UNIT_VARIANTS as readonly string[]).includes(raw)) {
      return { type: raw as UnitVariantName, body: null };
    }
    if (isVariantName(raw)) {
      throw new WzpError('SIGNAL_INVALID', `variant ${raw} needs a body`);
    }
    throw new WzpError(
      'SIGNAL_UNKNOWN_VARIANT',
      `unknown variant ${JSON.stringify(raw.slice(0, 64))}`,
    );
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw) || raw instanceof Uint8Array) {
    throw new WzpError('SIGNAL_UNDECODABLE', 'a message is a one-key map or a variant name');
  }
  const keys = Object.keys(raw);
  if (keys.length !== 1) {
    throw new WzpError(
      'SIGNAL_UNDECODABLE',
      `a message map has exactly one key, got ${keys.length}`,
    );
  }
  const type = keys[0] as string;
  if (!isVariantName(type)) {
    throw new WzpError(
      'SIGNAL_UNKNOWN_VARIANT',
      `unknown variant ${JSON.stringify(type.slice(0, 64))}`,
    );
  }
  const parsed = VARIANTS[type].safeParse((raw as Record<string, unknown>)[type]);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.join('.') ?? '';
    throw new WzpError(
      'SIGNAL_INVALID',
      `${type}${where ? `.${where}` : ''}: ${issue?.message ?? 'invalid'}`,
    );
  }
  return { type, body: parsed.data } as SignalMessage;
}

function checkKeys(v: unknown, depth: number): void {
  if (depth > 32) {
    throw new WzpError('SIGNAL_INVALID', 'message nested too deeply');
  }
  if (typeof v !== 'object' || v === null || v instanceof Uint8Array) {
    return;
  }
  if (Array.isArray(v)) {
    for (const item of v) {
      checkKeys(item, depth + 1);
    }
    return;
  }
  for (const key of Object.keys(v)) {
    if (FORBIDDEN_KEYS.has(key)) {
      throw new WzpError('SIGNAL_FORBIDDEN_KEY', `map key ${key} is not allowed`);
    }
    checkKeys((v as Record<string, unknown>)[key], depth + 1);
  }
}
