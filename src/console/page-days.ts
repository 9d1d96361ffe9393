import { KINDS } from '../domain.js';
import type { DayCell } from './data.js';
import { cls, html, KIND_KO, krw, type Html } from './html.js';

/** The stage pills of one (date, kind), in the order of settlement.stage. */
export function stagePills(stages: readonly string[], states: Record<string, string>): Html {
  return html`<div class="stages">${stages.map((s, i) => html`${i > 0 ? html`<span class="arrow">→</span>` : ''}<span class="st ${cls(states[s] ?? 'none')}" data-stage="${s}" data-state="${states[s] ?? ''}" title="${s}: ${states[s] ?? 'not started'}">${s}</span>`)}</div>`;
}

export function amounts(c: DayCell): Html {
  return html`<div class="amounts">
recorded ${krw(c.amount_recorded)} · paid ${krw(c.amount_paid)}${c.amount_unpaid > 0n ? html` · <span class="unpaid">unpaid ${krw(c.amount_unpaid)} KRW</span>` : ' KRW'}${c.amount_withdrawn > 0n ? html` · withdrawn ${krw(c.amount_withdrawn)}` : ''}
${c.chunks_total > 0n ? html`<br>chunks ${c.chunks_succeeded}/${c.chunks_total}${c.chunks_failed > 0n ? html`, <span class="unpaid">${c.chunks_failed} failed</span>` : ''}${c.chunks_in_flight > 0n ? `, ${c.chunks_in_flight} in flight` : ''}${c.chunks_unresolved > 0n ? `, ${c.chunks_unresolved} unresolved` : ''}` : ''}
${c.reconciliation_breaks > 0n ? html`<br><span class="unpaid">${c.reconciliation_breaks} reconciliation break(s)</span>` : ''}
</div>`;
}

export const verdictBadge = (v: string): Html => html`<span class="verdict ${cls(v)}" data-verdict="${v}">${v}</span>`;

/** Is anything of these cells moving (so the page should refresh quickly)? */
export const inFlight = (cells: readonly DayCell[]) => cells.some((c) => c.verdict === 'IN PROGRESS' || c.chunks_in_flight > 0n || Object.values(c.states).includes('running'));

/** Days: business dates (newest first) × kinds; each cell the stages, the verdict and the KRW. */
export function daysBody(cells: readonly DayCell[], stages: readonly string[]): Html {
  const dates = [...new Set(cells.map((c) => c.business_date))];
  const by = new Map(cells.map((c) => [`${c.business_date}/${c.kind}`, c]));
  const worst = (d: string) => {
    const order = ['BLOCKED', 'PAUSED', 'IN PROGRESS', 'WAITING', 'DONE'];
    const vs = cells.filter((c) => c.business_date === d).map((c) => c.verdict);
    return order.find((v) => vs.includes(v)) ?? 'WAITING';
  };
  if (dates.length === 0) return html`<p>No settlement days yet. Accruals create them (<code>settlement.accrue</code>), and the crontab records each day after it ends.</p>`;
  return html`<table class="grid" id="days">
<thead><tr><th>business date</th>${KINDS.map((k) => html`<th>${k}<br><span class="note">${KIND_KO[k]}</span></th>`)}</tr></thead>
<tbody>
${dates.map((d) => html`<tr data-date="${d}">
<th><a href="/day/${d}">${d}</a><br>${verdictBadge(worst(d))}</th>
${KINDS.map((k) => {
  const c = by.get(`${d}/${k}`);
  if (!c) return html`<td class="empty" data-kind="${k}">—</td>`;
  return html`<td class="cell" data-kind="${k}" data-verdict="${c.verdict}">
<a href="/day/${d}#${k}">${verdictBadge(c.verdict)}</a>
${stagePills(stages, c.states)}
${amounts(c)}
</td>`;
})}
</tr>`)}
</tbody>
</table>`;
}
