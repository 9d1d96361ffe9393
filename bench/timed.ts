import type { BankSimulator } from '../src/bank-sim/simulator.js';
import type { BenchContext } from './context.js';
import { cpuMeter } from './cpu.js';
import { closeDay, payDay, prepareDay, waitIdle } from './payday.js';
import { takeProblems } from './procs.js';
import { readStatements, resetStatements, roundTripsPerChunk, type StatementRow } from './profile.js';
import type { TimelineRecorder } from './timeline.js';

/*
 * One timed payout day (P1, P3) through already-running workers, with its
 * accounting around it: simulator stats, CPU per process group, worker
 * warnings, and with --profile the statements per chunk.
 */

/** --profile: what the database did per chunk. */
export interface PayoutProfile {
  roundTripsPerChunk: number;
  serverMsPerChunk: number;
  statements: StatementRow[];
}

/** Runs one timed day through already-running workers, with CPU and (optionally) statement accounting. */
export async function timedDay(ctx: BenchContext, workerPids: number[], sim: BankSimulator, n: number, timeoutMs: number, beforePay?: (date: string) => Promise<void>,
  recorder?: TimelineRecorder) {
  await waitIdle(ctx.ctl);
  const date = ctx.nextDate();
  await prepareDay(ctx.ctl, date, n);
  if (beforePay) await beforePay(date);
  await fetch(`${sim.url}/_sim/reset-stats`, { method: 'POST', body: '{}' });
  if (ctx.db.statements) await resetStatements(ctx.ctl);
  takeProblems(); // the warm-up's are not this run's
  const meter = cpuMeter(workerPids, ctx.postmaster);
  recorder?.arm();
  const timing = await payDay(ctx.ctl, date, n, timeoutMs);
  const cpu = meter.done();
  // P1's sim: latency L and cap M as the options say.
  const timeline = recorder?.take(timing.confirmMs, n, ctx.o.latencyMs, ctx.o.maxInFlight);
  const problems = takeProblems();
  const stats = sim.statsSnapshot() as { maxInFlight: number; calls: number; rejected: { busy: number } };
  let profile: PayoutProfile | undefined;
  if (ctx.db.statements) {
    const rt = await roundTripsPerChunk(ctx.ctl, n);
    profile = { roundTripsPerChunk: rt.perChunk, serverMsPerChunk: rt.serverMsPerChunk, statements: await readStatements(ctx.ctl, n) };
  }
  await closeDay(ctx.ctl, date);
  return { timing, cpu, stats, profile, problems, timeline };
}
