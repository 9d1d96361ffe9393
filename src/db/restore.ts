/** Typed calls of sql/logic/87_restore.sql. */
import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import { wrap } from './call.js';

const restoreRow = z.object({
  restore: z.number(), generation: z.number(), from_ymd: z.string(), last_activity: z.string().nullable(),
  transfers_to_ask: z.number(), days_to_reconcile: z.number(), held_days: z.number(), again: z.boolean(),
});
export type RestoreSummary = z.infer<typeof restoreRow>;

/** settlement.after_restore: the generation moved on, the open transfers to ask about, the days to reconcile again. */
export async function afterRestore(db: CommonQueryMethods, reason: string): Promise<RestoreSummary> {
  const j = await wrap(db.oneFirst(sql.type(z.object({ j: z.unknown() }))`select settlement.after_restore(${reason}) as j`));
  return restoreRow.parse(j);
}

const statementRow = z.object({ restore_id: z.bigint(), bncd: z.string(), acno: z.string(), from_ymd: z.string(), to_ymd: z.string(), asked_at: z.string() });
export type RestoreStatement = z.infer<typeof statementRow>;

/** The statements the open restore still needs (every NH account of ours, from_ymd to today), each a read request of the database (asked_at: pass it to recordStatement). */
export function restoreStatements(db: CommonQueryMethods): Promise<readonly RestoreStatement[]> {
  return wrap(db.any(sql.type(statementRow)`
    select restore_id, bncd, acno, from_ymd, to_ymd, to_char(asked_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as asked_at
    from settlement.restore_statements()`));
}

export function restoreStatementsRead(db: CommonQueryMethods, restore: bigint): Promise<number> {
  return wrap(db.oneFirst(sql.type(z.object({ n: z.number() }))`select settlement.restore_statements_read(${restore}) as n`));
}

const unexplainedRow = z.object({ acno: z.string(), trdd: z.string(), tram: z.bigint(), ref_is_tuno: z.string() });

/** settlement.restore_unexplained: bookings under forgotten numbers that no chunk still to pay can be (every kind is paused while there is one). */
export function restoreUnexplained(db: CommonQueryMethods): Promise<readonly z.infer<typeof unexplainedRow>[]> {
  return wrap(db.any(sql.type(unexplainedRow)`
    select settlement.mask_account(acno) as acno, trdd, tram, ref_is_tuno from settlement.restore_unexplained()`));
}
