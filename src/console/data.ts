import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import { toSettlementError } from '../db/errors.js';
import { kindSchema } from '../domain.js';

/**
 * What the console reads: the on-call views (sql/0021_operations.sql) and the
 * console's read functions (sql/0022_console.sql). Nothing here decides
 * anything; the verdicts, amounts and states are the SQL's.
 */
async function wrap<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (e) {
    throw toSettlementError(e);
  }
}

const dayCell = z.object({
  business_date: z.string(),
  kind: kindSchema,
  states: z.record(z.string()),
  verdict: z.string(),
  detail: z.string().nullable(),
  next_command: z.string().nullable(),
  amount_recorded: z.bigint(),
  amount_paid: z.bigint(),
  amount_unpaid: z.bigint(),
  amount_failed: z.bigint(),
  amount_withdrawn: z.bigint(),
  chunks_total: z.bigint(),
  chunks_succeeded: z.bigint(),
  chunks_failed: z.bigint(),
  chunks_in_flight: z.bigint(),
  chunks_unresolved: z.bigint(),
  accruals_unrecorded: z.bigint(),
  reconciliation_breaks: z.bigint(),
  paused_reason: z.string().nullable(),
});
export type DayCell = z.infer<typeof dayCell>;

/** settlement.day_facts with settlement.day_verdicts for the newest `days` business dates (or one date). */
export function dayCells(db: CommonQueryMethods, opts: { days?: number; date?: string }): Promise<readonly DayCell[]> {
  const dates = opts.date
    ? sql.fragment`select ${opts.date}::date`
    : sql.fragment`select business_date from settlement.console_dates(${opts.days ?? 14})`;
  return wrap(db.any(sql.type(dayCell)`
    select f.business_date::text as business_date, f.kind::text as kind, f.states, v.verdict, v.detail, v.next_command,
           f.amount_recorded, f.amount_paid, f.amount_unpaid, f.amount_failed, f.amount_withdrawn,
           f.chunks_total, f.chunks_succeeded, f.chunks_failed, f.chunks_in_flight, f.chunks_unresolved,
           f.accruals_unrecorded, f.reconciliation_breaks, f.paused_reason
    from settlement.day_facts f
    join settlement.day_verdicts v on v.business_date = f.business_date and v.kind = f.kind
    where f.business_date in (${dates})
    order by f.business_date desc, f.kind`));
}

/** The stages of settlement.stage, in order (record, pay, confirm, withdraw, and reconcile where installed). */
export function stageNames(db: CommonQueryMethods): Promise<readonly string[]> {
  return wrap(db.anyFirst(sql.type(z.object({ s: z.string() }))`select unnest(enum_range(null::settlement.stage))::text as s`));
}

const stageRow = z.object({
  kind: kindSchema, stage: z.string(), state: z.string(), runs: z.number(),
  started_at: z.string().nullable(), finished_at: z.string().nullable(), updated_at: z.string().nullable(), detail: z.string(),
});
export type StageRow = z.infer<typeof stageRow>;
export function dayStages(db: CommonQueryMethods, date: string): Promise<readonly StageRow[]> {
  return wrap(db.any(sql.type(stageRow)`
    select kind::text as kind, stage::text as stage, state, runs, started_at, finished_at, updated_at, detail from settlement.console_stages(${date}::date)`));
}

const progressRow = z.object({ kind: kindSchema, seconds: z.number(), at: z.string().nullable(), chunks: z.bigint(), amount: z.bigint() });
export type ProgressPoint = z.infer<typeof progressRow>;
export function dayProgress(db: CommonQueryMethods, date: string): Promise<readonly ProgressPoint[]> {
  return wrap(db.any(sql.type(progressRow)`select kind::text as kind, seconds, at, chunks, amount from settlement.console_progress(${date}::date)`));
}

const problemRow = z.object({
  problem: z.string(), what: z.string(), kind: kindSchema, transfer_id: z.bigint(), from_account: z.string(), to_account: z.string(),
  amount: z.bigint(), is_tuno: z.string(), attempt: z.number(), bank_code: z.string().nullable(), bank_message: z.string().nullable(),
  code_note: z.string().nullable(), failed_at: z.string().nullable(), unresolved_seconds: z.number().nullable(),
});
export type TransferProblem = z.infer<typeof problemRow>;
/** settlement.payout_failures of a day, with what the operators' code book says about each code (when it can be read). */
export function dayProblems(db: CommonQueryMethods, date: string, withNotes: boolean): Promise<readonly TransferProblem[]> {
  const note = withNotes
    ? sql.fragment`(select string_agg(nullif(c.note, ''), '; ') from settlement.bank_codes c where c.rpcd = f.bank_code)`
    : sql.fragment`null::text`;
  return wrap(db.any(sql.type(problemRow)`
    select f.problem, f.what, f.kind::text as kind, f.transfer_id, f.from_account, f.to_account, f.amount, f.is_tuno, f.attempt,
           f.bank_code, f.bank_message, ${note} as code_note, f.failed_at::text as failed_at,
           extract(epoch from f.unresolved_for)::float8 as unresolved_seconds
    from settlement.payout_failures f where f.business_date = ${date}::date order by f.kind, f.problem, f.transfer_id limit 500`));
}

