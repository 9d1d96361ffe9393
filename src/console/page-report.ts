import type { ReportRow } from '../db/report.js';
import { REPORT_COLUMNS, TOTAL } from '../report/format.js';
import { html, KIND_KO, krw, type Html } from './html.js';

/** The tabs of a day: its live page and its report. */
export function dayTabs(date: string, on: 'day' | 'report'): Html {
  return html`<nav class="tabs"><a href="/day/${date}"${on === 'day' ? html` class="on" aria-current="page"` : ''}>Day</a><a id="report-tab" href="/day/${date}/report"${on === 'report' ? html` class="on" aria-current="page"` : ''}>Report <span class="note">정산 보고서</span></a></nav>`;
}

/**
 * The day's report (settlement.day_report): one line per figure, one column
 * per kind and the total; the CSV download is the same rows as
 * `settle report --format csv`.
 */
export function reportBody(date: string, rows: readonly ReportRow[]): Html {
  if (rows.length === 0) return html`<p>No settlement day ${date}: nothing to report.</p>`;
  const figures = REPORT_COLUMNS.filter(([h]) => h !== 'business_date' && h !== 'kind');
  const cell = (v: unknown) => (typeof v === 'bigint' ? krw(v) : v === null || v === undefined ? '-' : String(v));
  return html`<p><a id="report-csv" href="/day/${date}/report.csv" download="settlement-report-${date}.csv">Download CSV</a>
<span class="note">(the same rows as <code>settle report --date ${date} --format csv</code>; KRW as integers)</span></p>
<table class="report" id="report">
<thead><tr><th>figure</th>${rows.map((r) => html`<th class="num" data-kind="${r.is_total ? TOTAL : r.kind}">${r.is_total ? TOTAL : r.kind}${r.is_total ? '' : html`<br><span class="note">${KIND_KO[r.kind!]}</span>`}</th>`)}</tr></thead>
<tbody>${figures.map(([h, k]) => html`<tr data-figure="${h}"><th>${h}</th>${rows.map((r) => html`<td class="num${r.is_total ? ' total' : ''}">${cell(r[k])}</td>`)}</tr>`)}</tbody>
</table>`;
}
