import type { BankClient, Gate } from '../bank/port.js';
import type { DatabasePool } from '../db/pool.js';
import { recordStatement, type StatementNeed, statementsToRead } from '../db/reconcile.js';
import type { Logger } from '../log.js';
import { maskAccount, maskDigits } from '../mask.js';

/** Statements read at once (each is paged by the client, one bank call at a time). */
const READS_IN_PARALLEL = 4;

/**
 * Reads every statement SQL says is needed now (final by the database's clock,
 * not read yet), every page, and stores each with settlement.record_statement.
 * A statement that cannot be read is logged and left for the next run; the
 * first such error is thrown at the end, so the job retries with backoff.
 */
export async function readFinalStatements(db: DatabasePool, bank: BankClient, gate: () => Gate, log: Logger): Promise<{ read: number; lines: number }> {
  const needs = [...(await statementsToRead(db))];
  let read = 0;
  let lines = 0;
  let firstError: unknown;
  const one = async (n: StatementNeed) => {
    try {
      const got = await bank.statement(n.bncd, n.acno, n.ymd, n.to_ymd, gate());
      lines += await recordStatement(db, n, got);
      read++;
    } catch (e) {
      firstError ??= e;
      log.warn({ event: 'reconcile:read_failed', bncd: n.bncd, acno: n.acno, ymd: n.ymd, err: maskDigits((e as Error).message) }, `statement ${n.bncd}-${maskAccount(n.acno)} ${n.ymd} not read: ${maskDigits((e as Error).message)}`);
    }
  };
  const queue = [...needs];
  await Promise.all(Array.from({ length: Math.min(READS_IN_PARALLEL, queue.length) }, async () => {
    for (let n = queue.shift(); n; n = queue.shift()) await one(n);
  }));
  if (firstError) throw firstError;
  return { read, lines };
}
