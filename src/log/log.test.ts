import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { Writable } from 'node:stream';
import { stripVTControlCharacters } from 'node:util';
import { describe, expect, it } from 'vitest';
import { childLogger, createLogger, resolveLogFormat } from './index.js';

function sink(isTTY?: boolean) {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  if (isTTY !== undefined) {
    Object.assign(destination, { isTTY });
  }
  return { lines, destination };
}

describe('logger', () => {
  it('writes structured JSON lines with the module name', () => {
    const { lines, destination } = sink();
    const log = childLogger(createLogger({ level: 'info', destination }), 'room');
    log.info({ room: 'general', count: 2 }, 'joined');
    log.debug('hidden');
    expect(lines).toHaveLength(1);
    const rec = JSON.parse(lines[0] as string);
    expect(rec).toMatchObject({
      module: 'room',
      room: 'general',
      count: 2,
      msg: 'joined',
      level: 30,
    });
  });

  it('auto picks pretty only for a terminal, JSON for anything else', () => {
    expect(resolveLogFormat('auto', { isTTY: true })).toBe('pretty');
    expect(resolveLogFormat('auto', { isTTY: false })).toBe('json');
    expect(resolveLogFormat('auto', {})).toBe('json');
    expect(resolveLogFormat('auto', undefined)).toBe('json');
    expect(resolveLogFormat('json', { isTTY: true })).toBe('json');
    expect(resolveLogFormat('pretty', { isTTY: false })).toBe('pretty');
  });

  it('renders a record for a person on a TTY destination, fields included', () => {
    const { lines, destination } = sink(true);
    const log = childLogger(createLogger({ destination }), 'room');
    log.warn({ room: 'general' }, 'room is full');
    const text = stripVTControlCharacters(lines.join(''));
    expect(() => JSON.parse(text)).toThrow();
    expect(text).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] WARN: \[room\] room is full\n/);
    expect(text).toContain('room: "general"');
  });

  it('a non-TTY destination stays JSON', () => {
    const { lines, destination } = sink(false);
    createLogger({ destination }).info('x');
    expect(JSON.parse(lines[0] as string)).toMatchObject({ msg: 'x', level: 30 });
  });
});

// The real decision on process.stdout: run the compiled module in a pseudo-terminal
// (util-linux `script`) and through a pipe.
const DIST = new URL('../../dist/log/index.js', import.meta.url).pathname;
const SCRIPT = '/usr/bin/script';
const program = `import(${JSON.stringify(DIST)}).then((m) => m.createLogger().info({ k: 1 }, 'hello'))`;
describe.skipIf(!existsSync(DIST) || !existsSync(SCRIPT))('logger on process.stdout', () => {
  it('is JSON through a pipe', () => {
    const r = spawnSync(process.execPath, ['-e', program], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ msg: 'hello', k: 1, level: 30 });
  });

  it('is pretty on a terminal', () => {
    const cmd = `${JSON.stringify(process.execPath)} -e ${JSON.stringify(program)}`;
    const r = spawnSync(SCRIPT, ['-qec', cmd, '/dev/null'], {
      encoding: 'utf8',
      timeout: 20_000,
      env: { ...process.env, NO_COLOR: '1' },
    });
    expect(r.status).toBe(0);
    const text = r.stdout.replace(/\r/g, '');
    expect(text).toMatch(/\] INFO: hello\n/);
    expect(text).toContain('k: 1');
    expect(text).not.toContain('"msg"');
  });
});
