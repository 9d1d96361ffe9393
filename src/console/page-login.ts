import { html, type Html } from './html.js';
import { page, type Viewer } from './layout.js';

/** Where to go after signing in: a path of this console only. */
export const safeNext = (next: string | null | undefined): string => (next && /^\/(?!\/)[^\s\\]*$/.test(next) ? next : '/');

export function loginPage(viewer: Viewer, next: string, error: string | undefined): Html {
  if (!viewer.actionsOn) {
    return page('Sign in', viewer, html`<h1>Sign in</h1><p class="readonly">Actions are off: this console has no CONSOLE_TOKEN, so it is read-only and there is nothing to sign in to.</p>`);
  }
  return page('Sign in', viewer, html`<h1>Sign in to act</h1>
<p>Retry, pause, resume and enqueue need the console token (CONSOLE_TOKEN). Reading needs nothing.</p>
${error ? html`<p class="flash error" role="alert">${error}</p>` : ''}
<form class="action" method="post" action="/login" id="login-form">
<input type="hidden" name="next" value="${safeNext(next)}">
<label>console token <input type="password" name="token" required autocomplete="current-password"></label>
<button type="submit">Sign in</button>
</form>`);
}
