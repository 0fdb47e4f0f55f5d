import { encode } from '@msgpack/msgpack';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isWzpError, WzpError } from '../errors/index.js';
import {
  CATASTROPHIC,
  DEGRADED,
  decodeSignal,
  encodeSignal,
  fingerprint,
  GOOD,
  Identity,
  negotiateProfile,
  type OutgoingSignal,
  SIGNAL_MAX_FRAME_BYTES,
  STUDIO_48K,
  signCallAnswer,
  signCallOffer,
  verifyCallAnswer,
  verifyCallOffer,
} from './index.js';

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof WzpError ? err.code : `not a WzpError: ${String(err)}`;
  }
  return undefined;
}

/** Buffers and Uint8Arrays compare as plain byte arrays. */
function normalize(v: unknown): unknown {
  if (v instanceof Uint8Array) {
    return Array.from(v);
  }
  if (Array.isArray(v)) {
    return v.map(normalize);
  }
  if (typeof v === 'object' && v !== null) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalize(x)]));
  }
  return v;
}

const id = Identity.generate();
const eph = Buffer.alloc(32, 7);

const SAMPLES: OutgoingSignal[] = [
  { type: 'AuthToken', body: { version: 1, token: 'abc' } },
  {
    type: 'CallOffer',
    body: {
      version: 1,
      identity_pub: id.publicKey,
      ephemeral_pub: eph,
      signature: signCallOffer(id, eph),
      supported_profiles: [GOOD, DEGRADED],
      alias: 'alice',
      protocol_version: 2,
      supported_versions: [2],
      room: 'general',
    },
  },
  {
    type: 'CallAnswer',
    body: {
      version: 1,
      identity_pub: id.publicKey,
      ephemeral_pub: eph,
      signature: signCallAnswer(id, eph),
      chosen_profile: GOOD,
      udp_port: 4433,
      bind_token: Buffer.alloc(16, 1),
      participant_tag: 3,
    },
  },
  {
    type: 'RoomUpdate',
    body: {
      version: 1,
      count: 1,
      participants: [{ fingerprint: 'ab', alias: null, relay_label: null, tag: 1 }],
    },
  },
  {
    type: 'QualityDirective',
    body: { version: 1, recommended_profile: CATASTROPHIC, reason: 'weakest link: Catastrophic' },
  },
  { type: 'PictureLossIndication', body: { version: 1, stream_id: 2 } },
  { type: 'Ping', body: { version: 1, timestamp_ms: 1234 } },
  { type: 'Pong', body: { version: 1, timestamp_ms: 2 ** 40 } },
  { type: 'Hangup', body: { version: 1, reason: 'Normal' } },
  {
    type: 'Hangup',
    body: { version: 1, reason: { ProtocolVersionMismatch: { server_supported: [2] } } },
  },
  {
    type: 'Hangup',
    body: { version: 1, reason: { PolicyViolation: { code: 'Bitrate', reason: 'x' } } },
  },
  { type: 'Error', body: { version: 1, code: 'SIGNAL_INVALID', message: 'bad' } },
  { type: 'GlobalRoomActive', body: { version: 1, room: 'g', participants: [] } },
  { type: 'GlobalRoomInactive', body: { version: 1, room: 'g' } },
  { type: 'Reflect', body: null },
];

