import type { StatusRow } from '../db/operations.js';

const COLUMNS: Array<[keyof StatusRow, string]> = [
  ['business_date', 'date'],
  ['kind', 'kind'],
  ['record', 'record'],
  ['pay', 'pay'],
  ['confirm', 'confirm'],
  ['withdraw', 'withdraw'],
  ['reconcile', 'reconcile'],
  ['entries', 'entries'],
  ['amount_recorded', 'recorded KRW'],
  ['chunks_total', 'chunks'],
  ['chunks_succeeded', 'ok'],
  ['chunks_failed', 'failed'],
  ['chunks_in_flight', 'in flight'],
  ['amount_paid', 'paid KRW'],
  ['amount_withdrawn', 'withdrawn KRW'],
  ['chunks_unresolved', 'unresolved'],
  ['accruals_unrecorded', 'unrecorded accruals'],
];

export const money = (v: bigint) => v.toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');

/** settlement.daily_status as a plain text table (numbers right-aligned, KRW with separators). */
export function formatStatus(rows: readonly StatusRow[]): string {
  if (rows.length === 0) return '(no settlement days yet)';
  const cells = rows.map((r) => COLUMNS.map(([k]) => (typeof r[k] === 'bigint' ? money(r[k] as bigint) : String(r[k] ?? ''))));
  const widths = COLUMNS.map(([, h], i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const numeric = COLUMNS.map(([k]) => typeof rows[0]![k] === 'bigint');
  const line = (c: string[]) => c.map((s, i) => (numeric[i] ? s.padStart(widths[i]!) : s.padEnd(widths[i]!))).join('  ').trimEnd();
  const out = [line(COLUMNS.map(([, h]) => h)), widths.map((w) => '-'.repeat(w)).join('  ')];
  for (const c of cells) out.push(line(c));
  const attention = rows.filter((r) => r.attention);
  for (const r of attention) out.push(`! ${r.business_date} ${r.kind}: ${r.attention}`);
  return out.join('\n');
}
