import { z } from 'zod';
import { ConfigError, type Config } from '../config.js';
import { startBankSimulator } from '../bank-sim/simulator.js';
import { createDbPool } from '../db/pool.js';
import type { Logger } from '../log.js';
import { onShutdown, openDatabase } from '../runtime.js';
import { fundSimulator } from '../seed.js';
import { bindHttp, startHealthServer } from '../worker/http.js';
import { isConnectionLoss, startWorker } from '../worker/runner.js';
import { intFlag, parseCommand } from './args.js';

/**
 * `settle worker` (and `npm start`): a long-lived worker process. With no
 * BANK_URL it runs an in-process bank simulator (realistic latency), opened
 * and funded from the database's own books, so a newcomer needs nothing else.
 */
export async function cmdWorker(argv: string[], config: Config, logger: Logger) {
  const o = parseCommand(argv, { concurrency: { type: 'string' } }, z.object({ concurrency: intFlag(1, 1000).optional() }).strict());
  const cfg: Config = o.concurrency ? { ...config, workerConcurrency: o.concurrency } : config;
  // A real database never settles against a fake bank by accident: with a
  // DATABASE_URL, the in-process simulator must be asked for by name.
  if (cfg.databaseUrl && !cfg.bank.url && !cfg.bank.simulator) {
    throw new ConfigError(['BANK_URL is not set: with a DATABASE_URL the worker needs a bank (set BANK_URL, or BANK_SIMULATOR=in-process for the in-process simulator)']);
  }
  // The HTTP port first: a busy one stops the worker (exit 2) before it
  // registers or takes a job. HTTP_PORT=0 picks a free port (logged as http:listen).
  const bound = await bindHttp({ host: cfg.httpHost, port: cfg.httpPort });
  const database = await openDatabase(cfg, logger);
  let bankUrl = cfg.bank.url;
  let closeSim = async () => {};
  if (!bankUrl) {
    const sim = await startBankSimulator({ accessToken: cfg.bank.accessToken, perCallLimit: cfg.bank.perCallLimit, latencyMs: 200, jitterMs: 100, maxInFlight: cfg.bank.maxInFlight });
    const db = await createDbPool(database.url, { maximumPoolSize: 2 });
    await fundSimulator(db, sim.url, { iscd: cfg.bank.iscd }).finally(() => db.end());
    logger.warn({ event: 'sim:in_process', url: sim.url }, `using an in-process bank simulator at ${sim.url} (no real bank)`);
    bankUrl = sim.url;
    closeSim = () => sim.close();
  }
  const worker = await startWorker({ config: cfg, databaseUrl: database.workerUrl, bankUrl, logger });
  let health: Awaited<ReturnType<typeof startHealthServer>> | undefined;
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      await worker.stop();
      await health?.close();
      await closeSim();
      await database.stop();
    })());
  // At once: "worker:start" is logged, and a signal may follow immediately.
  onShutdown(logger, stop);
  health = await startHealthServer({ host: cfg.httpHost, port: bound.port }, worker, logger, undefined, bound);
  // graphile-worker batches job completions and failures; when the database
  // goes away under a batch, its rejection surfaces here unhandled. The
  // process stays up and replaces the runner; anything else is a bug: exit.
  const onStray = (kind: string) => (e: unknown) => {
    if (isConnectionLoss(e)) return worker.restart((e as Error)?.message ?? String(e));
    logger.fatal({ event: 'process:unhandled', kind, err: (e as Error)?.stack ?? String(e) }, `unhandled ${kind}`);
    process.exit(1);
  };
  // (An 'error' event of a pg client that nobody listens to arrives as an uncaught exception.)
  process.on('unhandledRejection', onStray('rejection'));
  process.on('uncaughtException', onStray('exception'));
  try {
    await worker.promise;
  } catch (e) {
    logger.fatal({ event: 'worker:crashed', err: (e as Error).message }, 'worker crashed');
    await stop().catch(() => undefined);
    process.exit(1);
  }
  // The runner resolves as soon as it stopped taking jobs: finish the whole
  // shutdown (deregister, close pools, stop the database) before returning.
  await stop();
}
