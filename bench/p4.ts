import type pg from 'pg';
import type { BenchContext } from './context.js';
import { connect } from './database.js';
import { KIND, seedAccrualDay } from './fixtures.js';
import { readStatements, resetStatements, type StatementRow } from './profile.js';

export interface RecordRun {
  accruals: number;
  entries: number;
  seedSec: number;
  vacuumSec: number;
  recordSec: number;
  accrualsPerSec: number;
  /** Seconds of each try when the size ran more than once (the median is reported). */
  tries?: number[];
  /** --profile: the stage's statements by time (pg_stat_statements). */
  statements?: StatementRow[];
}

export interface P4Result {
  warmup: RecordRun;
  runs: RecordRun[];
  /** (t(10x) / t(x)) / 10 for each consecutive pair; target ≤ 1.2 (10× the data in ≤ 12× the time). */
  scaling: Array<{ from: number; to: number; timeRatio: number; sizeRatio: number; ratio: number }>;
}

/**
 * One fresh day of `n` accruals: seed set-based, VACUUM ANALYZE (a real day's
 * accruals trickle in over the day, so autovacuum has seen them) and a
 * CHECKPOINT (so the timed stage does not pay for flushing the seed), then
 * time run_stage('record') alone, commit included.
 */
async function recordDay(c: pg.ClientBase, date: string, n: number, profile: boolean): Promise<RecordRun> {
  const seedSec = await seedAccrualDay(c, date, n);
  const v0 = performance.now();
  await c.query('vacuum analyze settlement.accruals');
  await c.query('checkpoint');
  const vacuumSec = (performance.now() - v0) / 1000;
  if (profile) await resetStatements(c);
  const t0 = performance.now();
  const r = await c.query(`select outcome, detail from settlement.run_stage('record', $1::date, $2::settlement.kind)`, [date, KIND]);
  const recordSec = (performance.now() - t0) / 1000;
  if (r.rows[0]?.outcome !== 'done') throw new Error(`record ${date}: ${r.rows[0]?.outcome} ${r.rows[0]?.detail}`);
  const e = await c.query<{ n: number }>(`select count(*)::int as n from settlement.entries where business_date = $1::date and kind = $2::settlement.kind`, [date, KIND]);
  const statements = profile ? (await readStatements(c, n, 8)).filter((x) => !x.query.startsWith('select count(*)::int as n')) : undefined;
  return { accruals: n, entries: e.rows[0]!.n, seedSec, vacuumSec, recordSec, accrualsPerSec: n / recordSec, ...(statements ? { statements } : {}) };
}

const SMALL = 100_000;

/** P4: the record stage at 100k and 1M accruals (and 10M with --large), in a database of its own with no workers. */
export async function runP4(ctx: BenchContext, onRun: (r: RecordRun) => void): Promise<P4Result> {
  const url = await ctx.db.create('p4');
  const c = await connect(url, 'settle-bench-p4');
  try {
    const warmup = await recordDay(c, ctx.nextDate(), 10_000, false);
    const sizes = [100_000, 1_000_000, ...(ctx.o.large ? [10_000_000] : [])];
    const runs: RecordRun[] = [];
    for (const n of sizes) {
      // A 100k record takes ~0.3 s, so one hiccup of a shared machine moves
      // it a lot (and with it the scaling ratio): median of three fresh days.
      // The larger sizes run once (seeding them takes tens of seconds).
      const tries: RecordRun[] = [];
      for (let i = 0; i < (n <= SMALL ? 3 : 1); i++) tries.push(await recordDay(c, ctx.nextDate(), n, ctx.db.statements));
      const r = tries.sort((a, b) => a.recordSec - b.recordSec)[Math.floor(tries.length / 2)]!;
      if (tries.length > 1) r.tries = tries.map((t) => t.recordSec);
      runs.push(r);
      onRun(r);
    }
    const scaling = runs.slice(1).map((b, i) => {
      const a = runs[i]!;
      const timeRatio = b.recordSec / a.recordSec;
      const sizeRatio = b.accruals / a.accruals;
      return { from: a.accruals, to: b.accruals, timeRatio, sizeRatio, ratio: timeRatio / sizeRatio };
    });
    return { warmup, runs, scaling };
  } finally {
    await c.end();
  }
}
