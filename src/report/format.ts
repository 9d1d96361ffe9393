import type { JournalLine, ReportRow } from '../db/report.js';

/**
 * The day's report and the journal export as files: CSV (RFC 4180, a header
 * row, CRLF line ends, integer KRW without separators), JSON (KRW as integer
 * numbers, written from the bigint's digits, never through a float) and, for
 * the report, a table for people. `settle report`, `settle export journal`
 * and the console's CSV download all use these, so they are the same rows.
 */

/** One CSV field: quoted when it holds a comma, a quote, a line break, or leading/trailing space. */
export function csvField(v: unknown): string {
  if (v === null || v === undefined) return '';
  const s = typeof v === 'bigint' ? v.toString() : String(v);
  return /[",\r\n]|^\s|\s$/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export const csvLine = (fields: readonly unknown[]): string => `${fields.map(csvField).join(',')}\r\n`;

/** JSON with bigint as integer numbers (exact digits; JSON.stringify alone cannot write a bigint). */
export function jsonWithIntegers(v: unknown, space?: number): string {
  const marks: string[] = [];
  const text = JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? `\u0000${marks.push(x.toString()) - 1}\u0000` : x), space);
  return text.replace(/"\\u0000(\d+)\\u0000"/g, (_m, i: string) => marks[Number(i)]!);
}

/** The report's columns, in file order: name in the file, and the field. */
export const REPORT_COLUMNS: ReadonlyArray<[string, keyof ReportRow]> = [
  ['business_date', 'business_date'],
  ['kind', 'kind'],
  ['accruals', 'accruals'],
  ['accruals_krw', 'accruals_krw'],
  ['entries', 'entries'],
  ['recorded_krw', 'recorded_krw'],
  ['chunks', 'chunks'],
  ['chunks_krw', 'chunks_krw'],
  ['chunks_succeeded', 'chunks_succeeded'],
  ['paid_krw', 'paid_krw'],
  ['chunks_failed', 'chunks_failed'],
  ['failed_krw', 'failed_krw'],
  ['chunks_unresolved', 'chunks_unresolved'],
  ['unresolved_krw', 'unresolved_krw'],
  ['chunks_pending', 'chunks_pending'],
  ['pending_krw', 'pending_krw'],
  ['withdrawn_krw', 'withdrawn_krw'],
  ['withdrawal_state', 'withdrawal_state'],
  ['withdrawal_is_tuno', 'withdrawal_is_tuno'],
  ['withdrawal_bank_tuno', 'withdrawal_bank_tuno'],
  ['withdrawn_at', 'withdrawn_at'],
  ['orphans', 'orphans'],
  ['suspense_krw', 'suspense_krw'],
  ['breaks_open', 'breaks_open'],
  ['breaks_resolved', 'breaks_resolved'],
  ['record_done_at', 'record_done_at'],
  ['first_payout_at', 'first_payout_at'],
  ['last_payout_at', 'last_payout_at'],
  ['confirm_done_at', 'confirm_done_at'],
  ['withdraw_done_at', 'withdraw_done_at'],
  ['reconcile_done_at', 'reconcile_done_at'],
];

/** The totals row's kind in files and tables. */
export const TOTAL = 'TOTAL';
const kindOf = (r: ReportRow) => (r.is_total ? TOTAL : r.kind!);

export function reportCsv(rows: readonly ReportRow[]): string {
  return csvLine(REPORT_COLUMNS.map(([h]) => h)) + rows.map((r) => csvLine(REPORT_COLUMNS.map(([h, k]) => (h === 'kind' ? kindOf(r) : r[k])))).join('');
}

export function reportJson(rows: readonly ReportRow[]): string {
  return jsonWithIntegers(rows.map((r) => Object.fromEntries(REPORT_COLUMNS.map(([h, k]) => [h, h === 'kind' ? kindOf(r) : r[k]]))), 2);
}

const money = (v: bigint) => v.toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');

/** For people: one line per figure, one column per kind and the total (KRW with separators). */
export function reportTable(rows: readonly ReportRow[]): string {
  const head = ['', ...rows.map(kindOf)];
  const body = REPORT_COLUMNS.filter(([h]) => h !== 'business_date' && h !== 'kind').map(([h, k]) => [
    h,
    ...rows.map((r) => {
      const v = r[k];
      return typeof v === 'bigint' ? money(v) : v === null ? '-' : String(v);
    }),
  ]);
  const all = [head, ...body];
  const widths = head.map((_, i) => Math.max(...all.map((l) => l[i]!.length)));
  const fmt = (l: string[]) => l.map((s, i) => (i === 0 ? s.padEnd(widths[i]!) : s.padStart(widths[i]!))).join('  ').trimEnd();
  return [`settlement report ${rows[0]?.business_date ?? ''} (KRW)`, fmt(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(fmt)].join('\n');
}

/** The journal export's columns, in file order. */
export const JOURNAL_COLUMNS: ReadonlyArray<keyof JournalLine> = [
  'entry_id', 'line_no', 'posted_at', 'business_date', 'kind', 'event', 'account', 'debit_krw', 'credit_krw',
  'reference_type', 'reference', 'transfer_id', 'is_tuno', 'statement_line', 'memo',
];

export const journalCsvHeader = (): string => csvLine(JOURNAL_COLUMNS);
export const journalCsvLines = (lines: readonly JournalLine[]): string => lines.map((l) => csvLine(JOURNAL_COLUMNS.map((k) => l[k]))).join('');
export const journalJsonLine = (l: JournalLine): string => jsonWithIntegers(Object.fromEntries(JOURNAL_COLUMNS.map((k) => [k, l[k]])));
