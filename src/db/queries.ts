import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import type { DatabasePool } from './pool.js';
import { toSettlementError } from './errors.js';
import type { StatementLine } from '../bank/port.js';

/**
 * Typed calls of the SQL API. The decisions live in SQL (sql/); these only
 * pass arguments and check the shape of what comes back.
 */
export const KINDS = ['tax', 'platform_fee', 'early_repayment_fee', 'deferred_fee', 'upfront_fee', 'withdrawal_fee'] as const;
export const STAGES = ['record', 'pay', 'confirm', 'withdraw', 'reconcile'] as const;
export const kindSchema = z.enum(KINDS);
export const stageSchema = z.enum(STAGES);
export type Kind = z.infer<typeof kindSchema>;
export type Stage = z.infer<typeof stageSchema>;

/** A calendar date, YYYY-MM-DD, that exists. */
export const dateSchema = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}$/, 'date must be YYYY-MM-DD')
  .refine((d) => {
    const t = new Date(`${d}T00:00:00Z`);
    return !Number.isNaN(t.getTime()) && t.toISOString().slice(0, 10) === d;
  }, 'date is not a real calendar date')
  // A settlement date of this system is in this century; anything else is a typo.
  .refine((d) => d >= '2000-01-01' && d <= '2099-12-31', 'date must be between 2000-01-01 and 2099-12-31');

/** A statement called for its effect: whatever row comes back is ignored. */
const voidRow = z.object({}).passthrough();

const stageResult = z.object({ outcome: z.string(), detail: z.string() });
export type StageResult = z.infer<typeof stageResult>;

async function wrap<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (e) {
    throw toSettlementError(e);
  }
}

export function runStage(db: DatabasePool, stage: Stage, date: string, kind: Kind): Promise<StageResult> {
  return wrap(db.one(sql.type(stageResult)`select outcome, detail from settlement.run_stage(${stage}::settlement.stage, ${date}::date, ${kind}::settlement.kind)`));
}

/** Marks one (date, kind)'s stage blocked with the error it raised (the next tick tries again). */
export async function recordStageError(db: DatabasePool, stage: Stage, date: string, kind: Kind, error: string): Promise<void> {
  await wrap(db.query(sql.type(voidRow)`select settlement.record_stage_error(${stage}::settlement.stage, ${date}::date, ${kind}::settlement.kind, ${error})`));
}

const openDay = z.object({ business_date: z.string(), kind: kindSchema });
/** Days that are over and not fully settled, oldest first. */
export function openDays(db: DatabasePool): Promise<readonly z.infer<typeof openDay>[]> {
  return wrap(db.any(sql.type(openDay)`
    select business_date::text as business_date, kind::text as kind from settlement.open_days() order by 1, 2`));
}

const registration = z.object({ account_no: z.string(), bank_code: z.string(), fin_rgno: z.string().nullable(), fin_acno: z.string().nullable() });
export type Registration = z.infer<typeof registration>;

export function finRegistration(db: DatabasePool, accountNo: string): Promise<Registration> {
  return wrap(db.one(sql.type(registration)`select * from settlement.fin_registration(${accountNo})`));
}

export async function recordFinRgno(db: DatabasePool, accountNo: string, rgno: string): Promise<void> {
  await wrap(db.query(sql.type(voidRow)`select settlement.record_fin_rgno(${accountNo}, ${rgno})`));
}

export async function recordFinAccount(db: DatabasePool, accountNo: string, finAcno: string, registeredOn: string): Promise<string> {
  return wrap(db.oneFirst(sql.type(z.object({ r: z.string() }))`select settlement.record_fin_account(${accountNo}, ${finAcno}, ${registeredOn}) as r`));
}

const bankCode = z.object({ rpcd: z.string(), api: z.string(), class: z.enum(['retry', 'final', 'not_found']) });
export type BankCodeRow = z.infer<typeof bankCode>;

/** settlement.bank_codes: what operators say a non-00000 code means. */
export function bankCodes(db: DatabasePool): Promise<readonly BankCodeRow[]> {
  return wrap(db.any(sql.type(bankCode)`select rpcd, api, class from settlement.bank_codes order by rpcd, api`));
}

