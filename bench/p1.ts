import { startBankSimulator, type BankSimulator } from '../src/bank/simulator.js';
import { registered, TOKEN, WARMUP_CHUNKS, workerEnv, type BenchContext } from './context.js';
import { cpuMeter, type CpuSplit } from './cpu.js';
import { fundSimulator } from './fixtures.js';
import { closeDay, payDay, prepareDay, runDay, waitIdle, type PayoutTiming } from './payday.js';
import { startSettleWorkers, stopChildren, takeProblems } from './procs.js';
import { readStatements, resetStatements, roundTripsPerChunk, type StatementRow } from './profile.js';

export interface PayoutProfile {
  roundTripsPerChunk: number;
  serverMsPerChunk: number;
  statements: StatementRow[];
}

export interface P1Result extends PayoutTiming {
  latencyMs: number;
  maxInFlight: number;
  workers: number;
  concurrency: number;
  idealMs: number;
  ratio: number;
  simMaxInFlight: number;
  simBusy: number;
  simCalls: number;
  cpu: CpuSplit;
  /** Warnings/errors the workers logged during the timed run (job errors are retried with backoff). */
  problems: { count: number; top: string[] };
  profile?: PayoutProfile;
}

/** Runs one timed day through already-running workers, with CPU and (optionally) statement accounting. */
export async function timedDay(ctx: BenchContext, workerPids: number[], sim: BankSimulator, n: number, timeoutMs: number) {
  await waitIdle(ctx.ctl);
  const date = ctx.nextDate();
  await prepareDay(ctx.ctl, date, n);
  await fetch(`${sim.url}/_sim/reset-stats`, { method: 'POST', body: '{}' });
  if (ctx.db.statements) await resetStatements(ctx.ctl);
  takeProblems(); // the warm-up's are not this run's
  const meter = cpuMeter(workerPids, ctx.postmaster);
  const timing = await payDay(ctx.ctl, date, n, timeoutMs);
  const cpu = meter.done();
  const problems = takeProblems();
  const stats = sim.statsSnapshot() as { maxInFlight: number; calls: number; rejected: { busy: number } };
  let profile: PayoutProfile | undefined;
  if (ctx.db.statements) {
    const rt = await roundTripsPerChunk(ctx.ctl, n);
    profile = { roundTripsPerChunk: rt.perChunk, serverMsPerChunk: rt.serverMsPerChunk, statements: await readStatements(ctx.ctl, n) };
  }
  await closeDay(ctx.ctl, date);
  return { timing, cpu, stats, profile, problems };
}

/**
 * P1: N chunks at bank latency L under an in-flight cap M (simulator and
 * BANK_MAX_IN_FLIGHT), W `settle worker` processes. The simulator stays open
 * for P2, which measures one-at-a-time calls at the same latency.
 */
export async function runP1(ctx: BenchContext): Promise<{ result: P1Result; sim: BankSimulator }> {
  const { chunks: n, latencyMs: L, maxInFlight: M, workers: W, concurrency } = ctx.o;
  const sim = await startBankSimulator({ accessToken: TOKEN, latencyMs: L, jitterMs: 0, maxInFlight: M });
  try {
    fundSimulator(sim, Math.max(n, WARMUP_CHUNKS));
    ctx.say(`P1: starting ${W} settle worker(s), concurrency ${concurrency} each, BANK_MAX_IN_FLIGHT=${M}, bank latency ${L} ms`);
    const workers = await startSettleWorkers(W, workerEnv(ctx, sim.url, M), registered(ctx));
    try {
      const warm = await runDay(ctx.ctl, ctx.nextDate(), WARMUP_CHUNKS, 120_000);
      ctx.say(`P1: warm-up day of ${WARMUP_CHUNKS} chunks paid in ${(warm.confirmMs / 1000).toFixed(2)} s`);
      const idealMs = Math.ceil(n / M) * L;
      const { timing, cpu, stats, profile, problems } = await timedDay(ctx, workers.map((w) => w.pid), sim, n, Math.max(120_000, idealMs * 20));
      const result: P1Result = {
        ...timing,
        latencyMs: L,
        maxInFlight: M,
        workers: W,
        concurrency,
        idealMs,
        ratio: timing.confirmMs / idealMs,
        simMaxInFlight: stats.maxInFlight,
        simBusy: stats.rejected.busy,
        simCalls: stats.calls,
        cpu,
        problems,
        ...(profile ? { profile } : {}),
      };
      return { result, sim };
    } finally {
      await waitIdle(ctx.ctl).catch(() => undefined);
      const t = performance.now();
      const killed = await stopChildren(workers);
      // A SIGTERMed `settle worker` currently exits before its own cleanup
      // (worker_gone) runs; remove its heartbeat row as that would have, so
      // the next workers do not spend the next timed run "recovering" it.
      await ctx.ctl.query('delete from settlement.workers where pid = any($1::int[])', [workers.map((w) => w.pid)]).catch(() => undefined);
      if (killed > 0) ctx.say(`P1: ${killed} worker(s) ignored SIGTERM for 10 s and were killed`);
      else if (performance.now() - t > 3000) ctx.say(`P1: workers took ${((performance.now() - t) / 1000).toFixed(1)} s to stop`);
    }
  } catch (e) {
    await sim.close();
    throw e;
  }
}
