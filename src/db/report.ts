import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import { toSettlementError } from './errors.js';
import { kindSchema } from '../domain.js';
import type { DatabasePool } from './pool.js';

/**
 * Typed reads of what finance looks at (sql/logic/82_report.sql): the day's
 * report, the journal export (read in pages by keyset inside one snapshot)
 * and the history of the last months. Every KRW amount is a bigint.
 */
async function wrap<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (e) {
    throw toSettlementError(e);
  }
}

const t = z.string().nullable();
export const reportRow = z.object({
  business_date: z.string(),
  kind: kindSchema.nullable(),
  is_total: z.boolean(),
  accruals: z.bigint(),
  accruals_krw: z.bigint(),
  entries: z.bigint(),
  recorded_krw: z.bigint(),
  chunks: z.bigint(),
  chunks_krw: z.bigint(),
  chunks_succeeded: z.bigint(),
  paid_krw: z.bigint(),
  chunks_failed: z.bigint(),
  failed_krw: z.bigint(),
  chunks_unresolved: z.bigint(),
  unresolved_krw: z.bigint(),
  chunks_pending: z.bigint(),
  pending_krw: z.bigint(),
  withdrawn_krw: z.bigint(),
  withdrawal_state: t,
  withdrawal_is_tuno: t,
  withdrawal_bank_tuno: t,
  withdrawn_at: t,
  orphans: z.bigint(),
  suspense_krw: z.bigint(),
  breaks_open: z.bigint(),
  breaks_resolved: z.bigint(),
  record_done_at: t,
  first_payout_at: t,
  last_payout_at: t,
  confirm_done_at: t,
  withdraw_done_at: t,
  reconcile_done_at: t,
});
export type ReportRow = z.infer<typeof reportRow>;

/** settlement.day_report of one business date: a row per kind, then the totals row (kind null). Times as ISO 8601 in the settlement time zone. */
export function dayReport(db: CommonQueryMethods, date: string): Promise<readonly ReportRow[]> {
  return wrap(db.any(sql.type(reportRow)`
    select r.business_date::text as business_date, r.kind::text as kind, r.is_total,
           r.accruals, r.accruals_krw, r.entries, r.recorded_krw, r.chunks, r.chunks_krw, r.chunks_succeeded, r.paid_krw,
           r.chunks_failed, r.failed_krw, r.chunks_unresolved, r.unresolved_krw, r.chunks_pending, r.pending_krw,
           r.withdrawn_krw, r.withdrawal_state, r.withdrawal_is_tuno, r.withdrawal_bank_tuno, settlement.iso_time(r.withdrawn_at) as withdrawn_at,
           r.orphans, r.suspense_krw, r.breaks_open, r.breaks_resolved,
           settlement.iso_time(r.record_done_at) as record_done_at, settlement.iso_time(r.first_payout_at) as first_payout_at,
           settlement.iso_time(r.last_payout_at) as last_payout_at, settlement.iso_time(r.confirm_done_at) as confirm_done_at,
           settlement.iso_time(r.withdraw_done_at) as withdraw_done_at, settlement.iso_time(r.reconcile_done_at) as reconcile_done_at
    from settlement.day_report r
    where r.business_date = ${date}::date and (r.is_total or r.kind is not null)
    order by r.is_total, r.kind`));
}

export const journalLine = z.object({
  entry_id: z.bigint(),
  line_no: z.number(),
  posted_at: z.string(),
  business_date: z.string(),
  kind: kindSchema,
  event: z.string(),
  account: z.string(),
  debit_krw: z.bigint(),
  credit_krw: z.bigint(),
  reference_type: z.string(),
  reference: z.string(),
  transfer_id: z.bigint().nullable(),
  is_tuno: z.string().nullable(),
  statement_line: z.string().nullable(),
  memo: z.string(),
});
export type JournalLine = z.infer<typeof journalLine>;

export class JournalUnbalancedError extends Error {
  override name = 'JournalUnbalancedError';
  readonly code = 'journal_unbalanced';
}

/**
 * Streams the journal lines of business dates from..to in (entry_id,
 * line_no) order, `pageSize` lines per read, to `onPage`; never more than one
 * page in memory. Every page is read in one REPEATABLE READ, READ ONLY
 * transaction, so an entry posted meanwhile is either whole in the export or
 * not in it. Each entry is checked to balance as it passes (debits =
 * credits); one that does not stops the export with JournalUnbalancedError.
 * Returns how many lines and entries were exported and the totals.
 */
export async function exportJournal(
  db: DatabasePool, from: string, to: string, onPage: (lines: readonly JournalLine[]) => Promise<void>, pageSize = 5000,
): Promise<{ lines: number; entries: number; debit: bigint; credit: bigint }> {
  return wrap(db.transaction(async (tx) => {
    await tx.query(sql.type(z.object({}).passthrough())`set transaction isolation level repeatable read, read only`);
    let after = { entry: 0n, line: 0 };
    let cur: { id: bigint; sum: bigint } | undefined;
    const out = { lines: 0, entries: 0, debit: 0n, credit: 0n };
    const close = () => {
      if (cur && cur.sum !== 0n) throw new JournalUnbalancedError(`journal entry ${cur.id} does not balance (debits - credits = ${cur.sum} KRW): export stopped`);
    };
    for (;;) {
      const page = await tx.any(sql.type(journalLine)`
        select entry_id, line_no, settlement.iso_time(posted_at) as posted_at, business_date::text as business_date, kind::text as kind, event,
               account, debit_krw, credit_krw, reference_type, reference, transfer_id, is_tuno, statement_line, memo
        from settlement.journal_export_page(${from}::date, ${to}::date, ${after.entry.toString()}::bigint, ${after.line}, ${pageSize})`);
      for (const l of page) {
        if (!cur || cur.id !== l.entry_id) {
          close();
          cur = { id: l.entry_id, sum: 0n };
          out.entries++;
        }
        cur.sum += l.debit_krw - l.credit_krw;
        out.debit += l.debit_krw;
        out.credit += l.credit_krw;
      }
      out.lines += page.length;
      if (page.length > 0) await onPage(page);
      if (page.length < pageSize) break;
      const last = page[page.length - 1]!;
      after = { entry: last.entry_id, line: last.line_no };
    }
    close();
    return out;
  }));
}

const historyRow = z.object({
  business_date: z.string(), kind: kindSchema, paid_krw: z.bigint(), chunks: z.bigint(), chunks_failed: z.bigint(), breaks: z.bigint(),
  verdict: z.string(), done_hours: z.number().nullable(),
});
export type HistoryRow = z.infer<typeof historyRow>;

/** settlement.history: per business date of the last `days` and kind, KRW paid, failures, breaks, hours to DONE. */
export function history(db: CommonQueryMethods, days: number): Promise<readonly HistoryRow[]> {
  return wrap(db.any(sql.type(historyRow)`
    select business_date::text as business_date, kind::text as kind, paid_krw, chunks, chunks_failed, breaks, verdict, done_hours
    from settlement.history(${days})`));
}
