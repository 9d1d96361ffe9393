/**
 * The alert webhook does not follow redirects: a real local HTTP server that
 * answers 3xx (pointing at a second real server) gets the post; the second
 * gets nothing; the answer is an error, recorded on the alert by a real
 * worker. A hook that never answers is given up after ALERT_TIMEOUT_MS.
 */
import http from 'node:http';
import { sql } from 'slonik';
import t from 'tap';
import { z } from 'zod';
import { detectAlerts } from '../../src/db/operations.js';
import { postWebhook } from '../../src/ops/webhook.js';
import { seed } from '../../src/seed.js';
import { startSim, workerEnv } from '../helpers/day.js';
import { freshDb } from '../helpers/db.js';
import { pastDate } from '../helpers/fixtures.js';
import { spawnWorker, waitFor } from '../helpers/procs.js';

type T = { teardown(fn: () => unknown): void };

/** A server that counts requests and answers each with `answer`. */
async function server(t: T, answer: (req: http.IncomingMessage, res: http.ServerResponse) => void) {
  const seen: string[] = [];
  const s = http.createServer((req, res) => {
    let b = '';
    req.on('data', (d) => (b += d));
    req.on('end', () => {
      seen.push(b);
      answer(req, res);
    });
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => {
    s.closeAllConnections();
    s.close(() => r());
  }));
  return { url: `http://127.0.0.1:${(s.address() as { port: number }).port}/hook`, seen };
}

t.test('a 3xx is an error, not followed; a hook that does not answer is given up after the timeout', async (t) => {
  const target = await server(t, (_req, res) => res.writeHead(200).end('ok'));
  for (const status of [301, 302, 303, 307, 308]) {
    const hop = await server(t, (_req, res) => res.writeHead(status, { location: target.url }).end());
    await t.rejects(postWebhook(hop.url, { text: 'secret alert text' }, 10_000), { message: new RegExp(`webhook answered HTTP ${status} \\(a redirect\\): not followed`) }, `${status}: an error`);
    t.equal(hop.seen.length, 1, `${status}: the configured URL got the post`);
  }
  t.equal(target.seen.length, 0, 'the URL redirected to got nothing');
  const ok = await server(t, (_req, res) => res.writeHead(204).end());
  await postWebhook(ok.url, { text: 'x' }, 10_000);
  t.same(ok.seen, ['{"text":"x"}'], 'a 2xx is sent');
  const silent = await server(t, () => undefined);
  await t.rejects(postWebhook(silent.url, { text: 'x' }, 300), { message: /webhook gave no answer within 300 ms/ }, 'a hook that never answers: given up after its timeout');
  const slowBody = await server(t, (_req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).write('partial'));
  await t.resolves(postWebhook(slowBody.url, { text: 'x' }, 300), 'a 200 whose body never ends: the status counts, the body is not waited for past the timeout');
});

t.test('a redirecting webhook is recorded as failed on the alert by the worker', async (t) => {
  const { url, db } = await freshDb(t);
  const sim = await startSim(t);
  const target = await server(t, (_req, res) => res.writeHead(200).end('ok'));
  const hop = await server(t, (_req, res) => res.writeHead(307, { location: target.url }).end());
  // A day whose withdrawal is overdue: its accounts are not at the bank, so it cannot settle meanwhile.
  const D = pastDate(3);
  await seed(db, { date: D, accounts: 2, kinds: ['tax'] });
  // Its deadline, relative to the test's own date (test databases start with one no test date reaches).
  await db.query(sql.unsafe`update settlement.ops_settings set withdraw_deadline = '1 day'`);
  await spawnWorker(t, workerEnv(url, sim.url, { ALERT_WEBHOOK_URL: hop.url }));
  await detectAlerts(db);
  const alert = await waitFor('the alert job tried the webhook', async () => {
    const a = await db.maybeOne(sql.type(z.object({ key: z.string(), sent: z.boolean(), send_error: z.string().nullable() }))`
      select key, sent_at is not null as sent, send_error from settlement.alerts where send_error is not null order by id limit 1`);
    return a ?? undefined;
  }, 60_000, 250);
  t.match(alert.key, new RegExp(D), 'the overdue day\'s alert');
  t.equal(alert.sent, false, 'not sent');
  t.match(alert.send_error, /webhook answered HTTP 307 \(a redirect\): not followed; set ALERT_WEBHOOK_URL to the final URL/, 'the redirect is the recorded error');
  t.ok(hop.seen.length >= 1, 'the configured URL got the post');
  t.equal(target.seen.length, 0, 'the URL it redirected to got nothing');
});