/** Can this login read settlement.bank_codes (operators can; viewers cannot)? */
export function canReadBankCodes(db: CommonQueryMethods): Promise<boolean> {
  return wrap(db.oneFirst(sql.type(z.object({ r: z.boolean() }))`select has_table_privilege('settlement.bank_codes', 'select') as r`));
}

const actionRow = z.object({
  id: z.bigint(), at: z.string().nullable(), db_user: z.string(), application_name: z.string(), action: z.string(),
  args: z.unknown(), reason: z.string().nullable(), result: z.unknown(),
});
export type ActionRow = z.infer<typeof actionRow>;
export function operatorActions(db: CommonQueryMethods, date: string | null, limit = 50): Promise<readonly ActionRow[]> {
  return wrap(db.any(sql.type(actionRow)`
    select id, at, db_user, application_name, action, args, reason, result from settlement.console_actions(${date}::date, ${limit})`));
}

/** Is the reconcile stage installed (settlement.reconciliation_breaks exists)? */
export function hasReconciliation(db: CommonQueryMethods): Promise<boolean> {
  return wrap(db.oneFirst(sql.type(z.object({ r: z.boolean() }))`select to_regclass('settlement.reconciliation_breaks') is not null as r`));
}

const breakRow = z.object({ kind: z.string(), line: z.record(z.unknown()) });
export function dayBreaks(db: CommonQueryMethods, date: string): Promise<readonly z.infer<typeof breakRow>[]> {
  return wrap(db.any(sql.type(breakRow)`select kind, line from settlement.console_breaks(${date}::date) limit 500`));
}

const workerRow = z.object({
  pool_id: z.string(), host: z.string(), pid: z.number(), started_at: z.string().nullable(), age_seconds: z.number(), alive: z.boolean(),
  jobs_locked: z.bigint(), tasks: z.string().nullable(), bank_slots: z.bigint(), transfers_claimed: z.bigint(),
});
export type ConsoleWorker = z.infer<typeof workerRow>;
export function consoleWorkers(db: CommonQueryMethods): Promise<readonly ConsoleWorker[]> {
  return wrap(db.any(sql.type(workerRow)`select * from settlement.console_workers()`));
}

const bankRow = z.object({ in_use: z.bigint(), max_in_flight: z.number(), per_call_limit: z.bigint(), time_zone: z.string() });
export function bankSlots(db: CommonQueryMethods): Promise<z.infer<typeof bankRow>> {
  return wrap(db.one(sql.type(bankRow)`select in_use, max_in_flight, per_call_limit, time_zone from settlement.console_bank()`));
}

const pauseRow = z.object({ kind: kindSchema.nullable(), reason: z.string(), paused_at: z.string().nullable(), paused_by: z.string() });
/** Active pauses (settlement.pauses, readable by viewers). */
export function pausesNow(db: CommonQueryMethods): Promise<readonly z.infer<typeof pauseRow>[]> {
  return wrap(db.any(sql.type(pauseRow)`
    select kind::text as kind, reason, settlement.local_time(paused_at) as paused_at, paused_by
    from settlement.pauses where resumed_at is null order by kind nulls first`));
}

const changeRow = z.object({
  id: z.bigint(), target: z.string(), state: z.enum(['pending', 'applied', 'rejected', 'expired']), needs_two: z.boolean(),
  change: z.unknown(), reason: z.string(), before: z.unknown(), after: z.unknown(),
  proposed_by: z.string(), proposed_at: z.string().nullable(), age_seconds: z.number(), expires_at: z.string().nullable(), expires_in_seconds: z.number(),
  decided_by: z.string().nullable(), decided_at: z.string().nullable(), decision_reason: z.string().nullable(),
});
export type ConsoleChange = z.infer<typeof changeRow>;
/** settlement.console_changes: pending first, then the latest decided or expired (operators' logins only). */
export function consoleChanges(db: CommonQueryMethods, limit = 50): Promise<readonly ConsoleChange[]> {
  return wrap(db.any(sql.type(changeRow)`select * from settlement.console_changes(${limit})`));
}
