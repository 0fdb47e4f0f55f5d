/**
 * Browser cryptography: the Ed25519 identity of the handshake and the
 * end-to-end payload encryption of protocol/BINDING.md §4.3, on WebCrypto.
 *
 * ChaCha20-Poly1305 uses WebCrypto where the browser has it (Chromium
 * imports its key only as `'raw-secret'`) and the pure-JS `@noble/ciphers`
 * otherwise (or when asked to, for tests). Both produce the same bytes as
 * Node's `createCipheriv('chacha20-poly1305')`.
 */
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import {
  FLAG_QUALITY,
  type MediaHeader,
  type QualityReport,
  writeHeaderUnchecked,
  writeQualityReportUnchecked,
} from './protocol.js';

const subtle = (): SubtleCrypto => globalThis.crypto.subtle;
const utf8 = new TextEncoder();

export const KEY_SALT_SIZE = 8;
export const TAG_SIZE = 16;

function concat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function ab(u: Uint8Array): Uint8Array<ArrayBuffer> {
  return u.buffer instanceof ArrayBuffer &&
    u.byteOffset === 0 &&
    u.byteLength === u.buffer.byteLength
    ? (u as Uint8Array<ArrayBuffer>)
    : new Uint8Array(u);
}

/** Fingerprint: SHA-256(public key)[0..16] as 8 groups of 4 hex digits (BINDING §2.2). */
export async function fingerprintOf(publicKey: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await subtle().digest('SHA-256', ab(publicKey)));
  const hex = [...digest.subarray(0, 16)].map((b) => b.toString(16).padStart(2, '0')).join('');
  return hex.match(/.{4}/g)?.join(':') ?? hex;
}

/** An Ed25519 identity held by WebCrypto. */
export class BrowserIdentity {
  private constructor(
    private readonly privateKey: CryptoKey,
    readonly publicKey: Uint8Array,
    readonly fingerprint: string,
  ) {}

  static async generate(): Promise<BrowserIdentity> {
    const pair = (await subtle().generateKey({ name: 'Ed25519' }, false, [
      'sign',
      'verify',
    ])) as CryptoKeyPair;
    const pub = new Uint8Array(await subtle().exportKey('raw', pair.publicKey));
    return new BrowserIdentity(pair.privateKey, pub, await fingerprintOf(pub));
  }

  /**
   * The identity stored in this browser's IndexedDB under `name`, created
   * (and stored) on first use. The private key is a non-extractable
   * CryptoKey: the page can sign with it but never read it out. Falls back
   * to a fresh identity for this page only where IndexedDB is unavailable.
   */
  static async persistent(name = 'default'): Promise<BrowserIdentity> {
    const db = await openIdentityDb().catch(() => null);
    if (db === null) {
      return BrowserIdentity.generate();
    }
    try {
      const stored = await idbRequest<StoredIdentity | undefined>(
        db.transaction(ID_STORE, 'readonly').objectStore(ID_STORE).get(name),
      );
      if (stored?.privateKey instanceof CryptoKey && stored.publicKey instanceof Uint8Array) {
        return new BrowserIdentity(
          stored.privateKey,
          stored.publicKey,
          await fingerprintOf(stored.publicKey),
        );
      }
      const pair = (await subtle().generateKey({ name: 'Ed25519' }, false, [
        'sign',
        'verify',
      ])) as CryptoKeyPair;
      const pub = new Uint8Array(await subtle().exportKey('raw', pair.publicKey));
      const record: StoredIdentity = { privateKey: pair.privateKey, publicKey: pub };
      await idbRequest(
        db.transaction(ID_STORE, 'readwrite').objectStore(ID_STORE).put(record, name),
      );
      return new BrowserIdentity(pair.privateKey, pub, await fingerprintOf(pub));
    } finally {
      db.close();
    }
  }

  async sign(data: Uint8Array): Promise<Uint8Array> {
    return new Uint8Array(await subtle().sign({ name: 'Ed25519' }, this.privateKey, ab(data)));
  }
}

interface StoredIdentity {
  privateKey: CryptoKey;
  publicKey: Uint8Array;
}

const ID_DB = 'wzp-identity';
const ID_STORE = 'identities';

function openIdentityDb(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(ID_DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(ID_STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error ?? new Error('indexedDB.open failed'));
  });
}

function idbRequest<T>(req: IDBRequest): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result as T);
    req.onerror = () => reject(req.error ?? new Error('IndexedDB request failed'));
  });
}

