import type pg from 'pg';
import type { BenchDatabase } from './database.js';
import type { BenchOptions } from './options.js';
import { waitIdle } from './payday.js';
import { stopChildren, type Child } from './procs.js';

/** What every figure needs: options, the payout database and a control connection to it. */
export interface BenchContext {
  o: BenchOptions;
  db: BenchDatabase;
  /** The database P1-P3 run in (migrated, books made). */
  payUrl: string;
  /** The benchmark's own connection to payUrl (seeding, stage calls, progress polls). */
  ctl: pg.Client;
  nextDate: () => string;
  /** Postgres server pid when it runs on this machine (CPU accounting). */
  postmaster: number | undefined;
  /** Human-readable progress and results (stderr with --json). */
  say: (line: string) => void;
}

export const TOKEN = 'bench-access-token';
/** Chunks of the warm-up day run through the same workers before a timed day. */
export const WARMUP_CHUNKS = 100;

/** The environment of a `settle worker` for this run (SPEC 4.2 names). */
export function workerEnv(ctx: BenchContext, bankUrl: string, maxInFlight: number): Record<string, string> {
  return {
    DATABASE_URL: ctx.payUrl,
    BANK_URL: bankUrl,
    BANK_ACCESS_TOKEN: TOKEN,
    BANK_MAX_IN_FLIGHT: String(maxInFlight),
    BANK_TIMEOUT_MS: '10000',
    WORKER_CONCURRENCY: String(ctx.o.concurrency),
    WORKER_POLL_INTERVAL_MS: '1000',
    WORKER_HEARTBEAT_MS: '5000',
    WORKER_DEAD_AFTER_MS: '20000',
    LOG_LEVEL: 'warn',
    HTTP_PORT: '0',
    SETTLEMENT_TIMEZONE: 'Asia/Seoul',
  };
}

/** Readiness of a `settle worker`: its heartbeat row (runner.ts writes it just before "worker:start"). */
export function registered(ctx: BenchContext) {
  return async (pid: number) => {
    const r = await ctx.ctl.query('select 1 from settlement.workers where pid = $1', [pid]);
    return (r.rowCount ?? 0) > 0;
  };
}

/** Stops `settle worker` processes once idle (SIGTERM, SIGKILL after 10 s) and says so if that was slow. */
export async function stopSettleWorkers(ctx: BenchContext, label: string, workers: Child[]): Promise<void> {
  await waitIdle(ctx.ctl).catch(() => undefined);
  const t = performance.now();
  const killed = await stopChildren(workers);
  // A SIGTERMed `settle worker` currently exits before its own cleanup
  // (worker_gone) runs; remove its heartbeat row as that would have, so the
  // next workers do not spend the next timed run "recovering" it.
  await ctx.ctl.query('delete from settlement.workers where pid = any($1::int[])', [workers.map((w) => w.pid)]).catch(() => undefined);
  if (killed > 0) ctx.say(`${label}: ${killed} worker(s) ignored SIGTERM for 10 s and were killed`);
  else if (performance.now() - t > 3000) ctx.say(`${label}: workers took ${((performance.now() - t) / 1000).toFixed(1)} s to stop`);
}
