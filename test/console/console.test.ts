/// <reference lib="dom" />
/**
 * The web console in a real browser (puppeteer-core driving the Chromium of
 * @sparticuz/chromium, headless): a day blocked by insufficient funds is
 * found on the Days page, opened, retried from the page after funding, and
 * seen reaching DONE without a reload; database text shows escaped; actions
 * without the token are refused. Screenshots of every page are saved under
 * test-artifacts/console/ (git-ignored).
 */
import { mkdirSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import chromium from '@sparticuz/chromium';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { sql } from 'slonik';
import t from 'tap';
import { z } from 'zod';
import { simAdminClient } from '../../src/bank-sim/sim-admin-client.js';
import { dailyStatus, enqueueStage } from '../../src/db/operations.js';
import { configureReconcile } from '../../src/db/reconcile.js';
import { ensureLoginRole } from '../../src/runtime.js';
import { seed } from '../../src/seed.js';
import { prepareSim, startSim, workerEnv } from '../helpers/day.js';
import { freshDb, pgClient } from '../helpers/db.js';
import { pastDate } from '../helpers/fixtures.js';
import { runCli, spawnWorker, waitFor } from '../helpers/procs.js';
import { clickToNavigate, spawnConsole } from '../helpers/console.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const ARTIFACTS = path.resolve(here, '../../../test-artifacts/console');
const CONSOLE_TOKEN = 'console-test-token-0123456789';
const CONSOLE_LOGIN = { name: 'settle_test_console', password: 'settle-test-console', role: 'settlement_operator' };
const KINDS_OF_DAY = ['tax', 'platform_fee', 'withdrawal_fee'] as const;
const krw = (n: bigint) => n.toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
/** Generous: a 2-core machine runs another test file next to this one. */
const SLOW_MS = 120_000;

async function launch(t: { teardown(fn: () => unknown): void }): Promise<Browser> {
  const browser = await puppeteer.launch({
    executablePath: await chromium.executablePath(),
    args: [...chromium.args, '--no-sandbox'],
    headless: true,
    defaultViewport: { width: 1400, height: 900 },
    protocolTimeout: 180_000,
  });
  t.teardown(() => browser.close());
  return browser;
}

const shot = (p: Page, name: string) => p.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });

function listenPort(logs: string[], event: string): Promise<number> {
  return waitFor(`${event} in the logs`, async () => {
    const line = logs.find((l) => l.includes(`"event":"${event}"`));
    return line ? (JSON.parse(line).port as number) : undefined;
  }, 60_000, 100);
}

