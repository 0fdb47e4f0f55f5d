/**
 * Ed25519 identities (node:crypto) and the WZP fingerprint.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
  verify,
} from 'node:crypto';

// DER prefix wrapping a raw 32-byte Ed25519 seed (RFC 8410). Raw keys otherwise
// go in and out as JWK: OpenSSL 3's DER decoder and encoder cost 60–340 µs a
// key on this machine's Node 20, the JWK paths 1–30 µs (per CallOffer, per client).
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

export const OFFER_CONTEXT = Buffer.from('call-offer', 'utf8');
export const ANSWER_CONTEXT = Buffer.from('call-answer', 'utf8');
export const REGISTER_CONTEXT = Buffer.from('register-presence', 'utf8');

export class Identity {
  readonly privateKey: KeyObject;
  /** Raw 32-byte public key. */
  readonly publicKey: Buffer;
  /** Raw 32-byte seed. */
  readonly seed: Buffer;

  private constructor(privateKey: KeyObject) {
    this.privateKey = privateKey;
    const jwk = privateKey.export({ format: 'jwk' });
    this.seed = Buffer.from(jwk.d as string, 'base64url');
    this.publicKey = Buffer.from(jwk.x as string, 'base64url');
  }

  /** A fresh random identity. */
  static generate(): Identity {
    return new Identity(generateKeyPairSync('ed25519').privateKey);
  }

  /** The identity of a 32-byte seed. */
  static fromSeed(seed: Uint8Array): Identity {
    if (seed.length !== 32) {
      throw new RangeError(`an Ed25519 seed is 32 bytes, got ${seed.length}`);
    }
    return new Identity(
      createPrivateKey({
        key: Buffer.concat([PKCS8_PREFIX, seed]),
        format: 'der',
        type: 'pkcs8',
      }),
    );
  }

  /** The fingerprint of this identity's public key. */
  get fingerprint(): string {
    return fingerprint(this.publicKey);
  }

  /** Ed25519 signature (64 bytes) over `data`. */
  sign(data: Uint8Array): Buffer {
    return sign(null, data, this.privateKey);
  }
}

/** The raw 32-byte public key of an Ed25519 or X25519 key object (through JWK, not DER). */
export function rawPublicKey(key: KeyObject): Buffer {
  return Buffer.from(key.export({ format: 'jwk' }).x as string, 'base64url');
}

/** Verifies an Ed25519 signature; false (never a throw) on any malformed input. */
export function verifyEd25519(
  publicKey: Uint8Array,
  data: Uint8Array,
  signature: Uint8Array,
): boolean {
  if (publicKey.length !== 32 || signature.length !== 64) {
    return false;
  }
  try {
    const key = createPublicKey({
      key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKey).toString('base64url') },
      format: 'jwk',
    });
    return verify(null, data, key, signature);
  } catch {
    return false;
  }
}

/** SHA-256(pub)[0..16] as 8 groups of 4 lowercase hex digits joined by ':'. */
export function fingerprint(publicKey: Uint8Array): string {
  const hex = createHash('sha256').update(publicKey).digest().subarray(0, 16).toString('hex');
  return hex.match(/.{4}/g)?.join(':') ?? hex;
}

/** Signature of a CallOffer: over `ephemeral_pub ‖ "call-offer"`. */
export function signCallOffer(identity: Identity, ephemeralPub: Uint8Array): Buffer {
  return identity.sign(Buffer.concat([ephemeralPub, OFFER_CONTEXT]));
}

export function verifyCallOffer(
  identityPub: Uint8Array,
  ephemeralPub: Uint8Array,
  signature: Uint8Array,
): boolean {
  return verifyEd25519(identityPub, Buffer.concat([ephemeralPub, OFFER_CONTEXT]), signature);
}

/** Signature of a CallAnswer: over `ephemeral_pub ‖ "call-answer"`. */
export function signCallAnswer(identity: Identity, ephemeralPub: Uint8Array): Buffer {
  return identity.sign(Buffer.concat([ephemeralPub, ANSWER_CONTEXT]));
}

export function verifyCallAnswer(
  identityPub: Uint8Array,
  ephemeralPub: Uint8Array,
  signature: Uint8Array,
): boolean {
  return verifyEd25519(identityPub, Buffer.concat([ephemeralPub, ANSWER_CONTEXT]), signature);
}

/** RegisterPresence signature: Ed25519 over "register-presence" ‖ identity_pub. */
export function signRegisterPresence(identity: Identity): Buffer {
  return identity.sign(Buffer.concat([REGISTER_CONTEXT, identity.publicKey]));
}

export function verifyRegisterPresence(identityPub: Uint8Array, signature: Uint8Array): boolean {
  return verifyEd25519(identityPub, Buffer.concat([REGISTER_CONTEXT, identityPub]), signature);
}
