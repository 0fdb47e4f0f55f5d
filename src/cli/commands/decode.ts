/**
 * `wzp decode`: the protocol analyzer. Decodes captured datagrams (hex or
 * raw bytes) and prints JSON, one object per datagram.
 *
 * Detection (`--kind auto`, the default), by the first byte:
 * - 0x02 → a bare media packet (MediaHeader v2 starts with version 2);
 * - 0x00 / 0x01 → a compact FULL / MINI frame;
 * - 0x10..0x15 → a binding control datagram (BIND, BIND_ACK, PING, PONG, BIND_CHALLENGE,
 *   BIND_CONFIRM).
 * A relay→client TRUNK datagram also starts with 0x02, so it needs
 * `--kind binding` (frame-type byte, then a trunk of compact frames) or
 * `--kind trunk` (a bare TrunkFrame without the type byte).
 * `--kind federation` reads room_hash ‖ media packet (the reference D3);
 * `--kind federation-frame` (detected from 0x03) a relay-to-relay FEDERATION datagram.
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { WzpError } from '../../errors/index.js';
import {
  compactToJson,
  decodeBindDatagram,
  decodeCompactFrame,
  decodeFederationDatagram,
  decodeFederationFrame,
  decodeMediaPacket,
  decodeTrunk,
  describeHeader,
  FrameType,
  federationFrameToJson,
  MiniContext,
  packetToJson,
  parseHex,
  trunkToJson,
  WireError,
} from '../../wire/index.js';
import { type CliIo, EXIT_INVALID, EXIT_OK, reportError } from '../io.js';

export const DECODE_KINDS = [
  'auto',
  'media',
  'compact',
  'trunk',
  'binding',
  'federation',
  'federation-frame',
] as const;
export type DecodeKind = (typeof DECODE_KINDS)[number];

export interface DecodeOptions {
  kind: DecodeKind;
  pretty: boolean;
  file?: string;
  demo?: boolean;
}

/** Contexts shared across the datagrams of one run (a capture of a flow). */
class DecodeState {
  readonly flow = new MiniContext();
  readonly perTag = new Map<number, MiniContext>();

  ctxFor(tag: number): MiniContext {
    let ctx = this.perTag.get(tag);
    if (ctx === undefined) {
      ctx = new MiniContext();
      this.perTag.set(tag, ctx);
    }
    return ctx;
  }
}

/** Decodes one datagram to a JSON-able object. @throws {WireError} */
export function decodeDatagram(
  bytes: Buffer,
  kind: DecodeKind,
  state = new DecodeState(),
  pretty = false,
): Record<string, unknown> {
  // An empty datagram is truncated whatever its kind (every structure has
  // at least a type or version byte).
  if (bytes.length === 0) {
    throw new WireError('WIRE_TRUNCATED', 'empty datagram');
  }
  const first = bytes[0];
  let k = kind;
  if (k === 'auto') {
    if (first === 0x02) {
      k = 'media';
    } else if (first === FrameType.Full || first === FrameType.Mini) {
      k = 'compact';
    } else if (first === FrameType.Federation) {
      k = 'federation-frame';
    } else if (first !== undefined && first >= FrameType.Bind && first <= FrameType.Pong) {
      k = 'binding';
    } else {
      throw new WireError(
        'WIRE_UNKNOWN_FRAME_TYPE',
        `cannot detect the structure of a datagram starting with 0x${(first ?? 0).toString(16).padStart(2, '0')}; pass --kind`,
      );
    }
  }
  const header = (h: Parameters<typeof describeHeader>[0]) =>
    pretty ? describeHeader(h) : undefined;
  switch (k) {
    case 'media': {
      const p = decodeMediaPacket(bytes);
      return { kind: 'media', ...packetToJson(p), ...(pretty ? { header: header(p.header) } : {}) };
    }
    case 'compact': {
      const f = decodeCompactFrame(bytes, state.flow);
      return {
        kind: 'compact',
        ...compactToJson(f),
        ...(pretty ? { header: header(f.header) } : {}),
      };
    }
    case 'trunk':
      return { kind: 'trunk', ...trunkToJson(decodeTrunk(bytes)) };
    case 'federation': {
      const d = decodeFederationDatagram(bytes);
      return {
        kind: 'federation',
        room_hash: d.roomHash.toString('hex'),
        packet: packetToJson(d.packet),
      };
    }
    case 'federation-frame':
      return { kind: 'federation-frame', ...federationFrameToJson(decodeFederationFrame(bytes)) };
    case 'binding':
      return decodeBinding(bytes, state, pretty);
    default:
      throw new WireError('WIRE_UNKNOWN_FRAME_TYPE', `unknown kind ${String(k)}`);
  }
}

