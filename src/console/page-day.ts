import type { ActionRow, DayCell, ProgressPoint, StageRow, TransferProblem } from './data.js';
import { age, html, KIND_KO, krw, maskAccount, maskJson, STAGE_KO, type Html } from './html.js';
import { actionForm, type Viewer } from './layout.js';
import { amounts, stagePills, verdictBadge } from './page-days.js';

export interface DayData {
  date: string;
  cells: readonly DayCell[];
  stages: readonly string[];
  stageRows: readonly StageRow[];
  progress: readonly ProgressPoint[];
  problems: readonly TransferProblem[];
  /** undefined: the reconcile stage is not installed. */
  breaks: ReadonlyArray<{ kind: string; line: Record<string, unknown> }> | undefined;
  actions: readonly ActionRow[];
}

/** Cumulative KRW paid over time, as a small inline SVG. */
export function progressChart(points: readonly ProgressPoint[], total: bigint): Html {
  if (points.length === 0) return html`<p class="note">No payout has succeeded yet.</p>`;
  const W = 360, H = 110, L = 8, B = 16;
  const tMax = Math.max(1, points[points.length - 1]!.seconds);
  const yMax = Number(total > 0n ? total : points[points.length - 1]!.amount) || 1;
  const xy = (p: { seconds: number; amount: bigint }) =>
    `${(L + (p.seconds / tMax) * (W - 2 * L)).toFixed(1)},${(H - B - (Number(p.amount) / yMax) * (H - B - 8)).toFixed(1)}`;
  const pts = [{ seconds: 0, amount: 0n }, ...points].map(xy).join(' ');
  const last = points[points.length - 1]!;
  return html`<figure class="progress">
<svg class="chart" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="KRW paid over time">
<line class="axis" x1="${L}" y1="${H - B}" x2="${W - L}" y2="${H - B}"></line>
<polyline class="line" points="${pts}"></polyline>
<text x="${L}" y="${H - 4}">${points[0]!.at ?? ''}</text>
<text x="${W - L}" y="${H - 4}" text-anchor="end">+${Math.round(tMax)} s</text>
<text x="${L}" y="10">${krw(last.amount)} / ${krw(total)} KRW</text>
</svg>
<figcaption class="note">${last.chunks} chunk(s) and ${krw(last.amount)} KRW paid of ${krw(total)} KRW recorded.</figcaption>
</figure>`;
}

function stageTable(rows: readonly StageRow[]): Html {
  return html`<table class="stages-table"><thead><tr><th>stage</th><th>state</th><th>runs</th><th>started</th><th>finished</th><th>updated</th><th>detail</th></tr></thead>
<tbody>${rows.map((r) => html`<tr data-stage="${r.stage}"><td>${r.stage} <span class="note">${STAGE_KO[r.stage] ?? ''}</span></td><td><span class="st ${r.state}">${r.state}</span></td><td class="num">${r.runs}</td>
<td>${r.started_at ?? '-'}</td><td>${r.finished_at ?? '-'}</td><td>${r.updated_at ?? '-'}</td><td>${r.detail}</td></tr>`)}</tbody></table>`;
}

function problemTables(ps: readonly TransferProblem[]): Html {
  const failed = ps.filter((p) => p.problem === 'failed');
  const unresolved = ps.filter((p) => p.problem !== 'failed');
  return html`${failed.length > 0 ? html`<h3>Failed for good (${failed.length})</h3>
<table class="failures"><thead><tr><th>transfer</th><th>what</th><th>from</th><th>to</th><th class="num">KRW</th><th>IsTuno</th><th>attempt</th><th>bank code</th><th>bank message</th><th>failed at</th></tr></thead>
<tbody>${failed.map((p) => html`<tr><td>#${p.transfer_id}</td><td>${p.what}</td><td>${maskAccount(p.from_account)}</td><td>${maskAccount(p.to_account)}</td><td class="num">${krw(p.amount)}</td>
<td><code>${p.is_tuno}</code></td><td class="num">${p.attempt}</td><td><code>${p.bank_code ?? ''}</code>${p.code_note ? html`<br><span class="note">${p.code_note}</span>` : ''}</td><td class="bank-message">${p.bank_message ?? ''}</td><td>${p.failed_at ?? ''}</td></tr>`)}</tbody></table>` : ''}
${unresolved.length > 0 ? html`<h3>Unresolved (${unresolved.length}): the bank has not told the outcome yet</h3>
<table class="unresolved"><thead><tr><th>transfer</th><th>what</th><th>from</th><th class="num">KRW</th><th>IsTuno</th><th>age</th><th>last answer</th></tr></thead>
<tbody>${unresolved.map((p) => html`<tr><td>#${p.transfer_id}</td><td>${p.what}</td><td>${maskAccount(p.from_account)}</td><td class="num">${krw(p.amount)}</td><td><code>${p.is_tuno}</code></td>
<td>${age(p.unresolved_seconds)}</td><td class="bank-message">${p.bank_message ?? ''}</td></tr>`)}</tbody></table>` : ''}`;
}

