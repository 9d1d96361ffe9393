import { startBankSimulator, type BankSimulator } from '../src/bank-sim/simulator.js';
import { registered, stopSettleWorkers, TOKEN, WARMUP_CHUNKS, workerEnv, type BenchContext } from './context.js';
import type { CpuSplit } from './cpu.js';
import { fundSimulator } from './fixtures.js';
import { runDay, type PayoutTiming } from './payday.js';
import { FLOOD_CONSOLE_TOKEN, freePort, startFloodProcess, type FloodCounts } from './flood.js';
import { startCpuBurner, startSettleWorkers } from './procs.js';
import { timedDay, type PayoutProfile } from './timed.js';
import { timelineRecorder, type Timeline } from './timeline.js';
import { runFloor, type Floor } from './floor.js';

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
  /** Where the wall went, from the bank's side (timeline.ts). */
  timeline?: Timeline;
  /** --floor: the same calls from bare HTTP clients, no database (floor.ts). */
  floor?: Floor;
  profile?: PayoutProfile;
  /** --flood: the same day again while 64 scrapers and 64 page readers hit worker 0's HTTP port (issue 23). */
  flood?: {
    confirmMs: number;
    /** Its wall over the quiet run's (target ≤ 1.10). */
    vsQuiet: number;
    simMaxInFlight: number;
    counts: FloodCounts;
    cpu: CpuSplit;
    problems: { count: number; top: string[] };
  };
  /** The same day again with one CPU-bound process beside it (an operator's host is never idle). */
  loaded: {
    confirmMs: number;
    ratio: number;
    simMaxInFlight: number;
    simBusy: number;
    cpu: CpuSplit;
    problems: { count: number; top: string[] };
    timeline?: Timeline;
  };
}

/**
 * P1: N chunks at bank latency L under an in-flight cap M (simulator and
 * BANK_MAX_IN_FLIGHT), W `settle worker` processes. The simulator stays open
 * for P2, which measures one-at-a-time calls at the same latency.
 */
export async function runP1(ctx: BenchContext): Promise<{ result: P1Result; sim: BankSimulator }> {
  const { chunks: n, latencyMs: L, maxInFlight: M, workers: W, concurrency } = ctx.o;
  const recorder = timelineRecorder();
  const sim = await startBankSimulator({ accessToken: TOKEN, latencyMs: L, jitterMs: 0, maxInFlight: M }, recorder.hooks);
  try {
    await fundSimulator(ctx.ctl, sim, Math.max(n, WARMUP_CHUNKS));
    ctx.say(`P1: starting ${W} settle worker(s), concurrency ${concurrency} each, BANK_MAX_IN_FLIGHT=${M}, bank latency ${L} ms`);
    // Every worker shares one set of settings: this figure's cap, set on purpose (settle configure).
    await ctx.ctl.query(`select settlement.configure('Asia/Seoul', 100000, $1)`, [M]);
    // --flood: worker 0 serves /metrics and the console (signed in with the benchmark's token) on a port of its own.
    const floodPort = ctx.o.flood ? await freePort() : undefined;
    const env = (i: number) => ({
      ...workerEnv(ctx, sim.url, M),
      ...(floodPort !== undefined && i === 0 ? { HTTP_PORT: String(floodPort), CONSOLE_TOKEN: FLOOD_CONSOLE_TOKEN, CONSOLE_DATABASE_URL: ctx.payUrl } : {}),
    });
    const workers = await startSettleWorkers(W, env, registered(ctx));
    let result: P1Result;
    try {
      const warm = await runDay(ctx.ctl, ctx.nextDate(), WARMUP_CHUNKS, 120_000);
      ctx.say(`P1: warm-up day of ${WARMUP_CHUNKS} chunks paid in ${(warm.confirmMs / 1000).toFixed(2)} s`);
      const idealMs = Math.ceil(n / M) * L;
      const { timing, cpu, stats, profile, problems, timeline } = await timedDay(ctx, workers.map((w) => w.pid), sim, n, Math.max(120_000, idealMs * 20), undefined, recorder);
      let flood: P1Result['flood'];
      if (floodPort !== undefined) {
        // The flood starts once the day is made (the readers load its page) and before it is paid.
        let f: Awaited<ReturnType<typeof startFloodProcess>> | undefined;
        let day: Awaited<ReturnType<typeof timedDay>>;
        let counts: FloodCounts = { scrapes: 0, scrapeErrors: 0, pages: 0, pagesLimited: 0, pageErrors: 0 };
        try {
          day = await timedDay(ctx, workers.map((w) => w.pid), sim, n, Math.max(120_000, idealMs * 20), async (date) => {
            f = await startFloodProcess(floodPort, date);
          });
        } finally {
          if (f) counts = await f.stop();
        }
        ctx.say(`P1 flood: ${counts.scrapes} scrapes, ${counts.pages} pages (${counts.pagesLimited} told to wait) during the day`);
        flood = { confirmMs: day.timing.confirmMs, vsQuiet: day.timing.confirmMs / timing.confirmMs, simMaxInFlight: day.stats.maxInFlight, counts, cpu: day.cpu, problems: day.problems };
      }
      // The same day again beside one CPU-bound process, started and stopped here (its process group).
      const burner = startCpuBurner();
      let loadedDay: Awaited<ReturnType<typeof timedDay>>;
      try {
        loadedDay = await timedDay(ctx, workers.map((w) => w.pid), sim, n, Math.max(120_000, idealMs * 20), undefined, recorder);
      } finally {
        await burner.stop();
      }
      result = {
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
        ...(timeline ? { timeline } : {}),
        ...(profile ? { profile } : {}),
        ...(flood ? { flood } : {}),
        loaded: {
          confirmMs: loadedDay.timing.confirmMs,
          ratio: loadedDay.timing.confirmMs / idealMs,
          simMaxInFlight: loadedDay.stats.maxInFlight,
          simBusy: loadedDay.stats.rejected.busy,
          cpu: loadedDay.cpu,
          problems: loadedDay.problems,
          ...(loadedDay.timeline ? { timeline: loadedDay.timeline } : {}),
        },
      };
    } finally {
      await stopSettleWorkers(ctx, 'P1', workers);
    }
    // With the workers gone: nothing but the clients and the simulator runs.
    if (ctx.o.floor) {
      ctx.say(`P1: the floor: ${n} calls from ${W} bare HTTP clients, no database`);
      result.floor = await runFloor(sim.url, recorder, n, L, M, W);
    }
    return { result, sim };
  } catch (e) {
    await sim.close();
    throw e;
  }
}