function decodeBinding(
  bytes: Buffer,
  state: DecodeState,
  pretty: boolean,
): Record<string, unknown> {
  const type = bytes[0];
  const exact = (n: number, name: string): void => {
    if (bytes.length < n) {
      throw new WireError('WIRE_TRUNCATED', `${name} is ${n} bytes, got ${bytes.length}`);
    }
    if (bytes.length > n) {
      throw new WireError('WIRE_TRAILING_BYTES', `${name} is ${n} bytes, got ${bytes.length}`);
    }
  };
  switch (type) {
    case FrameType.Full:
    case FrameType.Mini:
      return decodeDatagram(bytes, 'compact', state, pretty);
    case FrameType.Trunk: {
      const entries = decodeTrunk(bytes, 1);
      return {
        kind: 'binding',
        frame_type: 'TRUNK',
        count: entries.length,
        entries: entries.map((e) => {
          try {
            const f = decodeCompactFrame(Buffer.from(e.data), state.ctxFor(e.tag));
            return { tag: e.tag, ...compactToJson(f) };
          } catch (err) {
            if (err instanceof WireError) {
              return { tag: e.tag, error: { code: err.code, message: err.message } };
            }
            throw err;
          }
        }),
      };
    }
    case FrameType.Federation:
      return {
        kind: 'binding',
        frame_type: 'FEDERATION',
        length: bytes.length,
        hex: bytes.toString('hex'),
      };
    case FrameType.Bind:
    case FrameType.BindAck:
    case FrameType.BindChallenge:
    case FrameType.BindConfirm:
      return { kind: 'binding', ...decodeBindDatagram(bytes) };
    case FrameType.Ping:
    case FrameType.Pong:
      exact(9, type === FrameType.Ping ? 'PING' : 'PONG');
      return {
        kind: 'binding',
        frame_type: type === FrameType.Ping ? 'PING' : 'PONG',
        value: bytes.readBigUInt64BE(1).toString(),
      };
    default:
      throw new WireError(
        'WIRE_UNKNOWN_FRAME_TYPE',
        `unknown frame type 0x${(type ?? 0).toString(16).padStart(2, '0')}`,
      );
  }
}

/** Built-in example datagrams for `--demo`. */
export const DEMO_DATAGRAMS: readonly { label: string; hex: string; kind: DecodeKind }[] = [
  {
    label: 'media packet with QualityReport (reference vector P1)',
    hex: '024000020020000000640000 07d00001746573742061756469 6f2064617461206865726519 4b0a64',
    kind: 'media',
  },
  {
    label: 'compact FULL frame (M6)',
    hex: '0002000000000a0000000000000000000061756469 6f',
    kind: 'compact',
  },
  {
    label: 'compact MINI frame expanded against it (M7)',
    hex: '01010014000561756469 6f',
    kind: 'compact',
  },
  {
    label: 'relay→client TRUNK datagram with one MINI entry from tag 7',
    hex: '02 0001 0007 000b 01010014000561756469 6f',
    kind: 'binding',
  },
];