describe('signalling codec', () => {
  it.each(SAMPLES.map((m) => [m.type, m] as const))('round-trips %s', (_name, msg) => {
    const decoded = decodeSignal(encodeSignal(msg));
    expect(decoded.type).toBe(msg.type);
    expect(normalize(decoded.body)).toEqual(normalize(msg.body));
  });

  it('pins golden bytes for Ping and a ProtocolVersionMismatch Hangup', () => {
    // {"Ping":{"version":1,"timestamp_ms":1234}}
    expect(
      Buffer.from(
        encodeSignal({ type: 'Ping', body: { version: 1, timestamp_ms: 1234 } }),
      ).toString('hex'),
    ).toBe('81a450696e6782a776657273696f6e01ac74696d657374616d705f6d73cd04d2');
    // {"Hangup":{"version":1,"reason":{"ProtocolVersionMismatch":{"server_supported":[2]}}}}
    expect(
      Buffer.from(
        encodeSignal({
          type: 'Hangup',
          body: { version: 1, reason: { ProtocolVersionMismatch: { server_supported: [2] } } },
        }),
      ).toString('hex'),
    ).toBe(
      '81a648616e67757082a776657273696f6e01a6726561736f6e81b7' +
        '50726f746f636f6c56657273696f6e4d69736d61746368' +
        '81b07365727665725f737570706f727465649102',
    );
  });

  it('defaults version to 1 and keeps a missing protocol_version detectable', () => {
    const ping = decodeSignal(encode({ Ping: { timestamp_ms: 5 } }));
    expect(ping).toEqual({ type: 'Ping', body: { version: 1, timestamp_ms: 5 } });
    const offer = decodeSignal(
      encode({
        CallOffer: {
          identity_pub: id.publicKey,
          ephemeral_pub: eph,
          signature: Buffer.alloc(64),
          supported_profiles: [],
          alias: null,
          room: 'r',
        },
      }),
    );
    expect(offer.type === 'CallOffer' && offer.body.protocol_version).toBeUndefined();
  });

  it('rejects with typed codes', () => {
    expect(code(() => decodeSignal(new Uint8Array(SIGNAL_MAX_FRAME_BYTES + 1)))).toBe(
      'SIGNAL_TOO_LARGE',
    );
    expect(code(() => decodeSignal(Uint8Array.from([0xc1])))).toBe('SIGNAL_UNDECODABLE');
    expect(code(() => decodeSignal(encode([1, 2])))).toBe('SIGNAL_UNDECODABLE');
    expect(code(() => decodeSignal(encode({ Teleport: { version: 1 } })))).toBe(
      'SIGNAL_UNKNOWN_VARIANT',
    );
    expect(code(() => decodeSignal(encode('Teleport')))).toBe('SIGNAL_UNKNOWN_VARIANT');
    expect(code(() => decodeSignal(encode({ Ping: { timestamp_ms: 'soon' } })))).toBe(
      'SIGNAL_INVALID',
    );
    expect(code(() => decodeSignal(encode({ PictureLossIndication: { stream_id: 300 } })))).toBe(
      'SIGNAL_INVALID',
    );
    expect(
      code(() =>
        decodeSignal(
          encode({
            CallAnswer: {
              identity_pub: Buffer.alloc(31),
              ephemeral_pub: eph,
              signature: Buffer.alloc(64),
              chosen_profile: GOOD,
              udp_port: 1,
              bind_token: Buffer.alloc(16),
              participant_tag: 1,
            },
          }),
        ),
      ),
    ).toBe('SIGNAL_INVALID');
    expect(code(() => decodeSignal(encode({ Ping: { timestamp_ms: 1, constructor: 1 } })))).toBe(
      'SIGNAL_FORBIDDEN_KEY',
    );
  });

  it('rejects a __proto__ key built byte by byte', () => {
    // {"Ping": {"__proto__": {}}}: fixmap(1) "Ping" fixmap(1) "__proto__" fixmap(0)
    const frame = Buffer.concat([
      Buffer.from([0x81, 0xa4]),
      Buffer.from('Ping'),
      Buffer.from([0x81, 0xa9]),
      Buffer.from('__proto__'),
      Buffer.from([0x80]),
    ]);
    expect(code(() => decodeSignal(frame))).toBe('SIGNAL_FORBIDDEN_KEY');
  });

  it('never throws anything but WzpError on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        try {
          decodeSignal(bytes);
        } catch (err) {
          return isWzpError(err);
        }
        return true;
      }),
      { numRuns: 2000 },
    );
  });
});

describe('identity', () => {
  it('formats the reference fingerprint of 32 zero bytes', () => {
    expect(fingerprint(new Uint8Array(32))).toBe('6668:7aad:f862:bd77:6c8f:c18b:8e9f:8e20');
  });

  it('signs and verifies offers and answers, rejecting tampering', () => {
    const sig = signCallOffer(id, eph);
    expect(verifyCallOffer(id.publicKey, eph, sig)).toBe(true);
    const bad = Buffer.from(sig);
    bad[0] = (bad[0] as number) ^ 1;
    expect(verifyCallOffer(id.publicKey, eph, bad)).toBe(false);
    expect(verifyCallOffer(id.publicKey, eph, signCallAnswer(id, eph))).toBe(false);
    expect(verifyCallAnswer(id.publicKey, eph, signCallAnswer(id, eph))).toBe(true);
    expect(verifyCallOffer(new Uint8Array(5), eph, sig)).toBe(false);
    const same = Identity.fromSeed(id.seed);
    expect(same.publicKey.equals(id.publicKey)).toBe(true);
  });
});

describe('profile negotiation', () => {
  it('picks the highest known tier offered, GOOD when none is known', () => {
    expect(negotiateProfile([DEGRADED, STUDIO_48K, GOOD]).codec).toBe('Opus48k');
    expect(negotiateProfile([CATASTROPHIC]).codec).toBe('Codec2_1200');
    expect(negotiateProfile([{ codec: 'H264Baseline' }]).codec).toBe('Opus24k');
    expect(negotiateProfile([])).toEqual(GOOD);
  });
});
