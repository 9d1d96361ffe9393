/**
 * Signing in to the console over HTTP, as a browser's form post does
 * (POST /login with the token): returns the session cookie to send along.
 */
export async function consoleSession(base: string, token: string): Promise<string> {
  const r = await fetch(`${base}/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token, next: '/' }).toString(),
  });
  const cookie = r.headers.get('set-cookie');
  if (r.status !== 303 || !cookie) throw new Error(`console sign-in failed: HTTP ${r.status}`);
  return cookie.split(';')[0]!;
}

/**
 * Clicks a link or button and waits for the navigation it starts. The
 * console's live pages replace their region while the test runs (a refresh
 * every few seconds), so the element found can be replaced before the click
 * lands ("Node is detached from document"): then it is found again and
 * clicked again — how slow the machine is decides how often, not whether.
 */
export async function clickToNavigate(page: import('puppeteer-core').Page, selector: string): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      await Promise.all([page.waitForNavigation(), page.click(selector)]);
      return;
    } catch (e) {
      if (i >= 10 || !/detached|not clickable|No node found/i.test((e as Error).message)) throw e;
    }
  }
}
