/**
 * The project's shared words: what every layer (SQL calls, the bank desk,
 * the tasks, the console, the CLI) names the same way. Nothing here touches
 * the database or the network.
 */
import { z } from 'zod';

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

/**
 * What settlement.claim_transfers decided for one transfer (sql/logic/50_transfers.sql):
 * send it (resume: ask the bank first; sendable: its Tsymd is still today in
 * KST), or not now (busy, paused; quiet: the bank's quiet hours, its job runs
 * again at quiet_until_ms), or never again (settled).
 */
export interface Claim {
  action: 'settled' | 'busy' | 'send' | 'paused' | 'quiet';
  resume: boolean;
  sendable: boolean;
  transfer_id: bigint;
  purpose: 'payout' | 'withdrawal';
  is_tuno: string;
  tsymd: string | null;
  memo: string;
  fintech_apsno: string;
  fin_acno: string | null;
  to_bncd: string | null;
  to_account: string;
  amount: bigint;
  business_date: string;
  kind: Kind;
  attempt: number;
  /** The fencing token of this claim (send only): only a finish carrying it changes the transfer, except evidence of booking. */
  claim_token: string | null;
  /** When the claim ends, by the database's clock (epoch ms; send only): no request of the attempt may be in flight after it. */
  lease_until_ms: number | null;
  /** quiet only: when the bank's quiet window ends, by the database's clock (epoch ms); the transfer's job runs again then. */
  quiet_until_ms: number | null;
}

/** What a transfer task records: built only by the bank result (src/jobs/order.ts). */
export type TransferOutcome =
  | { outcome: 'succeeded'; processedAt: string }
  | { outcome: 'failed'; code: string; message: string }
  | { outcome: 'unresolved'; reason: string };

/** What settlement.finish_transfers answers for one outcome. */
export const FINISH_RESULTS = ['succeeded', 'failed', 'unresolved', 'stale', 'already_settled'] as const;
export type FinishResult = (typeof FINISH_RESULTS)[number];

/** A job whose payload does not parse: it fails for good at once (and is kept in settlement.rejected_jobs). */
export class PayloadError extends Error {
  override name = 'PayloadError';
  readonly code = 'invalid_payload';
}

/** A job that cannot make progress now and should be tried again later (graphile-worker backs off). */
export class RetryLaterError extends Error {
  override name = 'RetryLaterError';
  readonly code = 'retry_later';
}
