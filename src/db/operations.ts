/**
 * Typed calls of sql/logic/80_operations.sql: the audited operator functions,
 * the on-call views and functions, alerts and the metrics snapshot.
 */
import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import { kindSchema, type Kind, type Stage } from '../domain.js';
import { voidRow, wrap } from './call.js';
import type { DatabasePool } from './pool.js';

export async function enqueueStage(db: CommonQueryMethods, stage: Stage, date: string | null, kind: Kind | null): Promise<number> {
  return wrap(db.oneFirst(sql.type(z.object({ n: z.number() }))`
    select settlement.enqueue_stage(${stage}::settlement.stage, ${date}::date, ${kind}::settlement.kind) as n`));
}

export async function retryFailed(db: CommonQueryMethods, date: string, kind: Kind): Promise<number> {
  return wrap(db.oneFirst(sql.type(z.object({ n: z.number() }))`
    select settlement.retry_failed(${date}::date, ${kind}::settlement.kind) as n`));
}

export async function configure(db: CommonQueryMethods, timeZone: string, perCallLimit: bigint, maxInFlight: number): Promise<void> {
  await wrap(db.query(sql.type(voidRow)`select settlement.configure(${timeZone}, ${perCallLimit}, ${maxInFlight})`));
}

export const statusRow = z.object({
  business_date: z.string(),
  kind: kindSchema,
  record: z.string(),
  pay: z.string(),
  confirm: z.string(),
  withdraw: z.string(),
  reconcile: z.string(),
  entries: z.bigint(),
  amount_recorded: z.bigint(),
  chunks_total: z.bigint(),
  chunks_succeeded: z.bigint(),
  chunks_failed: z.bigint(),
  chunks_in_flight: z.bigint(),
  chunks_unresolved: z.bigint(),
  amount_paid: z.bigint(),
  amount_withdrawn: z.bigint(),
  accruals_unrecorded: z.bigint(),
  attention: z.string().nullable(),
});

export type StatusRow = z.infer<typeof statusRow>;

export function dailyStatus(db: DatabasePool, date?: string): Promise<readonly StatusRow[]> {
  const where = date ? sql.fragment`where business_date = ${date}::date` : sql.fragment``;
  return wrap(db.any(sql.type(statusRow)`
    select business_date::text as business_date, kind::text as kind, record, pay, confirm, withdraw, reconcile, entries, amount_recorded,
           chunks_total, chunks_succeeded, chunks_failed, chunks_in_flight, chunks_unresolved, amount_paid, amount_withdrawn,
           accruals_unrecorded, attention
    from settlement.daily_status ${where} order by business_date, kind`));
}

/**
 * Runs `fn` in one transaction whose operator actions record `reason`
 * (the session setting settlement.reason, local to the transaction).
 */
export function asOperator<T>(db: DatabasePool, reason: string | undefined, fn: (q: CommonQueryMethods) => Promise<T>, opts: { applicationName?: string } = {}): Promise<T> {
  return wrap(db.transaction(async (tx) => {
    if (reason) await tx.query(sql.type(voidRow)`select set_config('settlement.reason', ${reason}, true)`);
    // The audit's "from where" (settlement.operator_actions.application_name) for this transaction only.
    if (opts.applicationName) await tx.query(sql.type(voidRow)`select set_config('application_name', ${opts.applicationName}, true)`);
    return fn(tx);
  }));
}

const verdictRow = z.object({
  business_date: z.string(),
  verdict: z.enum(['DONE', 'BLOCKED', 'IN PROGRESS', 'WAITING', 'PAUSED']),
  amount_unpaid: z.bigint(),
  kinds: z.string().nullable(),
  detail: z.string().nullable(),
  next_command: z.string().nullable(),
});

export type VerdictRow = z.infer<typeof verdictRow>;

/** settlement.verdict: one line per business date. */
export function verdicts(db: CommonQueryMethods, date?: string): Promise<readonly VerdictRow[]> {
  const where = date ? sql.fragment`where business_date = ${date}::date` : sql.fragment``;
  return wrap(db.any(sql.type(verdictRow)`
    select business_date::text as business_date, verdict, amount_unpaid, kinds, detail, next_command
    from settlement.verdict ${where} order by business_date`));
}

