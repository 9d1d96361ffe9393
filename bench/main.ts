/**
 * `npm run bench`: the performance figures of SPEC section 6 (P1-P4), each
 * printed as a ratio with its target beside it. Targets missed are reported,
 * not failures: exit 0 when the benchmark ran, 1 on an error, 2 on bad options.
 */
import os from 'node:os';
import type { BenchContext } from './context.js';
import { WARMUP_CHUNKS } from './context.js';
import { postmasterOf } from './cpu.js';
import { connect, openBenchDatabase, type BenchDatabase } from './database.js';
import { dateSource, makeBooks } from './fixtures.js';
import { BenchHelp, BenchUsageError, parseOptions, type BenchOptions } from './options.js';
import { runP1, type P1Result } from './p1.js';
import { runP2, type P2Result } from './p2.js';
import { runP3, type P3Result } from './p3.js';
import { runP4, type P4Result } from './p4.js';
import { p1Lines, p2Lines, p3Lines, p4Lines, p4RunLines, targets } from './report.js';
import { stopAllChildren } from './procs.js';

interface Results {
  machine: Record<string, unknown>;
  settings: Record<string, unknown>;
  P1?: P1Result;
  P2?: P2Result;
  P3?: P3Result;
  P4?: P4Result;
  pass?: Record<string, boolean>;
}

/** Everything to undo, newest first, on success, error or signal. */
const cleanups: Array<() => Promise<unknown>> = [];
let cleaning: Promise<void> | undefined;
/** Single flight: a signal during the normal cleanup joins it instead of racing it. */
function cleanup(): Promise<void> {
  return (cleaning ??= (async () => {
    await stopAllChildren().catch(() => undefined);
    while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
  })());
}

async function run(o: BenchOptions, say: (l: string) => void): Promise<Results> {
  const db: BenchDatabase = await openBenchDatabase({ profile: o.profile });
  cleanups.push(() => db.stop());
  const payUrl = await db.create('pay');
  const ctl = await connect(payUrl);
  cleanups.push(() => ctl.end());

  const info = await ctl.query<{ v: string; pid: number }>('select version() as v, pg_backend_pid() as pid');
  const version = info.rows[0]!.v.split(', compiled')[0]!;
  const machine = {
    cores: os.cpus().length,
    cpu: os.cpus()[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    postgres: version,
    database: db.where,
    loadAverage1m: Math.round(os.loadavg()[0]! * 100) / 100,
  };
  say(`machine: ${machine.cores} cores (${machine.cpu}), ${machine.memoryGiB} GiB RAM, Node ${machine.node}, ${machine.postgres}; ${machine.database}; load average ${machine.loadAverage1m} at start`);
  const settings = { chunks: o.chunks, latencyMs: o.latencyMs, maxInFlight: o.maxInFlight, workers: o.workers, concurrency: o.concurrency, figures: [...o.figures], large: o.large, profile: o.profile };
  say(`settings: N=${o.chunks} chunks, L=${o.latencyMs} ms, M=${o.maxInFlight}, W=${o.workers} worker processes × concurrency ${o.concurrency}; figures ${[...o.figures].join(',')}${o.profile ? '; --profile (pg_stat_statements)' : ''}`);
  if (o.profile && !db.statements) say('profile: pg_stat_statements is only switched on in the benchmark\'s own embedded Postgres; showing CPU only');

  await makeBooks(ctl, Math.max(o.chunks, WARMUP_CHUNKS));
  const ctx: BenchContext = { o, db, payUrl, ctl, nextDate: dateSource(), postmaster: postmasterOf(info.rows[0]!.pid), say };
  const results: Results = { machine, settings };

  if (o.figures.has('P1')) {
    const { result, sim } = await runP1(ctx);
    const closeSim = () => sim.close(); // idempotent: also on the cleanup list in case P2 fails
    cleanups.push(closeSim);
    results.P1 = result;
    p1Lines(result).forEach((l) => say(l));
    if (o.figures.has('P2')) {
      results.P2 = await runP2(sim, o.chunks, result.confirmMs, o.maxInFlight);
      p2Lines(results.P2, result).forEach((l) => say(l));
    }
    await closeSim();
  }
  if (o.figures.has('P3')) {
    results.P3 = await runP3(ctx);
    p3Lines(results.P3).forEach((l) => say(l));
  }
  if (o.figures.has('P4')) {
    say(`P4: record stage, 100,000 and 1,000,000 accruals${o.large ? ' and 10,000,000' : ''} (seeding takes a while; it is not timed)`);
    results.P4 = await runP4(ctx, (r) => p4RunLines(r).forEach((l) => say(l)));
    p4Lines(results.P4).forEach((l) => say(l));
  }

  const pass: Record<string, boolean> = {};
  if (results.P1) {
    pass.P1 = targets.p1(results.P1) && results.P1.simMaxInFlight <= results.P1.maxInFlight;
    pass['P1 loaded'] = targets.p1Loaded(results.P1) && results.P1.loaded.simMaxInFlight <= results.P1.maxInFlight;
    if (results.P1.flood) pass['P1 flood'] = targets.p1Flood(results.P1) && results.P1.flood.simMaxInFlight <= results.P1.maxInFlight;
  }
  if (results.P2) pass.P2 = targets.p2(results.P2);
  if (results.P3) pass.P3 = targets.p3(results.P3);
  if (results.P4) {
    const m = results.P4.runs.find((r) => r.accruals === 1_000_000);
    pass.P4 = (!m || targets.p4Time(m)) && results.P4.scaling.every((x) => targets.p4Scale(x.ratio));
  }
  results.pass = pass;
  say(`summary: ${Object.entries(pass).map(([k, v]) => `${k} ${v ? 'PASS' : 'MISS'}`).join(', ')} (targets missed are reported, not errors)`);
  return results;
}

/** One line, with Postgres' own detail (e.g. which statements deadlocked) when there is one. */
function describe(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const x = e as Error & { detail?: string; where?: string };
  return [x.message, x.detail, x.where].filter(Boolean).join(' | ').replace(/\s+/g, ' ');
}

async function main(): Promise<number> {
  let o: BenchOptions;
  try {
    o = parseOptions(process.argv.slice(2));
  } catch (e) {
    if (e instanceof BenchHelp) {
      console.log(e.message);
      return 0;
    }
    if (e instanceof BenchUsageError) {
      console.error(`bench: ${e.message} (--help lists the options)`);
      return 2;
    }
    throw e;
  }
  // With --json, stdout carries exactly one JSON object; the prose goes to stderr.
  const say = o.json ? (l: string) => void process.stderr.write(l + '\n') : (l: string) => console.log(l);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      console.error(`bench: ${sig}, cleaning up`);
      void cleanup().finally(() => process.exit(130));
    });
  }
  const t0 = performance.now();
  try {
    const results = await run(o, say);
    say(`bench finished in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
    if (o.json) process.stdout.write(JSON.stringify(results, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)) + '\n');
    return 0;
  } catch (e) {
    console.error(`bench: error: ${describe(e)}`);
    if (process.env.LOG_LEVEL === 'debug') console.error(e);
    return 1;
  } finally {
    await cleanup();
  }
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(`bench: error: ${describe(e)}`);
    void cleanup().finally(() => process.exit(1));
  },
);
