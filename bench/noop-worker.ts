/**
 * graphile-worker on its own, with a task that does nothing: the yardstick for
 * P3 (engine overhead). Same process count, concurrency and pool size as a
 * `settle worker` (runner.ts uses maxPoolSize = concurrency + 4; graphile's
 * default of 10 would starve 30 workers of connections and flatter us).
 *
 * env: DATABASE_URL, NOOP_CONCURRENCY. Prints {"event":"noop:ready"} once
 * it listens for jobs; SIGTERM stops it gracefully.
 */
import { Logger, run } from 'graphile-worker';

const concurrency = Number(process.env.NOOP_CONCURRENCY ?? '10');
// Only errors: graphile's info lines per start/stop are noise here.
const logger = new Logger(() => (level, message) => {
  if (level === 'error') console.error(message);
});

const runner = await run({
  connectionString: process.env.DATABASE_URL!,
  concurrency,
  maxPoolSize: concurrency + 4,
  taskList: { noop: async () => {} },
  noHandleSignals: true,
  pollInterval: 1000,
  logger,
});
console.log(JSON.stringify({ event: 'noop:ready', pid: process.pid }));
process.once('SIGTERM', () => {
  void runner.stop().finally(() => process.exit(0));
});
await runner.promise;
