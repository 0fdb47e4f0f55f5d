/**
 * HS256 JWT access tokens with room and publish/subscribe grants.
 *
 * Claims: standard `sub` (who), `iat`, `exp`, optional `iss`, and
 * `wzp: { room, publish, subscribe, call? }`. `room` is an exact room name or `*`
 * for every room; `call: true` grants the direct-call hub (`/v2/hub`) and the
 * `call-<id>` rooms of the holder's own calls (the relay checks the call
 * record). A token without `exp` is refused: access must expire.
 */
import { errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import { WzpError } from '../errors/index.js';

export interface Grants {
  /** Exact room name, or '*' for any room. */
  room: string;
  publish: boolean;
  subscribe: boolean;
  /** May register on the direct-call hub, place and take calls, and join their rooms. */
  call: boolean;
}

/** Rooms of direct calls are named `call-<call_id>`. */
export const CALL_ROOM_PREFIX = 'call-';

export interface VerifiedToken {
  subject: string | null;
  grants: Grants;
  expiresAt: number;
}

export interface MintOptions {
  secret: string;
  room: string;
  subject?: string;
  publish?: boolean;
  subscribe?: boolean;
  /** Grant direct calling (default false). */
  call?: boolean;
  /** Lifetime in seconds (default 3600). */
  ttlSeconds?: number;
  issuer?: string;
}

const ALG = 'HS256';
const MIN_SECRET_BYTES = 16;

function keyOf(secret: string): Uint8Array {
  const key = new TextEncoder().encode(secret);
  if (key.length < MIN_SECRET_BYTES) {
    throw new WzpError('CONFIG_INVALID', `auth secret must be at least ${MIN_SECRET_BYTES} bytes`);
  }
  return key;
}

/** Mints a token (operators: `wzp token`). */
export async function mintToken(options: MintOptions): Promise<string> {
  const ttl = options.ttlSeconds ?? 3600;
  if (!(ttl > 0)) {
    throw new WzpError('CONFIG_INVALID', 'token lifetime must be positive');
  }
  let jwt = new SignJWT({
    wzp: {
      room: options.room,
      publish: options.publish ?? true,
      subscribe: options.subscribe ?? true,
      ...(options.call === true ? { call: true } : {}),
    },
  })
    .setProtectedHeader({ alg: ALG, typ: 'JWT' })
    .setIssuedAt()
    .setExpirationTime(`${Math.round(ttl)}s`);
  if (options.subject !== undefined) {
    jwt = jwt.setSubject(options.subject);
  }
  if (options.issuer !== undefined) {
    jwt = jwt.setIssuer(options.issuer);
  }
  return jwt.sign(keyOf(options.secret));
}

/**
 * Verifies a token and returns its grants.
 * @throws {WzpError} AUTH_FAILED with the reason in the message.
 */
export async function verifyToken(
  token: string,
  secret: string,
  issuer?: string,
): Promise<VerifiedToken> {
  let payload: Record<string, unknown>;
  try {
    const result = await jwtVerify(token, keyOf(secret), {
      algorithms: [ALG],
      requiredClaims: ['exp'],
      ...(issuer !== undefined ? { issuer } : {}),
    });
    payload = result.payload as Record<string, unknown>;
  } catch (err) {
    if (err instanceof WzpError) {
      throw err;
    }
    const reason =
      err instanceof joseErrors.JWTExpired
        ? 'token expired'
        : err instanceof joseErrors.JOSEError
          ? `invalid token (${err.code})`
          : 'invalid token';
    throw new WzpError('AUTH_FAILED', reason);
  }
  const grants = parseGrants(payload.wzp);
  return {
    subject: typeof payload.sub === 'string' ? payload.sub : null,
    grants,
    expiresAt: typeof payload.exp === 'number' ? payload.exp : 0,
  };
}

function parseGrants(v: unknown): Grants {
  if (typeof v !== 'object' || v === null) {
    throw new WzpError('AUTH_FAILED', 'token has no wzp grants');
  }
  const o = v as Record<string, unknown>;
  if (typeof o.room !== 'string' || o.room.length === 0) {
    throw new WzpError('AUTH_FAILED', 'token grant wzp.room must be a room name or "*"');
  }
  return {
    room: o.room,
    publish: o.publish !== false,
    subscribe: o.subscribe !== false,
    call: o.call === true,
  };
}

/** True if the grants allow joining `room`. */
export function grantsAllowRoom(grants: Grants, room: string): boolean {
  return (
    grants.room === '*' ||
    grants.room === room ||
    (grants.call && room.startsWith(CALL_ROOM_PREFIX))
  );
}
