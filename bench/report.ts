import os from 'node:os';
import type { CpuSplit } from './cpu.js';
import type { P1Result } from './p1.js';
import type { Timeline } from './timeline.js';
import type { P2Result } from './p2.js';
import type { P3Result } from './p3.js';
import type { P4Result, RecordRun } from './p4.js';
import { describeEngine } from '../src/worker/engine.js';
import { formatStatements } from './profile.js';

/** Human-readable lines for each figure: the ratio first, its target beside it, PASS or MISS. */
const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const int = (n: number) => Math.round(n).toLocaleString('en-US');
const verdict = (ok: boolean) => (ok ? 'PASS' : 'MISS');
const head = (label: string, figure: string, target: string, ok: boolean) => `${label.padEnd(40)} ${figure.padEnd(12)} target ${target.padEnd(8)} ${verdict(ok)}`;

export const targets = {
  p1: (r: P1Result) => r.ratio <= 1.05,
  p1Loaded: (r: P1Result) => r.loaded.ratio <= 1.1,
  p1Flood: (r: P1Result) => r.flood === undefined || r.flood.vsQuiet <= 1.1,
  p2: (r: P2Result) => r.speedup >= r.target,
  p3: (r: P3Result) => r.ratio >= 0.5,
  p4Time: (r: RecordRun) => r.recordSec <= 2,
  p4Scale: (ratio: number) => ratio <= 1.2,
};

function cpuLine(cpu: CpuSplit, wallMs: number, per: number, unit: string): string {
  const pgPart = cpu.postgres === undefined ? 'postgres n/a (not on this machine)' : `postgres ${cpu.postgres.toFixed(1)} s`;
  const total = cpu.workers + (cpu.postgres ?? 0) + cpu.bench;
  const perUnit = (x: number) => ((x * 1000) / per).toFixed(2);
  return (
    `   CPU: workers ${cpu.workers.toFixed(1)} s, ${pgPart}, bench+simulator ${cpu.bench.toFixed(1)} s = ${total.toFixed(1)} s of ` +
    `${((os.cpus().length * wallMs) / 1000).toFixed(1)} s on ${os.cpus().length} cores` +
    (cpu.others === undefined ? '' : `; other processes on the machine ${cpu.others.toFixed(1)} s`) +
    ` (per ${unit}: workers ${perUnit(cpu.workers)} ms, postgres ${cpu.postgres === undefined ? 'n/a' : perUnit(cpu.postgres) + ' ms'}, bench ${perUnit(cpu.bench)} ms)`
  );
}

