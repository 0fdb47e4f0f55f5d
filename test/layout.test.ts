/**
 * CONTRIBUTING.md's layout table is the architecture: every folder of src/
 * has a row, every row names a folder that exists, and every import between
 * folders (type-only ones included) is allowed by the importer's row.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const SRC = join(ROOT, 'src');

interface Row {
  folder: string;
  mayImport: Set<string> | 'everything';
}

function readTable(): Map<string, Row> {
  const text = readFileSync(join(ROOT, 'CONTRIBUTING.md'), 'utf8');
  const rows = new Map<string, Row>();
  for (const line of text.split('\n')) {
    const m = /^\| `src\/([a-z-]+)\/` \|(.*)\|\s*$/.exec(line);
    if (!m?.[1] || m[2] === undefined) {
      continue;
    }
    const cells = m[2].split('|').map((c) => c.trim());
    const last = cells[cells.length - 1] ?? '';
    const mayImport =
      last === 'everything'
        ? 'everything'
        : new Set([...last.matchAll(/`([a-z-]+)`/g)].map((x) => x[1] ?? ''));
    rows.set(m[1], { folder: m[1], mayImport });
  }
  return rows;
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      out.push(...sourceFiles(path));
    } else if (name.endsWith('.ts') && !name.endsWith('.test.ts')) {
      out.push(path);
    }
  }
  return out;
}

const IMPORT = /(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s*['"](\.{1,2}\/[^'"]+)['"]/g;

describe('CONTRIBUTING.md layout table', () => {
  const table = readTable();
  const folders = readdirSync(SRC).filter((n) => statSync(join(SRC, n)).isDirectory());

  it('has one row per folder of src/, and no row for a folder that does not exist', () => {
    expect([...table.keys()].sort()).toEqual([...folders].sort());
  });

  it('allows every import between folders that src/ makes', () => {
    const violations: string[] = [];
    for (const folder of folders) {
      const row = table.get(folder);
      if (!row || row.mayImport === 'everything') {
        continue;
      }
      for (const file of sourceFiles(join(SRC, folder))) {
        const text = readFileSync(file, 'utf8');
        for (const m of text.matchAll(IMPORT)) {
          const target = normalize(join(dirname(file), m[1] ?? ''));
          const rel = relative(SRC, target).split('/');
          const to = rel.length > 1 ? rel[0] : undefined;
          if (to && to !== folder && to !== '..' && !row.mayImport.has(to)) {
            violations.push(`${relative(ROOT, file)} imports ${to}/`);
          }
        }
      }
    }
    expect(violations).toEqual([]);
  });

  it('is layered: every folder a row allows is in a row above it', () => {
    const order = [...table.keys()];
    const wrong: string[] = [];
    order.forEach((folder, i) => {
      const row = table.get(folder);
      if (!row || row.mayImport === 'everything') {
        return;
      }
      for (const dep of row.mayImport) {
        const j = order.indexOf(dep);
        if (j < 0 || j >= i) {
          wrong.push(`${folder} -> ${dep}`);
        }
      }
    });
    expect(wrong).toEqual([]);
  });
});
