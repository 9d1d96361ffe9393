import { sql } from 'slonik';
import { z } from 'zod';
import type { DatabasePool } from './pool.js';
import { toSettlementError } from './errors.js';

/**
 * Typed calls of the SQL API. The decisions live in SQL (sql/); these only
 * pass arguments and check the shape of what comes back.
 */
export const KINDS = ['tax', 'platform_fee', 'early_repayment_fee', 'deferred_fee', 'upfront_fee', 'withdrawal_fee'] as const;
export const STAGES = ['record', 'pay', 'confirm', 'withdraw'] as const;
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

export const claimSchema = z.object({
  action: z.enum(['settled', 'busy', 'send']),
  resume: z.boolean(),
  sendable: z.boolean(),
  transfer_id: z.bigint(),
  purpose: z.enum(['payout', 'withdrawal']),
  is_tuno: z.string(),
  tsymd: z.string().nullable(),
  memo: z.string(),
  fintech_apsno: z.string(),
  fin_acno: z.string().nullable(),
  to_bncd: z.string().nullable(),
  to_account: z.string(),
  amount: z.bigint(),
  business_date: z.string(),
  kind: kindSchema,
  attempt: z.number(),
  slot: z.number().nullable(),
});
export type Claim = z.infer<typeof claimSchema>;

/** Claims a transfer for one bank attempt; with `slot`, also takes a bank-call slot in the same round trip. */
export function claimTransfer(db: DatabasePool, id: number, holder: string, leaseMs: number, slot?: { token: string; leaseMs: number }): Promise<Claim> {
  return wrap(db.one(sql.type(claimSchema)`
    select action, resume, sendable, transfer_id, purpose::text as purpose, is_tuno, tsymd, memo, fintech_apsno, fin_acno, to_bncd, to_account,
           amount, business_date::text as business_date, kind::text as kind, attempt, slot
    from settlement.claim_transfer(${id}, ${holder}, ${leaseMs}, ${slot?.token ?? null}, ${slot?.leaseMs ?? null})`));
}

/** What a transfer task records: built only by the bank result (see tasks/transfer.ts). */
export type TransferOutcome =
  | { outcome: 'succeeded'; processedAt: string }
  | { outcome: 'failed'; code: string; message: string }
  | { outcome: 'unresolved'; reason: string };

const finishResult = z.object({ r: z.enum(['succeeded', 'failed', 'unresolved', 'stale', 'already_settled']) });
export type FinishResult = z.infer<typeof finishResult>['r'];

/** Records the bank's answer (+ journal and what follows), gives back the claim's slot. */
export async function finishTransfer(db: DatabasePool, id: number, isTuno: string, o: TransferOutcome, slot?: { slot: number; token: string } | null): Promise<FinishResult> {
  const processedAt = o.outcome === 'succeeded' ? o.processedAt : null;
  const code = o.outcome === 'failed' ? o.code : null;
  const message = o.outcome === 'failed' ? o.message : o.outcome === 'unresolved' ? o.reason : null;
  const row = await wrap(db.one(sql.type(finishResult)`
    select settlement.finish_transfer(${id}, ${isTuno}, ${o.outcome}, ${processedAt}, ${code}, ${message},
                                      ${slot?.slot ?? null}, ${slot?.token ?? null}) as r`));
  return row.r;
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

export async function enqueueStage(db: DatabasePool, stage: Stage, date: string | null, kind: Kind | null): Promise<number> {
  return wrap(db.oneFirst(sql.type(z.object({ n: z.number() }))`
    select settlement.enqueue_stage(${stage}::settlement.stage, ${date}::date, ${kind}::settlement.kind) as n`));
}

export async function retryFailed(db: DatabasePool, date: string, kind: Kind): Promise<number> {
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

export async function configure(db: DatabasePool, timeZone: string, perCallLimit: bigint, maxInFlight: number): Promise<void> {
  await wrap(db.query(sql.type(voidRow)`select settlement.configure(${timeZone}, ${perCallLimit}, ${maxInFlight})`));
}

export const statusRow = z.object({
  business_date: z.string(),
  kind: kindSchema,
  record: z.string(),
  pay: z.string(),
  confirm: z.string(),
  withdraw: z.string(),
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
    select business_date::text as business_date, kind::text as kind, record, pay, confirm, withdraw, entries, amount_recorded,
           chunks_total, chunks_succeeded, chunks_failed, chunks_in_flight, chunks_unresolved, amount_paid, amount_withdrawn,
           accruals_unrecorded, attention
    from settlement.daily_status ${where} order by business_date, kind`));
}

/** Records a job that can never succeed (settlement.rejected_jobs). */
export async function rejectJob(db: DatabasePool, jobId: string | number, task: string, payload: unknown, code: string, error: string): Promise<void> {
  await wrap(db.query(sql.type(voidRow)`select settlement.reject_job(${String(jobId)}::bigint, ${task}, ${JSON.stringify(payload ?? null)}::jsonb, ${code}, ${error})`));
}
