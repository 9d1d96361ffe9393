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
  }, 'date is not a real calendar date');

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

const openDay = z.object({ business_date: z.string(), kind: kindSchema });
/** Days that are over and not fully settled, oldest first. */
export function openDays(db: DatabasePool): Promise<readonly z.infer<typeof openDay>[]> {
  return wrap(db.any(sql.type(openDay)`
    select business_date::text as business_date, kind::text as kind from settlement.open_days() order by 1, 2`));
}

export const claimSchema = z.object({
  action: z.enum(['settled', 'busy', 'send']),
  resume: z.boolean(),
  is_tuno: z.string(),
  tsymd: z.string().nullable(),
  from_account: z.string(),
  to_account: z.string(),
  amount: z.bigint(),
  business_date: z.string(),
  kind: kindSchema,
  attempt: z.number(),
  slot: z.number().nullable(),
});
export type Claim = z.infer<typeof claimSchema>;

/** Claims a chunk; with `slot`, also takes a bank-call slot in the same round trip. */
export function claimChunk(db: DatabasePool, chunkId: number, holder: string, leaseMs: number, slot?: { token: string; leaseMs: number }): Promise<Claim> {
  return wrap(db.one(sql.type(claimSchema)`
    select * from settlement.claim_chunk(${chunkId}, ${holder}, ${leaseMs}, ${slot?.token ?? null}, ${slot?.leaseMs ?? null})`));
}

export function claimWithdrawal(db: DatabasePool, date: string, kind: Kind, holder: string, leaseMs: number): Promise<Claim> {
  return wrap(db.one(sql.type(claimSchema)`select * from settlement.claim_withdrawal(${date}::date, ${kind}::settlement.kind, ${holder}, ${leaseMs})`));
}

export interface TransferOutcome {
  outcome: 'succeeded' | 'failed' | 'unknown';
  bankRef?: string | null;
  code?: string | null;
  message?: string | null;
}

const finishResult = z.object({ r: z.enum(['succeeded', 'failed', 'unknown', 'stale', 'already_settled', 'replanned']) });

/** Records the bank's answer (+ journal), gives back the claim's slot, and enqueues confirm when the day is all settled. */
export async function finishChunk(db: DatabasePool, chunkId: number, isTuno: string, o: TransferOutcome, slot?: { slot: number; token: string } | null) {
  const row = await wrap(db.one(sql.type(finishResult)`
    select settlement.finish_chunk(${chunkId}, ${isTuno}, ${o.outcome}, ${o.bankRef ?? null}, ${o.code ?? null}, ${o.message ?? null},
                                   ${slot?.slot ?? null}, ${slot?.token ?? null}) as r`));
  return row.r;
}

export async function finishWithdrawal(db: DatabasePool, date: string, kind: Kind, isTuno: string, o: TransferOutcome) {
  const row = await wrap(db.one(sql.type(finishResult)`
    select settlement.finish_withdrawal(${date}::date, ${kind}::settlement.kind, ${isTuno}, ${o.outcome}, ${o.bankRef ?? null}, ${o.code ?? null}, ${o.message ?? null}) as r`));
  return row.r;
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

export async function configure(db: DatabasePool, timeZone: string, perCallLimit: bigint, maxInFlight: number): Promise<void> {
  await wrap(db.query(sql.unsafe`select settlement.configure(${timeZone}, ${perCallLimit}, ${maxInFlight})`));
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
           chunks_total, chunks_succeeded, chunks_failed, chunks_in_flight, amount_paid, amount_withdrawn,
           accruals_unrecorded, attention
    from settlement.daily_status ${where} order by business_date, kind`));
}