/** The database's clock, in milliseconds since the epoch. */
export function databaseNowMs(db: DatabasePool): Promise<number> {
  return wrap(db.oneFirst(sql.type(z.object({ ms: z.number() }))`select (extract(epoch from clock_timestamp()) * 1000)::float8 as ms`));
}

export async function enqueueStage(db: CommonQueryMethods, stage: Stage, date: string | null, kind: Kind | null): Promise<number> {
  return wrap(db.oneFirst(sql.type(z.object({ n: z.number() }))`
    select settlement.enqueue_stage(${stage}::settlement.stage, ${date}::date, ${kind}::settlement.kind) as n`));
}

export async function retryFailed(db: CommonQueryMethods, date: string, kind: Kind): Promise<number> {
  return wrap(db.oneFirst(sql.type(z.object({ n: z.number() }))`
    select settlement.retry_failed(${date}::date, ${kind}::settlement.kind) as n`));
}

export async function requeueUnsettled(db: DatabasePool): Promise<number> {
  return wrap(db.oneFirst(sql.type(z.object({ n: z.number() }))`select settlement.requeue_unsettled() as n`));
}

const settingDiff = z.object({ setting: z.string(), in_database: z.string(), in_environment: z.string() });
export type SettingDiff = z.infer<typeof settingDiff>;