const workerStatusRow = z.object({ alive: z.number(), registered: z.number(), newest_beat: z.string().nullable(), oldest_beat: z.string().nullable(), oldest_age_s: z.number().nullable(), silent_after_s: z.number() });

export type WorkerStatus = z.infer<typeof workerStatusRow>;

export function workerStatus(db: CommonQueryMethods): Promise<WorkerStatus> {
  return wrap(db.one(sql.type(workerStatusRow)`
    select alive, registered, newest_beat::text as newest_beat, oldest_beat::text as oldest_beat,
           extract(epoch from now() - oldest_beat)::float8 as oldest_age_s, extract(epoch from silent_after)::float8 as silent_after_s
    from settlement.worker_status()`));
}

const problemRow = z.object({ key: z.string(), problem: z.enum(['blocked', 'unresolved', 'not_withdrawn', 'no_live_worker']), business_date: z.string().nullable(), kind: kindSchema.nullable(), message: z.string(), amount_unpaid: z.bigint().nullable(), next_command: z.string().nullable() });

export type Problem = z.infer<typeof problemRow>;

/** settlement.problems(): what needs a person now. */
export function problems(db: CommonQueryMethods): Promise<readonly Problem[]> {
  return wrap(db.any(sql.type(problemRow)`
    select key, problem, business_date::text as business_date, kind::text as kind, message, amount_unpaid, next_command from settlement.problems()`));
}

export async function pause(db: CommonQueryMethods, kind: Kind | null, reason: string): Promise<boolean> {
  return wrap(db.oneFirst(sql.type(z.object({ r: z.boolean() }))`select settlement.pause(${kind}::settlement.kind, ${reason}) as r`));
}

export async function resume(db: CommonQueryMethods, kind: Kind | null): Promise<number> {
  return wrap(db.oneFirst(sql.type(z.object({ n: z.number() }))`select settlement.resume(${kind}::settlement.kind) as n`));
}

const pauseRow = z.object({ kind: kindSchema.nullable(), reason: z.string(), paused_at: z.string(), paused_by: z.string() });

export function activePauses(db: CommonQueryMethods): Promise<readonly z.infer<typeof pauseRow>[]> {
  return wrap(db.any(sql.type(pauseRow)`
    select kind::text as kind, reason, settlement.local_time(paused_at) as paused_at, paused_by from settlement.pauses where resumed_at is null order by kind nulls first`));
}

const retriedRow = z.object({ kind: kindSchema, retried: z.number() });

/** settlement.retry_day: retry_failed for every kind of the day with transfers failed for good. */
export function retryDay(db: CommonQueryMethods, date: string, kind: Kind | null): Promise<readonly z.infer<typeof retriedRow>[]> {
  return wrap(db.any(sql.type(retriedRow)`
    select retried_kind::text as kind, retried from settlement.retry_day(${date}::date, ${kind}::settlement.kind)`));
}

const previewRow = z.object({ kind: kindSchema, purpose: z.enum(['payout', 'withdrawal']), from_account: z.string(), fin_acno: z.string().nullable(), transfers: z.bigint(), amount: z.bigint(), bank_codes: z.string().nullable() });

export type RetryPreviewRow = z.infer<typeof previewRow>;

export function retryPreview(db: CommonQueryMethods, date: string, kind: Kind | null): Promise<readonly RetryPreviewRow[]> {
  return wrap(db.any(sql.type(previewRow)`
    select kind::text as kind, purpose::text as purpose, from_account, fin_acno, transfers, amount, bank_codes
    from settlement.retry_preview(${date}::date, ${kind}::settlement.kind)`));
}

const failureRow = z.object({
  problem: z.string(), what: z.string(), business_date: z.string(), kind: kindSchema, transfer_id: z.bigint(), from_account: z.string(), to_account: z.string(),
  amount: z.bigint(), is_tuno: z.string(), attempt: z.number(), bank_code: z.string().nullable(), bank_message: z.string().nullable(), since: z.string().nullable(),
  /** An unresolved transfer: why the statement has not decided it yet (null: it can now). */
  undecided_why: z.string().nullable(),
});

export type FailureRow = z.infer<typeof failureRow>;

