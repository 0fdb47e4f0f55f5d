import { defineConfig } from 'vitest/config';

// Under CI the JSON reporter also writes a machine-readable summary that
// `.ci/run` turns into the closing "N passed, N failed" line.
const ci = process.env.CI === 'true';

// The relay, conformance and federation tests run twice: on the default I/O
// path (`udp_io = "auto"`: the native add-on's sendmmsg + recvmmsg when it
// built) and forced onto node:dgram (project `udp-dgram`).
const BOTH_PATHS = [
  'test/relay.test.ts',
  'test/conformance.test.ts',
  'test/federation.test.ts',
  'test/udp-io.test.ts',
];

// The video and federation tests run again with two media workers per relay
// (project `workers-2`): rooms land on different workers, and subscriptions,
// feedback, resync, PLIs and keyframe replay cross between the planes;
// federation media runs in worker 0 beside local rooms on worker 1.
const TWO_WORKERS = [
  'test/video.test.ts',
  'test/federation.test.ts',
  'test/federation-limits.test.ts',
  'test/federation-workers.test.ts',
  'test/fleet.test.ts',
];

export default defineConfig({
  test: {
    testTimeout: 20_000,
    hookTimeout: 20_000,
    pool: 'forks',
    reporters: ci ? ['default', 'json'] : ['default'],
    ...(ci ? { outputFile: { json: '.vitest-result.json' } } : {}),
    projects: [
      {
        extends: true,
        test: { name: 'default', include: ['src/**/*.test.ts', 'test/**/*.test.ts'] },
      },
      {
        extends: true,
        test: { name: 'udp-dgram', include: BOTH_PATHS, env: { TEST_UDP_IO: 'dgram' } },
      },
      {
        extends: true,
        test: { name: 'workers-2', include: TWO_WORKERS, env: { TEST_MEDIA_WORKERS: '2' } },
      },
    ],
  },
});
