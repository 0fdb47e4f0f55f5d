/**
 * The corpus of hostile signalling inputs and datagrams of issue 12,
 * generated deterministically; `npm run gen:attacks` writes it to
 * fixtures/attacks/ (checked in, gzip for the big frames) and
 * test/hostile-fuzz.test.ts checks that the two agree. And a
 * raw attacker that speaks just enough of the handshake to get a joined
 * connection. Used by the regression tests (test/hostile-signal.test.ts)
 * and by `npm run soak`.
 */
import { createHash } from 'node:crypto';
import WebSocket from 'ws';
import type { ErrorCode } from '../errors/index.js';
import { WzpError } from '../errors/index.js';
import {
  decodeSignal,
  encodeSignal,
  GOOD,
  Identity,
  type OutgoingSignal,
  PROTOCOL_VERSION,
  type SignalMessage,
  signCallOffer,
} from '../signal/index.js';
import { createHeader, encodeBind, encodeHeader, FrameType } from '../wire/index.js';

export interface SignallingAttack {
  id: string;
  /** What it did to the relay before issue 12 was fixed. */
  description: string;
  frame(): Buffer;
  /** The rejection the relay answers it with. */
  expect: ErrorCode;
}

/** `n` bytes of 0x91 (one-element arrays nested n deep) ending in nil: 1 048 000 by default. */
export function nestedArrayFrame(n = 1_048_000): Buffer {
  const b = Buffer.alloc(n, 0x91);
  b[n - 1] = 0xc0;
  return b;
}

/** `{ Ping: [count × {}] }` (array32 header): 100 000 empty maps by default (100 KB). */
export function widePingFrame(count = 100_000): Buffer {
  const b = Buffer.alloc(1 + 5 + 5 + count, 0x80);
  b[0] = 0x81;
  b[1] = 0xa4;
  b.write('Ping', 2, 'latin1');
  b[6] = 0xdd;
  b.writeUInt32BE(count, 7);
  return b;
}

/** `{ Ping: [count × {}] }` with an array16 header: dense, but under the item limit. */
export function densePingFrame(count = 1000): Buffer {
  const b = Buffer.alloc(1 + 5 + 3 + count, 0x80);
  b[0] = 0x81;
  b[1] = 0xa4;
  b.write('Ping', 2, 'latin1');
  b[6] = 0xdc;
  b.writeUInt16BE(count, 7);
  return b;
}

/** A map nested `depth` deep: `{a:{a:{…:nil}}}`. */
export function deepMapFrame(depth = 100_000): Buffer {
  const b = Buffer.alloc(depth * 3 + 1);
  for (let i = 0; i < depth; i++) {
    b[i * 3] = 0x81;
    b[i * 3 + 1] = 0xa1;
    b[i * 3 + 2] = 0x61;
  }
  b[depth * 3] = 0xc0;
  return b;
}

/** `{ AuthToken: { token: <len bytes> } }`: a string far over every field's limit. */
export function hugeStringFrame(len = 900_000): Buffer {
  const head = Buffer.from([0x81, 0xa9, ...Buffer.from('AuthToken'), 0x81, 0xa5]);
  const key = Buffer.from('token');
  const str = Buffer.alloc(5 + len, 0x41);
  str[0] = 0xdb;
  str.writeUInt32BE(len, 1);
  return Buffer.concat([head, key, str]);
}

/** A header announcing 2^32-1 items and nothing after it. */
export function lyingHeaderFrame(): Buffer {
  return Buffer.from([0x81, 0xa4, ...Buffer.from('Ping'), 0xdd, 0xff, 0xff, 0xff, 0xff]);
}

/** The 27-byte frame of the never-reading flood (a valid Ping). */
export function floodFrame(): Buffer {
  const b = Buffer.from(encodeSignal({ type: 'Ping', body: { version: 1, timestamp_ms: 1 } }));
  return b;
}

/** A map with the key `__proto__`. */
export function protoKeyFrame(): Buffer {
  return Buffer.concat([
    Buffer.from([0x81, 0xa4]),
    Buffer.from('Ping'),
    Buffer.from([0x81, 0xa9]),
    Buffer.from('__proto__'),
    Buffer.from([0x80]),
  ]);
}

/**
 * A FederationHello that names `peerPub` (a configured peer's public key,
 * which is public) without knowing its private key. The nonce is derived
 * from `seed`, so the corpus is deterministic.
 */
export function forgedHelloFrame(peerPub: Uint8Array, seed = 'wzp-attack', label = 'x'): Buffer {
  const nonce = createHash('sha256').update(seed).digest();
  return Buffer.from(
    encodeSignal({
      type: 'FederationHello',
      body: {
        version: 1,
        identity_pub: peerPub,
        nonce,
        label,
        protocol_version: PROTOCOL_VERSION,
      },
    }),
  );
}

