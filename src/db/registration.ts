/** Typed calls of sql/logic/60_registration.sql (fin-account registration). */
import { sql } from 'slonik';
import { z } from 'zod';
import { voidRow, wrap } from './call.js';
import { SettlementError, sqlstateOf, toSettlementError } from './errors.js';
import type { DatabasePool } from './pool.js';
import { maskAccount } from '../mask.js';

const registration = z.object({ account_no: z.string(), bank_code: z.string(), fin_rgno: z.string().nullable(), fin_acno: z.string().nullable() });

export type Registration = z.infer<typeof registration>;

export function finRegistration(db: DatabasePool, accountNo: string): Promise<Registration> {
  return wrap(db.one(sql.type(registration)`select * from settlement.fin_registration(${accountNo})`));
}

export async function recordFinRgno(db: DatabasePool, accountNo: string, rgno: string): Promise<void> {
  await wrap(db.query(sql.type(voidRow)`select settlement.record_fin_rgno(${accountNo}, ${rgno})`));
}

/** record_fin_account waits at most this long for the account's row (an accrual in an open transaction holds it: the FinAcno is a key). */
export const FIN_ACCOUNT_LOCK_TIMEOUT_MS = 2_000;

/**
 * Stores the FinAcno the bank gave for this system's registration (its Rgno);
 * undefined when another session holds the account's row (lock_not_available):
 * the caller tries again later. A FinAcno that is not the answer to the
 * stored Rgno, or a second one, is refused: the database alerts (and keeps
 * the alert), then this throws fin_acno_refused (ST067).
 */
export async function recordFinAccount(db: DatabasePool, accountNo: string, rgno: string, finAcno: string, registeredOn: string): Promise<string | undefined> {
  let r: string;
  try {
    r = await db.transaction(async (tx) => {
      await tx.query(sql.type(voidRow)`select set_config('lock_timeout', ${String(FIN_ACCOUNT_LOCK_TIMEOUT_MS)}, true)`);
      return tx.oneFirst(sql.type(z.object({ r: z.string() }))`select settlement.record_fin_account(${accountNo}, ${rgno}, ${finAcno}, ${registeredOn}) as r`);
    });
  } catch (e) {
    if (sqlstateOf(e) === '55P03') return undefined;
    throw toSettlementError(e);
  }
  if (r === 'refused') {
    throw new SettlementError('fin_acno_refused', 'ST067', `the FinAcno for loan account ${maskAccount(accountNo)} is not the answer to this system's registration (Rgno ${rgno}): refused and alerted`);
  }
  return r;
}
