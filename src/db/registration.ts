/** Typed calls of sql/logic/60_registration.sql (fin-account registration). */
import { sql } from 'slonik';
import { z } from 'zod';
import { voidRow, wrap } from './call.js';
import type { DatabasePool } from './pool.js';

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