export function p1Lines(r: P1Result): string[] {
  const capOk = r.simMaxInFlight <= r.maxInFlight;
  const lines = [
    head('P1 payout wall / physical limit', r.ratio.toFixed(3), '≤ 1.05', targets.p1(r)),
    `   wall ${s(r.confirmMs)} (run_stage('pay') → confirm done) / ideal ${s(r.idealMs)} = ceil(${r.chunks}/${r.maxInFlight}) × ${r.latencyMs} ms; ` +
      `${r.workers} workers × concurrency ${r.concurrency}`,
    `   bank in flight at most ${r.simMaxInFlight} (cap ${r.maxInFlight}) ${capOk ? 'OK' : 'FAIL: CAP EXCEEDED'}; busy rejections ${r.simBusy}; ` +
      `bank calls ${r.simCalls}; pay stage txn ${r.payStageMs.toFixed(0)} ms; all chunks succeeded at ${s(r.succeededMs)}`,
    ...(r.timeline ? [timelineLine(r.timeline, r.payStageMs)] : []),
    cpuLine(r.cpu, r.confirmMs, r.chunks, 'chunk'),
    ...problemLines(r.problems),
  ];
  if (r.profile) lines.push(...profileLines(r.profile));
  if (r.flood) {
    const f = r.flood;
    lines.push(
      head('P1 under a read flood / quiet P1', f.vsQuiet.toFixed(3), '≤ 1.10', targets.p1Flood(r)),
      `   the same ${r.chunks} chunks while 64 scrapers read worker 0's /metrics and 64 signed-in readers load its console page of the day: ` +
        `wall ${s(f.confirmMs)} vs quiet ${s(r.confirmMs)}; bank in flight at most ${f.simMaxInFlight} (cap ${r.maxInFlight}); ` +
        `${int(f.counts.scrapes)} scrapes (${f.counts.scrapeErrors} failed), ${int(f.counts.pages)} pages (${int(f.counts.pagesLimited)} told to wait, ${f.counts.pageErrors} failed)`,
      cpuLine(f.cpu, f.confirmMs, r.chunks, 'chunk') + ' — "other processes" includes the 128 flooding clients (a process of their own at nice 19)',
      ...problemLines(f.problems),
    );
  }
  if (r.floor) {
    const f = r.floor;
    lines.push(
      `   floor (--floor): the same ${r.chunks} calls from ${r.workers} bare HTTP clients against the same simulator, no database, nothing between calls: ` +
        `wall ${s(f.wallMs)} / ideal ${s(r.idealMs)} = ${f.ratio.toFixed(3)}`,
      ...(f.timeline ? [timelineLine(f.timeline)] : []),
    );
  }
  const l = r.loaded;
  const loadedCapOk = l.simMaxInFlight <= r.maxInFlight;
  lines.push(
    head('P1 beside a CPU-bound process', l.ratio.toFixed(3), '≤ 1.10', targets.p1Loaded(r)),
    `   the same ${r.chunks} chunks again with one busy-loop process running beside them (started and stopped by the benchmark): ` +
      `wall ${s(l.confirmMs)} / ideal ${s(r.idealMs)}; bank in flight at most ${l.simMaxInFlight} (cap ${r.maxInFlight}) ${loadedCapOk ? 'OK' : 'FAIL: CAP EXCEEDED'}; busy rejections ${l.simBusy}`,
    ...(l.timeline ? [timelineLine(l.timeline)] : []),
    cpuLine(l.cpu, l.confirmMs, r.chunks, 'chunk') + ' — "other processes" includes the busy loop',
    ...problemLines(l.problems),
  );
  return lines;
}

/** P1's wall taken apart from the bank's side (bench/timeline.ts). */
function timelineLine(t: Timeline, payStageMs?: number): string {
  const ms = (x: number) => `${x.toFixed(0)} ms`;
  return (
    `   where the wall went (at the bank): first call at ${ms(t.firstCallMs)}${payStageMs === undefined ? '' : ` (pay stage txn ${ms(payStageMs)})`}` +
    ` + calls N·L/M ${s(t.callsMs)} + the simulator's own lateness ${ms(t.bankLateMs)} + the cap idle ${ms(t.idleMs)}` +
    ` (an answer's slot waited ${t.handoverMeanMs.toFixed(2)} ms on average for the next call; the rest is the first round filling and the last emptying)` +
    ` + after the last answer ${ms(t.afterLastMs)}`
  );
}

function problemLines(p: { count: number; top: string[] }): string[] {
  if (p.count === 0) return ['   workers logged no warnings or errors during the timed run'];
  return [`   workers logged ${p.count} warning(s)/error(s) during the timed run (errored jobs are retried after graphile's backoff):`, ...p.top.map((t) => `     ${t}`)];
}

function profileLines(p: NonNullable<P1Result['profile']>): string[] {
  return [
    `   DB: ${p.roundTripsPerChunk.toFixed(1)} client round trips per chunk, ${p.serverMsPerChunk.toFixed(2)} ms server time per chunk (top statements; rt = round trip, ↳ = inside a function):`,
    ...formatStatements(p.statements),
  ];
}

