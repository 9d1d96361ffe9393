import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Logger as GraphileLogger, parseCrontab, run, type Runner, type WorkerEvents } from 'graphile-worker';
import { sql } from 'slonik';
import { z } from 'zod';
import { createNhBankClient } from '../bank/client.js';
import type { BankClient } from '../bank/port.js';
import type { Config } from '../config.js';
import { adoptSettings } from '../db/workers.js';
import { ConfigError } from '../config.js';
import { createDbPool, type DatabasePool } from '../db/pool.js';
import type { Logger } from '../log.js';
import { instrumentBank } from '../ops/bank-metrics.js';
import { createWorkerMetrics, type WorkerMetrics } from '../ops/metrics.js';
import { createDbClock } from '../jobs/clock.js';
import { createLiveCodeBook } from '../jobs/codebook.js';
import type { TaskContext } from '../tasks/context.js';
import { createTaskList } from '../tasks/index.js';
import { JobsInHand } from '../tasks/in-hand.js';
import { createBankDesk } from '../desk/index.js';
import { engineSettings } from './engine.js';

export interface WorkerOptions {
  config: Config;
  databaseUrl: string;
  bankUrl: string;
  logger: Logger;
  /** Crontab text; default: the project's `crontab` file. Pass '' for none. */
  crontab?: string;
}

export interface WorkerHandle {
  poolId(): string;
  stop(): Promise<void>;
  /** Replaces the job runner after its database connection broke (the process stays up). */
  restart(reason: string): void;
  /** Settles when the worker stops (rejects if it crashed). */
  promise: Promise<void>;
  events: WorkerEvents;
  db: DatabasePool;
  bank: BankClient;
  /** Prometheus metrics of this worker (served on /metrics). */
  metrics: WorkerMetrics;
}

/**
 * graphile-worker's cron schedules by the host's wall clock: a tick's run_at
 * and the crontab's last_execution are that clock's time. A worker whose
 * clock is off by more than this runs no crontab, or it would push every cron
 * job (the reconcile that decides unresolved transfers, the watch that raises
 * alerts) to its own time and, running ahead, stop every other worker's cron
 * until real time caught up.
 */
export const MAX_CRON_CLOCK_SKEW_MS = 60_000;

/** Send-and-ask rounds of one transfer() before it reports `unresolved` (the job asks again later). */
const BANK_MAX_ROUNDS = 3;

export function projectCrontab(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    try {
      return readFileSync(path.join(dir, 'crontab'), 'utf8');
    } catch {
      dir = path.dirname(dir);
    }
  }
  throw new Error('crontab file not found');
}

/** Errors that only ask for the job to run again later: not failures. */
const RETRY_LATER = new Set(['RetryLaterError', 'GateClosedError']);

/**
 * graphile-worker 0.17.3's LocalQueue throws when it is released while it
 * holds jobs no worker has taken ("Cannot background something when the
 * queue is already released"); its pool's graceful shutdown then reports
 * these errors, fails the jobs still running and leaves the held ones locked.
 * Our stop does not rest on it: it waits for the jobs in hand itself and
 * releases everything the pool holds (settlement.release_pool). During our
 * stop these lines are warnings, not errors.
 */
const SHUTDOWN_ERRORS = /^(Releasing local queue failed|Deactivation failed|Error occurred during (graceful|forceful) shutdown|Error occurred whilst attempting to release runner options|forcefulShutdown called)/;

