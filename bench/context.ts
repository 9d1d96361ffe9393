import type pg from 'pg';
import type { BenchDatabase } from './database.js';
import type { BenchOptions } from './options.js';

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
