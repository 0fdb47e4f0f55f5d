/**
 * Golden vector runner (protocol/SPEC.md §9): loads `fixtures/vectors/*.json`
 * and checks an implementation in both directions. The implementation is
 * anything that can decode and encode by kind; `nativeCodec` is ours.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';

export const VECTOR_FORMAT = 'wzp-vectors/1';

export interface VectorFrame {
  hex: string;
  fields?: Record<string, unknown>;
  error?: string;
}

export interface Vector {
  name: string;
  kind: string;
  description?: string;
  source?: string;
  hex?: string;
  input?: unknown;
  input_hex?: string;
  fingerprint?: string;
  fields?: Record<string, unknown>;
  error?: string;
  /** compact_sequence only: frames decoded in order with one context. */
  frames?: VectorFrame[];
  /** Check the encode direction too (default: true for valid vectors). */
  encode?: boolean;
}

export interface VectorFile {
  file: string;
  vectors: Vector[];
}

/** Result of one decode or encode call of an implementation. */
export type CodecAnswer =
  | { ok: true; value: unknown }
  | { ok: false; code: string; message?: string };

/**
 * What a WZP implementation offers the runner. `decodeSequence` decodes
 * frames in order with one mini context and answers per frame.
 */
export interface VectorCodec {
  decode(kind: string, hex: string): CodecAnswer | Promise<CodecAnswer>;
  encode(kind: string, fields: unknown): CodecAnswer | Promise<CodecAnswer>;
  decodeSequence(hexFrames: string[]): CodecAnswer[] | Promise<CodecAnswer[]>;
  /** For kinds computed from an input rather than bytes (hashes, fingerprints, path stats). */
  derive(kind: string, input: unknown): CodecAnswer | Promise<CodecAnswer>;
}

export interface VectorResult {
  file: string;
  name: string;
  kind: string;
  direction: 'decode' | 'encode' | 'derive';
  pass: boolean;
  detail: string;
}

/** Kinds whose vectors carry bytes that an encoder can reproduce from fields. */
export const ENCODABLE_KINDS = new Set([
  'media_header',
  'media_packet',
  'quality_report',
  'mini_header',
  'trunk',
  'federation',
  'federation_frame',
  'bind',
]);
const DERIVED_KINDS = new Set([
  'room_hash',
  'hashed_room_name',
  'fingerprint',
  'quality_from_path_stats',
]);

/** Loads every vector file of a directory, validating the format. */
export function loadVectorFiles(dir: string): VectorFile[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((file) => {
      const doc = JSON.parse(readFileSync(join(dir, file), 'utf8')) as {
        format?: unknown;
        vectors?: unknown;
      };
      if (doc.format !== VECTOR_FORMAT || !Array.isArray(doc.vectors)) {
        throw new Error(`${file}: not a ${VECTOR_FORMAT} file`);
      }
      for (const v of doc.vectors as Vector[]) {
        if (typeof v.name !== 'string' || typeof v.kind !== 'string') {
          throw new Error(`${file}: every vector needs a name and a kind`);
        }
        const shapes = [
          v.fields !== undefined,
          v.error !== undefined,
          v.frames !== undefined,
          v.fingerprint !== undefined,
        ];
        if (
          shapes.filter(Boolean).length !== 1 &&
          !(DERIVED_KINDS.has(v.kind) && v.hex !== undefined)
        ) {
          throw new Error(
            `${file}: vector ${v.name} must have exactly one of fields, error, frames`,
          );
        }
      }
      return { file, vectors: doc.vectors as Vector[] };
    });
}

/** Runs one vector; returns one result per direction checked. */
export async function runVector(
  file: string,
  v: Vector,
  codec: VectorCodec,
): Promise<VectorResult[]> {
  const out: VectorResult[] = [];
  const result = (direction: VectorResult['direction'], pass: boolean, detail: string): void => {
    out.push({ file, name: v.name, kind: v.kind, direction, pass, detail });
  };
  if (v.kind === 'compact_sequence') {
    const frames = v.frames ?? [];
    const answers = await codec.decodeSequence(frames.map((f) => f.hex));
    frames.forEach((f, i) => {
      const a = answers[i];
      const check = compare(a, f.fields, f.error);
      result('decode', check === null, check ?? `frame ${i} ok`);
    });
    return out;
  }
  if (DERIVED_KINDS.has(v.kind)) {
    const input = v.kind === 'fingerprint' ? v.input_hex : v.input;
    const expected = v.kind === 'fingerprint' ? v.fingerprint : v.hex;
    const a = await codec.derive(v.kind, input);
    const check = compare(a, expected, undefined);
    result('derive', check === null, check ?? 'ok');
    return out;
  }
  const decoded = await codec.decode(v.kind, v.hex ?? '');
  const check = compare(decoded, v.fields, v.error);
  result('decode', check === null, check ?? 'ok');
  if (
    v.error === undefined &&
    v.fields !== undefined &&
    ENCODABLE_KINDS.has(v.kind) &&
    v.encode !== false
  ) {
    const encoded = await codec.encode(v.kind, v.fields);
    const c2 = compare(encoded, v.hex, undefined);
    result('encode', c2 === null, c2 ?? 'ok');
  }
  return out;
}

/** null when `answer` matches the expectation, else a reason. */
function compare(
  answer: CodecAnswer | undefined,
  expected: unknown,
  expectedError: string | undefined,
): string | null {
  if (answer === undefined) {
    return 'no answer';
  }
  if (expectedError !== undefined) {
    if (answer.ok) {
      return `expected error ${expectedError}, got a value`;
    }
    return answer.code === expectedError
      ? null
      : `expected error ${expectedError}, got ${answer.code}`;
  }
  if (!answer.ok) {
    return `expected a value, got error ${answer.code}${answer.message ? ` (${answer.message})` : ''}`;
  }
  return isDeepStrictEqual(answer.value, expected)
    ? null
    : `value differs: expected ${JSON.stringify(expected)}, got ${JSON.stringify(answer.value)}`;
}

/** Runs every vector of every file. */
export async function runAllVectors(
  files: VectorFile[],
  codec: VectorCodec,
): Promise<VectorResult[]> {
  const results: VectorResult[] = [];
  for (const f of files) {
    for (const v of f.vectors) {
      results.push(...(await runVector(f.file, v, codec)));
    }
  }
  return results;
}