export function auditTable(actions: readonly ActionRow[]): Html {
  if (actions.length === 0) return html`<p class="note">No operator action yet.</p>`;
  return html`<table class="audit"><thead><tr><th>at</th><th>action</th><th>arguments</th><th>reason</th><th>result</th><th>who</th></tr></thead>
<tbody>${actions.map((a) => html`<tr><td>${a.at ?? ''}</td><td>${a.action}</td><td><code>${maskJson(a.args)}</code></td><td class="reason">${a.reason ?? ''}</td>
<td><code>${a.result === null || a.result === undefined ? '' : maskJson(a.result)}</code></td><td>${a.db_user}${a.application_name ? ` (${a.application_name})` : ''}</td></tr>`)}</tbody></table>`;
}

/** The live part of a day: per kind its verdict, stages, progress, failures and breaks; then the day's audit. */
export function dayBody(d: DayData): Html {
  if (d.cells.length === 0) return html`<p>No settlement day ${d.date}.</p>`;
  return html`${d.cells.map((c) => {
    const rows = d.stageRows.filter((r) => r.kind === c.kind);
    const breaks = d.breaks?.filter((b) => b.kind === c.kind);
    return html`<section class="kind" id="${c.kind}" data-kind="${c.kind}" data-verdict="${c.verdict}">
<h2>${c.kind} <span class="note">${KIND_KO[c.kind]}</span> ${verdictBadge(c.verdict)}</h2>
<p class="day-verdict">${c.detail ?? ''}${c.next_command ? html`<br><span class="note">next: <code>${c.next_command}</code></span>` : ''}${c.paused_reason ? html`<br><span class="note">paused: ${c.paused_reason}</span>` : ''}</p>
${stagePills(d.stages, c.states)}
${amounts(c)}
${stageTable(rows)}
${progressChart(d.progress.filter((p) => p.kind === c.kind), c.amount_recorded)}
${problemTables(d.problems.filter((p) => p.kind === c.kind))}
${breaks === undefined ? '' : breaks.length === 0 ? html`<p class="note">No reconciliation break.</p>` : html`<h3>Reconciliation breaks (${breaks.length})</h3>
<table class="breaks"><tbody>${breaks.map((b) => html`<tr><td><code>${maskJson(b.line)}</code></td></tr>`)}</tbody></table>`}
</section>`;
  })}
<h2>Operator actions on ${d.date}</h2>
${auditTable(d.actions)}`;
}

/** The day's actions (outside the live region, so typing is never interrupted). */
export function dayActions(d: DayData, viewer: Viewer): Html {
  const retryable = d.cells.filter((c) => c.chunks_failed > 0n || d.problems.some((p) => p.kind === c.kind && p.problem === 'failed'));
  return html`<h2>Act on ${d.date}</h2>
${retryable.length > 0
    ? html`<p>Failed for good: ${retryable.map((c) => c.kind).join(', ')}. Fix the cause (fund the account, …), then
<a id="retry-link" href="/day/${d.date}/retry">retry the day — see the dry run first</a>${retryable.map((c) => html` · <a href="/day/${d.date}/retry?kind=${c.kind}">only ${c.kind}</a>`)}.</p>`
    : html`<p class="note">Nothing failed for good on this day: nothing to retry.</p>`}
${actionForm(viewer, '/actions/enqueue', 'Enqueue stage', html`<input type="hidden" name="date" value="${d.date}">
<label>stage <select name="stage">${d.stages.map((s) => html`<option value="${s}">${s}</option>`)}</select></label>
<label>kind <select name="kind"><option value="">every kind</option>${d.cells.map((c) => html`<option value="${c.kind}">${c.kind}</option>`)}</select></label>`, { id: 'enqueue-form' })}`;
}
