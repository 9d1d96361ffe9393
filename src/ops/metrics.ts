import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { CommonQueryMethods } from 'slonik';
import type { WorkerEvents } from 'graphile-worker';
import { metricsSnapshot } from '../db/operations.js';
import type { Logger } from '../log.js';

/**
 * A worker's Prometheus metrics (prom-client), one registry per worker.
 *
 * - From the database, computed on scrape by one query (settlement.day_metrics
 *   and the heartbeats): per (business_date, kind) stage state, verdict,
 *   chunks failed / unresolved / in flight, KRW recorded / paid / unpaid /
 *   withdrawn, reconciliation breaks; heartbeat age per worker pool; bank
 *   calls in flight (slots held, database-wide) and the cap.
 * - From this process: bank calls by API and outcome with their latency,
 *   transfer outcomes (a bank failure is not a job success), job outcomes,
 *   and prom-client's default process and Node metrics.
 *
 * Days shown: every day not done, and the last 7 days (so a cleared day
 * shows its zeros before it drops out).
 */
export interface WorkerMetrics {
  registry: Registry;
  /** One bank call finished: `api` (transfer_payout, balance, ...), `outcome` (succeeded, failed, unresolved, ok, error), duration. */
  observeBank(api: string, outcome: string, ms: number): void;
  /** Counts graphile-worker job outcomes by task. */
  watchJobs(events: WorkerEvents): void;
  /** The text exposition: the last snapshot if younger than snapshotMs (or still being made), else a new one. */
  render(): Promise<{ contentType: string; body: string }>;
}

const DAY = ['business_date', 'kind'] as const;

/**
 * `db` is a pool of its own (not the worker's job or desk connections), with
 * a short statement timeout. The database gauges are read at most once per
 * `snapshotMs` however many scrapers come: a scrape within that time, or
 * while a read is under way, gets the same text.
 */
