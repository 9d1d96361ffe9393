/**
 * The Changes page (/changes): pending proposals of the reference data, approved
 * or rejected by a second operator with their OWN database login (README
 * "Security"). Real Postgres, real logins, the console over real HTTP, and one
 * approval in a real headless Chromium (screenshots under test-artifacts/console/).
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import chromium from '@sparticuz/chromium';
import pg from 'pg';
import puppeteer from 'puppeteer-core';
import { sql } from 'slonik';
import t from 'tap';
import { z } from 'zod';
import type { ConsoleUser } from '../../src/config.js';
import { CONSOLE_POOL_SIZE } from '../../src/console/mount.js';
import { createConsole } from '../../src/console/server.js';
import { createDbPool } from '../../src/db/pool.js';
import { createLogger } from '../../src/log.js';
import { ensureLoginRole } from '../../src/runtime.js';
import { seed } from '../../src/seed.js';
import { consoleSession, serveConsole } from '../helpers/console.js';
import { adminQuery, freshDb } from '../helpers/db.js';
import { pastDate } from '../helpers/fixtures.js';
import { asLogin, TEST_WORKER_LOGIN } from '../helpers/roles.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const ARTIFACTS = path.resolve(here, '../../../test-artifacts/console');
type T = { teardown(fn: () => unknown): void };

/**
 * A database with a pending-able payee, two operators' own logins (alice, bob:
 * their console users carry the same names), a viewer, and a console whose
 * database login is an operator marked shared (settlement_shared).
 */
const trustRefusal = (login: string) => new RegExp(`passwords_not_checked \\(ST093\\): the database lets the login ${login} in without checking its password`);

async function setup(t: T) {
  const { url, db } = await freshDb(t);
  await seed(db, { date: pastDate(1), accounts: 2, kinds: ['tax'] });
  const suffix = randomBytes(3).toString('hex');
  const people = { alice: { name: `cc_alice_${suffix}`, password: `alice-pw-${suffix}` }, bob: { name: `cc_bob_${suffix}`, password: `bob-pw-${suffix}` } };
  const clients: pg.Client[] = [];
  t.teardown(async () => {
    for (const c of clients) await c.end().catch(() => undefined);
    for (const p of Object.values(people)) await adminQuery(`drop role if exists ${p.name}`).catch(() => undefined);
  });
  for (const p of Object.values(people)) await adminQuery(`create role ${p.name} login password '${p.password}'; grant settlement_operator to ${p.name}`);
  const connect = async (login: { name: string; password: string }) => {
    const c = new pg.Client({ connectionString: asLogin(url, login) });
    await c.connect();
    clients.push(c);
    return c;
  };
  const alice = await connect(people.alice);
  const consoleLogin = { name: 'settle_test_console_changes', password: 'settle-test-console-changes', role: 'settlement_operator, settlement_shared' };
  const consoleUrl = await ensureLoginRole(url, consoleLogin);
  const cdb = await createDbPool(consoleUrl, { maximumPoolSize: CONSOLE_POOL_SIZE, applicationName: 'settle-console' });
  t.teardown(() => cdb.end());
  const users: ConsoleUser[] = [
    { name: people.alice.name, role: 'operator', token: `alice-token-${suffix}-0123456789` },
    { name: people.bob.name, role: 'operator', token: `bob-token-${suffix}-0123456789` },
    { name: 'vic', role: 'viewer', token: `vic-token-${suffix}-0123456789` },
  ];
  const web = createConsole({ db: cdb, databaseUrl: consoleUrl, users, consoleHost: '127.0.0.1', hostnames: [], logger: createLogger('silent') });
  const port = await serveConsole(t, web);
  const base = `http://127.0.0.1:${port}`;
  const propose = async (corporate: string, reason: string) =>
    (await alice.query(`select settlement.propose_change('kind_accounts', $1::jsonb, $2) as id`, [JSON.stringify({ kind: 'tax', corporate_account: corporate }), reason])).rows[0].id as string;
  const corp = () => db.oneFirst(sql.type(z.object({ x: z.string() }))`select corporate_account as x from settlement.kind_accounts where kind = 'tax'`);
  const state = (id: string) => db.oneFirst(sql.type(z.object({ s: z.string() }))`select state || ' ' || coalesce(decided_by, '-') as s from settlement.changes where id = ${id}::bigint`);
  const audits = () => db.oneFirst(sql.type(z.object({ n: z.bigint() }))`select count(*) as n from settlement.operator_actions where action in ('approve_change', 'reject_change')`);
  // A server that lets a login in with any password (trust authentication, as
  // a developer's DATABASE_URL may be) cannot tell a person by their password:
  // the page then decides nothing (ST093).
  const probe = new pg.Client({ connectionString: asLogin(url, { name: people.bob.name, password: 'not-the-password' }) });
  probe.on('error', () => undefined);
  const trust = await probe.connect().then(() => true, () => false);
  await probe.end().catch(() => undefined);
  return { url, db, people, users, base, consoleUrl, connect, propose, corp, state, audits, trust };
}