/** settlement.payout_failures, oldest day first. */
export function payoutFailures(db: CommonQueryMethods, date?: string): Promise<readonly FailureRow[]> {
  const where = date ? sql.fragment`where business_date = ${date}::date` : sql.fragment``;
  return wrap(db.any(sql.type(failureRow)`
    select problem, what, business_date::text as business_date, kind::text as kind, transfer_id, from_account, to_account, amount, is_tuno, attempt,
           bank_code, bank_message, settlement.local_time(coalesce(failed_at, unresolved_since)) as since, undecided_why
    from settlement.payout_failures ${where} order by business_date, kind, transfer_id`));
}

/** settlement.detect_alerts: opens alerts (with their jobs) for new conditions, clears the gone ones. */
export function detectAlerts(db: CommonQueryMethods): Promise<{ opened: number; cleared: number }> {
  return wrap(db.one(sql.type(z.object({ opened: z.number(), cleared: z.number() }))`select opened, cleared from settlement.detect_alerts()`));
}

const alertRow = z.object({ id: z.bigint(), key: z.string(), message: z.string(), sent: z.boolean(), cleared: z.boolean() });

export function alertToSend(db: CommonQueryMethods, id: number): Promise<z.infer<typeof alertRow>> {
  return wrap(db.one(sql.type(alertRow)`select id, key, message, sent, cleared from settlement.alert_to_send(${id})`));
}

export async function alertSent(db: CommonQueryMethods, id: number, error: string | null): Promise<void> {
  await wrap(db.query(sql.type(voidRow)`select settlement.alert_sent(${id}, ${error})`));
}

export const dayMetricsRow = z.object({
  business_date: z.string(), kind: kindSchema, states: z.record(z.string()), verdict: z.string(),
  chunks_total: z.bigint(), chunks_succeeded: z.bigint(), chunks_failed: z.bigint(), chunks_unresolved: z.bigint(), chunks_in_flight: z.bigint(),
  amount_recorded: z.bigint(), amount_paid: z.bigint(), amount_unpaid: z.bigint(), amount_withdrawn: z.bigint(), accruals_unrecorded: z.bigint(),
  reconciliation_breaks: z.bigint(), paused: z.boolean(), withdraw_overdue: z.boolean(),
});

export type DayMetricsRow = z.infer<typeof dayMetricsRow>;

const heartbeatRow = z.object({ pool_id: z.string(), host: z.string(), pid: z.number(), age_seconds: z.number() });

/** What /metrics shows from the database, in one round trip. */
export async function metricsSnapshot(db: CommonQueryMethods): Promise<{ days: readonly DayMetricsRow[]; workers: readonly z.infer<typeof heartbeatRow>[]; bank: { in_use: number; max_in_flight: number } }> {
  const row = await wrap(db.one(sql.type(z.object({ days: z.unknown(), workers: z.unknown(), slots_in_use: z.bigint(), max_in_flight: z.number() }))`
    select (select coalesce(json_agg(json_build_object(
              'business_date', f.business_date, 'kind', f.kind, 'states', f.states,
              -- settlement.day_verdicts' rule, on the rows day_metrics() already read (the view would compute day_facts for every day again)
              'verdict', case when f.blocked_stage is not null then 'BLOCKED' when f.all_done then 'DONE' when f.paused_reason is not null then 'PAUSED'
                              when f.bank_quiet_until is not null or f.waiting or (f.withdrawn and settlement.statement_final_by(f.business_date, f.kind) > now()) then 'WAITING'
                              else 'IN PROGRESS' end,
              'chunks_total', f.chunks_total::text, 'chunks_succeeded', f.chunks_succeeded::text, 'chunks_failed', f.chunks_failed::text,
              'chunks_unresolved', f.chunks_unresolved::text, 'chunks_in_flight', f.chunks_in_flight::text,
              'amount_recorded', f.amount_recorded::text, 'amount_paid', f.amount_paid::text, 'amount_unpaid', f.amount_unpaid::text,
              'amount_withdrawn', f.amount_withdrawn::text, 'accruals_unrecorded', f.accruals_unrecorded::text,
              'reconciliation_breaks', f.reconciliation_breaks::text, 'paused', f.paused_reason is not null,
              'withdraw_overdue', not f.withdrawn and f.withdraw_by < now())), '[]')
            from settlement.day_metrics() f) as days,
           (select coalesce(json_agg(json_build_object('pool_id', h.pool_id, 'host', h.host, 'pid', h.pid, 'age_seconds', h.age_seconds)), '[]')
            from settlement.worker_heartbeats() h) as workers,
           settlement.bank_slots_in_use() as slots_in_use,
           (select c.max_in_flight from settlement.config c where c.id) as max_in_flight`));
  const big = (v: unknown) => BigInt(v as string);
  const days = z.array(dayMetricsRow.extend({
    chunks_total: z.string().transform(big), chunks_succeeded: z.string().transform(big), chunks_failed: z.string().transform(big),
    chunks_unresolved: z.string().transform(big), chunks_in_flight: z.string().transform(big), amount_recorded: z.string().transform(big),
    amount_paid: z.string().transform(big), amount_unpaid: z.string().transform(big), amount_withdrawn: z.string().transform(big),
    accruals_unrecorded: z.string().transform(big), reconciliation_breaks: z.string().transform(big),
  })).parse(row.days);
  return { days, workers: z.array(heartbeatRow).parse(row.workers), bank: { in_use: Number(row.slots_in_use), max_in_flight: row.max_in_flight } };
}

