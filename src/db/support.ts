/** Typed calls of sql/logic/10_support.sql and the reference data (the database's clock, settlement.bank_codes). */
import { sql } from 'slonik';
import { z } from 'zod';
import { wrap } from './call.js';
import type { DatabasePool } from './pool.js';

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