/** Every signalling frame attack with the code it is rejected with. */
export const SIGNALLING_ATTACKS: readonly SignallingAttack[] = [
  {
    id: 'nested-arrays-1mb',
    description:
      '1 048 000 × 0x91 before the handshake: blocked the event loop 590–730 ms, RSS +180 MB',
    frame: () => nestedArrayFrame(),
    expect: 'SIGNAL_TOO_COMPLEX',
  },
  {
    id: 'wide-ping-100k',
    description: '{Ping: [100 000 × {}]} at 43/s on 4 joined connections: delivery fell to 20.5 %',
    frame: () => widePingFrame(),
    expect: 'SIGNAL_TOO_COMPLEX',
  },
  {
    id: 'deep-maps',
    description: 'maps nested 100 000 deep (the depth check ran after decoding)',
    frame: () => deepMapFrame(),
    expect: 'SIGNAL_TOO_COMPLEX',
  },
  {
    id: 'huge-string',
    description: 'an AuthToken of 900 000 bytes (decoded before its 8192 limit was checked)',
    frame: () => hugeStringFrame(),
    expect: 'SIGNAL_TOO_COMPLEX',
  },
  {
    id: 'lying-header',
    description: 'an array32 header announcing 2^32-1 items with no body',
    frame: () => lyingHeaderFrame(),
    expect: 'SIGNAL_TOO_COMPLEX',
  },
  {
    id: 'oversize',
    description: 'a frame over the 1 MiB limit',
    frame: () => Buffer.alloc((1 << 20) + 16, 0x90),
    expect: 'SIGNAL_TOO_LARGE',
  },
  {
    id: 'proto-key',
    description: 'a __proto__ map key',
    frame: () => protoKeyFrame(),
    expect: 'SIGNAL_FORBIDDEN_KEY',
  },
];

/** A hostile datagram sent to the relay's media port from a stranger's socket. */
export interface DatagramAttack {
  id: string;
  description: string;
  datagram(): Buffer;
  /** The `wzp_relay_datagrams_dropped_total` reason it is counted under. */
  expect: string;
}

/** A deterministic 16-byte token nobody holds. */
function strangerToken(seed: string): Buffer {
  return createHash('sha256').update(seed).digest().subarray(0, 16);
}

/** A FULL frame of Opus24k audio with a `size`-byte payload (attack 7's shape). */
export function fullAudioFrame(size = 1000, seq = 1): Buffer {
  const header = encodeHeader(createHeader({ seq, timestamp: seq * 20, codecId: 0 }));
  return Buffer.concat([Buffer.from([FrameType.Full]), header, Buffer.alloc(size, 0x61)]);
}

/**
 * The datagram half of the corpus (attacks 4, 6, 7 and 8 as a stranger
 * can send them). Every one is dropped and counted under `expect`.
 */
export const DATAGRAM_ATTACKS: readonly DatagramAttack[] = [
  {
    id: 'bind-17',
    description:
      'the 17-byte BIND of before issue 12 (amplification: the relay answered with media)',
    datagram: () => Buffer.concat([Buffer.from([FrameType.Bind]), strangerToken('bind-17')]),
    expect: 'bind_too_short',
  },
  {
    id: 'bind-guess',
    description: 'a padded BIND guessing a token (about 100 k/s were processed with no limit)',
    datagram: () => encodeBind(strangerToken('bind-guess'), 48),
    expect: 'bind_unknown_token',
  },
  {
    id: 'confirm-forged',
    description: 'a BIND_CONFIRM for a token nobody holds, with a made-up challenge',
    datagram: () =>
      Buffer.concat([
        Buffer.from([FrameType.BindConfirm]),
        strangerToken('confirm-forged'),
        Buffer.alloc(16, 0x42),
      ]),
    expect: 'bind_unknown_token',
  },
  {
    id: 'confirm-truncated',
    description: 'a BIND_CONFIRM cut short',
    datagram: () => Buffer.from([FrameType.BindConfirm, 1, 2, 3]),
    expect: 'bad_control',
  },
  {
    id: 'media-unbound-1k',
    description: "attack 7's 1 KB Opus24k frame from an address no session is bound to",
    datagram: () => fullAudioFrame(1000),
    expect: 'unbound',
  },
  {
    id: 'challenge-reflected',
    description: 'a BIND_CHALLENGE sent back to the relay (reflection)',
    datagram: () =>
      Buffer.concat([
        Buffer.from([FrameType.BindChallenge]),
        strangerToken('challenge'),
        Buffer.alloc(16, 1),
      ]),
    expect: 'unbound',
  },
  {
    id: 'trunk-from-client',
    description: 'a TRUNK frame (relay to client only) sent to the relay',
    datagram: () => Buffer.from([FrameType.Trunk, 0, 1, 0, 0, 0, 0]),
    expect: 'unknown_frame_type',
  },
  {
    id: 'type-ff',
    description: 'an undefined frame type',
    datagram: () => Buffer.from([0xff, 0, 0, 0]),
    expect: 'unknown_frame_type',
  },
];