export function createWorkerMetrics(db: CommonQueryMethods, logger: Logger, opts: { snapshotMs?: number } = {}): WorkerMetrics {
  const snapshotMs = opts.snapshotMs ?? 5_000;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[]) => new Gauge<L>({ name, help, labelNames, registers: [registry] });

  const dbUp = gauge('settle_db_scrape_ok', '1 if the database gauges were read on this scrape, 0 if the query failed', []);
  const stage = gauge('settle_day_stage', 'Stage state of a settlement day: 1 for the current state of each stage', [...DAY, 'stage', 'state']);
  const verdict = gauge('settle_day_verdict', 'Verdict of a settlement day (DONE, BLOCKED, PAUSED, IN PROGRESS, WAITING): 1 for the current one', [...DAY, 'verdict']);
  const blocked = gauge('settle_day_blocked', '1 while a stage of the day is blocked (needs a person)', DAY);
  const paused = gauge('settle_day_paused', '1 while bank calls for the kind are paused (settle pause)', DAY);
  const overdue = gauge('settle_day_withdraw_overdue', '1 while the day is not withdrawn and its deadline (start of the business date + ops_settings.withdraw_deadline) has passed', DAY);
  const chunksTotal = gauge('settle_day_chunks', 'Payout chunks of the day', DAY);
  const chunksFailed = gauge('settle_day_chunks_failed', 'Payout chunks that failed for good (settle failures; settle retry after the fix)', DAY);
  const chunksUnresolved = gauge('settle_day_chunks_unresolved', 'Transfers whose outcome the bank has not told yet', DAY);
  const chunksInFlight = gauge('settle_day_chunks_in_flight', 'Payout chunks pending or being sent', DAY);
  const recorded = gauge('settle_day_recorded_krw', 'KRW recorded for the day (entries)', DAY);
  const paid = gauge('settle_day_paid_krw', 'KRW paid out (succeeded chunks)', DAY);
  const unpaid = gauge('settle_day_unpaid_krw', 'KRW recorded and not paid out', DAY);
  const withdrawn = gauge('settle_day_withdrawn_krw', 'KRW withdrawn to the corporate account', DAY);
  const unrecorded = gauge('settle_day_accruals_unrecorded', 'Accruals of the day not yet recorded', DAY);
  const breaks = gauge('settle_day_reconciliation_breaks', 'Reconciliation breaks of the day (settlement.reconciliation_breaks)', DAY);
  const beatAge = gauge('settle_worker_heartbeat_age_seconds', 'Seconds since each registered worker pool last beat', ['pool_id', 'host', 'pid']);
  const slotsInUse = gauge('settle_bank_slots_in_use', 'Bank calls in flight right now, across every worker process (bank-call slots held)', []);
  const maxInFlight = gauge('settle_bank_max_in_flight', 'The cap on bank calls in flight across every worker process (BANK_MAX_IN_FLIGHT, settlement.config)', []);
  const dbGauges = [stage, verdict, blocked, paused, overdue, chunksTotal, chunksFailed, chunksUnresolved, chunksInFlight, recorded, paid, unpaid, withdrawn, unrecorded, breaks, beatAge, slotsInUse, maxInFlight];

  const bankCalls = new Counter({ name: 'settle_bank_calls_total', help: 'Bank calls by API and outcome (succeeded/failed/unresolved for transfers, ok/error for the others)', labelNames: ['api', 'outcome'], registers: [registry] });
  const bankLatency = new Histogram({
    name: 'settle_bank_call_duration_seconds', help: 'Duration of bank calls (a transfer includes its result checks and retries)', labelNames: ['api'],
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60, 120], registers: [registry],
  });
  const jobs = new Counter({ name: 'settle_jobs_total', help: 'Jobs by task and result: success, retry_later (expected: busy, paused, unresolved), error (will retry), failed (attempts exhausted)', labelNames: ['task', 'result'], registers: [registry] });

  const snapshots = new Counter({ name: 'settle_metrics_snapshots_total', help: 'Database reads for /metrics (at most one per METRICS_SNAPSHOT_MS, however many scrape)', registers: [registry] });

  const refresh = async () => {
    let snap;
    try {
      snapshots.inc();
      snap = await metricsSnapshot(db);
    } catch (e) {
      dbUp.set(0);
      logger.warn({ event: 'metrics:db_failed', err: (e as Error).message }, 'metrics: the database gauges could not be read');
      return;
    }
    dbUp.set(1);
    for (const g of dbGauges) g.reset();
    for (const d of snap.days) {
      const l = { business_date: d.business_date, kind: d.kind };
      for (const [s, state] of Object.entries(d.states)) stage.set({ ...l, stage: s, state }, 1);
      verdict.set({ ...l, verdict: d.verdict }, 1);
      blocked.set(l, d.verdict === 'BLOCKED' ? 1 : 0);
      paused.set(l, d.paused ? 1 : 0);
      overdue.set(l, d.withdraw_overdue ? 1 : 0);
      chunksTotal.set(l, Number(d.chunks_total));
      chunksFailed.set(l, Number(d.chunks_failed));
      chunksUnresolved.set(l, Number(d.chunks_unresolved));
      chunksInFlight.set(l, Number(d.chunks_in_flight));
      recorded.set(l, Number(d.amount_recorded));
      paid.set(l, Number(d.amount_paid));
      unpaid.set(l, Number(d.amount_unpaid));
      withdrawn.set(l, Number(d.amount_withdrawn));
      unrecorded.set(l, Number(d.accruals_unrecorded));
      breaks.set(l, Number(d.reconciliation_breaks));
    }
    slotsInUse.set(snap.bank.in_use);
    maxInFlight.set(snap.bank.max_in_flight);
    for (const w of snap.workers) beatAge.set({ pool_id: w.pool_id, host: w.host, pid: String(w.pid) }, w.age_seconds);
  };

  interface Snapshot { at: number; settled: boolean; text: Promise<{ contentType: string; body: string }> }
  let cached: Snapshot | undefined;

  return {
    registry,
    observeBank(api, outcome, ms) {
      bankCalls.inc({ api, outcome });
      bankLatency.observe({ api }, ms / 1000);
    },
    watchJobs(events) {
      events.on('job:success', ({ job }) => jobs.inc({ task: job.task_identifier, result: 'success' }));
      events.on('job:error', ({ job, error }) => jobs.inc({ task: job.task_identifier, result: (error as Error)?.name === 'RetryLaterError' ? 'retry_later' : 'error' }));
      events.on('job:failed', ({ job }) => jobs.inc({ task: job.task_identifier, result: 'failed' }));
    },
    render() {
      const now = performance.now();
      if (!cached || (cached.settled && now - cached.at >= snapshotMs)) {
        const p = (async () => {
          await refresh();
          return { contentType: registry.contentType, body: await registry.metrics() };
        })();
        const entry: Snapshot = { at: now, settled: false, text: p };
        cached = entry;
        p.then(
          () => {
            entry.settled = true;
          },
          () => {
            // A failed render is not kept: the next scrape tries again.
            if (cached === entry) cached = undefined;
          },
        );
      }
      return cached.text;
    },
  };
}
