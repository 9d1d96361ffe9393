/**
 * POSTs a JSON body; any answer but 2xx, a timeout or a network error throws.
 * A redirect is not followed (the alert's text must not go to another URL
 * than ALERT_WEBHOOK_URL): a 3xx is an error, recorded on the alert. The
 * timeout covers the whole exchange, the answer's body included.
 */
export async function postWebhook(url: string, body: unknown, timeoutMs: number): Promise<void> {
  const signal = AbortSignal.timeout(timeoutMs);
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      redirect: 'manual',
      signal,
    });
  } catch (e) {
    if (signal.aborted) throw new Error(`webhook gave no answer within ${timeoutMs} ms`);
    throw new Error(`webhook unreachable: ${(e as Error).message}${(e as { cause?: Error }).cause ? ` (${(e as { cause: Error }).cause.message})` : ''}`);
  }
  await res.arrayBuffer().catch(() => undefined);
  if (res.status >= 300 && res.status < 400) {
    throw new Error(`webhook answered HTTP ${res.status} (a redirect${res.headers.get('location') ? '' : ' without a location'}): not followed; set ALERT_WEBHOOK_URL to the final URL`);
  }
  if (!res.ok) throw new Error(`webhook answered HTTP ${res.status}`);
}
