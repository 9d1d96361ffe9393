import type { Problem, RetryPreviewRow } from '../db/operations.js';
import { KINDS } from '../domain.js';
import type { ActionRow, ConsoleWorker } from './data.js';
import { age, html, krw, maskAccount, type Html } from './html.js';
import { actionForm, canAct, type Viewer } from './layout.js';
import { auditTable } from './page-day.js';

export interface WorkersData {
  workers: readonly ConsoleWorker[];
  bank: { in_use: bigint; max_in_flight: number; per_call_limit: bigint; time_zone: string };
  pauses: ReadonlyArray<{ kind: string | null; reason: string; paused_at: string | null; paused_by: string }>;
  problems: readonly Problem[];
  actions: readonly ActionRow[];
  /** When each kind's payee last changed (formatPayeeChange lines). */
  payees: readonly string[];
}

export function workersBody(d: WorkersData): Html {
  const alive = d.workers.filter((w) => w.alive).length;
  const width = 240;
  const used = Math.min(width, Math.round((Number(d.bank.in_use) / Math.max(1, d.bank.max_in_flight)) * width));
  return html`<h2>Workers: ${alive} alive of ${d.workers.length} registered</h2>
${d.workers.length === 0 ? html`<p class="flash error">No worker is registered: nothing is settling (start <code>settle worker</code>).</p>` : html`<table id="workers"><thead><tr><th>pool</th><th>host</th><th>pid</th><th>started</th><th>heartbeat</th><th class="num">jobs in hand</th><th>tasks</th><th class="num">bank slots</th><th class="num">transfers claimed</th></tr></thead>
<tbody>${d.workers.map((w) => html`<tr data-pool="${w.pool_id}" class="${w.alive ? 'alive' : 'silent'}"><td><code>${w.pool_id}</code></td><td>${w.host}</td><td class="num">${w.pid}</td><td>${w.started_at ?? ''}</td>
<td>${age(w.age_seconds)} ago${w.alive ? '' : html` <span class="verdict blocked">SILENT</span>`}</td><td class="num">${w.jobs_locked}</td><td>${w.tasks ?? ''}</td><td class="num">${w.bank_slots}</td><td class="num">${w.transfers_claimed}</td></tr>`)}</tbody></table>`}
<h2>The bank</h2>
<p id="bank-slots">Bank calls in flight: <strong>${d.bank.in_use}</strong> of <strong>${d.bank.max_in_flight}</strong> (BANK_MAX_IN_FLIGHT, across every worker) · per-call limit ${krw(d.bank.per_call_limit)} KRW · time zone ${d.bank.time_zone}</p>
<svg class="chart" width="${width}" height="14" viewBox="0 0 ${width} 14" role="img" aria-label="bank slots in use"><rect x="0" y="0" width="${used}" height="14" fill="#0b5cad"></rect><rect x="${used}" y="0" width="${width - used}" height="14" fill="#e6e8eb"></rect></svg>
<h2>Paused</h2>
${d.pauses.length === 0 ? html`<p id="pauses">No pause: bank calls run for every kind.</p>` : html`<table id="pauses"><thead><tr><th>kind</th><th>since</th><th>by</th><th>reason</th></tr></thead>
<tbody>${d.pauses.map((p) => html`<tr data-kind="${p.kind ?? '*'}"><td>${p.kind ?? 'every kind'}</td><td>${p.paused_at ?? ''}</td><td>${p.paused_by}</td><td>${p.reason}</td></tr>`)}</tbody></table>`}
${d.payees.length === 0 ? '' : html`<h2>Payee changes</h2>
<ul id="payee-changes">${d.payees.map((l) => html`<li>${l}</li>`)}</ul>`}
<h2>Needs a person</h2>
${d.problems.length === 0 ? html`<p>Nothing needs a person.</p>` : html`<ul class="problems">${d.problems.map((p) => html`<li>${p.message}${p.next_command ? html` <span class="note">next: <code>${p.next_command}</code></span>` : ''}</li>`)}</ul>`}
<h2>Latest operator actions</h2>
${auditTable(d.actions)}`;
}

export function workersActions(d: WorkersData, viewer: Viewer): Html {
  const kindOptions = html`<option value="">every kind</option>${KINDS.map((k) => html`<option value="${k}">${k}</option>`)}`;
  return html`<h2>Pause or resume bank calls</h2>
<p class="note">A pause stops new bank calls for that kind (calls in flight finish and are recorded); stages and the crontab go on.</p>
${actionForm(viewer, '/actions/pause', 'Pause', html`<label>kind <select name="kind">${kindOptions}</select></label>`, { id: 'pause-form' })}
${d.pauses.length > 0 ? actionForm(viewer, '/actions/resume', 'Resume', html`<label>kind <select name="kind">${kindOptions}</select></label>`, { id: 'resume-form' }) : ''}`;
}

export interface PreviewLine extends RetryPreviewRow {
  /** What the bank says about the paying account, when it can be asked. */
  balance: string;
}

/** The dry run of a retry (settlement.retry_preview) and the form that does it. */
export function retryBody(date: string, kind: string | undefined, lines: readonly PreviewLine[], viewer: Viewer, bank: { bank: boolean; asked: boolean }): Html {
  if (lines.length === 0) return html`<p id="retry-preview">Nothing failed for good on ${date}${kind ? ` ${kind}` : ''}: nothing to retry. <a href="/day/${date}">Back to the day</a>.</p>`;
  const total = lines.reduce((a, l) => a + l.amount, 0n);
  const n = lines.reduce((a, l) => a + l.transfers, 0n);
  const ask = bank.bank && canAct(viewer)
    ? html`<form class="action" method="post" action="/day/${date}/retry" id="balance-form">
<input type="hidden" name="csrf" value="${viewer.csrf}"><input type="hidden" name="kind" value="${kind ?? ''}">
<button type="submit">${bank.asked ? 'Ask the bank again' : 'Ask the bank for the paying accounts\' balances'}</button> <span class="note">(InquireBalance per paying account; at most once a minute per day and kind)</span>
</form>`
    : '';
  return html`<p>Dry run: nothing has changed yet. Retrying sends these transfers again under new IsTunos (settlement.retry_day).</p>
<table id="retry-preview"><thead><tr><th>kind</th><th>what</th><th>paying account</th><th class="num">transfers</th><th class="num">KRW</th><th>bank codes</th><th>balance at the bank</th></tr></thead>
<tbody>${lines.map((l) => html`<tr data-kind="${l.kind}"><td>${l.kind}</td><td>${l.purpose}</td><td>${maskAccount(l.from_account)}</td><td class="num">${l.transfers}</td><td class="num">${krw(l.amount)}</td><td><code>${l.bank_codes ?? ''}</code></td><td class="balance">${l.balance}</td></tr>`)}</tbody></table>
${ask}
${actionForm(viewer, '/actions/retry', `Retry ${n} transfer(s), ${krw(total)} KRW`, html`<input type="hidden" name="date" value="${date}"><input type="hidden" name="kind" value="${kind ?? ''}">`, { id: 'retry-form' })}
<p><a href="/day/${date}">Back to the day</a></p>`;
}
