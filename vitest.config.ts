import { defineConfig } from 'vitest/config';

export default defineConfig({
  // Resolve the @latchkey/verifier workspace package to its TypeScript sources, as the service and examples import them.
  resolve: { conditions: ['latchkey-source'] },
  ssr: { resolve: { conditions: ['latchkey-source'] } },
  test: {
    globalSetup: ['test/support/global-redis.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    reporters: ['default', './test/support/summary-reporter.ts'],
    projects: [
      { extends: true, test: { name: 'tests', include: ['test/**/*.test.ts'], exclude: ['test/bench-smoke.test.ts'], sequence: { groupOrder: 0 } } },
      // The benchmark smoke run loads every core: it runs alone, after everything else.
      { extends: true, test: { name: 'bench-smoke', include: ['test/bench-smoke.test.ts'], sequence: { groupOrder: 1 } } },
    ],
  },
});
