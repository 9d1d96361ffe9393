/**
 * One transfer claimed or finished by hand, as the transfer task would after
 * the bank's answer: a batch of one through settlement.claim_transfers /
 * settlement.finish_transfers, encoded and decoded by src/db/transfers.ts
 * (the bank desk's own encoder and decoder).
 */
import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import { toSettlementError } from '../../src/db/errors.js';
import { decodeClaimBatch, decodeFinishes, finishValues } from '../../src/db/transfers.js';
import type { Claim, FinishResult, TransferOutcome } from '../../src/domain.js';

const json = z.object({ r: z.unknown() });

async function wrap<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (e) {
    throw toSettlementError(e);
  }
}

/** Claims transfer `id` for one attempt; `slot`: a bank-call slot taken in the same round trip (none is asked for). */
export async function claimTransfer(db: CommonQueryMethods, id: number, holder: string, leaseMs: number): Promise<Claim & { slot: number | null }> {
  const r = await wrap(db.oneFirst(sql.type(json)`
    select settlement.claim_transfers(${sql.array([id], 'int8')}, ${sql.array([holder], 'text')}, ${leaseMs}, 0, '{}', 0) as r`));
  const b = decodeClaimBatch(r, [id]);
  const claim = b.claims[0]!;
  if (claim instanceof Error) throw claim;
  return { ...claim, slot: b.slots[0] ?? null };
}

/**
 * Records the bank's answer for transfer `id` under `isTuno` (+ journal and
 * what follows), as the attempt holding claim `token`; without one, as the
 * attempt that holds the transfer's live claim now (its token is read first).
 */
export async function finishTransfer(db: CommonQueryMethods, id: number, isTuno: string, o: TransferOutcome, token?: string | null): Promise<FinishResult> {
  const live = token === undefined
    ? await db.maybeOneFirst(sql.type(z.object({ k: z.string().nullable() }))`select to_jsonb(t) ->> 'claim_token' as k from settlement.transfers t where t.id = ${id}`)
    : token;
  const item = { id, isTuno, o };
  const [ids, tunos, outcomes, processedAt, codes, messages, give] = finishValues([item], []);
  const tokens = sql.array([live ?? null], 'int8');
  const r = await wrap(db.oneFirst(sql.type(json)`
    select settlement.finish_transfers(${sql.array(ids, 'int8')}, ${sql.array(tunos, 'text')}, ${sql.array(outcomes, 'text')},
      ${sql.array(processedAt, 'text')}, ${sql.array(codes, 'text')}, ${sql.array(messages, 'text')}, ${sql.array(give, 'int4')}
      ${live == null ? sql.fragment`` : sql.fragment`, ${tokens}`}) as r`));
  const result = decodeFinishes(r, [item])[0]!;
  if (result instanceof Error) throw result;
  return result;
}