function graphileLogger(logger: Logger, stopping: () => boolean): GraphileLogger {
  return new GraphileLogger((scope) => (level, message, meta) => {
    // graphile-worker says "Completed task" at info for every job: on the
    // payout path that is one line per transfer besides our own. Debug.
    const routine = level === 'info' && message.startsWith('Completed task');
    // A job that asked to run again later (RetryLaterError: its stage was busy)
    // is logged by our job:error handler at info; graphile-worker calls it a
    // failed task at error level. Debug.
    // So is a job whose bank call a stopping worker refused (GateClosedError).
    const retryLater = level === 'error' && RETRY_LATER.has(String((meta as { error?: { name?: unknown } } | undefined)?.error?.name));
    // Every other failed attempt is logged by our job:error handler (warn: it
    // runs again) or job:failed (error: for good), with the job's keys. Debug.
    const failedTask = level === 'error' && message.startsWith('Failed task');
    const ourStop = level === 'error' && stopping() && SHUTDOWN_ERRORS.test(message);
    const l = retryLater || failedTask ? 'debug' : ourStop ? 'warn' : level === 'error' ? 'error' : level === 'warning' ? 'warn' : level === 'info' && !routine ? 'info' : 'debug';
    if (!logger.isLevelEnabled(l)) return;
    logger[l]({ event: 'graphile', scope: { label: scope.label, workerId: scope.workerId, taskIdentifier: scope.taskIdentifier, jobId: scope.jobId }, ...(meta ? { meta: String(JSON.stringify(meta, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))).slice(0, 500) } : {}) }, message);
  });
}

/**
 * A worker process's engine: graphile-worker with our tasks and crontab, a
 * database-wide bank-call limit, and crash recovery (heartbeat + releasing
 * the jobs of pools that stopped beating, which graphile-worker alone would
 * keep locked for 4 hours).
 */
/** /metrics' database read: cancelled after this long (the last gauges are kept, settle_db_scrape_ok 0). */
export const METRICS_STATEMENT_TIMEOUT_MS = 3_000;

