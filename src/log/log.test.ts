import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { childLogger, createLogger } from './index.js';

describe('logger', () => {
  it('writes structured JSON lines with the module name', () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
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
});
