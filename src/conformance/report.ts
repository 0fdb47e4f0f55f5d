/**
 * Conformance reports: verdict, human summary, JSON, JUnit XML and a
 * self-contained HTML page.
 */
import type { Level, Outcome } from './relay-scenarios.js';

export interface CaseResult {
  id: string;
  /** What is checked (a requirement sentence or a vector description). */
  requirement: string;
  section: string;
  level: Level;
  outcome: Outcome;
  reason: string;
  durationMs: number;
  /** Listed in the expected-failures file. */
  expectedFailure: boolean;
}

export interface Verdict {
  ok: boolean;
  passed: number;
  failed: number;
  unsupported: number;
  /** Failures that count against the run (MUST, not expected). */
  blocking: string[];
  /** Expected failures that passed: the list is stale. */
  stale: string[];
  /** SHOULD failures (reported, not blocking). */
  warnings: string[];
}

export function verdict(cases: readonly CaseResult[]): Verdict {
  const v: Verdict = {
    ok: true,
    passed: 0,
    failed: 0,
    unsupported: 0,
    blocking: [],
    stale: [],
    warnings: [],
  };
  for (const c of cases) {
    if (c.outcome === 'pass') {
      v.passed++;
      if (c.expectedFailure) {
        v.stale.push(c.id);
      }
    } else if (c.outcome === 'fail') {
      v.failed++;
      if (c.expectedFailure) {
        continue;
      }
      if (c.level === 'MUST') {
        v.blocking.push(c.id);
      } else {
        v.warnings.push(c.id);
      }
    } else {
      v.unsupported++;
    }
  }
  v.ok = v.blocking.length === 0 && v.stale.length === 0;
  return v;
}

export function summaryText(title: string, cases: readonly CaseResult[]): string {
  const v = verdict(cases);
  const mark: Record<Outcome, string> = { pass: 'PASS', fail: 'FAIL', unsupported: 'SKIP' };
  const lines = [`${title}`, ''];
  for (const c of cases) {
    const xf = c.expectedFailure ? ' (expected failure)' : '';
    lines.push(
      `${mark[c.outcome]}  ${c.id} [${c.level}] ${c.durationMs} ms${xf}${c.outcome === 'pass' ? '' : ` — ${c.reason}`}`,
    );
  }
  lines.push('');
  lines.push(`${v.passed} passed, ${v.failed} failed, ${v.unsupported} unsupported`);
  if (v.stale.length > 0) {
    lines.push(`stale expected failures (they pass now; remove them): ${v.stale.join(', ')}`);
  }
  if (v.warnings.length > 0) {
    lines.push(`SHOULD requirements failing: ${v.warnings.join(', ')}`);
  }
  lines.push(
    v.ok
      ? 'verdict: CONFORMANT'
      : `verdict: NOT CONFORMANT (${v.blocking.join(', ') || 'stale list'})`,
  );
  return lines.join('\n');
}

export function jsonReport(title: string, cases: readonly CaseResult[]): string {
  return JSON.stringify({ title, verdict: verdict(cases), cases }, null, 2);
}

function xml(s: string): string {
  return s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function junitReport(title: string, cases: readonly CaseResult[]): string {
  const v = verdict(cases);
  const seconds = (ms: number) => (ms / 1000).toFixed(3);
  const total = cases.reduce((n, c) => n + c.durationMs, 0);
  const body = cases.map((c) => {
    const open = `  <testcase classname="wzp.${xml(c.section)}" name="${xml(c.id)}" time="${seconds(c.durationMs)}">`;
    if (c.outcome === 'fail') {
      return `${open}\n    <failure message="${xml(c.reason)}">${xml(c.requirement)}</failure>\n  </testcase>`;
    }
    if (c.outcome === 'unsupported') {
      return `${open}\n    <skipped message="${xml(c.reason)}"/>\n  </testcase>`;
    }
    return `${open}</testcase>`;
  });
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuite name="${xml(title)}" tests="${cases.length}" failures="${v.failed}" skipped="${v.unsupported}" time="${seconds(total)}">`,
    ...body,
    '</testsuite>',
    '',
  ].join('\n');
}

export function htmlReport(title: string, cases: readonly CaseResult[]): string {
  const v = verdict(cases);
  const color: Record<Outcome, string> = {
    pass: '#1a7f37',
    fail: '#cf222e',
    unsupported: '#6e7781',
  };
  const rows = cases
    .map(
      (c) =>
        `<tr><td><code>${xml(c.id)}</code></td><td>${xml(c.level)}</td><td>${xml(c.section)}</td><td>${xml(c.requirement)}</td>` +
        `<td style="color:${color[c.outcome]};font-weight:bold">${c.outcome}${c.expectedFailure ? ' (expected)' : ''}</td>` +
        `<td>${c.durationMs} ms</td><td>${xml(c.outcome === 'pass' ? '' : c.reason)}</td></tr>`,
    )
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${xml(title)}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#1f2328}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #d0d7de;padding:6px 8px;vertical-align:top;text-align:left}
th{background:#f6f8fa}.v{font-size:1.2em;font-weight:bold;color:${v.ok ? '#1a7f37' : '#cf222e'}}
</style></head><body>
<h1>${xml(title)}</h1>
<p class="v">${v.ok ? 'CONFORMANT' : 'NOT CONFORMANT'} — ${v.passed} passed, ${v.failed} failed, ${v.unsupported} unsupported</p>
${v.stale.length > 0 ? `<p>Stale expected failures: ${xml(v.stale.join(', '))}</p>` : ''}
<table><thead><tr><th>case</th><th>level</th><th>section</th><th>requirement</th><th>outcome</th><th>duration</th><th>details</th></tr></thead>
<tbody>
${rows}
</tbody></table>
<p>Generated ${new Date().toISOString()} by wzp conformance.</p>
</body></html>
`;
}
