import { setTimeout as sleep } from 'node:timers/promises';
import { startBankSimulator } from '../src/bank-sim/simulator.js';
import { registered, stopSettleWorkers, TOKEN, WARMUP_CHUNKS, workerEnv, type BenchContext } from './context.js';
import { cpuMeter, type CpuSplit } from './cpu.js';
import { fundSimulator } from './fixtures.js';
import { timedDay, type PayoutProfile } from './timed.js';
import { runDay } from './payday.js';
import { startNoopWorkers, startSettleWorkers, stopChildren } from './procs.js';
import { BENCH_TAG } from './profile.js';
import { describeEngine, engineSettings, type EngineSettings } from '../src/worker/engine.js';

export interface P3Result {
  chunks: number;
  workers: number;
  concurrency: number;
  /** Median of RUNS days of `chunks` chunks. */
  payout: { succeededMs: number; confirmMs: number; runsMs: number[]; chunksPerSec: number; cpu: CpuSplit; problems: { count: number; top: string[] }; profile?: PayoutProfile };
  /** Median of RUNS runs of `chunks` jobs; cpu is per run (the mean). */
  noop: { ms: number; runsMs: number[]; jobsPerSec: number; cpu: CpuSplit };
  ratio: number;
  /** graphile-worker's settings on each side (one definition: src/worker/engine.ts); equal, or the benchmark stops. */
  engine: { payout: EngineSettings; noop: EngineSettings };
}

/** In-flight cap high enough never to bind: P3 measures the engine, not the bank. */
const HIGH_CAP = 1000;
const NOOP_WARMUP = 200;
/** Timed runs per side; the median is reported (a run lasts seconds, so one hiccup of a shared machine moves it a lot). */
const RUNS = 3;

/** Enqueues `n` no-op jobs in one statement and waits until none is left; returns ms. */
async function noopRun(ctx: BenchContext, n: number): Promise<number> {
  const t0 = performance.now();
  await ctx.ctl.query(
    `select graphile_worker.add_jobs(array(
       select row('noop', '{}'::json, null, null, null, null, null, null)::graphile_worker.job_spec from generate_series(1, $1::int)))`,
    [n],
  );
  for (;;) {
    const r = await ctx.ctl.query(`${BENCH_TAG} select exists (select 1 from graphile_worker.jobs where task_identifier = 'noop') as bench_left`);
    if (!r.rows[0]?.bench_left) return performance.now() - t0;
    if (performance.now() - t0 > 300_000) throw new Error('no-op jobs not done within 300 s');
    await sleep(10);
  }
}

/**
 * P3: the full payout path with a bank of zero latency and no binding cap,
 * in chunks/s, against graphile-worker's own no-op jobs/s — same database,
 * same number of processes, same concurrency, same pool size, same run.
 */
export async function runP3(ctx: BenchContext): Promise<P3Result> {
  const { chunks: n, workers: W, concurrency } = ctx.o;
  const env = workerEnv(ctx, '', HIGH_CAP);
  // What runner.ts computes from the variables the settle workers get.
  const payoutEngine = engineSettings(Number(env.WORKER_CONCURRENCY), Number(env.WORKER_POLL_INTERVAL_MS));
  const sim = await startBankSimulator({ accessToken: TOKEN, latencyMs: 0, jitterMs: 0, maxInFlight: 10_000 });
  let payout: P3Result['payout'];
  try {
    await fundSimulator(ctx.ctl, sim, Math.max(n, WARMUP_CHUNKS));
    ctx.say(`P3: starting ${W} settle worker(s), concurrency ${concurrency} each, BANK_MAX_IN_FLIGHT=${HIGH_CAP}, bank latency 0 ms`);
    // Every worker shares one set of settings: this figure's cap, set on purpose (settle configure).
    await ctx.ctl.query(`select settlement.configure('Asia/Seoul', 100000, $1)`, [HIGH_CAP]);
    const workers = await startSettleWorkers(W, workerEnv(ctx, sim.url, HIGH_CAP), registered(ctx));
    try {
      await runDay(ctx.ctl, ctx.nextDate(), WARMUP_CHUNKS, 120_000);
      // Like the no-op side: the median of three timed days (CPU and statements are the median day's).
      const days = [];
      for (let i = 0; i < RUNS; i++) days.push(await timedDay(ctx, workers.map((w) => w.pid), sim, n, 600_000));
      const { timing, cpu, profile } = [...days].sort((a, b) => a.timing.succeededMs - b.timing.succeededMs)[Math.floor(RUNS / 2)]!;
      const problems = { count: days.reduce((a, d) => a + d.problems.count, 0), top: days.flatMap((d) => d.problems.top).slice(0, 4) };
      payout = {
        succeededMs: timing.succeededMs,
        confirmMs: timing.confirmMs,
        runsMs: days.map((d) => d.timing.succeededMs),
        chunksPerSec: (n / timing.succeededMs) * 1000,
        cpu,
        problems,
        ...(profile ? { profile } : {}),
      };
      ctx.say(`P3: payout path ${payout.chunksPerSec.toFixed(0)} chunks/s; now graphile-worker no-op`);
    } finally {
      await stopSettleWorkers(ctx, 'P3', workers);
    }
  } finally {
    await sim.close();
  }

  // The same engine variables as the settle workers: the same settings function runs on them.
  const noopWorkers = await startNoopWorkers(W, { DATABASE_URL: ctx.payUrl, WORKER_CONCURRENCY: env.WORKER_CONCURRENCY!, WORKER_POLL_INTERVAL_MS: env.WORKER_POLL_INTERVAL_MS! });
  try {
    const noopEngine = noopWorkers[0]!.settings() as EngineSettings;
    if (JSON.stringify(noopEngine) !== JSON.stringify(payoutEngine)) {
      throw new Error(`P3 would compare unlike engines: settle worker ${describeEngine(payoutEngine)}; no-op ${describeEngine(noopEngine)}`);
    }
    ctx.say(`P3: both sides run graphile-worker with ${describeEngine(noopEngine)}`);
    await noopRun(ctx, NOOP_WARMUP);
    // CPU is measured over all runs and divided by RUNS.
    const meter = cpuMeter(noopWorkers.map((w) => w.pid), ctx.postmaster);
    const runs: number[] = [];
    for (let i = 0; i < RUNS; i++) runs.push(await noopRun(ctx, n));
    const cpu = meter.done();
    const ms = [...runs].sort((a, b) => a - b)[Math.floor(RUNS / 2)]!;
    const noop = { ms, runsMs: runs, jobsPerSec: (n / ms) * 1000, cpu: { workers: cpu.workers / RUNS, postgres: cpu.postgres === undefined ? undefined : cpu.postgres / RUNS, bench: cpu.bench / RUNS, others: cpu.others === undefined ? undefined : cpu.others / RUNS } };
    return { chunks: n, workers: W, concurrency, payout, noop, ratio: payout.chunksPerSec / noop.jobsPerSec, engine: { payout: payoutEngine, noop: noopEngine } };
  } finally {
    await stopChildren(noopWorkers);
  }
}
