/**
 * graphile-worker on its own, with a task that does nothing: the yardstick for
 * P3 (engine overhead). It runs the engine exactly as `settle worker` does:
 * the same settings function (src/worker/engine.ts: concurrency, pool size,
 * poll interval, local queue, completion batching) fed from the same
 * variables (WORKER_CONCURRENCY, WORKER_POLL_INTERVAL_MS) the benchmark gives
 * the settle workers.
 *
 * Prints {"event":"noop:ready","settings":{…}} once it listens for jobs;
 * SIGTERM stops it gracefully.
 */
import { Logger, run } from 'graphile-worker';
import { engineSettings } from '../src/worker/engine.js';

const settings = engineSettings(Number(process.env.WORKER_CONCURRENCY ?? '10'), Number(process.env.WORKER_POLL_INTERVAL_MS ?? '1000'));
// Only errors: graphile's info lines per start/stop are noise here.
const logger = new Logger(() => (level, message) => {
  if (level === 'error') console.error(message);
});

const runner = await run({
  connectionString: process.env.DATABASE_URL!,
  ...settings,
  taskList: { noop: async () => {} },
  noHandleSignals: true,
  logger,
});
console.log(JSON.stringify({ event: 'noop:ready', pid: process.pid, settings }));
process.once('SIGTERM', () => {
  void runner.stop().finally(() => process.exit(0));
});
await runner.promise;