t.test('the console: a blocked day found, retried from the page, DONE; escaped; actions need the token', async (t) => {
  mkdirSync(ARTIFACTS, { recursive: true });
  const { url, db } = await freshDb(t);
  const sim = await startSim(t);
  const D = pastDate(1);
  await seed(db, { date: D, accounts: 6, kinds: [...KINDS_OF_DAY] });
  await prepareSim(db, sim);
  // The simulator's statements are final at once, so a settled day reconciles and reaches DONE.
  await configureReconcile(db, '-1 day');
  const poor = '1000000002';
  const owedRows = await db.any(sql.type(z.object({ kind: z.string(), owed: z.bigint() }))`
    select kind::text as kind, sum(amount)::bigint as owed from settlement.accruals where account_no = ${poor} group by kind`);
  const owed = new Map(owedRows.map((r) => [r.kind, r.owed]));
  t.ok((owed.get('tax') ?? 0n) > 0n, 'the poor account owes tax');
  const totalOwed = owedRows.reduce((a, r) => a + r.owed, 0n);
  await simAdminClient(sim.url).openAccounts([{ bncd: '011', acno: poor, balance: 0n }]);

  // The console logs in as an operator; the worker itself stays settlement_worker.
  const consoleUrl = await ensureLoginRole(url, CONSOLE_LOGIN);
  const w = await spawnWorker(t, workerEnv(url, sim.url, { CONSOLE_TOKEN, CONSOLE_DATABASE_URL: consoleUrl }));
  const port = await listenPort(w.logs, 'console:listen');
  const base = `http://127.0.0.1:${port}`;
  await enqueueStage(db, 'record', D, null);
  await waitFor('tax blocked and every other kind settled or blocked', async () => {
    const rows = await dailyStatus(db, D);
    // enqueue_stage(record, D, null) opens the day for every kind; the kinds without accruals settle at once.
    return rows.length >= KINDS_OF_DAY.length && rows.every((r) => r.confirm === 'blocked' || r.withdraw === 'done') && rows.find((r) => r.kind === 'tax')?.confirm === 'blocked';
  }, 180_000, 250).catch(async (e: Error) => {
    const show = (v: unknown) => JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x));
    throw new Error(`${e.message}\nstatus: ${show(await dailyStatus(db, D))}\nworker: ${w.logs.slice(-15).join('\n')}`);
  });

  // The bank's message of a failed transfer, as if the bank had put a script in it
  // (its Rsms is stored as is): written the way only a superuser could, triggers off.
  const admin = await pgClient(t, url);
  await admin.query('begin');
  await admin.query('set local session_replication_role = replica');
  const marked = await admin.query(`update settlement.transfers set fail_message = '<script>window.__xss = 1</script> ' || fail_message where kind = 'tax' and state = 'failed'`);
  await admin.query('commit');
  t.ok((marked.rowCount ?? 0) > 0, 'a failed tax transfer carries a bank message with <script>');

  const browser = await launch(t);
  const page = await browser.newPage();
  page.setDefaultTimeout(SLOW_MS);
  page.setDefaultNavigationTimeout(SLOW_MS);
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));

  // Every page needs a sign-in: the Days page sends a stranger to the sign-in page.
  await page.goto(`${base}/`);
  t.equal(new URL(page.url()).pathname, '/login', 'not signed in: the console shows the sign-in page only');
  t.notOk((await page.content()).includes(D), 'and nothing of the days');
  await page.type('#login-form input[name=token]', 'wrong-token-wrong-token');
  await Promise.all([page.waitForNavigation(), page.click('#login-form button')]);
  t.match(await page.$eval('main', (e) => (e as HTMLElement).innerText), /Wrong token/);
  await page.type('#login-form input[name=token]', CONSOLE_TOKEN);
  await Promise.all([page.waitForNavigation(), page.click('#login-form button')]);
  t.equal(new URL(page.url()).pathname, '/', 'signed in, on the Days page');
  const cookie = (await page.cookies()).find((c) => c.name === 'settle_console');
  t.ok(cookie?.httpOnly && cookie.sameSite === 'Strict', 'the session cookie is HttpOnly and SameSite=Strict');

  // Days: tax BLOCKED with its unpaid KRW.
  const taxCell = `tr[data-date="${D}"] td[data-kind="tax"]`;
  await page.waitForSelector(`${taxCell}[data-verdict="BLOCKED"]`);
  const cellText = await page.$eval(taxCell, (e) => (e as HTMLElement).innerText);
  t.match(cellText, new RegExp(`unpaid ${krw(owed.get('tax')!)} KRW`), 'the Days page shows tax BLOCKED with its unpaid KRW');
  t.match(await page.$eval(`${taxCell} [data-stage="confirm"]`, (e) => e.getAttribute('data-state')), 'blocked', 'the confirm stage shows blocked');
  const fontLoaded = await page.evaluate(async () => {
    await document.fonts.ready;
    await document.fonts.load('16px "Noto Sans KR"', '세금');
    return Array.from(document.fonts as unknown as Iterable<FontFace>).some((f) => f.family.replace(/"/g, '') === 'Noto Sans KR' && f.status === 'loaded');
  });
  t.ok(fontLoaded, 'Noto Sans KR (from node_modules) is loaded for the Korean text');
  await shot(page, '1-days-blocked');

  // The day: the failure with the bank's code and message, escaped.
  await clickToNavigate(page, `tr[data-date="${D}"] th a[href="/day/${D}"]`);
  await page.waitForSelector('section#tax[data-verdict="BLOCKED"]');
  const messages = await page.$$eval('section#tax td.bank-message', (es) => es.map((e) => e.textContent ?? ''));
  t.ok(messages.some((m) => m.includes('<script>window.__xss = 1</script>')), 'the bank message shows <script> as text');
  t.equal(await page.evaluate(() => (window as unknown as { __xss?: number }).__xss), undefined, 'and it did not run');
  t.equal(await page.$$eval('#live script', (es) => es.length), 0, 'no script element came from the database');
  t.ok(await page.$eval('section#tax table.failures', (e) => /\*\*\*\*\d{4}/.test((e as HTMLElement).innerText)), 'account numbers are masked to their last four digits');
  t.notOk((await page.content()).includes(poor), 'the full account number appears nowhere on the page');
  t.ok(await page.$('section#tax svg.chart'), 'payout progress chart');
  await shot(page, '2-day-blocked');

  // Refused: without a session, cross-site, a wrong token, another Host.
  const noSession = await fetch(`${base}/actions/retry`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ date: D, reason: 'no token' }) });
  t.equal(noSession.status, 401, 'a retry without signing in is refused');
  t.equal((await fetch(`${base}/day/${D}`, { redirect: 'manual' })).status, 303, 'a page without signing in redirects to the sign-in page');
  const crossSite = await fetch(`${base}/actions/pause`, { method: 'POST', headers: { origin: 'http://evil.example', 'content-type': 'application/x-www-form-urlencoded' }, body: 'reason=x' });
  t.equal(crossSite.status, 403, 'a cross-site post is refused');
  const wrong = await fetch(`${base}/login`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'token=not-the-token' });
  t.equal(wrong.status, 401, 'a wrong token does not sign in');
  // (fetch may not set Host: a plain request does.)
  for (const host of [`evil.example:${port}`, `127.0.0.1.rebind.evil.example:${port}`, `127.attacker.com:${port}`]) {
    const rebound = await new Promise<number | undefined>((resolve, reject) =>
      http.get({ host: '127.0.0.1', port, path: `/day/${D}`, headers: { host, cookie: `settle_console=${cookie!.value}` } }, (res) => {
        res.resume();
        resolve(res.statusCode);
      }).on('error', reject));
    t.equal(rebound, 421, `Host ${host} is refused, even with a session (DNS rebinding)`);
  }

  // A GET never calls the bank: 20 views of the retry page ask it nothing.
  const sims = simAdminClient(sim.url);
  const balanceCalls = async () => (await sims.stats()).callsByApi.InquireBalance ?? 0;
  const before = await balanceCalls();
  const views = await page.evaluate(async (date) => {
    const out: number[] = [];
    for (let i = 0; i < 20; i++) out.push((await fetch(`/day/${date}/retry`, { credentials: 'same-origin' })).status);
    return out;
  }, D);
  t.same(views, Array(20).fill(200), '20 GETs of the retry page (signed in as an operator)');
  t.equal(await balanceCalls() - before, 0, '20 GETs of the retry page: 0 bank calls (counted at the simulator)');

  // Fund the account at the bank, see the dry run, retry with a reason.
  await simAdminClient(sim.url).openAccounts([{ bncd: '011', acno: poor, balance: totalOwed }]);
  await clickToNavigate(page, '#retry-link');
  await page.waitForSelector('#retry-preview');
  const unasked = await page.$eval('#retry-preview', (e) => (e as HTMLElement).innerText);
  t.match(unasked, /tax/, 'the dry run lists tax');
  t.match(unasked, /not asked yet/, 'a page view does not ask the bank');
  const paying = await page.$$eval('#retry-preview tbody tr', (rs) => rs.filter((r) => r.querySelector('td:nth-child(2)')?.textContent === 'payout').length);
  const beforeAsk = await balanceCalls();
  await Promise.all([page.waitForNavigation(), page.click('#balance-form button[type=submit]')]);
  await page.waitForSelector('#retry-preview');
  const preview = await page.$eval('#retry-preview', (e) => (e as HTMLElement).innerText);
  t.match(preview, /available [0-9,]+ KRW, enough/, 'the operator\'s POST asked the bank: the account can pay now');
  t.equal(await balanceCalls() - beforeAsk, paying, `one InquireBalance per paying account (${paying})`);
  const again = await page.evaluate(async (date) => {
    const csrf = (document.querySelector('#balance-form input[name=csrf]') as HTMLInputElement).value;
    const r = await fetch(`/day/${date}/retry`, { method: 'POST', body: new URLSearchParams({ csrf, kind: '' }), credentials: 'same-origin' });
    return { status: r.status, text: await r.text() };
  }, D);
  t.equal(again.status, 429, 'asked again at once: refused (once a minute per day and kind)');
  t.match(again.text, /Try again in \d+ s/);
  t.equal(await balanceCalls() - beforeAsk, paying, 'and the bank was not asked again');
  t.equal(await db.oneFirst(sql.type(z.object({ n: z.bigint() }))`select count(*) as n from settlement.transfers where state = 'failed'`) > 0n, true, 'the dry run changed nothing');
  await shot(page, '3-retry-dry-run');
  const reason = 'loan account funded <script>window.__xss2 = 1</script>';
  await page.type('#retry-form input[name=reason]', reason);
  await Promise.all([page.waitForNavigation(), page.click('#retry-form button[type=submit]')]);
  t.equal(new URL(page.url()).pathname, `/day/${D}`);
  t.match(await page.$eval('.flash', (e) => e.textContent ?? ''), /Re-enqueued \d+ failed transfer\(s\)/);

  // The page follows the day to DONE by itself, without a reload.
  await page.evaluate(() => ((window as unknown as { __samePage: string }).__samePage = 'yes'));
  await page.waitForFunction(
    (kinds: string[]) => kinds.every((k) => {
      const s = document.querySelector(`section#${k}`);
      return s && s.querySelector('.stages [data-stage="reconcile"]')?.getAttribute('data-state') === 'done' && s.getAttribute('data-verdict') === 'DONE';
    }),
    { timeout: 180_000, polling: 500 },
    [...KINDS_OF_DAY],
  );
  t.equal(await page.evaluate(() => (window as unknown as { __samePage?: string }).__samePage), 'yes', 'updated in place (no full reload)');
  t.ok(await page.evaluate(() => (window as unknown as { __consoleRefreshes: number }).__consoleRefreshes) > 0, 'the live region refreshed');
  t.equal(await page.$eval('section#tax', (e) => e.getAttribute('data-verdict')), 'DONE', 'tax reached DONE: paid, withdrawn and reconciled with the statement');
  // The audit of the day shows the reason as text.
  await page.reload();
  await page.waitForSelector('table.audit td.reason');
  const reasons = await page.$$eval('table.audit td.reason', (es) => es.map((e) => e.textContent ?? ''));
  t.ok(reasons.includes(reason), 'the operator action is on the day with its reason, shown as text');
  t.equal(await page.evaluate(() => (window as unknown as { __xss2?: number }).__xss2), undefined);
  await shot(page, '4-day-done');
  const audit = await db.one(sql.type(z.object({ reason: z.string().nullable(), application_name: z.string(), db_user: z.string() }))`
    select reason, application_name, db_user from settlement.operator_actions where action = 'retry_day' order by id desc limit 1`);
  t.same(audit, { reason, application_name: 'settle-console:operator', db_user: CONSOLE_LOGIN.name }, 'audited: who (the console\'s login and the person signed in), from where (settle-console), why');

  // Workers and the bank; pause and resume a kind from the page.
  await page.goto(`${base}/workers`);
  await page.waitForSelector(`#workers tr[data-pool="${w.poolId}"]`);
  t.match(await page.$eval('#bank-slots', (e) => (e as HTMLElement).innerText), /of 8/, 'bank slots against BANK_MAX_IN_FLIGHT');
  await page.select('#pause-form select[name=kind]', 'tax');
  await page.type('#pause-form input[name=reason]', 'NH incident 1234');
  await Promise.all([page.waitForNavigation(), page.click('#pause-form button[type=submit]')]);
  await page.waitForSelector('#pauses tr[data-kind="tax"]');
  t.match(await page.$eval('#pauses', (e) => (e as HTMLElement).innerText), /NH incident 1234/, 'tax shows paused with its reason');
  await shot(page, '5-workers-paused');
  await page.select('#resume-form select[name=kind]', 'tax');
  await page.type('#resume-form input[name=reason]', 'NH incident over');
  await Promise.all([page.waitForNavigation(), page.click('#resume-form button[type=submit]')]);
  await page.waitForSelector('p#pauses');
  const actions = await db.anyFirst(sql.type(z.object({ action: z.string() }))`select action from settlement.operator_actions where application_name like 'settle-console:%' order by id`);
  t.same(actions, ['retry_day', 'pause', 'resume'], 'every console action went through an audited operator function');
  await shot(page, '6-workers');
  t.same(pageErrors, [], 'no script error on any page');
});

