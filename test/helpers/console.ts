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
