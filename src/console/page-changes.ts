import type { ConsoleChange } from './data.js';
import { age, html, maskJson, type Html } from './html.js';
import { canAct, type Viewer } from './layout.js';

/**
 * The Changes page (/changes): proposed changes of the reference data
 * (settlement.changes, sql/logic/83_changes.sql). Pending ones with their
 * row before and after, proposer, reason, age and expiry; an operator other
 * than the proposer approves or rejects with a reason and their OWN database
 * password (the console's shared login may not approve: README "Security").
 */
export function changesBody(rows: readonly ConsoleChange[], viewer: Viewer): Html {
  const pending = rows.filter((r) => r.state === 'pending');
  const rest = rows.filter((r) => r.state !== 'pending');
  return html`<h2>Pending: ${pending.length}</h2>
${pending.length === 0 ? html`<p id="no-pending">No change awaits a second person.</p>` : html`<div id="pending">${pending.map((c) => pendingChange(c, viewer))}</div>`}
<h2>Decided and expired <span class="note">latest</span></h2>
${rest.length === 0 ? html`<p class="note">None yet.</p>` : html`<table id="decided"><thead><tr><th>#</th><th>target</th><th>state</th><th>change</th><th>proposed</th><th>decided</th></tr></thead>
<tbody>${rest.map((c) => html`<tr data-change="${c.id}" class="${c.state}"><td>${c.id}</td><td>${c.target}</td><td><strong>${c.state.toUpperCase()}</strong></td>
<td><code>${maskJson(c.change)}</code></td><td>by ${c.proposed_by} at ${c.proposed_at ?? ''}: ${c.reason}</td>
<td>${c.state === 'expired' ? html`expired at ${c.expires_at ?? ''}` : html`by ${c.decided_by ?? ''} at ${c.decided_at ?? ''}: ${c.decision_reason ?? ''}`}</td></tr>`)}</tbody></table>`}`;
}

function pendingChange(c: ConsoleChange, viewer: Viewer): Html {
  return html`<section class="change" id="change-${c.id}" data-change="${c.id}">
<h3>#${c.id} ${c.target} <span class="note">${c.needs_two ? 'needs a second person' : 'one person'}</span></h3>
<table class="change-rows"><tbody>
<tr><th>before</th><td><code class="before">${c.before === null || c.before === undefined ? 'none (a new row)' : maskJson(c.before)}</code></td></tr>
<tr><th>after</th><td><code class="after">${maskJson(c.after)}</code></td></tr>
<tr><th>proposed</th><td>by <strong class="proposer">${c.proposed_by}</strong> at ${c.proposed_at ?? ''} (${age(c.age_seconds)} ago)</td></tr>
<tr><th>reason</th><td class="reason">${c.reason}</td></tr>
<tr><th>expires</th><td class="expires">${c.expires_at ?? ''} (in ${age(c.expires_in_seconds)})</td></tr>
</tbody></table>
${decision(c, viewer)}
</section>`;
}

function decision(c: ConsoleChange, viewer: Viewer): Html {
  if (!viewer.user) return html``;
  if (!canAct(viewer)) return html`<p class="readonly">Approving or rejecting needs an operator: ${viewer.user.name} is a viewer (reads only).</p>`;
  const own = viewer.user.name === c.proposed_by;
  const fields = (what: string) => html`<input type="hidden" name="csrf" value="${viewer.csrf}"><input type="hidden" name="id" value="${c.id}">
<label>reason <input type="text" name="reason" required maxlength="1000" placeholder="${what}"></label>
<label>your database password (login <code>${viewer.user!.name}</code>) <input type="password" name="password" required autocomplete="current-password"></label>`;
  return html`${own
    ? html`<p class="readonly own">You (${viewer.user.name}) proposed this change: another operator must approve it.</p>`
    : html`<form class="action approve" method="post" action="/actions/approve-change" id="approve-${c.id}">${fields('what you checked (recorded in the audit)')}<button type="submit">Approve and apply #${c.id}</button></form>`}
<form class="action reject" method="post" action="/actions/reject-change" id="reject-${c.id}">${fields(own ? 'why you withdraw it' : 'why not')}<button type="submit">Reject #${c.id}</button></form>`;
}