export async function startWorker(o: WorkerOptions): Promise<WorkerHandle> {
  const { config, logger } = o;
  const concurrency = config.workerConcurrency;
  // A pool whose heartbeat is older than deadAfterMs is dead and its jobs are released.
  const { heartbeatMs, deadAfterMs, pollIntervalMs } = config.worker;
  const db = await createDbPool(o.databaseUrl, { maximumPoolSize: Math.min(concurrency, 20) + 2, applicationName: 'settle-worker', statementTimeoutMs: config.statementTimeoutMs.worker });
  const diffs = await adoptSettings(db, config.timeZone, config.bank.perCallLimit, config.bank.maxInFlight).catch(async (e) => {
    await db.end();
    throw e;
  });
  if (diffs.length > 0) {
    await db.end();
    throw new ConfigError(diffs.map((d) => `${d.setting}=${d.in_environment} differs from the database's ${d.in_database} (every worker shares one setting; change it with \`settle configure\`)`));
  }

  let poolId = `pending-${process.pid}`;
  // Claims are held as "<pool id>#<secret>": the database keeps the pool id
  // and a hash of the whole string, so a live claim is taken again, or freed,
  // only by this process — not by whoever reads the pool id from
  // graphile_worker.jobs.locked_by (settlement.claim_transfers, release_pool).
  const secret = randomBytes(18).toString('base64url');
  const holder = () => `${poolId}#${secret}`;
  const bankRetryTimeMs = Math.max(30_000, config.bank.timeoutMs * 4);
  // A claim covers the whole attempt: the wait for a bank-call slot, then the
  // longest transfer() the client can make (each of its rounds sends and
  // asks, each phase retrying for up to bankRetryTimeMs). The client starts
  // no send whose answer is not due before the claim ends, so no second
  // attempt starts while the first can still send (issue 21).
  const slotWaitMs = 120_000;
  const claimLeaseMs = slotWaitMs + BANK_MAX_ROUNDS * 2 * (bankRetryTimeMs + config.bank.timeoutMs) + 10_000;
  // claim_transfers refuses a lease longer than the database's max_attempt
  // (the grace of reconcile and decide_unresolved rests on it): refuse to start.
  const maxAttemptMs = await db.oneFirst(sql.type(z.object({ ms: z.number() }))`
    select (extract(epoch from max_attempt) * 1000)::float8 as ms from settlement.config where id`).catch(async (e) => {
    await db.end();
    throw e;
  });
  if (claimLeaseMs > maxAttemptMs) {
    await db.end();
    throw new ConfigError([`BANK_TIMEOUT_MS=${config.bank.timeoutMs} makes one transfer attempt last up to ${claimLeaseMs} ms, longer than settlement.config.max_attempt (${maxAttemptMs} ms): lower BANK_TIMEOUT_MS`]);
  }
  // The bank desk: the process's claims and outcomes, batched on a
  // connection of its own that also holds its bank-call slots. The name lets
  // the console count each worker's slots.
  const desk = createBankDesk({
    url: o.databaseUrl, holder, claimLeaseMs, maxWaitMs: slotWaitMs, applicationName: `settle-worker:${process.pid}`, statementTimeoutMs: config.statementTimeoutMs.desk,
    onError: (e) => logger.warn({ event: 'desk:error', err: (e as Error).message }, 'bank desk round trip failed (its transfers are tried again)'),
  });
  const clock = await createDbClock(db);
  const codeBook = await createLiveCodeBook(db);
  // /metrics reads through a pool of its own (two connections, a short
  // statement timeout): scrapers never take the jobs' or the desk's connections.
  const metricsDb = await createDbPool(o.databaseUrl, { maximumPoolSize: 2, applicationName: 'settle-metrics', statementTimeoutMs: METRICS_STATEMENT_TIMEOUT_MS });
  const metrics = createWorkerMetrics(metricsDb, logger.child({ component: 'metrics' }), { snapshotMs: config.metricsSnapshotMs });
  const bank = instrumentBank(createNhBankClient({
    baseUrl: o.bankUrl,
    iscd: config.bank.iscd,
    fintechApsno: config.bank.fintechApsno,
    accessToken: config.bank.accessToken,
    brdtBrno: config.bank.brdtBrno,
    svcCodes: config.bank.svcCodes,
    perCallLimit: config.bank.perCallLimit,
    timeoutMs: config.bank.timeoutMs,
    maxRetryTimeMs: bankRetryTimeMs,
    maxRounds: BANK_MAX_ROUNDS,
    codeBook: codeBook.lookup,
    now: clock.now,
    logger: logger.child({ component: 'bank' }),
  }), metrics.observeBank);
  const ctx: TaskContext = { db, bank, config, logger, holder, claimLeaseMs, desk, clock };

  const inHand = new JobsInHand();
  const taskList = createTaskList(ctx, inHand);

  const events: WorkerEvents = new EventEmitter() as WorkerEvents;
  metrics.watchJobs(events);
  events.on('pool:create', ({ workerPool }) => {
    poolId = workerPool.id;
  });
  events.on('job:error', ({ job, error }) => {
    const err = error as Error;
    logger[RETRY_LATER.has(err?.name) ? 'info' : 'warn']({ event: 'job:error', job_id: job.id, task: job.task_identifier, attempt: job.attempts, err: err?.message }, `job ${job.id} (${job.task_identifier}) will retry: ${err?.message}`);
  });
  events.on('job:failed', ({ job, error }) => {
    logger.error({ event: 'job:failed', job_id: job.id, task: job.task_identifier, attempt: job.attempts, err: (error as Error)?.message }, `job ${job.id} failed for good`);
  });

  const crontab = o.crontab ?? projectCrontab();
  const skewAtStart = clock.wallSkewMs();
  let clockOff = Math.abs(skewAtStart) > MAX_CRON_CLOCK_SKEW_MS;
  const skewMessage = (ms: number) =>
    `this host's clock is ${Math.round(ms / 1000)} s ${ms > 0 ? 'ahead of' : 'behind'} the database's: fix it (NTP). Money and leases do not depend on it`;
  if (clockOff) {
    logger.error({ event: 'worker:clock_skew', skew_ms: Math.round(skewAtStart), crontab: false },
      `${skewMessage(skewAtStart)}; this worker runs no crontab (graphile-worker would schedule cron jobs by this clock)`);
  }
  const cronItems = parseCrontab(crontab);
  let runnerHasCron = false;
  const startRunner = () => {
    // A runner started (or restarted) while the clock is off gets no crontab.
    runnerHasCron = !clockOff && cronItems.length > 0;
    return run({
      connectionString: o.databaseUrl,
      ...engineSettings(concurrency, pollIntervalMs),
      noHandleSignals: true,
      taskList,
      parsedCronItems: clockOff ? [] : cronItems,
      events,
      logger: graphileLogger(logger.child({ component: 'graphile-worker' }), () => stopped),
    });
  };

  const host = os.hostname();
  const beat = async () => {
    await db.query(sql.unsafe`select settlement.worker_beat(${poolId}, ${host}, ${process.pid})`);
    await clock.sync();
    const skew = clock.wallSkewMs();
    if (!clockOff && Math.abs(skew) > MAX_CRON_CLOCK_SKEW_MS) {
      // The runner keeps the crontab it started with: say so, loudly, once.
      clockOff = true;
      logger.error({ event: 'worker:clock_skew', skew_ms: Math.round(skew), crontab: runnerHasCron },
        `${skewMessage(skew)}${runnerHasCron ? '; this worker\'s crontab schedules by it until the worker restarts' : ''}`);
    }
    await codeBook.reload();
    const dead = await db.oneFirst(sql.unsafe`select settlement.recover_dead_workers(${deadAfterMs}) as d`) as readonly string[];
    if (dead.length > 0) logger.warn({ event: 'worker:recovered', pools: dead }, `released the jobs of dead worker pool(s) ${dead.join(', ')}`);
  };

  // Supervision: graphile-worker's runner ends when its database connection
  // breaks (a restart, "too many clients"). The process stays up: it logs,
  // backs off, frees what the broken runner held, and starts a new runner
  // once the database answers again. Nothing is paid twice: every job runs
  // again through claim_transfers, which resumes by result check.
  let stopped = false;
  let runner: Runner = await startRunner();
  let recovering = false;
  let resolveDone!: () => void;
  const done = new Promise<void>((resolve) => (resolveDone = resolve));
  const settle = <T>(p: Promise<T>, ms: number) => Promise.race([p.catch(() => undefined), new Promise((r) => setTimeout(r, ms))]);
  // Replaces a runner that lost the database: stop it, wait for the database,
  // free the jobs its pool held (their completions may be lost with the
  // connection), start a new one.
  const recover = async (r: Runner, reason: string) => {
    if (stopped || recovering || r !== runner) return;
    recovering = true;
    const brokenPool = poolId;
    const brokenHolder = holder();
    logger.error({ event: 'worker:runner_lost', pool_id: brokenPool, err: reason }, `the job runner lost the database (${reason}); restarting when it answers`);
    await settle(r.stop(), 10_000);
    for (let wait = 500; !stopped; wait = Math.min(wait * 2, 15_000)) {
      await new Promise((resolve) => setTimeout(resolve, wait));
      try {
        await db.query(sql.unsafe`select settlement.release_pool(${brokenHolder})`);
        runner = await startRunner();
        await beat();
        logger.warn({ event: 'worker:runner_restarted', pool_id: poolId, previous_pool_id: brokenPool }, `job runner restarted as ${poolId}`);
        supervise(runner);
        recovering = false;
        return;
      } catch (err) {
        logger.warn({ event: 'worker:runner_waiting', err: (err as Error).message, retry_in_ms: wait }, 'database still away; waiting');
      }
    }
    recovering = false;
    resolveDone();
  };
  const supervise = (r: Runner) => {
    r.promise.then(
      () => {
        if (stopped) resolveDone();
      },
      (e: unknown) => (stopped ? resolveDone() : recover(r, (e as Error)?.message ?? String(e))),
    );
  };
  supervise(runner);
  // graphile-worker shuts its pool down by itself when it cannot record what
  // its jobs did (its batched completion met a deadlock, 40P01 "while
  // deleting tuple in _private_jobs", in a demo run under load: our keyed
  // add_job of a stage wake-up touches the same locked rows). The jobs stay
  // locked by that pool, and its shutdown need not end (the demo's worker
  // sat with no runner for minutes). Handled like a lost database: the runner
  // is replaced, its stop bounded, its pool's jobs and claims freed.
  events.on('pool:fatalError', ({ error, action }) => {
    if (!stopped) void recover(runner, `graphile-worker could not ${action}: ${(error as Error)?.message ?? String(error)}`);
  });

  await beat();
  const timer = setInterval(() => {
    beat().catch((e) => logger.warn({ event: 'worker:beat_failed', err: (e as Error).message }, 'heartbeat failed; retrying'));
  }, heartbeatMs);
  logger.info({ event: 'worker:start', pool_id: poolId, concurrency, max_in_flight: config.bank.maxInFlight }, `worker ${poolId} started`);

  let stopping: Promise<void> | undefined;
  // A stop with work in hand: no new claim or bank call from the first
  // moment (each is refused with GateClosedError and its job is tried again
  // later); a call already out finishes within BANK_TIMEOUT_MS and its outcome
  // is recorded. After WORKER_STOP_TIMEOUT_MS at most, whatever this pool
  // still holds (jobs, claims) is released — the next attempt asks the bank
  // first — and the process leaves. It does not rest on the job runner's own
  // graceful shutdown having waited for every job.
  const stop = () =>
    (stopping ??= (async () => {
      stopped = true;
      clearInterval(timer);
      const until = Date.now() + config.worker.stopTimeoutMs;
      desk.stopSending();
      const ended = await Promise.race([
        runner.stop().then(() => true, () => true),
        new Promise<false>((r) => setTimeout(() => r(false), config.worker.stopTimeoutMs).unref()),
      ]);
      resolveDone();
      const idle = await inHand.idle(Math.max(0, until - Date.now()));
      const left = await desk.idle(0);
      if (!ended || !idle) {
        logger.warn({ event: 'worker:stop_timeout', stop_timeout_ms: config.worker.stopTimeoutMs, jobs: inHand.size, transfers: left },
          `${inHand.size} job(s) still running after WORKER_STOP_TIMEOUT_MS (${config.worker.stopTimeoutMs} ms)${left.length > 0 ? ` (transfers ${left.join(', ')})` : ''}: released; the next worker asks the bank before sending`);
      }
      await db.query(sql.unsafe`select settlement.release_pool(${holder()})`).catch((e) =>
        logger.warn({ event: 'worker:release_failed', err: (e as Error).message }, 'could not release this pool\'s jobs and claims; they are freed once its heartbeat is older than WORKER_DEAD_AFTER_MS'));
      await desk.close();
      await metricsDb.end();
      await db.end();
      logger.info({ event: 'worker:stop', pool_id: poolId }, 'worker stopped');
    })());
  /** A database connection broke under graphile-worker (e.g. a batched completion): replace the runner. */
  const restart = (reason: string) => void recover(runner, reason);
  return { poolId: () => poolId, stop, restart, promise: done, events, db, bank, metrics };
}

/** Errors that mean "the database went away", not "our code is wrong". */
export function isConnectionLoss(e: unknown): boolean {
  const code = (e as { code?: unknown })?.code;
  if (typeof code === 'string' && (/^(08|57P0)/.test(code) || code === '53300' || ['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT'].includes(code))) return true;
  const msg = e instanceof Error ? e.message : String(e);
  if (/Connection terminated|connection (is )?closed|terminating connection|the database system is (shutting down|starting up)|too many clients|Backend has been terminated|ECONNREFUSED|ECONNRESET|EPIPE|connection error|Cannot use a pool after calling end on the pool/i.test(msg)) return true;
  const cause = (e as { cause?: unknown })?.cause;
  return cause !== undefined && cause !== e && isConnectionLoss(cause);
}
