import { html, type Html } from './html.js';
import { page, type Viewer } from './layout.js';

/** Where to go after signing in: a path of this console only. */
export const safeNext = (next: string | null | undefined): string => (next && /^\/(?!\/)[^\s\\]*$/.test(next) ? next : '/');

export function loginPage(viewer: Viewer, next: string, error: string | undefined): Html {
  return page('Sign in', viewer, html`<h1>Sign in</h1>
<p>Every page of the console needs a sign-in: type your console token (a viewer reads; an operator also retries, pauses, resumes and enqueues).</p>
${error ? html`<p class="flash error" role="alert" id="login-error">${error}</p>` : ''}
<form class="action" method="post" action="/login" id="login-form">
<input type="hidden" name="next" value="${safeNext(next)}">
<label>console token <input type="password" name="token" required autocomplete="current-password"></label>
<button type="submit">Sign in</button>
</form>`);
}
