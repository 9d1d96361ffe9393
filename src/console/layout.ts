import { html, type Html } from './html.js';

/** What every page needs to know about who is looking. */
export interface Viewer {
  /** CONSOLE_TOKEN is set: actions exist. */
  actionsOn: boolean;
  /** Signed in with the token; csrf is the session's token for action forms. */
  csrf?: string;
  /** The path (and query) of this page, for sign-in redirects. */
  here: string;
  flash?: { kind: 'ok' | 'error'; text: string };
}

export function page(title: string, viewer: Viewer, body: Html): Html {
  const mode = !viewer.actionsOn
    ? html`<span class="mode">read-only (no CONSOLE_TOKEN)</span>`
    : viewer.csrf
      ? html`<span class="mode">signed in: actions on · <form class="inline" method="post" action="/logout"><input type="hidden" name="csrf" value="${viewer.csrf}"><button type="submit">sign out</button></form></span>`
      : html`<span class="mode">read-only · <a href="/login?next=${encodeURIComponent(viewer.here)}">sign in to act</a></span>`;
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
<header><a href="/">정산 · Days</a><a href="/history">History <span class="note">추이</span></a><a href="/workers">Workers and the bank</a>${mode}</header>
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
  if (!viewer.actionsOn) return html`<p class="readonly">Actions are off: this console has no CONSOLE_TOKEN (read-only).</p>`;
  if (!viewer.csrf) return html`<p class="readonly"><a href="/login?next=${encodeURIComponent(viewer.here)}">Sign in with the console token</a> to ${label.toLowerCase()}.</p>`;
  return html`<form class="action" method="post" action="${action}"${opts.id ? html` id="${opts.id}"` : ''}>
<input type="hidden" name="csrf" value="${viewer.csrf}">
${fields}
<label>reason <input type="text" name="reason" required maxlength="1000" placeholder="why (recorded in the audit)"></label>
<button type="submit">${label}</button>
</form>`;
}
