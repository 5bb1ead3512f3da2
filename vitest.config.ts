import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Timeouts stop a hung test, nothing else: far above what a test takes on a loaded machine (beside
    // other jobs, CI runs many times slower). A test sets its own only when it does much more: commands
    // run in turn (forCommands in test/helpers/cli.ts). What a test waits for, it waits for as a
    // condition with a deadline, never as a fixed sleep.
    testTimeout: 300_000,
    hookTimeout: 600_000,
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default'],
  },
});
