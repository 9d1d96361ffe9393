/** Typed calls of sql/logic/83_changes.sql: proposed changes of the reference data, approved by a second login. */
import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import { maskAccount } from '../mask.js';
import { wrap } from './call.js';

export const CHANGE_TARGETS = ['accounts', 'fin_acno', 'contracts', 'kind_accounts', 'bank_codes', 'limits', 'ops_settings'] as const;
export type ChangeTarget = (typeof CHANGE_TARGETS)[number];

/** settlement.propose_change: the change's id (applied at once when one person is enough). */
export function proposeChange(db: CommonQueryMethods, target: ChangeTarget, change: Record<string, unknown>, reason: string): Promise<bigint> {
  return wrap(db.oneFirst(sql.type(z.object({ id: z.bigint() }))`select settlement.propose_change(${target}, ${JSON.stringify(change)}::jsonb, ${reason}) as id`));
}

/** settlement.approve_change by this login (not the proposer's): the row after. */
export function approveChange(db: CommonQueryMethods, id: bigint, reason: string): Promise<unknown> {
  return wrap(db.oneFirst(sql.type(z.object({ after: z.unknown() }))`select settlement.approve_change(${id.toString()}::bigint, ${reason}) as after`));
}

export async function rejectChange(db: CommonQueryMethods, id: bigint, reason: string): Promise<void> {
  await wrap(db.query(sql.unsafe`select settlement.reject_change(${id.toString()}::bigint, ${reason})`));
}

const changeRow = z.object({
  id: z.bigint(),
  target: z.string(),
  state: z.enum(['pending', 'applied', 'rejected', 'expired']),
  needs_two: z.boolean(),
  change: z.unknown(),
  reason: z.string(),
  before: z.unknown(),
  after: z.unknown(),
  proposed_by: z.string(),
  proposed_at: z.string(),
  expires_at: z.string(),
  decided_by: z.string().nullable(),
  decided_at: z.string().nullable(),
  decision_reason: z.string().nullable(),
});
export type ChangeRow = z.infer<typeof changeRow>;

/** settlement.change_list: newest first; all of them, or only those still awaiting a second person. */
export function listChanges(db: CommonQueryMethods, all: boolean, limit = 50): Promise<readonly ChangeRow[]> {
  return wrap(db.any(sql.type(changeRow)`
    select id, target, state, needs_two, change, reason, before, after, proposed_by,
           settlement.local_time(proposed_at) as proposed_at, settlement.local_time(expires_at) as expires_at,
           decided_by, settlement.local_time(decided_at) as decided_at, decision_reason
    from settlement.change_list(${all}, ${limit})`));
}

const payeeRow = z.object({
  kind: z.string(),
  changed_at: z.string(),
  change_id: z.bigint().nullable(),
  proposed_by: z.string().nullable(),
  approved_by: z.string().nullable(),
  settlement_account: z.string(),
  corporate_account: z.string(),
  fintech_apsno: z.string(),
});
export type PayeeChange = z.infer<typeof payeeRow>;

/** settlement.payee_changes: when each kind's payee last changed (only kinds that changed). */
export function payeeChanges(db: CommonQueryMethods): Promise<readonly PayeeChange[]> {
  return wrap(db.any(sql.type(payeeRow)`
    select kind::text as kind, settlement.local_time(changed_at) as changed_at, change_id, proposed_by, approved_by, settlement_account, corporate_account, fintech_apsno
    from settlement.payee_changes()`));
}

/** One line per kind whose payee changed: what status and the console show. Accounts masked to their last 4 digits. */
export function formatPayeeChange(p: PayeeChange): string {
  const who = p.change_id !== null ? ` by change #${p.change_id} (proposed by ${p.proposed_by}, approved by ${p.approved_by})` : '';
  return `payee of ${p.kind} changed at ${p.changed_at}${who}: settlement ${maskAccount(p.settlement_account)} (app ${p.fintech_apsno}), corporate ${maskAccount(p.corporate_account)}; transfers planned before keep their accounts`;
}