const revealedRow = z.object({ account_no: z.string(), role: z.string(), bank_code: z.string(), fin_acno: z.string().nullable() });
export type RevealedAccount = z.infer<typeof revealedRow>;

/**
 * settlement.reveal_account: the full number of the one account shown as
 * `****1234` (narrowed to a transfer's accounts and a role when several end so), with a
 * reason; audited (operator_actions `reveal_account`). Operators only.
 */
export function revealAccount(db: CommonQueryMethods, ref: string, reason: string, opts: { transferId?: bigint | undefined; role?: string | undefined } = {}): Promise<RevealedAccount> {
  const transfer = opts.transferId === undefined ? null : opts.transferId.toString();
  return wrap(db.one(sql.type(revealedRow)`select * from settlement.reveal_account(${ref}, ${reason}, ${transfer}::bigint, ${opts.role ?? null}::text)`));
}

const bankWindowRow = z.object({
  window_id: z.number(), daily: z.string().nullable(), starts: z.string().nullable(), ends: z.string().nullable(),
  reason: z.string(), added_by: z.string(), added_at: z.string(),
});
export type BankWindow = z.infer<typeof bankWindowRow>;

/** The bank's quiet windows in force (settlement.bank_windows_ahead): the daily one with its next occurrence, and the dated ones not yet over. */
export function bankWindows(db: CommonQueryMethods): Promise<readonly BankWindow[]> {
  return wrap(db.any(sql.type(bankWindowRow)`select window_id::int as window_id, daily, starts, ends, reason, added_by, added_at from settlement.bank_windows_ahead()`));
}

/** settlement.configure_bank_window: the daily window, Korea time ('HH:MM'); both null: none. Audited. */
export async function configureBankWindow(db: CommonQueryMethods, from: string | null, until: string | null, reason: string): Promise<{ window: number | null; replaced: number | null; transfers_rerun: number }> {
  return wrap(db.oneFirst(sql.type(z.object({ r: z.object({ window: z.number().nullable(), replaced: z.number().nullable(), transfers_rerun: z.number() }) }))`
    select settlement.configure_bank_window(${from}::time, ${until}::time, ${reason}) as r`));
}

/** settlement.add_bank_window: a dated window (instants as ISO text with an offset). Audited. */
export function addBankWindow(db: CommonQueryMethods, starts: string, ends: string, reason: string): Promise<number> {
  return wrap(db.oneFirst(sql.type(z.object({ id: z.number() }))`select settlement.add_bank_window(${starts}::timestamptz, ${ends}::timestamptz, ${reason})::int as id`));
}

/** settlement.remove_bank_window: returns how many deferred transfers run again at once. Audited. */
export function removeBankWindow(db: CommonQueryMethods, id: number, reason: string): Promise<number> {
  return wrap(db.oneFirst(sql.type(z.object({ n: z.number() }))`select settlement.remove_bank_window(${id}, ${reason}) as n`));
}
