// Prints the closing "N passed, N failed, N skipped" line CI reads, from
// vitest's JSON reports. Several reports (one per Node version) are summed
// into that one line; each run is listed above it as `label: ...`.
// Arguments: `[label=]file ...` (default `.vitest-result.json`).
// Exits non-zero when a report is missing or a test failed, so a silent
// runner can never look green.
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const runs = (args.length > 0 ? args : ['.vitest-result.json']).map((arg) => {
  const eq = arg.indexOf('=');
  return eq > 0 ? { label: arg.slice(0, eq), file: arg.slice(eq + 1) } : { label: arg, file: arg };
});

let passed = 0;
let failed = 0;
let skipped = 0;
let missing = 0;
for (const run of runs) {
  let report;
  try {
    report = JSON.parse(readFileSync(run.file, 'utf8'));
  } catch (err) {
    console.error(`test-summary: cannot read ${run.file}: ${err.message}`);
    console.log(`${run.label}: no report (counted as 1 failure)`);
    failed += 1;
    missing += 1;
    continue;
  }
  const p = report.numPassedTests ?? 0;
  const f = (report.numFailedTests ?? 0) + (report.numRuntimeErrorTestSuites ?? 0);
  const s = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
  if (runs.length > 1) {
    console.log(`${run.label}: passed=${p} failed=${f} skipped=${s}`);
  }
  if (p === 0 && f === 0) {
    // An empty run is a broken runner, not a green one.
    failed += 1;
  }
  passed += p;
  failed += f;
  skipped += s;
}
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 || missing > 0 || passed === 0 ? 1 : 0);