/** Writes the shared settings if never set; else returns where `env` differs from the database. */
export function adoptSettings(db: DatabasePool, timeZone: string, perCallLimit: bigint, maxInFlight: number): Promise<readonly SettingDiff[]> {
  return wrap(db.any(sql.type(settingDiff)`select * from settlement.adopt_settings(${timeZone}, ${perCallLimit}, ${maxInFlight})`));
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

/** Records a job that can never succeed (settlement.rejected_jobs). */
export async function rejectJob(db: DatabasePool, jobId: string | number, task: string, payload: unknown, code: string, error: string): Promise<void> {
  await wrap(db.query(sql.type(voidRow)`select settlement.reject_job(${String(jobId)}::bigint, ${task}, ${JSON.stringify(payload ?? null)}::jsonb, ${code}, ${error})`));
}

// ---------------------------------------------------------------------------
// On-call (sql/0021_operations.sql)

/**
 * Runs `fn` in one transaction whose operator actions record `reason`
 * (the session setting settlement.reason, local to the transaction).
 */
export function asOperator<T>(db: DatabasePool, reason: string | undefined, fn: (q: CommonQueryMethods) => Promise<T>): Promise<T> {
  return wrap(db.transaction(async (tx) => {
    if (reason) await tx.query(sql.type(voidRow)`select set_config('settlement.reason', ${reason}, true)`);
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
    select kind::text as kind, reason, paused_at::text as paused_at, paused_by from settlement.pauses where resumed_at is null order by kind nulls first`));
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
           bank_code, bank_message, coalesce(failed_at, unresolved_since)::text as since, undecided_why
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
  reconciliation_breaks: z.bigint(), paused: z.boolean(),
});
export type DayMetricsRow = z.infer<typeof dayMetricsRow>;
const heartbeatRow = z.object({ pool_id: z.string(), host: z.string(), pid: z.number(), age_seconds: z.number() });

/** What /metrics shows from the database, in one round trip. */
export async function metricsSnapshot(db: CommonQueryMethods): Promise<{ days: readonly DayMetricsRow[]; workers: readonly z.infer<typeof heartbeatRow>[] }> {
  const row = await wrap(db.one(sql.type(z.object({ days: z.unknown(), workers: z.unknown() }))`
    select (select coalesce(json_agg(json_build_object(
              'business_date', f.business_date, 'kind', f.kind, 'states', f.states,
              'verdict', case when f.blocked_stage is not null then 'BLOCKED' when f.all_done then 'DONE' when f.paused_reason is not null then 'PAUSED'
                              when f.waiting then 'WAITING' else 'IN PROGRESS' end,
              'chunks_total', f.chunks_total::text, 'chunks_succeeded', f.chunks_succeeded::text, 'chunks_failed', f.chunks_failed::text,
              'chunks_unresolved', f.chunks_unresolved::text, 'chunks_in_flight', f.chunks_in_flight::text,
              'amount_recorded', f.amount_recorded::text, 'amount_paid', f.amount_paid::text, 'amount_unpaid', f.amount_unpaid::text,
              'amount_withdrawn', f.amount_withdrawn::text, 'accruals_unrecorded', f.accruals_unrecorded::text,
              'reconciliation_breaks', f.reconciliation_breaks::text, 'paused', f.paused_reason is not null)), '[]')
            from settlement.day_metrics() f) as days,
           (select coalesce(json_agg(json_build_object('pool_id', h.pool_id, 'host', h.host, 'pid', h.pid, 'age_seconds', h.age_seconds)), '[]')
            from settlement.worker_heartbeats() h) as workers`));
  const big = (v: unknown) => BigInt(v as string);
  const days = z.array(dayMetricsRow.extend({
    chunks_total: z.string().transform(big), chunks_succeeded: z.string().transform(big), chunks_failed: z.string().transform(big),
    chunks_unresolved: z.string().transform(big), chunks_in_flight: z.string().transform(big), amount_recorded: z.string().transform(big),
    amount_paid: z.string().transform(big), amount_unpaid: z.string().transform(big), amount_withdrawn: z.string().transform(big),
    accruals_unrecorded: z.string().transform(big), reconciliation_breaks: z.string().transform(big),
  })).parse(row.days);
  return { days, workers: z.array(heartbeatRow).parse(row.workers) };
}

const migrationRow = z.object({ id: z.number(), checksum: z.string() });
/** settlement_meta.migrations (what /readyz compares with this version's sql/). */
export function appliedMigrations(db: CommonQueryMethods): Promise<readonly z.infer<typeof migrationRow>[]> {
  return wrap(db.any(sql.type(migrationRow)`select id, checksum from settlement_meta.migrations order by id`));
}

const logicRow = z.object({ name: z.string(), checksum: z.string() });
/** settlement_meta.logic (what /readyz compares with this version's sql/logic/). */
export function appliedLogic(db: CommonQueryMethods): Promise<readonly z.infer<typeof logicRow>[]> {
  return wrap(db.any(sql.type(logicRow)`select name, checksum from settlement_meta.logic order by name`));
}

/** Is this worker pool registered with a fresh heartbeat? */
export function workerRegistered(db: CommonQueryMethods, poolId: string): Promise<boolean> {
  return wrap(db.oneFirst(sql.type(z.object({ r: z.boolean() }))`
    select exists (select 1 from settlement.worker_heartbeats() h cross join settlement.worker_status() s
                   where h.pool_id = ${poolId} and h.age_seconds < extract(epoch from s.silent_after)) as r`));
}

// ---------------------------------------------------------------------------
// Reconcile (sql/0009_reconcile.sql)

const statementNeed = z.object({ bncd: z.string(), acno: z.string(), ymd: z.string(), to_ymd: z.string(), asked_at: z.string() });
export type StatementNeed = z.infer<typeof statementNeed>;

/**
 * The (account, date) statements to read now: final by the database's clock
 * and not read since the transfers they prove settled. asked_at (the
 * database's clock, before the bank is asked) is the read's time: pass the
 * need back to recordStatement unchanged.
 */
export function statementsToRead(db: CommonQueryMethods): Promise<readonly StatementNeed[]> {
  return wrap(db.any(sql.type(statementNeed)`
    select bncd, acno, ymd, to_ymd, to_char(asked_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as asked_at
    from settlement.statements_to_read()`));
}

/** Stores one statement read in full (idempotent); returns how many lines were new. */
export function recordStatement(db: CommonQueryMethods, need: StatementNeed, lines: readonly StatementLine[]): Promise<number> {
  const json = JSON.stringify(lines.map((l) => ({
    trdd: l.trdd, txtm: l.txtm, mnrc_drot_dsnc: l.mnrcDrotDsnc, tram: l.tram.toString(), aftr_blnc: l.aftrBlnc.toString(),
    balance_sign: l.balanceSign, smr: l.smr, hnis_cd: l.hnisCd, hnbr_cd: l.hnbrCd, ccyn: l.ccyn, tuno: l.tuno, bnpr_cntn: l.bnprCntn,
  })));
  return wrap(db.oneFirst(sql.type(z.object({ n: z.number() }))`
    select settlement.record_statement(${need.bncd}, ${need.acno}, ${need.ymd}, ${need.to_ymd}, ${json}::jsonb, ${need.asked_at}::timestamptz) as n`));
}

const decision = z.object({ transfer_id: z.bigint(), is_tuno: z.string(), decision: z.enum(['succeeded', 'not_booked']) });
/** Unresolved transfers decided by the final statement of their date. */
export function decideUnresolved(db: CommonQueryMethods): Promise<readonly z.infer<typeof decision>[]> {
  return wrap(db.any(sql.type(decision)`select transfer_id, is_tuno, decision from settlement.decide_unresolved()`));
}

const breakRow = z.object({
  id: z.bigint(), business_date: z.string(), kind: kindSchema, problem: z.enum(['missing_line', 'orphan', 'mismatch', 'cancelled']),
  transfer_id: z.bigint().nullable(), is_tuno: z.string().nullable(), account_no: z.string().nullable(), amount: z.bigint(), detail: z.string(),
});
export type BreakRow = z.infer<typeof breakRow>;

/** settlement.reconciliation_breaks: the open breaks. */
export function reconciliationBreaks(db: CommonQueryMethods, date?: string | null, kind?: Kind | null): Promise<readonly BreakRow[]> {
  return wrap(db.any(sql.type(breakRow)`
    select id, business_date::text as business_date, kind::text as kind, problem, transfer_id, is_tuno, account_no, amount, detail
    from settlement.reconciliation_breaks
    where (${date ?? null}::date is null or business_date = ${date ?? null}::date) and (${kind ?? null}::settlement.kind is null or kind = ${kind ?? null}::settlement.kind)
    order by business_date, kind, id`));
}

const reconcileRow = z.object({ business_date: z.string(), kind: kindSchema, reconcile: z.string(), detail: z.string(), matched_lines: z.bigint(), open_breaks: z.bigint() });
export type ReconcileSummaryRow = z.infer<typeof reconcileRow>;
/** Per (date, kind): the reconcile stage's state and detail, lines matched to the day's transfers, open breaks. */
export function reconcileSummary(db: CommonQueryMethods, date?: string | null, kind?: Kind | null): Promise<readonly z.infer<typeof reconcileRow>[]> {
  return wrap(db.any(sql.type(reconcileRow)`
    select r.business_date::text as business_date, r.kind::text as kind, r.state::text as reconcile, r.detail,
           (select count(*) from settlement.line_matches m join settlement.transfers t on t.id = m.transfer_id and t.is_tuno = m.is_tuno
            where t.business_date = r.business_date and t.kind = r.kind and m.rule in ('reference', 'fallback')) as matched_lines,
           (select count(*) from settlement.breaks b where b.business_date = r.business_date and b.kind = r.kind and b.resolved_at is null) as open_breaks
    from settlement.stage_runs r
    where r.stage = 'reconcile' and (${date ?? null}::date is null or r.business_date = ${date ?? null}::date)
      and (${kind ?? null}::settlement.kind is null or r.kind = ${kind ?? null}::settlement.kind)
    order by 1, 2`));
}

export async function resolveBreak(db: CommonQueryMethods, id: number, note: string): Promise<void> {
  await wrap(db.query(sql.type(voidRow)`select settlement.resolve_break(${id}, ${note})`));
}

export async function configureReconcile(db: CommonQueryMethods, after: string): Promise<void> {
  await wrap(db.query(sql.type(voidRow)`select settlement.configure_reconcile(${after}::interval)`));
}

export async function addReconcileJob(db: CommonQueryMethods): Promise<void> {
  await wrap(db.query(sql.type(voidRow)`select settlement.add_reconcile_job()`));
}
