import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import type { Config } from '../config.js';
import type { DatabasePool } from '../db/pool.js';
import { asOperator, enqueueStage, workerStatus } from '../db/operations.js';
import { type BreakRow, reconcileSummary, type ReconcileSummaryRow, reconciliationBreaks } from '../db/reconcile.js';
import { openDays } from '../db/stages.js';
import { dateSchema, type Kind, kindSchema } from '../domain.js';
import type { Logger } from '../log.js';
import { intFlag, parseCommand } from './args.js';
import { withDb } from './commands.js';
import { money } from './status-table.js';
import { maskAccount } from '../mask.js';

const reasonSchema = z.string().trim().min(1, 'must not be empty').max(1000, 'must be at most 1000 characters');

/** A reconcile stage that will not change without a person or the clock: done, blocked, or waiting for a statement to become final. */
const settled = (r: ReconcileSummaryRow) => r.reconcile === 'done' || r.reconcile === 'blocked' || /^waiting for the bank statement/.test(r.why ?? '');

export function formatReconcile(rows: readonly ReconcileSummaryRow[], breaks: readonly BreakRow[]): string[] {
  const out: string[] = [];
  for (const r of rows) {
    const what = r.reconcile === 'done' ? `reconciled: ${r.matched_lines} statement line(s) matched to the day's transfers`
      : r.reconcile === 'blocked' ? `BLOCKED: ${r.detail}`
      : `not reconciled yet: ${r.why ?? r.reconcile}${r.detail ? ` (last: ${r.detail})` : ''}; ${r.matched_lines} line(s) matched so far`;
    out.push(`${r.business_date} ${r.kind.padEnd(19)} ${what}; ${r.open_breaks} open break(s)`);
  }
  for (const b of breaks) {
    const who = [b.is_tuno ? `IsTuno ${b.is_tuno}` : null, b.transfer_id !== null ? `transfer #${b.transfer_id}` : null, b.account_no ? `account ${maskAccount(b.account_no)}` : null]
      .filter(Boolean).join(', ');
    out.push(`  break #${b.id} ${b.business_date} ${b.kind} ${b.problem} ${money(b.amount)} KRW${who ? ` (${who})` : ''}: ${b.detail}`);
  }
  if (breaks.length > 0) out.push(`explain each break, then: select settlement.resolve_break(<id>, '<what happened>');`);
  // A stage BLOCKED by something that is not a break (an error, a timeout): its detail says what.
  const blockedNoBreak = rows.filter((r) => r.reconcile === 'blocked' && !breaks.some((b) => b.business_date === r.business_date && b.kind === r.kind));
  for (const r of blockedNoBreak) {
    out.push(`${r.business_date} ${r.kind}: blocked without a break — fix what its detail says, then run it again: settle reconcile --date ${r.business_date} --kind ${r.kind}`);
  }
  return out;
}

async function summaryOf(db: DatabasePool, targets: readonly { business_date: string; kind: Kind }[]) {
  const want = new Set(targets.map((d) => `${d.business_date}/${d.kind}`));
  const dates = [...new Set(targets.map((d) => d.business_date))];
  const rows = (await Promise.all(dates.map((d) => reconcileSummary(db, d)))).flat().filter((r) => want.has(`${r.business_date}/${r.kind}`));
  return rows;
}

/**
 * `settle reconcile [--date D] [--kind K] [--wait-s N] [--reason R]`: enqueues the
 * reconcile stage (a worker reads the statements and matches), waits up to N
 * seconds for it to settle, then prints per day and kind the lines matched
 * and every open break. Exit 1 when a break is open or a selected day's
 * reconcile is BLOCKED, 0 otherwise.
 */
export async function cmdReconcile(argv: string[], config: Config, logger: Logger) {
  const o = parseCommand(
    argv,
    { date: { type: 'string' }, kind: { type: 'string' }, 'wait-s': { type: 'string' }, reason: { type: 'string' } },
    z.object({ date: dateSchema.optional(), kind: kindSchema.optional(), waitS: intFlag(0, 86_400).default('60'), reason: reasonSchema.optional() }).strict(),
  );
  await withDb(config, logger, async (db) => {
    // What to look at: the given day (every kind, or one), else every day not reconciled yet.
    const targets = o.date
      ? (await reconcileSummary(db, o.date, o.kind ?? null)).map((r) => ({ business_date: r.business_date, kind: r.kind }))
      : (await openDays(db)).filter((d) => !o.kind || d.kind === o.kind);
    if (targets.length === 0) {
      console.log(o.date ? `no settlement day ${o.date}${o.kind ? ` for ${o.kind}` : ''}` : 'every day is reconciled (no open day)');
    } else {
      const pending = (await summaryOf(db, targets)).filter((r) => r.reconcile !== 'done');
      if (pending.length > 0) {
        await asOperator(db, o.reason, async (q) => {
          for (const r of pending) await enqueueStage(q, 'reconcile', r.business_date, r.kind);
        });
        const w = await workerStatus(db);
        if (w.alive === 0) console.log('NO live worker: the reconcile jobs wait until a `settle worker` runs (it reads the statements)');
        const deadline = Date.now() + o.waitS * 1000;
        while (Date.now() < deadline && w.alive > 0) {
          await sleep(500);
          if ((await summaryOf(db, targets)).every(settled)) break;
        }
      }
    }
    const rows = await summaryOf(db, targets);
    // Every open break of that day (or of every day), not only of the targets.
    const breaks = await reconciliationBreaks(db, o.date ?? null, o.kind ?? null);
    for (const line of formatReconcile(rows, breaks)) console.log(line);
    // Non-zero while anything selected needs a person: an open break, or a day's reconcile BLOCKED.
    if (breaks.length > 0 || rows.some((r) => r.reconcile === 'blocked')) process.exitCode = 1;
  });
}