export async function runDecode(
  hexArgs: string[],
  options: DecodeOptions,
  io: CliIo,
): Promise<number> {
  const print = (obj: unknown): void =>
    io.out(JSON.stringify(obj, null, options.pretty ? 2 : undefined));
  const state = new DecodeState();
  try {
    if (options.demo === true) {
      for (const d of DEMO_DATAGRAMS) {
        // The TRUNK example expands against the FULL frame seen under tag 7.
        if (d.kind === 'binding') {
          decodeCompactFrame(parseHex(DEMO_DATAGRAMS[1]?.hex ?? ''), state.ctxFor(7));
        }
        print({
          example: d.label,
          hex: d.hex.replace(/\s/g, ''),
          ...decodeDatagram(parseHex(d.hex), d.kind, state, options.pretty),
        });
      }
      return EXIT_OK;
    }
    let lines: string[] | null = null;
    if (options.file !== undefined) {
      let text: string;
      try {
        text = await readFile(options.file, 'utf8');
      } catch (err) {
        throw new WzpError(
          'CONFIG_UNREADABLE',
          `cannot read ${options.file}: ${(err as Error).message}`,
        );
      }
      lines = text.split('\n');
    } else if (hexArgs.length > 0) {
      // Arguments are one datagram: an empty one (`wzp decode ""`) is
      // decoded, and rejected as truncated, rather than skipped as a blank line.
      const hex = hexArgs.join('');
      if (hex.trim() === '') {
        print(decodeDatagram(Buffer.alloc(0), options.kind, state, options.pretty));
        return EXIT_OK;
      }
      lines = [hex];
    } else {
      const input = await io.readStdin();
      if (input === null || input.length === 0) {
        throw new WzpError(
          'WIRE_BAD_HEX',
          'no input: give hex as arguments, on stdin, or with --file',
        );
      }
      const text = input.toString('latin1');
      if (/^[\s0-9a-fA-F:x-]*$/.test(text)) {
        lines = text.split('\n');
      } else {
        print(decodeDatagram(input, options.kind, state, options.pretty));
        return EXIT_OK;
      }
    }
    let failed = false;
    const multi =
      lines.filter((l) => l.trim() !== '' && !l.trim().startsWith('#')).length > 1 ||
      options.file !== undefined;
    lines.forEach((raw, i) => {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) {
        return;
      }
      try {
        const decoded = decodeDatagram(parseHex(line), options.kind, state, options.pretty);
        print(multi ? { line: i + 1, ...decoded } : decoded);
      } catch (err) {
        if (!(err instanceof WzpError)) {
          throw err;
        }
        failed = true;
        print(
          multi
            ? { line: i + 1, error: { code: err.code, message: err.message } }
            : { error: { code: err.code, message: err.message } },
        );
      }
    });
    return failed ? EXIT_INVALID : EXIT_OK;
  } catch (err) {
    return reportError(io, err);
  }
}

export function registerDecode(program: Command, io: CliIo, setExit: (code: number) => void): void {
  program
    .command('decode')
    .description('decode captured WZP datagrams (hex or raw bytes) to JSON')
    .argument('[hex...]', 'datagram as hex (spaces and colons allowed); stdin when absent')
    .option('-k, --kind <kind>', `structure: ${DECODE_KINDS.join('|')}`, 'auto')
    .option('-f, --file <path>', 'file with one hex datagram per line (# comments allowed)')
    .option('--pretty', 'indent and add human-readable names', false)
    .option('--demo', 'decode a few built-in example datagrams', false)
    .action(
      async (
        hex: string[],
        opts: { kind: string; file?: string; pretty: boolean; demo: boolean },
      ) => {
        if (!(DECODE_KINDS as readonly string[]).includes(opts.kind)) {
          setExit(
            reportError(
              io,
              new WzpError(
                'WIRE_UNKNOWN_FRAME_TYPE',
                `--kind must be one of ${DECODE_KINDS.join(', ')}`,
              ),
            ),
          );
          return;
        }
        setExit(
          await runDecode(
            hex,
            {
              kind: opts.kind as DecodeKind,
              pretty: opts.pretty,
              demo: opts.demo,
              ...(opts.file !== undefined ? { file: opts.file } : {}),
            },
            io,
          ),
        );
      },
    );
}