export interface RawPeerOptions {
  /** Local address of the TCP connection (distinct 127.x addresses stand for distinct sources). */
  localAddress?: string;
  /** Stop reading from the socket once open (a reader that never keeps up). */
  noRead?: boolean;
  /** Keep only the handshake replies (CallAnswer, Error) and count the bytes of the rest. */
  discard?: boolean;
}

/**
 * A bare WebSocket to the relay that records what it receives: attackers
 * need no UDP, no media and no politeness.
 */
export class RawPeer {
  readonly ws: WebSocket;
  readonly received: SignalMessage[] = [];
  bytesReceived = 0;
  closedAt: number | null = null;
  closeCode: number | null = null;
  private readonly opened: Promise<void>;

  constructor(url: string, options: RawPeerOptions = {}) {
    this.ws = new WebSocket(url, {
      maxPayload: 8 << 20,
      ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }),
    });
    this.ws.on('error', () => {});
    this.ws.on('message', (data: Buffer) => {
      this.bytesReceived += data.length;
      if (options.discard === true && this.received.length > 0) {
        return;
      }
      try {
        this.received.push(decodeSignal(data));
      } catch {
        // a relay never sends this; the tests count what decodes
      }
    });
    this.ws.on('close', (code) => {
      this.closedAt = performance.now();
      this.closeCode = code;
    });
    this.opened = new Promise<void>((resolve, reject) => {
      this.ws.once('open', () => {
        if (options.noRead === true) {
          this.stopReading();
        }
        resolve();
      });
      this.ws.once('close', () => reject(new WzpError('TRANSPORT_CLOSED', 'closed before open')));
    });
    this.opened.catch(() => {});
  }

  open(): Promise<void> {
    return this.opened;
  }

  /** Stops reading from the socket (the relay's sends then pile up). */
  stopReading(): void {
    (this.ws as unknown as { _socket: { pause(): void } })._socket.pause();
  }

  /** Waits for an Error received after the first `after` messages; returns its code. */
  async nextError(after: number, timeoutMs = 10_000): Promise<string> {
    const end = performance.now() + timeoutMs;
    for (;;) {
      const m = this.received.slice(after).find((x) => x.type === 'Error');
      if (m?.type === 'Error') {
        return m.body.code;
      }
      if (performance.now() > end) {
        throw new WzpError('TRANSPORT_TIMEOUT', 'no Error reply');
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  send(frame: Uint8Array | string, cb?: (err?: Error) => void): void {
    if (this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(frame, { binary: typeof frame !== 'string' }, cb);
    }
  }

  signal(msg: OutgoingSignal): void {
    this.send(encodeSignal(msg));
  }

  /** Error codes received so far, each repeated by its `count`. */
  errorCodes(): string[] {
    return this.received.flatMap((m) =>
      m.type === 'Error' ? new Array<string>(m.body.count ?? 1).fill(m.body.code) : [],
    );
  }

  /** Sends a CallOffer for `room` and waits for the CallAnswer. */
  async join(
    room: string,
    options: { identity?: Identity; alias?: string; token?: string; timeoutMs?: number } = {},
  ): Promise<void> {
    await this.open();
    if (options.token !== undefined) {
      this.signal({ type: 'AuthToken', body: { version: 1, token: options.token } });
    }
    const identity = options.identity ?? Identity.generate();
    const eph = Buffer.alloc(32, 7);
    this.signal({
      type: 'CallOffer',
      body: {
        version: 1,
        identity_pub: identity.publicKey,
        ephemeral_pub: eph,
        signature: signCallOffer(identity, eph),
        supported_profiles: [GOOD],
        alias: options.alias ?? null,
        room,
        protocol_version: PROTOCOL_VERSION,
      },
    });
    const end = performance.now() + (options.timeoutMs ?? 10_000);
    for (;;) {
      const m = this.received.find((x) => x.type === 'CallAnswer' || x.type === 'Error');
      if (m?.type === 'CallAnswer') {
        return;
      }
      if (m?.type === 'Error') {
        throw new WzpError(m.body.code as ErrorCode, m.body.message);
      }
      if (!this.isOpen || performance.now() > end) {
        throw new WzpError('TRANSPORT_TIMEOUT', 'no CallAnswer');
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  close(): void {
    this.ws.terminate();
  }
}