export function p2Lines(r: P2Result, p1: P1Result): string[] {
  return [
    head('P2 speed-up over one-at-a-time', `${r.speedup.toFixed(1)}×`, `≥ ${r.target.toFixed(1)}×`, targets.p2(r)),
    `   N·L / wall = ${r.sampleCalls > 0 ? `${p1.chunks} × ${r.latencyMsMeasured.toFixed(1)} ms` : ''} / ${s(p1.confirmMs)}; ` +
      `L measured over ${r.sampleCalls} sequential payouts (one NH client, no limiter), N·L = ${s(r.sequentialMsExtrapolated)} EXTRAPOLATED to N; ` +
      `per M: ${(r.speedup / p1.maxInFlight).toFixed(3)} (target ≥ 0.9)`,
  ];
}

export function p3Lines(r: P3Result): string[] {
  const lines = [
    head('P3 engine overhead (payout / no-op)', r.ratio.toFixed(3), '≥ 0.50', targets.p3(r)),
    `   payout path ${int(r.payout.chunksPerSec)} chunks/s (${r.chunks} chunks in ${s(r.payout.succeededMs)}, median of ${r.payout.runsMs.map((x) => (x / 1000).toFixed(2)).join('/')} s; confirm done at ${s(r.payout.confirmMs)}; ` +
      `bank latency 0, cap ${1000}) vs graphile-worker no-op ${int(r.noop.jobsPerSec)} jobs/s (${r.chunks} jobs in ${s(r.noop.ms)}, median of ${r.noop.runsMs.map((x) => (x / 1000).toFixed(2)).join('/')} s); ` +
      `${r.workers} processes × concurrency ${r.concurrency} each`,
    `   engine (both sides, src/worker/engine.ts): ${describeEngine(r.engine.payout)}`,
    cpuLine(r.payout.cpu, r.payout.succeededMs, r.chunks, 'chunk').replace('   CPU:', '   CPU payout:'),
    cpuLine(r.noop.cpu, r.noop.ms, r.chunks, 'job').replace('   CPU:', '   CPU no-op: '),
    ...problemLines(r.payout.problems),
  ];
  if (r.payout.profile) lines.push(...profileLines(r.payout.profile));
  return lines;
}

export function p4RunLines(r: RecordRun): string[] {
  const head = (
    `   ${int(r.accruals).padStart(10)} accruals → ${int(r.entries)} entries: record ${r.recordSec.toFixed(2)} s (${int(r.accrualsPerSec)} accruals/s` +
    `${r.tries ? `; median of ${r.tries.map((t) => t.toFixed(2)).join('/')} s` : ''}); ` +
    `seeding ${r.seedSec.toFixed(1)} s + VACUUM ANALYZE/CHECKPOINT ${r.vacuumSec.toFixed(1)} s, not timed`
  );
  const top = (r.statements ?? []).map((x) => `     ${x.toplevel ? 'rt' : ' ↳'} ${(x.totalMs / 1000).toFixed(2).padStart(6)} s  ${x.query}`);
  return [head, ...top];
}

export function p4Lines(r: P4Result): string[] {
  const lines: string[] = [];
  const m = r.runs.find((x) => x.accruals === 1_000_000);
  if (m) {
    lines.push(head('P4 record 1M accruals / 2 s', (m.recordSec / 2).toFixed(3), '≤ 1.00', targets.p4Time(m)));
    lines.push(`   1M accruals recorded in ${m.recordSec.toFixed(2)} s (SPEC §6: ≤ 2 s on 2 cores)`);
  }
  for (const x of r.scaling) {
    lines.push(head(`P4 scaling ${int(x.from)} → ${int(x.to)}`, x.ratio.toFixed(3), '≤ 1.20', targets.p4Scale(x.ratio)));
    lines.push(`   time ×${x.timeRatio.toFixed(2)} for data ×${x.sizeRatio} (ratio = time ratio / size ratio)`);
  }
  lines.push(
    `   each size on a fresh day; accruals VACUUM ANALYZEd after seeding (a real day's accruals trickle in, so autovacuum has seen them), then CHECKPOINT; ` +
      `warm-up ${int(r.warmup.accruals)} accruals in ${r.warmup.recordSec.toFixed(2)} s`,
  );
  return lines;
}
