import { z } from 'zod';
import { createNhBankClient } from '../bank/client.js';
import type { Config } from '../config.js';
import { asOperator } from '../db/operations.js';
import { recordStatement } from '../db/reconcile.js';
import { afterRestore, restoreStatements, restoreStatementsRead, restoreUnexplained } from '../db/restore.js';
import type { Logger } from '../log.js';
import { parseCommand, UsageError } from './args.js';
import { withDb } from './commands.js';

/**
 * `settle after-restore --reason R`: once after restoring a backup, before any
 * worker runs against it (docs/deploy/restore.md). Moves the IsTuno
 * generation on, makes every open transfer ask the bank first, sets the days
 * since to be read and reconciled again (settlement.after_restore), then reads
 * the bank's statements of every account of ours since the backup point, so
 * that no stage plans a transfer the bank already booked under a number the
 * backup never saw (a day's pay stage adopts such chunks; every kind is paused
 * while a booking is left that nothing still to pay can be). Run again after
 * a failed read: it finishes the same restore.
 */
export async function cmdAfterRestore(argv: string[], config: Config, logger: Logger) {
  const o = parseCommand(argv, { reason: { type: 'string' } }, z.object({ reason: z.string().trim().min(1).max(1000) }).strict());
  if (!config.bank.url) throw new UsageError('after-restore reads the bank statements: BANK_URL is required');
  await withDb(config, logger, async (db) => {
    const r = await asOperator(db, o.reason, (q) => afterRestore(q, o.reason));
    console.log(`${r.again ? 'finishing' : 'recorded'} restore ${r.restore}: IsTuno generation ${r.generation} (no number of an earlier generation is given again)`);
    console.log(`  the backup point is at or after ${r.last_activity ?? '-'} (the last thing it recorded); transfers since ${r.from_ymd} (KST) may have reached the bank`);
    console.log(`  ${r.transfers_to_ask} open transfer(s): each is asked about (result check) before anything is sent`);
    console.log(`  ${r.days_to_reconcile} day(s) read and reconciled again`);
    if (r.held_days > 0) console.log(`  ${r.held_days} day(s) before today were not paid out in the backup: each chunk the statements show was booked after the backup point is adopted under its number when the day is planned, never sent again`);

    const needs = await restoreStatements(db);
    if (needs.length === 0) return void console.log('statements: nothing more to read');
    const bank = createNhBankClient({ baseUrl: config.bank.url!, iscd: config.bank.iscd, fintechApsno: config.bank.fintechApsno, accessToken: config.bank.accessToken,
      perCallLimit: config.bank.perCallLimit, timeoutMs: config.bank.timeoutMs, retries: 3, maxRetryTimeMs: 4 * config.bank.timeoutMs });
    let lines = 0;
    try {
      for (const n of needs) {
        const got = await bank.statement(n.bncd, n.acno, n.from_ymd, n.to_ymd);
        lines += await recordStatement(db, { bncd: n.bncd, acno: n.acno, ymd: n.from_ymd, to_ymd: n.to_ymd, asked_at: n.asked_at }, got);
      }
    } catch (e) {
      console.log(`statements: could not read them all (${(e as Error).message.split('\n')[0]}); nothing new is planned until they are: run settle after-restore again`);
      process.exitCode = 1;
      return;
    } finally {
      bank.close();
    }
    const jobs = await asOperator(db, o.reason, (q) => restoreStatementsRead(q, needs[0]!.restore_id));
    console.log(`statements: read ${needs.length} account(s) from ${needs[0]!.from_ymd} to ${needs[0]!.to_ymd}, ${lines} new line(s); ${jobs} stage job(s) enqueued; start the workers`);
    const unexplained = await restoreUnexplained(db);
    if (unexplained.length > 0) {
      console.log(`PAUSED (every kind): ${unexplained.length} booking(s) of ours under numbers the backup never saw are none of the chunks still to pay; compare them (docs/deploy/restore.md), then settle resume`);
      for (const u of unexplained.slice(0, 10)) console.log(`  IsTuno ${u.ref_is_tuno}: ${u.tram} KRW from ${u.acno} on ${u.trdd}`);
    }
  });
}
