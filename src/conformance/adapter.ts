/**
 * The adapter contract: how the vector runner drives another WZP
 * implementation. The adapter is any executable that reads one request per
 * line on stdin and answers each with one JSON line on stdout, in order:
 *
 * ```text
 * decode <kind> <hex>            → {"ok":true,"value":<fields>} | {"ok":false,"code":"WIRE_…"}
 * encode <kind> <json fields>    → {"ok":true,"value":"<hex>"}  | {"ok":false,"code":"…"}
 * sequence <hex> <hex> …         → {"ok":true,"value":[<answer>, …]}   (one mini context)
 * derive <kind> <json input>     → {"ok":true,"value":"<hex or fingerprint>"}
 * ```
 * Kinds and field shapes are those of protocol/SPEC.md §11. An adapter
 * that does not support a kind answers {"ok":false,"code":"UNSUPPORTED"}.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { createInterface, type Interface } from 'node:readline';
import { WzpError } from '../errors/index.js';
import { nativeCodec } from './native-codec.js';
import type { CodecAnswer, VectorCodec } from './vectors.js';

/** Serves the adapter protocol for our own codec (`wzp conformance adapter`). */
export async function serveAdapter(
  lines: AsyncIterable<string>,
  write: (line: string) => void,
  codec: VectorCodec = nativeCodec,
): Promise<void> {
  for await (const raw of lines) {
    const line = raw.trim();
    if (line === '') {
      continue;
    }
    write(JSON.stringify(await answerRequest(line, codec)));
  }
}

export async function answerRequest(line: string, codec: VectorCodec): Promise<CodecAnswer> {
  const space = line.indexOf(' ');
  const verb = space < 0 ? line : line.slice(0, space);
  const rest = space < 0 ? '' : line.slice(space + 1);
  try {
    switch (verb) {
      case 'decode': {
        const [kind = '', hex = ''] = rest.split(' ');
        return await codec.decode(kind, hex);
      }
      case 'encode': {
        const i = rest.indexOf(' ');
        return await codec.encode(rest.slice(0, i), JSON.parse(rest.slice(i + 1)));
      }
      case 'sequence':
        return {
          ok: true,
          value: await codec.decodeSequence(rest.split(' ').filter((s) => s !== '')),
        };
      case 'derive': {
        const i = rest.indexOf(' ');
        return await codec.derive(rest.slice(0, i), JSON.parse(rest.slice(i + 1)));
      }
      default:
        return { ok: false, code: 'UNSUPPORTED', message: `unknown request ${verb}` };
    }
  } catch (err) {
    return { ok: false, code: 'BAD_REQUEST', message: String(err) };
  }
}

/**
 * A VectorCodec backed by an adapter process. Requests are sent one at a
 * time; each answer must arrive within `timeoutMs`.
 */
export class AdapterCodec implements VectorCodec {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly lines: Interface;
  private readonly waiting: ((line: string | null) => void)[] = [];
  private readonly buffered: string[] = [];
  private ended = false;
  private stderr = '';

  constructor(
    command: string,
    private readonly timeoutMs = 5000,
  ) {
    this.child = spawn(command, { shell: true, stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stderr.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-2000);
    });
    this.lines = createInterface({ input: this.child.stdout });
    this.lines.on('line', (l) => {
      const w = this.waiting.shift();
      if (w !== undefined) {
        w(l);
      } else {
        this.buffered.push(l);
      }
    });
    this.lines.on('close', () => {
      this.ended = true;
      for (const w of this.waiting.splice(0)) {
        w(null);
      }
    });
    this.child.on('error', () => {
      this.ended = true;
    });
  }

  private async request(line: string): Promise<CodecAnswer> {
    if (this.ended) {
      return { ok: false, code: 'ADAPTER_EXITED', message: this.stderr };
    }
    this.child.stdin.write(`${line}\n`);
    const answer = await new Promise<string | null>((resolve) => {
      const early = this.buffered.shift();
      if (early !== undefined) {
        resolve(early);
        return;
      }
      const timer = setTimeout(() => {
        const i = this.waiting.indexOf(done);
        if (i >= 0) {
          this.waiting.splice(i, 1);
        }
        resolve(null);
      }, this.timeoutMs);
      const done = (l: string | null): void => {
        clearTimeout(timer);
        resolve(l);
      };
      this.waiting.push(done);
    });
    if (answer === null) {
      return { ok: false, code: 'ADAPTER_TIMEOUT', message: `no answer to: ${line.slice(0, 80)}` };
    }
    try {
      const parsed = JSON.parse(answer) as CodecAnswer;
      if (typeof parsed !== 'object' || parsed === null || typeof parsed.ok !== 'boolean') {
        throw new Error('not an answer object');
      }
      return parsed;
    } catch (err) {
      return {
        ok: false,
        code: 'ADAPTER_BAD_ANSWER',
        message: `${String(err)}: ${answer.slice(0, 200)}`,
      };
    }
  }

  decode(kind: string, hex: string): Promise<CodecAnswer> {
    return this.request(`decode ${kind} ${hex}`);
  }

  encode(kind: string, fields: unknown): Promise<CodecAnswer> {
    return this.request(`encode ${kind} ${JSON.stringify(fields)}`);
  }

  async decodeSequence(hexFrames: string[]): Promise<CodecAnswer[]> {
    const a = await this.request(`sequence ${hexFrames.join(' ')}`);
    if (!a.ok) {
      return hexFrames.map(() => a);
    }
    if (!Array.isArray(a.value)) {
      throw new WzpError('SIGNAL_INVALID', 'adapter sequence answer must be an array');
    }
    return a.value as CodecAnswer[];
  }

  derive(kind: string, input: unknown): Promise<CodecAnswer> {
    return this.request(`derive ${kind} ${JSON.stringify(input)}`);
  }

  close(): void {
    this.child.stdin.end();
    this.child.kill();
  }
}
