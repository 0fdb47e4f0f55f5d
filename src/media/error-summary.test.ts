/** Send-error logging: a flood of errors gives at most one report per second, with counts. */
import { describe, expect, it } from 'vitest';
import { ErrorSummary } from './udp-endpoint.js';

describe('ErrorSummary', () => {
  it('reports the first error at once and sums the rest into one report per interval', async () => {
    let now = 0;
    const reports: Record<string, number>[] = [];
    const e = new ErrorSummary(
      (c) => reports.push(c),
      50,
      () => now,
    );
    e.note('EMSGSIZE', 1);
    for (let i = 0; i < 10_000; i++) {
      now = i / 1000; // 10 ms of errors
      e.note(i % 2 === 0 ? 'EINVAL' : 'oversize', 1);
    }
    expect(reports).toEqual([{ EMSGSIZE: 1 }]);
    now = 60;
    await new Promise((r) => setTimeout(r, 120));
    expect(reports).toEqual([{ EMSGSIZE: 1 }, { EINVAL: 5000, oversize: 5000 }]);
    e.close();
  });
});
