/**
 * Claims and outcomes of transfers (sql/logic/50_transfers.sql): the one
 * encoder of what settlement.claim_transfers and settlement.finish_transfers
 * take and the one decoder of what they answer. A single transfer is a batch
 * of one. The bank desk (src/desk/) is their caller in the product.
 */
import { sql } from 'slonik';
import { z } from 'zod';
import { wrap } from './call.js';
import { SettlementError } from './errors.js';
import type { DatabasePool } from './pool.js';
import { FINISH_RESULTS, KINDS, type Claim, type FinishResult, type TransferOutcome } from '../domain.js';

/** $1 ids, $2 holders, $3 lease (ms), $4 slots wanted, $5 slots held, $6 "waiting" lock: 1 take, -1 let go, 0 keep. */
export const CLAIM_TRANSFERS = 'select settlement.claim_transfers($1::bigint[], $2::text[], $3, $4, $5::int[], $6) as r';
/** $1..$6 and $8 (the claim tokens) as finishValues builds them, $7 the slots to give back first. */
export const FINISH_TRANSFERS =
  'select settlement.finish_transfers($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int[], $8::bigint[]) as r';

/** claim_transfers or finish_transfers answered something of another shape than this build expects. */
export class TransferRowError extends Error {
  override name = 'TransferRowError';
}

export interface ClaimBatch {
  /** In the order of the ids asked for; a transfer that does not exist is a SettlementError (transfer_not_found, ST008). */
  claims: Array<Claim | SettlementError | TransferRowError>;
  /** Bank-call slots taken for this connection in the same round trip. */
  slots: number[];
  /** Another process holds the "waiting" lock. */
  othersWaiting: boolean;
  /** Live worker processes, and the cap they share. */
  workers: number;
  maxInFlight: number;
}

const ACTIONS = new Set(['settled', 'busy', 'send', 'paused', 'quiet']);
const PURPOSES = new Set(['payout', 'withdrawal']);
const KIND_SET = new Set<string>(KINDS);
const FINISHED = new Set<string>(FINISH_RESULTS);
const str = (v: unknown) => typeof v === 'string';
const strOrNull = (v: unknown) => v === null || typeof v === 'string';

/** One claim of claim_transfers' json, checked by hand (the hot path) against the Claim shape. */
function decodeClaim(r: Record<string, unknown>, id: number): Claim | SettlementError | TransferRowError {
  if (r?.action === 'missing') return new SettlementError('transfer_not_found', 'ST008', `transfer ${id} does not exist`);
  if (
    !r || !ACTIONS.has(r.action as string) || typeof r.resume !== 'boolean' || typeof r.sendable !== 'boolean' ||
    !str(r.transfer_id) || r.transfer_id !== String(id) || !PURPOSES.has(r.purpose as string) ||
    !str(r.is_tuno) || !strOrNull(r.tsymd) || !str(r.memo) || !str(r.fintech_apsno) || !strOrNull(r.fin_acno) ||
    !strOrNull(r.to_bncd) || !str(r.to_account) || !str(r.amount) || !/^-?[0-9]+$/.test(r.amount as string) ||
    !str(r.business_date) || !KIND_SET.has(r.kind as string) || typeof r.attempt !== 'number' ||
    !(r.claim_token === null || (str(r.claim_token) && /^[0-9]+$/.test(r.claim_token as string))) ||
    !(r.lease_until_ms === null || (str(r.lease_until_ms) && /^[0-9]+$/.test(r.lease_until_ms as string))) ||
    !(r.quiet_until_ms === null || (str(r.quiet_until_ms) && /^[0-9]+$/.test(r.quiet_until_ms as string))) ||
    (r.action === 'send' && (r.claim_token === null || r.lease_until_ms === null)) ||
    (r.action === 'quiet' && r.quiet_until_ms === null)
  ) {
    return new TransferRowError(`claim_transfers returned a claim of an unexpected shape for transfer ${id}: ${JSON.stringify(r)}`);
  }
  return {
    action: r.action as Claim['action'], resume: r.resume as boolean, sendable: r.sendable as boolean,
    transfer_id: BigInt(r.transfer_id as string), purpose: r.purpose as Claim['purpose'], is_tuno: r.is_tuno as string,
    tsymd: r.tsymd as string | null, memo: r.memo as string, fintech_apsno: r.fintech_apsno as string,
    fin_acno: r.fin_acno as string | null, to_bncd: r.to_bncd as string | null, to_account: r.to_account as string,
    amount: BigInt(r.amount as string), business_date: r.business_date as string, kind: r.kind as Claim['kind'], attempt: r.attempt as number,
    claim_token: r.claim_token as string | null, lease_until_ms: r.lease_until_ms === null ? null : Number(r.lease_until_ms),
    quiet_until_ms: r.quiet_until_ms === null ? null : Number(r.quiet_until_ms),
  };
}

