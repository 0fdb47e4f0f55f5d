/**
 * Generated sections of the docs stay in sync with the code
 * (regenerate with UPDATE_DOCS=1 npx vitest run test/docs.test.ts).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderConfigDocs } from '../src/config/index.js';
import { SCENARIOS } from '../src/conformance/index.js';
import { renderMetricsDocs } from '../src/metrics/index.js';

const OPERATOR = new URL('../docs/operator.md', import.meta.url);

function fill(text: string, marker: string, body: string): string {
  const begin = `<!-- ${marker}:begin -->`;
  const end = `<!-- ${marker}:end -->`;
  const a = text.indexOf(begin);
  const b = text.indexOf(end);
  if (a < 0 || b < a) {
    throw new Error(`markers ${marker} missing`);
  }
  return `${text.slice(0, a + begin.length)}\n${body}\n${text.slice(b)}`;
}

describe('docs/operator.md', () => {
  it('lists every configuration key and metric as the code defines them', () => {
    const current = readFileSync(OPERATOR, 'utf8');
    const expected = fill(
      fill(current, 'config', renderConfigDocs()),
      'metrics',
      renderMetricsDocs(),
    );
    if (process.env.UPDATE_DOCS === '1') {
      writeFileSync(OPERATOR, expected);
    }
    expect(readFileSync(OPERATOR, 'utf8')).toBe(expected);
  });
});

const CONFORMANCE = new URL('../docs/conformance.md', import.meta.url);

describe('docs/conformance.md', () => {
  it('lists every relay scenario as the code defines it', () => {
    const table = [
      '| id | level | BINDING.md | requirement |',
      '| --- | --- | --- | --- |',
      ...SCENARIOS.map((s) => `| \`${s.id}\` | ${s.level} | ${s.section} | ${s.requirement} |`),
    ].join('\n');
    const current = readFileSync(CONFORMANCE, 'utf8');
    const expected = fill(current, 'scenarios', table);
    if (process.env.UPDATE_DOCS === '1') {
      writeFileSync(CONFORMANCE, expected);
    }
    expect(readFileSync(CONFORMANCE, 'utf8')).toBe(expected);
  });
});