async function verifyEd25519(
  identityPub: Uint8Array,
  data: Uint8Array<ArrayBuffer>,
  signature: Uint8Array,
): Promise<boolean> {
  if (identityPub.length !== 32 || signature.length !== 64) {
    return false;
  }
  try {
    const key = await subtle().importKey('raw', ab(identityPub), { name: 'Ed25519' }, false, [
      'verify',
    ]);
    return await subtle().verify({ name: 'Ed25519' }, key, ab(signature), data);
  } catch {
    return false;
  }
}

/** RegisterPresence signature: over `"register-presence" ‖ identity_pub` (BINDING §9.2). */
export function signRegisterPresence(id: BrowserIdentity): Promise<Uint8Array> {
  return id.sign(concat(utf8.encode('register-presence'), id.publicKey));
}

/** Signature over `ephemeral ‖ "call-answer"` (a callee's DirectCallAnswer, BINDING §9.3). */
export function signCallAnswer(id: BrowserIdentity, ephemeral: Uint8Array): Promise<Uint8Array> {
  return id.sign(concat(ephemeral, utf8.encode('call-answer')));
}

/** Verifies a signature over `ephemeral ‖ "call-offer"` (a caller's DirectCallOffer). */
export function verifyCallOffer(
  identityPub: Uint8Array,
  ephemeral: Uint8Array,
  signature: Uint8Array,
): Promise<boolean> {
  return verifyEd25519(identityPub, concat(ephemeral, utf8.encode('call-offer')), signature);
}

/** A fresh X25519 key pair for one call (BINDING §9.5): the private half never leaves WebCrypto. */
export async function callKeyPair(): Promise<{ privateKey: CryptoKey; publicKey: Uint8Array }> {
  const pair = (await subtle().generateKey({ name: 'X25519' }, false, [
    'deriveBits',
  ])) as CryptoKeyPair;
  return {
    privateKey: pair.privateKey,
    publicKey: new Uint8Array(await subtle().exportKey('raw', pair.publicKey)),
  };
}

/**
 * The call's room key (BINDING §9.5), as the Node HubClient derives it:
 * HKDF-SHA256(ikm = X25519(own, peer ephemeral_pub), salt = call_id,
 * info = "wzp-call-key" ‖ caller_fp ‖ callee_fp), 32 bytes.
 */
export async function callRoomKey(
  own: CryptoKey,
  peerPub: Uint8Array,
  callId: string,
  callerFp: string,
  calleeFp: string,
): Promise<Uint8Array> {
  const peer = await subtle().importKey('raw', ab(peerPub), { name: 'X25519' }, false, []);
  const shared = await subtle().deriveBits(
    { name: 'X25519', public: peer } as unknown as AlgorithmIdentifier,
    own,
    256,
  );
  const ikm = await subtle().importKey('raw', shared, 'HKDF', false, ['deriveBits']);
  const bits = await subtle().deriveBits(
    {
      name: 'HKDF',
      hash: 'SHA-256',
      salt: utf8.encode(callId),
      info: utf8.encode(`wzp-call-key${callerFp}${calleeFp}`),
    },
    ikm,
    256,
  );
  return new Uint8Array(bits);
}

/** Signature over `ephemeral ‖ "call-offer"`. */
export function signCallOffer(id: BrowserIdentity, ephemeral: Uint8Array): Promise<Uint8Array> {
  return id.sign(concat(ephemeral, utf8.encode('call-offer')));
}

/** Verifies a signature over `ephemeral ‖ "call-answer"` (the relay's CallAnswer, a callee's answer). */
export function verifyCallAnswer(
  identityPub: Uint8Array,
  ephemeral: Uint8Array,
  signature: Uint8Array,
): Promise<boolean> {
  return verifyEd25519(identityPub, concat(ephemeral, utf8.encode('call-answer')), signature);
}

/** Decodes a room key given as hex (64 digits) or base64url; anything else is used as UTF-8. */
export function parseRoomKey(text: string): Uint8Array {
  const t = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(t)) {
    return new Uint8Array(t.match(/../g)?.map((h) => Number.parseInt(h, 16)) ?? []);
  }
  if (/^[A-Za-z0-9_-]{43}$/.test(t)) {
    const b64 = `${t.replace(/-/g, '+').replace(/_/g, '/')}=`;
    return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  }
  return utf8.encode(t);
}

