import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { KIND, seedChunkDay } from './fixtures.js';
import { BENCH_TAG } from './profile.js';

export interface PayoutTiming {
  chunks: number;
  /** run_stage('pay') itself: chunks + one payout job per chunk, one transaction. */
  payStageMs: number;
  /** From the pay stage's start until the last chunk's result was recorded (server clock, chunks.settled_at). */
  succeededMs: number;
  /** From calling run_stage('pay') until the confirm stage is 'done' (the P1 wall). */
  confirmMs: number;
}

/**
 * Seeds a day of exactly `n` chunks and records it, untimed, in one
 * transaction, so that no cron tick can see the day half-made. The record
 * stage chains a `pay` job: it is removed in the same transaction, and the
 * pay stage's advisory lock is held (session level, until payDay) so that a
 * cron tick cannot pay the day first: the timed run_stage('pay') is ours.
 */
export async function prepareDay(c: pg.ClientBase, date: string, n: number): Promise<void> {
  await c.query('begin');
  try {
    await seedChunkDay(c, date, n);
    const r = await c.query(`select outcome, detail from settlement.run_stage('record', $1::date, $2::settlement.kind)`, [date, KIND]);
    if (r.rows[0]?.outcome !== 'done') throw new Error(`record ${date}: ${r.rows[0]?.outcome} ${r.rows[0]?.detail}`);
    await c.query(`select graphile_worker.remove_job($1)`, [`stage:pay:${date}:${KIND}`]);
    await c.query(`select pg_advisory_lock(settlement.stage_lock_key('pay', $1::date, $2::settlement.kind))`, [date, KIND]);
    await c.query('commit');
  } catch (e) {
    await c.query('rollback');
    throw e;
  }
}

/**
 * Times one day's payout through the running workers: run_stage('pay')
 * enqueues the jobs; the workers pay every chunk and chain the confirm stage.
 * The poll is a primary-key lookup every 10 ms (counting chunks that often
 * would itself cost ~5% of a core); when each chunk succeeded comes from the
 * chunks' own settled_at, relative to the pay stage's start, afterwards.
 */
export async function payDay(c: pg.ClientBase, date: string, n: number, timeoutMs: number): Promise<PayoutTiming> {
  const t0 = performance.now();
  // Our session holds the pay stage's advisory lock (prepareDay); run_stage's
  // try-lock on the same key succeeds in the same session.
  const r = await c.query(`select outcome, detail from settlement.run_stage('pay', $1::date, $2::settlement.kind)`, [date, KIND]);
  const payStageMs = performance.now() - t0;
  await c.query(`select pg_advisory_unlock(settlement.stage_lock_key('pay', $1::date, $2::settlement.kind))`, [date, KIND]);
  if (r.rows[0]?.outcome !== 'done') throw new Error(`pay ${date}: ${r.rows[0]?.outcome} ${r.rows[0]?.detail} `);
  for (;;) {
    const s = await c.query<{ bench_confirm: string }>(
      `${BENCH_TAG} select state::text as bench_confirm from settlement.stage_runs where business_date = $1::date and kind = $2::settlement.kind and stage = 'confirm'`,
      [date, KIND],
    );
    const now = performance.now() - t0;
    const state = s.rows[0]?.bench_confirm;
    if (state === 'done') return { chunks: n, payStageMs, succeededMs: await lastSettledMs(c, date, n), confirmMs: now };
    if (state === 'blocked' || now > timeoutMs) {
      const k = await c.query(`select state::text, count(*)::int as n from settlement.transfers where purpose = 'payout' and business_date = $1::date and kind = $2::settlement.kind group by 1`, [date, KIND]);
      const counts = k.rows.map((x: { state: string; n: number }) => `${x.n} ${x.state}`).join(', ');
      throw new Error(`${date}: confirm ${state} after ${Math.round(now)} ms; chunks: ${counts} (see settlement.payout_failures)`);
    }
    await sleep(10);
  }
}

/** ms from the pay stage's start (its transaction's now()) to the last chunk's settled_at; checks all n succeeded. */
async function lastSettledMs(c: pg.ClientBase, date: string, n: number): Promise<number> {
  const r = await c.query<{ ok: number; ms: number }>(
    `select count(*) filter (where c.state = 'succeeded')::int as ok,
            extract(epoch from max(c.settled_at) - (select started_at from settlement.stage_runs
              where business_date = $1::date and kind = $2::settlement.kind and stage = 'pay')) * 1000 as ms
     from settlement.transfers c where c.purpose = 'payout' and c.business_date = $1::date and c.kind = $2::settlement.kind`,
    [date, KIND],
  );
  const row = r.rows[0]!;
  if (row.ok !== n) throw new Error(`${date}: confirm done but ${row.ok} of ${n} chunks succeeded`);
  return Number(row.ms);
}

/**
 * The withdraw stage is not measured (and may not finish, see the brief):
 * mark it done and drop its waiting jobs, so cron ticks do not keep re-running
 * it during later timings. Lock order as the product's: the stage's advisory
 * lock, then its stage_runs row; the withdrawal transfer is never touched (the
 * transfer task locks it before that advisory lock, so touching it here could
 * deadlock with a withdrawal that is being recorded).
 */
export async function closeDay(c: pg.ClientBase, date: string): Promise<void> {
  await c.query('begin');
  try {
    await c.query(`select pg_advisory_xact_lock(settlement.stage_lock_key('withdraw', $1::date, $2::settlement.kind))`, [date, KIND]);
    await c.query(
      `update settlement.stage_runs set state = 'done', detail = 'closed by the benchmark (withdraw is not measured)', updated_at = now()
       where business_date = $1::date and kind = $2::settlement.kind and stage = 'withdraw' and state <> 'done'`,
      [date, KIND],
    );
    await c.query(`select graphile_worker.remove_job(k) from unnest($1::text[]) k`, [[`stage:withdraw:${date}:${KIND}`]]);
    await c.query('commit');
  } catch (e) {
    await c.query('rollback');
    throw e;
  }
}

/**
 * Waits (up to `timeoutMs`) until no job is running, so a timed run starts on
 * idle workers and workers are stopped idle: a withdrawal chained by the
 * previous day's confirm may still be at the bank.
 */
export async function waitIdle(c: pg.ClientBase, timeoutMs = 15_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    const r = await c.query<{ bench_busy: boolean }>(`select exists (select 1 from graphile_worker.jobs where locked_at is not null) as bench_busy`);
    if (!r.rows[0]?.bench_busy) return;
    await sleep(50);
  }
}

/** Seeds, records, pays and closes one day: the warm-up (and any untimed) run. */
export async function runDay(c: pg.ClientBase, date: string, n: number, timeoutMs: number): Promise<PayoutTiming> {
  await prepareDay(c, date, n);
  const t = await payDay(c, date, n, timeoutMs);
  await closeDay(c, date);
  return t;
}
