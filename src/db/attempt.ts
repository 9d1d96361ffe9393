/**
 * The transfer task's two statements, on a plain node-postgres connection
 * held for the whole attempt (its bank-call slot is a session lock of that
 * connection). They run as named prepared statements: parsed and planned once
 * per connection, not once per chunk. Rows are checked by hand against the
 * Claim shape (the same one slonik's zod schema describes) — it is the hot
 * path of every payout.
 */
import pg from 'pg';
import { toSettlementError } from './errors.js';
import { KINDS, type Claim, type FinishResult, type TransferOutcome } from './queries.js';

export type AttemptClient = Pick<pg.ClientBase, 'query'>;

/** A pool of connections for transfer attempts, named so the console can count each worker's slots. */
export function createAttemptPool(url: string, max: number, applicationName: string): pg.Pool {
  const u = new URL(url);
  u.searchParams.set('application_name', applicationName);
  const pool = new pg.Pool({ connectionString: u.toString(), max });
  // An idle connection that breaks is dropped by the pool; nothing to do here.
  pool.on('error', () => undefined);
  return pool;
}

const CLAIM = `select action, resume, sendable, transfer_id::text as transfer_id, purpose::text as purpose, is_tuno, tsymd, memo, fintech_apsno,
         fin_acno, to_bncd, to_account, amount::text as amount, business_date::text as business_date, kind::text as kind, attempt, slot
  from settlement.claim_transfer($1, $2, $3, $4, null)`;
const FINISH = `select settlement.finish_transfer($1, $2, $3, $4, $5, $6, $7, null) as r`;

export class AttemptRowError extends Error {
  override name = 'AttemptRowError';
}

const ACTIONS = new Set(['settled', 'busy', 'send', 'paused']);
const PURPOSES = new Set(['payout', 'withdrawal']);
const KIND_SET = new Set<string>(KINDS);
const FINISHED = new Set(['succeeded', 'failed', 'unresolved', 'stale', 'already_settled']);
const str = (v: unknown) => typeof v === 'string';
const strOrNull = (v: unknown) => v === null || typeof v === 'string';

function toClaim(r: Record<string, unknown> | undefined): Claim {
  if (
    !r || !ACTIONS.has(r.action as string) || typeof r.resume !== 'boolean' || typeof r.sendable !== 'boolean' ||
    !str(r.transfer_id) || !/^[0-9]+$/.test(r.transfer_id as string) || !PURPOSES.has(r.purpose as string) ||
    !str(r.is_tuno) || !strOrNull(r.tsymd) || !str(r.memo) || !str(r.fintech_apsno) || !strOrNull(r.fin_acno) ||
    !strOrNull(r.to_bncd) || !str(r.to_account) || !str(r.amount) || !/^-?[0-9]+$/.test(r.amount as string) ||
    !str(r.business_date) || !KIND_SET.has(r.kind as string) || typeof r.attempt !== 'number' ||
    !(r.slot === null || typeof r.slot === 'number')
  ) {
    throw new AttemptRowError(`claim_transfer returned a row of an unexpected shape: ${JSON.stringify(r)}`);
  }
  return { ...(r as unknown as Claim), transfer_id: BigInt(r.transfer_id as string), amount: BigInt(r.amount as string) };
}

/** claim_transfer; with `takeSlot`, also takes a bank-call slot held by `c` (claim.slot; null: none free). */
export async function claimTransferOn(c: AttemptClient, id: number, holder: string, leaseMs: number, takeSlot: boolean): Promise<Claim> {
  try {
    const r = await c.query({ name: 'settle_claim_transfer', text: CLAIM, values: [id, holder, leaseMs, takeSlot ? holder : null] });
    return toClaim(r.rows[0]);
  } catch (e) {
    throw toSettlementError(e);
  }
}

/** finish_transfer: records the bank's answer (+ journal and what follows), giving back `slot` of `c` first. */
export async function finishTransferOn(c: AttemptClient, id: number, isTuno: string, o: TransferOutcome, slot: number | null): Promise<FinishResult> {
  const processedAt = o.outcome === 'succeeded' ? o.processedAt : null;
  const code = o.outcome === 'failed' ? o.code : null;
  const message = o.outcome === 'failed' ? o.message : o.outcome === 'unresolved' ? o.reason : null;
  try {
    const r = await c.query({ name: 'settle_finish_transfer', text: FINISH, values: [id, isTuno, o.outcome, processedAt, code, message, slot] });
    const v = r.rows[0]?.r as unknown;
    if (!FINISHED.has(v as string)) throw new AttemptRowError(`finish_transfer returned ${JSON.stringify(v)}`);
    return v as FinishResult;
  } catch (e) {
    throw toSettlementError(e);
  }
}
