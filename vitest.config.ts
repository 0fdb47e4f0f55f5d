import { defineConfig } from 'vitest/config';

// Under CI the JSON reporter also writes a machine-readable summary that
// `.ci/run` turns into the closing "N passed, N failed" line.
const ci = process.env.CI === 'true';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    pool: 'forks',
    reporters: ci ? ['default', 'json'] : ['default'],
    ...(ci ? { outputFile: { json: '.vitest-result.json' } } : {}),
  },
});
