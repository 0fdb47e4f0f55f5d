import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderErrorsDoc } from './doc.js';
import { ERROR_CODES, isWzpError, WzpError } from './index.js';

const DOC = new URL('../../docs/errors.md', import.meta.url);

describe('error codes', () => {
  it('WzpError carries a stable code and a default message', () => {
    const err = new WzpError('ROOM_FULL');
    expect(err.code).toBe('ROOM_FULL');
    expect(err.message).toBe(ERROR_CODES.ROOM_FULL);
    expect(isWzpError(err, 'ROOM_FULL')).toBe(true);
    expect(isWzpError(err, 'SESSION_LIMIT')).toBe(false);
    expect(JSON.parse(JSON.stringify(err))).toEqual({
      code: 'ROOM_FULL',
      message: ERROR_CODES.ROOM_FULL,
    });
  });

  it('every code is UPPER_SNAKE and documented with a sentence', () => {
    for (const [code, text] of Object.entries(ERROR_CODES)) {
      expect(code).toMatch(/^[A-Z][A-Z0-9_]+$/);
      expect(text.length).toBeGreaterThan(10);
    }
  });

  it('docs/errors.md lists every code (regenerate with UPDATE_DOCS=1)', () => {
    const rendered = renderErrorsDoc();
    if (process.env.UPDATE_DOCS === '1') {
      writeFileSync(DOC, rendered);
    }
    expect(readFileSync(DOC, 'utf8')).toBe(rendered);
  });
});