t.test('the Changes page: a second operator approves with their own login; the proposer, a viewer, the console\'s own login, an expired proposal and bad input are refused and change nothing', async (t) => {
  const s = await setup(t);
  const [alice, bob, vic] = s.users as [ConsoleUser, ConsoleUser, ConsoleUser];
  const id = await s.propose('3000000002', 'tax goes to the new corporate account');
  const sessions = { alice: await consoleSession(s.base, alice.token), bob: await consoleSession(s.base, bob.token), vic: await consoleSession(s.base, vic.token) };
  const get = async (cookie: string) => {
    const r = await fetch(`${s.base}/changes`, { headers: { cookie } });
    t.equal(r.status, 200);
    return r.text();
  };
  const csrfOf = (html: string) => /name="csrf" value="([^"]+)"/.exec(html)![1]!;
  /** A form post as the page sends it; answers the status and the flash shown on the page it leads to. */
  const post = async (cookie: string, action: string, fields: Record<string, string>) => {
    const csrf = csrfOf(await get(cookie));
    const r = await fetch(`${s.base}/actions/${action}`, {
      method: 'POST', redirect: 'manual', headers: { cookie, 'content-type': 'application/x-www-form-urlencoded', referer: `${s.base}/changes` },
      body: new URLSearchParams({ csrf, ...fields }).toString(),
    });
    if (r.status !== 303) return { status: r.status, flash: await r.text() };
    const page = await get(cookie);
    return { status: r.status, flash: /<div class="flash [^"]*" role="status">([^<]*)<\/div>/.exec(page)?.[1] ?? '' };
  };

  // The page shows the pending change: target, before / after (masked), proposer, reason, age and expiry in KST.
  const page = await get(sessions.bob);
  t.match(page, new RegExp(`<section class="change" id="change-${id}"`), 'the pending change is listed');
  t.match(page, /<h3>#\d+ kind_accounts <span class="note">needs a second person<\/span><\/h3>/);
  t.match(page, /<code class="before">[^<]*&quot;corporate_account&quot;:&quot;\*\*\*\*0001&quot;/, 'the row before, account masked');
  t.match(page, /<code class="after">[^<]*&quot;corporate_account&quot;:&quot;\*\*\*\*0002&quot;/, 'the row after, account masked');
  t.notMatch(page, /3000000002/, 'no full account number on the page');
  t.match(page, new RegExp(`by <strong class="proposer">${alice.name}</strong> at \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d KST \\(\\d+ s ago\\)`), 'proposer and when, in KST');
  t.match(page, /tax goes to the new corporate account/, 'the reason');
  t.match(page, /<td class="expires">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d KST \(in (2[34]\.?\d* h|1 d)\)<\/td>/, 'expiry in KST, about 24 h ahead');
  t.match(page, new RegExp(`id="approve-${id}"`), 'bob may approve');
  t.match(page, /<a href="\/changes">Changes/, 'the page is in the header');

  // A viewer reads, cannot act.
  const vpage = await get(sessions.vic);
  t.match(vpage, /Approving or rejecting needs an operator: vic is a viewer/);
  t.notMatch(vpage, /action="\/actions\/approve-change"/, 'no form for a viewer');
  const v = await post(sessions.vic, 'approve-change', { id, reason: 'viewer tries', password: s.people.bob.password });
  t.equal(v.status, 403, 'a viewer\'s approval: 403');
  t.match(v.flash, /is a viewer; this needs an operator/);

  // The proposer: no approve form, and a post is refused before any password is used.
  t.match(await get(sessions.alice), new RegExp(`You \\(${alice.name}\\) proposed this change: another operator must approve it`));
  const self = await post(sessions.alice, 'approve-change', { id, reason: 'looks right to me', password: s.people.alice.password });
  t.equal(self.status, 303);
  t.match(self.flash, new RegExp(`Not done: change_needs_another_person \\(ST064\\): change #${id} was proposed by ${alice.name}: another operator must approve it`), 'the proposer is refused, by name');

  // Bad input: a named error each, nothing changes.
  const bad = [
    [{ id, password: s.people.bob.password }, /reason_required \(ST040\): approve: a reason is required/],
    [{ id, reason: '   ', password: s.people.bob.password }, /reason_required \(ST040\)/],
    [{ reason: 'ok', password: s.people.bob.password }, /change_not_found \(ST061\)/],
    [{ id: 'abc', reason: 'ok', password: s.people.bob.password }, /change_not_found \(ST061\)/],
    [{ id: '987654', reason: 'ok', password: s.people.bob.password }, /change_not_found \(ST061\): no change #987654/],
    [{ id, reason: 'ok' }, /own_login_required \(ST091\): a change is decided with your own database login/],
    [{ id, reason: 'ok', password: 'not-bobs-password' }, s.trust ? trustRefusal(bob.name)
      : new RegExp(`own_login_refused \\(ST092\\): the database refused the login ${bob.name} with that password \\(28P01\\); nothing changed`)],
  ] as const;
  for (const [form, want] of bad) {
    const fields = form as Record<string, string>;
    const r = await post(sessions.bob, 'approve-change', fields);
    t.match(r.flash, want, `refused: ${JSON.stringify({ ...fields, password: fields['password'] ? '…' : undefined })}`);
  }
  const rj = await post(sessions.bob, 'reject-change', { id, password: s.people.bob.password });
  t.match(rj.flash, /reason_required \(ST040\): reject: a reason is required/, 'a rejection needs a reason too');
  t.equal(await s.corp(), '3000000001', 'nothing applied');
  t.equal(await s.state(id), 'pending -', 'still pending');
  t.equal(await s.audits(), 0n, 'no decision audited');

  // A stolen worker environment: neither the worker's login nor the console's own (shared) login approves.
  const workerUrl = await ensureLoginRole(s.url, TEST_WORKER_LOGIN);
  const codeOf = (p: Promise<unknown>) => p.then(() => 'ok', (e: { code?: string }) => e.code ?? 'error');
  const w = new pg.Client({ connectionString: workerUrl });
  await w.connect();
  t.teardown(() => w.end());
  t.equal(await codeOf(w.query(`select settlement.approve_change($1, 'stolen')`, [id])), '42501', 'the worker login may not call approve_change');
  const c = new pg.Client({ connectionString: s.consoleUrl });
  await c.connect();
  t.teardown(() => c.end());
  t.equal(await codeOf(c.query(`select settlement.approve_change($1, 'stolen')`, [id])), 'ST090', 'the console\'s shared login may not approve (ST090)');
  await c.query(`select set_config('application_name', $1, false)`, [`settle-console:${bob.name}`]);
  t.equal(await codeOf(c.query(`select settlement.approve_change($1, 'as bob')`, [id])), 'ST090', 'naming a person in application_name changes nothing');
  t.equal(await s.corp(), '3000000001', 'still nothing applied');

  // Bob approves with his own login: applied once, both names in the audit.
  const ok = await post(sessions.bob, 'approve-change', { id, reason: 'confirmed with finance', password: s.people.bob.password });
  if (s.trust) {
    t.match(ok.flash, trustRefusal(bob.name), 'a server that does not check passwords: the page decides nothing (ST093)');
    t.equal(await s.corp(), '3000000001', 'nothing applied');
    t.equal(await s.audits(), 0n, 'no decision audited');
    t.comment('DATABASE_URL\'s server lets logins in without a password: the approval itself is checked on a server that checks passwords (npm test without DATABASE_URL)');
    return;
  }
  t.match(ok.flash, new RegExp(`Change #${id} approved and applied \\(proposed by ${alice.name}, approved by ${bob.name}\\)`));
  t.equal(await s.corp(), '3000000002', 'applied');
  t.equal(await s.state(id), `applied ${bob.name}`, 'decided by bob\'s own login');
  const audit = await s.db.any(sql.type(z.object({ db_user: z.string(), application_name: z.string(), reason: z.string().nullable(), args: z.any() }))`
    select db_user, application_name, reason, args from settlement.operator_actions where action = 'approve_change'`);
  t.equal(audit.length, 1, 'one approval audited');
  t.same({ db_user: audit[0]!.db_user, application_name: audit[0]!.application_name, reason: audit[0]!.reason, proposed_by: audit[0]!.args.proposed_by, approved_by: audit[0]!.args.approved_by },
    { db_user: bob.name, application_name: `settle-console:${bob.name}`, reason: 'confirmed with finance', proposed_by: alice.name, approved_by: bob.name }, 'the audit names both people');
  const alerts = await s.db.anyFirst(sql.type(z.object({ key: z.string() }))`select key from settlement.alerts where key like ${`change:${id}:%`} order by key`);
  t.same(alerts, [`change:${id}:applied`, `change:${id}:proposed`], 'the proposal and the applied change each raised an alert, once');
  const again = await post(sessions.bob, 'approve-change', { id, reason: 'again', password: s.people.bob.password });
  t.match(again.flash, /change_not_pending \(ST062\)/, 'a second approval is refused');
  t.equal(await s.audits(), 1n, 'still one');
  const after = await get(sessions.vic);
  t.match(after, new RegExp(`<tr data-change="${id}" class="applied">.*APPLIED.*by ${bob.name} at [^:]*:\\d\\d:\\d\\d KST: confirmed with finance`, 's'), 'decided changes are listed');

  // An expired proposal cannot be approved.
  const old = await s.propose('3000000001', 'back to the old account');
  await s.db.query(sql.unsafe`update settlement.changes set expires_at = now() - interval '1 second' where id = ${old}::bigint`);
  t.match(await get(sessions.bob), new RegExp(`<tr data-change="${old}" class="expired">.*EXPIRED`, 's'), 'shown as expired');
  const exp = await post(sessions.bob, 'approve-change', { id: old, reason: 'late', password: s.people.bob.password });
  t.match(exp.flash, new RegExp(`change_expired \\(ST063\\): approve_change: change #${old} expired at`), 'expired: refused, by name');
  t.equal(await s.corp(), '3000000002', 'nothing applied');
  t.equal(await s.state(old), 'pending -');

  // A rejection, with the person's own login too.
  const third = await s.propose('3000000001', 'back again');
  const no = await post(sessions.bob, 'reject-change', { id: third, reason: 'finance says no', password: s.people.bob.password });
  t.match(no.flash, new RegExp(`Change #${third} rejected by ${bob.name}`));
  t.equal(await s.state(third), `rejected ${bob.name}`);
  t.equal(await s.corp(), '3000000002');
});