t.test('settle console: off without a user (exit 2); with a viewer token it reads and cannot act', async (t) => {
  const { url } = await freshDb(t);
  const consoleUrl = await ensureLoginRole(url, CONSOLE_LOGIN);
  const off = await runCli(['console'], { DATABASE_URL: consoleUrl, HTTP_PORT: '0', CONSOLE_TOKEN: '', CONSOLE_VIEWER_TOKEN: '', CONSOLE_USERS: '' });
  t.equal(off.code, 2, 'no user configured: a configuration error');
  t.match(off.stderr, /the web console is off \(every page needs a sign-in\)/);
  const VIEWER_TOKEN = 'viewer-token-0123456789abc';
  const { base, stop } = await spawnConsole(t, { DATABASE_URL: consoleUrl, CONSOLE_VIEWER_TOKEN: VIEWER_TOKEN });
  t.equal((await fetch(`${base}/`, { redirect: 'manual' })).status, 303, 'no page without a sign-in');
  t.equal((await fetch(`${base}/healthz`, { headers: { host: 'pod.example' } })).status, 200, '/healthz needs none, whatever the Host');
  const browser = await launch(t);
  const page = await browser.newPage();
  page.setDefaultTimeout(SLOW_MS);
  page.setDefaultNavigationTimeout(SLOW_MS);
  await page.goto(`${base}/workers`);
  await page.type('#login-form input[name=token]', VIEWER_TOKEN);
  await Promise.all([page.waitForNavigation(), page.click('#login-form button')]);
  t.equal(new URL(page.url()).pathname, '/workers', 'signed in as the viewer, on the page asked for');
  await page.waitForSelector('.readonly');
  t.match(await page.$eval('main', (e) => (e as HTMLElement).innerText), /No worker is registered/);
  t.match(await page.$eval('main', (e) => (e as HTMLElement).innerText), /Pause needs an operator: viewer is a viewer/);
  const post = await page.evaluate(async () => {
    const csrf = (document.querySelector('header input[name=csrf]') as HTMLInputElement).value;
    const r = await fetch('/actions/pause', { method: 'POST', body: new URLSearchParams({ csrf, kind: 'tax', reason: 'x' }), credentials: 'same-origin' });
    return { status: r.status, text: await r.text() };
  });
  t.equal(post.status, 403, 'a viewer\'s action is refused');
  t.match(post.text, /viewer is a viewer; this needs an operator/);
  await shot(page, '7-viewer-workers');
  t.equal(await stop(), 0, 'SIGTERM stops it cleanly');
});