/** 32 random bytes as base64url (43 characters), for a shareable link. */
export function newRoomKey(): string {
  const b = globalThis.crypto.getRandomValues(new Uint8Array(32));
  return btoa(String.fromCharCode(...b))
    .replace(/\+/g, '-')
    .replace(/\//g, '_')
    .replace(/=+$/, '');
}

/** Nonce: stream_id ‖ media_type ‖ 0x0000 ‖ seq (u32 BE) ‖ 0x00000000. */
function nonceOf(h: MediaHeader): Uint8Array<ArrayBuffer> {
  const n = new Uint8Array(12);
  n[0] = h.streamId;
  n[1] = h.mediaType;
  n[4] = h.seq >>> 24;
  n[5] = (h.seq >>> 16) & 0xff;
  n[6] = (h.seq >>> 8) & 0xff;
  n[7] = h.seq & 0xff;
  return n;
}

/** AAD: the header as sent (Q set iff a report follows) ‖ the report. */
function aadOf(h: MediaHeader, quality: QualityReport | null): Uint8Array<ArrayBuffer> {
  const aad = new Uint8Array(16 + (quality === null ? 0 : 4));
  const flags = quality === null ? h.flags & ~FLAG_QUALITY : h.flags | FLAG_QUALITY;
  writeHeaderUnchecked({ ...h, flags }, aad, 0);
  if (quality !== null) {
    writeQualityReportUnchecked(quality, aad, 16);
  }
  return aad;
}

export type CipherImpl = 'webcrypto' | 'js';

/** True when this browser's WebCrypto has ChaCha20-Poly1305 (key format 'raw-secret'). */
export async function hasNativeChaCha(): Promise<boolean> {
  try {
    const key = await subtle().importKey(
      'raw-secret' as 'raw',
      new Uint8Array(32),
      { name: 'ChaCha20-Poly1305' },
      false,
      ['encrypt'],
    );
    await subtle().encrypt(
      { name: 'ChaCha20-Poly1305', iv: new Uint8Array(12) },
      key,
      new Uint8Array(1),
    );
    return true;
  } catch {
    return false;
  }
}

/** A session key (BINDING §4.3): encrypts or decrypts payloads of one sender session. */
export class PayloadKey {
  private constructor(
    private readonly raw: Uint8Array,
    private readonly native: CryptoKey | null,
    readonly salt: Uint8Array,
  ) {}

  get impl(): CipherImpl {
    return this.native === null ? 'js' : 'webcrypto';
  }

  /**
   * HKDF-SHA256(ikm = room key, salt = "wzp-v2-session-key",
   * info = UTF-8(fingerprint) ‖ key salt), 32 bytes.
   */
  static async derive(
    roomKey: Uint8Array,
    fingerprint: string,
    salt: Uint8Array,
    impl: CipherImpl,
  ): Promise<PayloadKey> {
    const ikm = await subtle().importKey('raw', ab(roomKey), 'HKDF', false, ['deriveBits']);
    const bits = await subtle().deriveBits(
      {
        name: 'HKDF',
        hash: 'SHA-256',
        salt: utf8.encode('wzp-v2-session-key'),
        info: concat(utf8.encode(fingerprint), salt),
      },
      ikm,
      256,
    );
    const raw = new Uint8Array(bits);
    const native =
      impl === 'webcrypto'
        ? await subtle().importKey(
            'raw-secret' as 'raw',
            raw,
            { name: 'ChaCha20-Poly1305' },
            false,
            ['encrypt', 'decrypt'],
          )
        : null;
    return new PayloadKey(raw, native, new Uint8Array(salt));
  }

  /** salt ‖ ChaCha20-Poly1305(payload) ‖ tag. */
  async encrypt(
    h: MediaHeader,
    payload: Uint8Array,
    quality: QualityReport | null,
  ): Promise<Uint8Array> {
    const nonce = nonceOf(h);
    const aad = aadOf(h, quality);
    let sealed: Uint8Array;
    if (this.native !== null) {
      sealed = new Uint8Array(
        await subtle().encrypt(
          { name: 'ChaCha20-Poly1305', iv: nonce, additionalData: aad } as AlgorithmIdentifier,
          this.native,
          ab(payload),
        ),
      );
    } else {
      sealed = chacha20poly1305(this.raw, nonce, aad).encrypt(payload);
    }
    return concat(this.salt, sealed);
  }

  /** Opens `salt ‖ ciphertext ‖ tag`; null when it does not authenticate. */
  async decrypt(
    h: MediaHeader,
    body: Uint8Array,
    quality: QualityReport | null,
  ): Promise<Uint8Array | null> {
    if (body.length < KEY_SALT_SIZE + TAG_SIZE) {
      return null;
    }
    const sealed = body.subarray(KEY_SALT_SIZE);
    const nonce = nonceOf(h);
    const aad = aadOf(h, quality);
    try {
      if (this.native !== null) {
        return new Uint8Array(
          await subtle().decrypt(
            { name: 'ChaCha20-Poly1305', iv: nonce, additionalData: aad } as AlgorithmIdentifier,
            this.native,
            ab(sealed),
          ),
        );
      }
      return chacha20poly1305(this.raw, nonce, aad).decrypt(sealed);
    } catch {
      return null;
    }
  }
}