t.test('in a browser: the second operator approves a pending change on the Changes page', async (t) => {
  mkdirSync(ARTIFACTS, { recursive: true });
  const s = await setup(t);
  const bob = s.users[1]!;
  const id = await s.propose('3000000002', 'tax goes to the new corporate account');
  const browser = await puppeteer.launch({
    executablePath: await chromium.executablePath(), args: [...chromium.args, '--no-sandbox'], headless: true, defaultViewport: { width: 1400, height: 900 }, protocolTimeout: 180_000,
  });
  t.teardown(() => browser.close());
  const page = await browser.newPage();
  await page.goto(`${s.base}/changes`);
  t.equal(new URL(page.url()).pathname, '/login', 'not signed in: sign in first');
  await page.type('#login-form input[name=token]', bob.token);
  await Promise.all([page.waitForNavigation(), page.click('#login-form button')]);
  t.equal(new URL(page.url()).pathname, '/changes', 'back on the Changes page');
  await page.screenshot({ path: path.join(ARTIFACTS, 'changes-pending.png'), fullPage: true });
  await page.type(`#approve-${id} input[name=reason]`, 'checked the contract with finance');
  await page.type(`#approve-${id} input[name=password]`, s.people.bob.password);
  await Promise.all([page.waitForNavigation(), page.click(`#approve-${id} button`)]);
  const flash = await page.$eval('.flash', (e) => e.textContent ?? '');
  if (s.trust) {
    t.match(flash, trustRefusal(bob.name), 'a server that does not check passwords: the page decides nothing (ST093)');
    t.equal(await s.corp(), '3000000001', 'nothing applied');
    return;
  }
  t.match(flash, new RegExp(`Change #${id} approved and applied \\(proposed by ${s.people.alice.name}, approved by ${bob.name}\\)`));
  t.match(await page.$eval(`#decided tr[data-change="${id}"]`, (e) => e.textContent ?? ''), /APPLIED/);
  await page.screenshot({ path: path.join(ARTIFACTS, 'changes-approved.png'), fullPage: true });
  t.equal(await s.corp(), '3000000002', 'applied');
  t.equal(await s.state(id), `applied ${bob.name}`);
});