/** What claim_transfers answered for the transfers `ids` (its json, parsed). */
export function decodeClaimBatch(v: unknown, ids: readonly number[]): ClaimBatch {
  const b = v as { claims?: unknown; slots?: unknown; others_waiting?: unknown; workers?: unknown; max_in_flight?: unknown } | null;
  if (!b || !Array.isArray(b.claims) || b.claims.length !== ids.length || !Array.isArray(b.slots) ||
      !b.slots.every((s) => Number.isInteger(s) && s > 0) || typeof b.others_waiting !== 'boolean' ||
      !Number.isInteger(b.workers) || !Number.isInteger(b.max_in_flight)) {
    throw new TransferRowError(`claim_transfers returned ${JSON.stringify(v)?.slice(0, 300)}`);
  }
  return {
    claims: b.claims.map((c, k) => decodeClaim(c as Record<string, unknown>, ids[k]!)),
    slots: b.slots as number[],
    othersWaiting: b.others_waiting,
    workers: b.workers as number,
    maxInFlight: b.max_in_flight as number,
  };
}

/** One outcome to record: transfer `id`'s bank answer under `isTuno`. */
export interface FinishItem {
  id: number;
  isTuno: string;
  o: TransferOutcome;
  /** The claim token of the attempt recording it (null: none; only a booking is then taken). */
  token?: string | null;
}

/** The parameters of FINISH_TRANSFERS ($1..$8) for these outcomes, giving back `give` first. */
export function finishValues(items: readonly FinishItem[], give: readonly number[]): [number[], string[], string[], (string | null)[], (string | null)[], (string | null)[], number[], (string | null)[]] {
  return [
    items.map((i) => i.id),
    items.map((i) => i.isTuno),
    items.map((i) => i.o.outcome),
    items.map((i) => (i.o.outcome === 'succeeded' ? i.o.processedAt : null)),
    items.map((i) => (i.o.outcome === 'failed' ? i.o.code : null)),
    items.map((i) => (i.o.outcome === 'failed' ? i.o.message : i.o.outcome === 'unresolved' ? i.o.reason : null)),
    [...give],
    items.map((i) => i.token ?? null),
  ];
}

/** What finish_transfers answered, one result per item (in order). */
export function decodeFinishes(v: unknown, items: readonly FinishItem[]): Array<FinishResult | TransferRowError> {
  if (!Array.isArray(v) || v.length !== items.length) throw new TransferRowError(`finish_transfers returned ${JSON.stringify(v)}`);
  return v.map((r, k) =>
    FINISHED.has(r as string) ? (r as FinishResult) : new TransferRowError(`finish_transfers returned ${JSON.stringify(r)} for transfer ${items[k]!.id}`));
}

export async function requeueUnsettled(db: DatabasePool): Promise<number> {
  return wrap(db.oneFirst(sql.type(z.object({ n: z.number() }))`select settlement.requeue_unsettled() as n`));
}
