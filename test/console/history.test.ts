/// <reference lib="dom" />
/**
 * The console's History page and a day's Report tab in a real browser
 * (puppeteer-core driving @sparticuz/chromium, headless), on 30 business
 * days settled by a real worker against the bank simulator over HTTP: three
 * kinds a day; on four days a loan account has no money, the day blocks,
 * then is funded and retried (its failed attempts show in the history).
 *
 * A backfill of 30 days all settles today, so the hours from the end of each
 * day to DONE would be its age. To draw what a month of daily runs looks
 * like, the stages' finish times are moved back, as a superuser, to "the
 * night after the business date": the state such a month leaves (the
 * transfers keep today's times; the history does not read them). The
 * page is then checked against the database: every date, its KRW paid, its
 * failures, its hours to DONE. Screenshots go to test-artifacts/console/.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import chromium from '@sparticuz/chromium';
import puppeteer from 'puppeteer-core';
import { sql } from 'slonik';
import t from 'tap';
import { z } from 'zod';
import { simAdminClient } from '../../src/bank-sim/sim-admin-client.js';
import { configureReconcile } from '../../src/db/reconcile.js';
import { enqueueStage } from '../../src/db/operations.js';
import type { Kind } from '../../src/domain.js';
import { ensureLoginRole } from '../../src/runtime.js';
import { seed } from '../../src/seed.js';
import { prepareSim, startSim, workerEnv } from '../helpers/day.js';
import { freshDb, pgClient } from '../helpers/db.js';
import { pastDate } from '../helpers/fixtures.js';
import { spawnWorker, waitFor } from '../helpers/procs.js';
import { spawnConsole } from '../helpers/console.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const VIEWER_TOKEN = 'history-viewer-token-0123456789abcdef';
const ARTIFACTS = path.resolve(here, '../../../test-artifacts/console');
const VIEWER = { name: 'settle_test_viewer', password: 'settle-test-viewer', role: 'settlement_viewer' };
const KINDS_OF_DAY: Kind[] = ['tax', 'platform_fee', 'withdrawal_fee'];
const DAYS = 30;
const POOR_DAYS = new Set([4, 11, 12, 23]);
const POOR = '1000000003';
const SLOW_MS = 240_000;

t.test('History: 30 settled days in pictures; a day\'s Report tab', async (t) => {
  mkdirSync(ARTIFACTS, { recursive: true });
  const { url, db } = await freshDb(t);
  const sim = await startSim(t);
  // The dates, once: the run may cross midnight KST, after which pastDate(i) names another day.
  const dates = Array.from({ length: DAYS }, (_, i) => pastDate(i + 1));
  const ago = (i: number) => dates[i - 1]!;
  for (let i = 1; i <= DAYS; i++) await seed(db, { date: ago(i), accounts: POOR_DAYS.has(i) ? 3 : 2, kinds: KINDS_OF_DAY, seed: i });
  await prepareSim(db, sim);
  await simAdminClient(sim.url).openAccounts([{ bncd: '011', acno: POOR, balance: 0n }]);
  await configureReconcile(db, '-1 day');
  const w = await spawnWorker(t, workerEnv(url, sim.url, { WORKER_CONCURRENCY: '8' }));
  await enqueueStage(db, 'record', null, null);

  const states = () => db.one(sql.type(z.object({ reconciled: z.bigint(), blocked: z.bigint() }))`
    select count(*) filter (where stage = 'reconcile' and state = 'done') as reconciled,
           count(*) filter (where stage = 'confirm' and state = 'blocked') as blocked from settlement.stage_runs`);
  const total = BigInt(DAYS * KINDS_OF_DAY.length);
  const blockedKinds = BigInt(POOR_DAYS.size * KINDS_OF_DAY.length);
  await waitFor('every day reconciled but the poor account\'s, which are blocked', async () => {
    const s = await states();
    return s.reconciled + s.blocked === total && s.blocked === blockedKinds;
  }, SLOW_MS, 500).catch(async (e: Error) => {
    throw new Error(`${e.message}: ${JSON.stringify(await states(), (_k, v) => (typeof v === 'bigint' ? v.toString() : v))}\n${w.logs.slice(-10).join('\n')}`);
  });
  // Funded, then retried (as on-call would, from settle retry).
  await simAdminClient(sim.url).openAccounts([{ bncd: '011', acno: POOR, balance: 100_000_000n }]);
  for (const i of POOR_DAYS) await db.query(sql.unsafe`select * from settlement.retry_day(${ago(i)}::date, null)`);
  await waitFor('every day reconciled', async () => (await states()).reconciled === total, SLOW_MS, 500);

  // A month of nightly runs: each stage finished in the night after its business date.
  const admin = await pgClient(t, url);
  await admin.query(`
    update settlement.stage_runs r set finished_at = ((r.business_date + 1)::timestamp at time zone 'Asia/Seoul')
      + make_interval(mins => 20 + 7 * (extract(day from r.business_date)::int % 9) + 5 * array_position(enum_range(null::settlement.stage), r.stage)
                              + case when r.business_date = any($1::date[]) then 180 else 0 end)
    where r.state = 'done'`, [[...POOR_DAYS].map((i) => ago(i))]);

  const expected = await db.any(sql.type(z.object({ d: z.string(), paid: z.bigint(), failures: z.bigint(), hours: z.number() }))`
    select t.business_date::text as d, sum(t.amount) filter (where t.purpose = 'payout' and t.state = 'succeeded')::bigint as paid,
           (select count(*) from settlement.transfer_attempts a join settlement.transfers x on x.id = a.transfer_id
            where x.business_date = t.business_date and a.outcome = 'failed') as failures,
           (select extract(epoch from max(r.finished_at) - ((r.business_date + 1)::timestamp at time zone 'Asia/Seoul'))::float8 / 3600
            from settlement.stage_runs r where r.business_date = t.business_date group by r.business_date) as hours
    from settlement.transfers t group by t.business_date order by 1`);
  t.same(expected.map((e) => e.d), [...dates].reverse(), '30 business dates');
  t.ok(expected.filter((e) => e.failures > 0n).length === POOR_DAYS.size, 'four days with failed attempts');

  // The console alone (settle console) as a viewer: read-only is enough.
  const viewerUrl = await ensureLoginRole(url, VIEWER);
  const { base, stop } = await spawnConsole(t, { DATABASE_URL: viewerUrl, CONSOLE_VIEWER_TOKEN: VIEWER_TOKEN });

  const browser = await puppeteer.launch({
    executablePath: await chromium.executablePath(), args: [...chromium.args, '--no-sandbox'], headless: true,
    defaultViewport: { width: 1200, height: 900 }, protocolTimeout: 180_000,
  });
  t.teardown(() => browser.close());
  const page = await browser.newPage();
  page.setDefaultTimeout(SLOW_MS);
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  // Every console page needs a sign-in: the viewer's, through the sign-in form.
  await page.goto(`${base}/login`);
  await page.type('#login-form input[name=token]', VIEWER_TOKEN);
  await Promise.all([page.waitForNavigation(), page.click('#login-form button')]);

  // Without JavaScript: the pictures are in the HTML. (The 90-day page holds
  // every seeded date whenever the test runs; the 30-day one is checked below
  // against the database's own window.)
  await page.setJavaScriptEnabled(false);
  await page.goto(`${base}/history?days=90`);
  await page.waitForSelector('figure#paid svg');
  const bars = await page.$$eval('figure#paid g.day', (gs) => gs.map((g) => [g.getAttribute('data-date'), g.getAttribute('data-paid')]));
  t.same(bars, expected.map((e) => [e.d, e.paid.toString()]), 'KRW paid per day: every date, to the won (stacked bars, server-rendered)');
  const kindsDrawn = await page.$$eval('figure#paid g.day rect', (rs) => [...new Set(rs.map((r) => r.getAttribute('class')))].sort());
  t.same(kindsDrawn, KINDS_OF_DAY.map((k) => `k-${k}`).sort(), 'stacked by kind');
  const done = await page.$$eval('figure#done rect.done', (rs) => rs.map((r) => [r.getAttribute('data-date'), r.querySelector('title')?.textContent ?? '']));
  t.equal(done.length, DAYS, 'every day DONE, with its hours');
  for (const e of expected) {
    const d = done.find(([x]) => x === e.d);
    t.match(d?.[1], `DONE ${e.hours.toFixed(1)} h after the day ended`, `${e.d}: ${e.hours.toFixed(1)} h to DONE`);
  }
  const trouble = await page.$$eval('figure#trouble g[data-date]', (gs) => gs.map((g) => [g.getAttribute('data-date'), g.getAttribute('data-failures')]));
  t.same(trouble, expected.map((e) => [e.d, e.failures.toString()]), 'failures per day');
  t.match(await page.$eval('.history-summary', (e) => e.textContent ?? ''), /30 business date\(s\)/);
  await page.screenshot({ path: path.join(ARTIFACTS, 'history-90.png'), fullPage: true });

  // With JavaScript, the Korean labels in the shipped font.
  await page.setJavaScriptEnabled(true);
  await page.goto(`${base}/history`);
  const fontLoaded = await page.evaluate(async () => {
    await document.fonts.ready;
    await document.fonts.load('13px "Noto Sans KR"', '일별 지급액');
    return Array.from(document.fonts as unknown as Iterable<FontFace>).some((f) => f.family.replace(/"/g, '') === 'Noto Sans KR' && f.status === 'loaded');
  });
  t.ok(fontLoaded, 'Noto Sans KR (from node_modules) renders the Korean labels');
  t.equal(await page.$eval('figure#paid svg text.title', (e) => getComputedStyle(e).fontFamily.includes('Noto Sans KR')), true, 'the charts\' text uses it');
  const from30 = await db.oneFirst(sql.type(z.object({ d: z.string() }))`
    select ((now() at time zone 'Asia/Seoul')::date - 30)::text as d`);
  t.same(await page.$$eval('figure#paid g.day', (gs) => gs.map((g) => g.getAttribute('data-date'))), expected.map((e) => e.d).filter((d) => d >= from30),
    'the last 30 days: the seeded dates from today - 30 on');
  await page.screenshot({ path: path.join(ARTIFACTS, 'history-30.png'), fullPage: true });

  // A poor day's Report tab.
  const D = ago(11);
  await page.goto(`${base}/day/${D}`);
  await Promise.all([page.waitForNavigation(), page.click('#report-tab')]);
  await page.waitForSelector('table#report');
  const heads = await page.$$eval('table#report thead th[data-kind]', (es) => es.map((e) => e.getAttribute('data-kind')));
  t.same(heads, [...KINDS_OF_DAY, 'TOTAL'], 'a column per kind and the total');
  const paid = await page.$eval('table#report tr[data-figure="paid_krw"] td.total', (e) => e.textContent ?? '');
  t.equal(paid.replace(/,/g, ''), expected.find((e) => e.d === D)!.paid.toString(), 'the total paid, to the won');
  t.ok(await page.$(`a#report-csv[href="/day/${D}/report.csv"]`), 'the CSV download');
  await page.screenshot({ path: path.join(ARTIFACTS, 'report-tab.png'), fullPage: true });
  t.same(pageErrors, [], 'no script error');
  t.equal(await stop(), 0, 'SIGTERM stops it cleanly');
});
