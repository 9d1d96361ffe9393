import { html, type Html } from './html.js';

/** What every page needs to know about who is looking. */
export interface Viewer {
  /** Signed in (every page but the sign-in page needs it): the person's name and role. */
  user?: { name: string; role: 'viewer' | 'operator' };
  /** The session's token for action forms. */
  csrf?: string;
  /** The path (and query) of this page, for sign-in redirects. */
  here: string;
  flash?: { kind: 'ok' | 'error'; text: string };
}

export const canAct = (v: Viewer): boolean => v.user?.role === 'operator' && Boolean(v.csrf);

export function page(title: string, viewer: Viewer, body: Html): Html {
  const mode = viewer.user
    ? html`<span class="mode">${viewer.user.name} (${viewer.user.role === 'operator' ? 'operator: reads and acts' : 'viewer: reads only'})${viewer.csrf ? html` · <form class="inline" method="post" action="/logout"><input type="hidden" name="csrf" value="${viewer.csrf}"><button type="submit">sign out</button></form>` : ''}</span>`
    : html`<span class="mode">not signed in</span>`;
  return html`<!doctype html>
<html lang="ko">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · settle console</title>
<link rel="stylesheet" href="/static/fonts/noto-sans-kr/400.css">
<link rel="stylesheet" href="/static/fonts/noto-sans-kr/700.css">
<link rel="stylesheet" href="/static/console.css">
<script src="/static/console.js" defer></script>
</head>
<body>
<header><a href="/">정산 · Days</a><a href="/history">History <span class="note">추이</span></a><a href="/workers">Workers and the bank</a><a href="/changes">Changes <span class="note">변경</span></a>${mode}</header>
<main>
${viewer.flash ? html`<div class="flash ${viewer.flash.kind === 'error' ? 'error' : 'ok'}" role="status">${viewer.flash.text}</div>` : ''}
${body}
</main>
</body>
</html>`;
}

/**
 * The region that refreshes itself: fast while something is in flight,
 * slowly otherwise (an action taken elsewhere still shows up).
 */
export function live(active: boolean, body: Html, nowText: string): Html {
  return html`<div id="live" data-active="${active ? 'true' : 'false'}" data-poll-ms="2000" data-idle-ms="15000">
${body}
<p class="live-at">as of ${nowText}${active ? ' · refreshing while in flight' : ''} <span id="live-status"></span></p>
</div>`;
}

/** An action form, or why there is none. */
export function actionForm(viewer: Viewer, action: string, label: string, fields: Html, opts: { id?: string } = {}): Html {
  if (!viewer.user) return html`<p class="readonly"><a href="/login?next=${encodeURIComponent(viewer.here)}">Sign in</a> to ${label.toLowerCase()}.</p>`;
  if (!canAct(viewer)) return html`<p class="readonly">${label} needs an operator: ${viewer.user.name} is a viewer (reads only).</p>`;
  return html`<form class="action" method="post" action="${action}"${opts.id ? html` id="${opts.id}"` : ''}>
<input type="hidden" name="csrf" value="${viewer.csrf}">
${fields}
<label>reason <input type="text" name="reason" required maxlength="1000" placeholder="why (recorded in the audit)"></label>
<button type="submit">${label}</button>
</form>`;
}
