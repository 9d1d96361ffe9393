/**
 * The bank's quiet hours (settlement.bank_windows, sql/logic/47_bank_windows.sql):
 * no money request is sent inside a window; a transfer that would be waits
 * and is sent after it, under the new day's date, exactly once.
 *
 * The claims part runs on the explorer's movable database clock at fixed
 * dates and times, so it says the same at whatever hour it runs; the end to
 * end part uses a dated window that starts now (the database's now) and a
 * real worker against the simulator.
 */
import t from 'tap';
import type pg from 'pg';
import { sql } from 'slonik';
import { z } from 'zod';
import { addBankWindow } from '../../src/db/operations.js';
import { createDbPool } from '../../src/db/pool.js';
import { runStage } from '../../src/db/stages.js';
import { simAdminClient } from '../../src/bank-sim/sim-admin-client.js';
import { registerAtSimulator, seed } from '../../src/seed.js';
import { explorerDb } from '../explore/db.js';
import { checkInvariants, prepareSim, startSim, waitAllWithdrawn, workerEnv } from '../helpers/day.js';
import { freshDb, TEST_STATEMENT_TIMEOUT_MS } from '../helpers/db.js';
import { pastDate } from '../helpers/fixtures.js';
import { runCli, spawnWorker, waitFor } from '../helpers/procs.js';

const MONEY_APIS = new Set(['DrawingTransfer', 'ReceivedTransferAccountNumber', 'ReceivedTransferOtherBank']);
const kstMs = (s: string) => Date.parse(`${s}+09:00`);

type Claim = { action: string; resume: boolean; sendable: boolean; tsymd: string | null; quiet_until_ms: string | null; claim_token: string | null };

async function claim(c: pg.Client, id: number, leaseMs: number): Promise<Claim> {
  const r = await c.query('select settlement.claim_transfers($1::bigint[], $2::text[], $3, 0, $4::int[], 0) as r', [[id], ['quiet-test'], leaseMs, []]);
  return (r.rows[0].r as { claims: Claim[] }).claims[0]!;
}

t.test('claims: refused (quiet) while an attempt could still be sending when a window begins, sent after it under the new date; windows chain; removing one runs the waiting transfers at once', async (t) => {
  const { db: c, url } = await explorerDb(t);
  const setClock = (kst: string) => c.query('update settlement_meta.explore_clock set at = $1', [new Date(kstMs(kst)).toISOString()]);
  const db = await createDbPool(url, { maximumPoolSize: 2, statementTimeoutMs: TEST_STATEMENT_TIMEOUT_MS });
  t.teardown(() => db.end());
  const sim = await startSim(t);

  // A fixed day, settled the day after, at noon (Korea time).
  const D = '2026-03-10';
  await setClock('2026-03-11T12:00:00');
  await seed(db, { date: D, accounts: 4, kinds: ['tax'] });
  await prepareSim(db, sim);
  await registerAtSimulator(db, sim.url);
  t.equal((await runStage(db, 'record', D, 'tax')).outcome, 'done');
  t.equal((await runStage(db, 'pay', D, 'tax')).outcome, 'done');
  const ids = (await c.query(`select id::int as id from settlement.transfers where purpose = 'payout' order by id`)).rows.map((r) => r.id as number);
  t.ok(ids.length >= 3, `${ids.length} chunks planned`);
  const [early, waits, removed] = ids as [number, number, number];

  // The test template has no window; the product's default is the daily 23:30-00:30 KST.
  await c.query(`select settlement.configure_bank_window('23:30', '00:30', 'test: the default daily window')`);
  const until = async (kst: string, span: string) =>
    (await c.query(`select (extract(epoch from settlement.bank_quiet_until($1::timestamptz, $2::interval)) * 1000)::bigint::text as ms`, [new Date(kstMs(kst)).toISOString(), span])).rows[0].ms as string | null;
  t.equal(await until('2026-03-11T23:29:00', '30 seconds'), null, 'an attempt that ends before 23:30 may start');
  t.equal(await until('2026-03-11T23:29:00', '2 minutes'), String(kstMs('2026-03-12T00:30:00')), 'one that could still send at 23:30 waits for 00:30');
  t.equal(await until('2026-03-11T23:45:00', '1 second'), String(kstMs('2026-03-12T00:30:00')), 'inside the window: its end');
  t.equal(await until('2026-03-12T00:15:00', '1 second'), String(kstMs('2026-03-12T00:30:00')), 'after midnight, the same window');
  t.equal(await until('2026-03-12T00:30:00', '1 hour'), null, 'from its end on, free');
  t.equal(await until('2026-03-12T12:00:00', '1 hour'), null, 'at noon, free');

  // 23:29: an attempt of 30 s fits before the window; one of 2 minutes does not.
  await setClock('2026-03-11T23:29:00');
  const sent = await claim(c, early, 30_000);
  t.equal(sent.action, 'send');
  t.equal(sent.tsymd, '20260311', 'sent under the date it is sent on');
  const q = await claim(c, waits, 120_000);
  t.equal(q.action, 'quiet', 'its attempt would still be sending at 23:30');
  t.equal(q.quiet_until_ms, String(kstMs('2026-03-12T00:30:00')));
  t.equal(q.claim_token, null, 'nothing claimed');
  const row = async (id: number) => (await c.query(`select state::text as state, tsymd, claimed_by, (extract(epoch from quiet_until) * 1000)::bigint::text as quiet_ms from settlement.transfers where id = $1`, [id])).rows[0];
  t.same(await row(waits), { state: 'pending', tsymd: null, claimed_by: null, quiet_ms: String(kstMs('2026-03-12T00:30:00')) }, 'untouched but for when it waits until');
  const job = (await c.query(`select (extract(epoch from run_at) * 1000)::bigint::text as ms from graphile_worker.jobs where key = $1`, [`transfer:${waits}`])).rows;
  t.same(job, [{ ms: String(kstMs('2026-03-12T00:30:00')) }], 'its job runs when the window ends');
  const v = (await c.query(`select verdict, detail from settlement.day_verdicts where business_date = $1 and kind = 'tax'`, [D])).rows[0];
  t.equal(v.verdict, 'WAITING');
  t.match(v.detail, /waiting for the bank until 2026-03-12 00:30 KST/, 'status says what the day waits for');

  // Inside the window nothing is claimed, not even an attempt that would only ask.
  await setClock('2026-03-12T00:10:00');
  t.equal((await claim(c, early, 30_000)).action, 'quiet', 'a transfer that may have been sent is not asked about inside the window either');

  // A dated window right after the daily one: one quiet time, to its end.
  const dated = (await c.query(`select settlement.add_bank_window($1, $2, 'test: NH system upgrade') as id`,
    [new Date(kstMs('2026-03-12T00:30:00')).toISOString(), new Date(kstMs('2026-03-12T01:00:00')).toISOString()])).rows[0].id;
  t.equal(await until('2026-03-11T23:45:00', '1 second'), String(kstMs('2026-03-12T01:00:00')), 'windows back to back are one quiet time');
  await c.query(`select settlement.remove_bank_window($1, 'test: the upgrade was cancelled')`, [dated]);

  // After the window: sent under the new day's date; the one that may have
  // been sent under the old date is asked about, never sent under it again.
  await setClock('2026-03-12T00:30:00');
  const after = await claim(c, waits, 120_000);
  t.equal(after.action, 'send');
  t.equal(after.tsymd, '20260312', 'sent under the new day\'s date');
  t.equal(after.sendable, true);
  t.equal((await row(waits)).quiet_ms, null, 'no longer waiting');
  const asked = await claim(c, early, 30_000);
  t.equal(asked.action, 'send');
  t.equal(asked.resume, true, 'asked about first');
  t.equal(asked.sendable, false, 'and never sent again under its old date');

  // Removing a window runs what waits for it at once.
  await setClock('2026-03-12T23:45:00');
  t.equal((await claim(c, removed, 30_000)).action, 'quiet');
  const daily = (await c.query(`select id from settlement.bank_windows where daily_from is not null and removed_at is null`)).rows[0].id;
  t.equal((await c.query(`select settlement.remove_bank_window($1, 'test: NH works tonight') as n`, [daily])).rows[0].n, 1, 'one waiting transfer runs again');
  // (graphile-worker schedules by the server's own clock, not the moved one.)
  const rerun = (await c.query(`select run_at <= pg_catalog.now() as due from graphile_worker.jobs where key = $1`, [`transfer:${removed}`])).rows;
  t.same(rerun, [{ due: true }], 'its job runs now');
  t.equal((await claim(c, removed, 30_000)).action, 'send', 'and it is sent');

  const audit = (await c.query(`select action from settlement.operator_actions where action like '%bank_window' order by id`)).rows.map((r) => r.action);
  t.same(audit, ['configure_bank_window', 'add_bank_window', 'remove_bank_window', 'remove_bank_window'], 'every change is audited');
});

t.test('bad windows are named errors and change nothing', async (t) => {
  const { db } = await freshDb(t);
  const count = () => db.oneFirst(sql.type(z.object({ n: z.string() }))`
    select (select count(*) from settlement.bank_windows)::text || '/' || (select count(*) from settlement.operator_actions)::text as n`);
  const before = await count();
  const bad: Array<[string, ReturnType<typeof sql.unsafe>]> = [
    ['ST100', sql.unsafe`select settlement.configure_bank_window('23:30', null, 'r')`],
    ['ST100', sql.unsafe`select settlement.configure_bank_window('01:00', '01:00', 'r')`],
    ['ST101', sql.unsafe`select settlement.configure_bank_window('23:30', '00:30', '  ')`],
    ['ST102', sql.unsafe`select settlement.add_bank_window(now() + interval '2 hours', now() + interval '1 hour', 'r')`],
    ['ST102', sql.unsafe`select settlement.add_bank_window(now() - interval '2 hours', now() - interval '1 hour', 'r')`],
    ['ST102', sql.unsafe`select settlement.add_bank_window(now(), now() + interval '8 days', 'r')`],
    ['ST102', sql.unsafe`select settlement.add_bank_window(null, now() + interval '1 hour', 'r')`],
    ['ST101', sql.unsafe`select settlement.add_bank_window(now(), now() + interval '1 hour', null)`],
    ['ST103', sql.unsafe`select settlement.remove_bank_window(424242, 'r')`],
  ];
  for (const [code, q] of bad) {
    const e = await db.query(q).then(() => null, (err: { code?: string; cause?: { code?: string } }) => err);
    t.equal(e?.cause?.code ?? e?.code, code, `refused with ${code}`);
  }
  t.equal(await count(), before, 'no window and no audit row');
  // A removed window cannot be removed again.
  const id = await addBankWindow(db, new Date(Date.now() + 3_600_000).toISOString(), new Date(Date.now() + 7_200_000).toISOString(), 'test');
  await db.query(sql.unsafe`select settlement.remove_bank_window(${id}, 'test')`);
  const again = await db.query(sql.unsafe`select settlement.remove_bank_window(${id}, 'test')`).then(() => null, (err: { code?: string; cause?: { code?: string } }) => err);
  t.equal(again?.cause?.code ?? again?.code, 'ST103');
});

t.test('settle bank-window: lists, sets, adds and removes (audited); bad flags are usage errors', async (t) => {
  const { url } = await freshDb(t);
  const env = { DATABASE_URL: url };
  t.match((await runCli(['bank-window'], env)).stdout, /no quiet window/);
  const d = await runCli(['bank-window', '--daily', '23:30-00:30', '--reason', 'NH maintenance'], env);
  t.equal(d.code, 0, d.stderr);
  t.match(d.stdout, /daily quiet window: 23:30-00:30 KST/);
  t.match(d.stdout, /daily 23:30-00:30 KST \(next: \d{4}-\d{2}-\d{2} 23:30 KST to \d{4}-\d{2}-\d{2} 00:30 KST\)\s+NH maintenance/);
  const a = await runCli(['bank-window', '--add', '2099-12-24 22:00..2099-12-25 02:00', '--reason', 'NH upgrade'], env);
  t.equal(a.code, 0, a.stderr);
  const id = /added quiet window (\d+)/.exec(a.stdout)?.[1];
  t.ok(id);
  t.match(a.stdout, /2099-12-24 22:00 KST to 2099-12-25 02:00 KST\s+NH upgrade/);
  t.match((await runCli(['bank-window', '--remove', id!, '--reason', 'cancelled'], env)).stdout, new RegExp(`removed quiet window ${id}`));
  t.match((await runCli(['bank-window', '--daily', 'none', '--reason', 'no window'], env)).stdout, /no daily quiet window[\s\S]*no quiet window/);
  for (const bad of [['--daily', '25:00-01:00', '--reason', 'r'], ['--daily', '23:30-00:30'], ['--add', 'tomorrow', '--reason', 'r'], ['--remove', 'x', '--reason', 'r'], ['--daily', 'none', '--remove', '1', '--reason', 'r']]) {
    const r = await runCli(['bank-window', ...bad], env);
    t.equal(r.code, 2, `${bad.join(' ')}: usage error`);
  }
  const past = await runCli(['bank-window', '--add', '2001-01-01 00:00..2001-01-01 01:00', '--reason', 'r'], env);
  t.equal(past.code, 1, 'a window already over is refused by the database');
  t.match(past.stderr, /a window needs a start before its end, an end in the future/);
});

t.test('end to end: no money request inside a window; the day is paid after it, exactly once, under the new date', async (t) => {
  const D = pastDate(1);
  const { url, db } = await freshDb(t);
  const sim = await startSim(t, { recordRequests: true });
  await seed(db, { date: D, accounts: 6, kinds: ['tax'] });
  await prepareSim(db, sim);
  await registerAtSimulator(db, sim.url);
  t.equal((await runStage(db, 'record', D, 'tax')).outcome, 'done');
  // A window from now (the database's clock) for 12 s.
  const w = await db.one(sql.type(z.object({ id: z.number(), ends_ms: z.string() }))`
    select settlement.add_bank_window(now(), now() + interval '12 seconds', 'test: a short NH maintenance')::int as id,
           (extract(epoch from now() + interval '12 seconds') * 1000)::bigint::text as ends_ms`);
  t.equal((await runStage(db, 'pay', D, 'tax')).outcome, 'done');
  await spawnWorker(t, workerEnv(url, sim.url));
  const waiting = await waitFor('the day waits for the bank', async () => {
    const v = await db.maybeOne(sql.type(z.object({ verdict: z.string(), detail: z.string() }))`
      select verdict, detail from settlement.day_verdicts where business_date = ${D} and kind = 'tax'`);
    return v && /waiting for the bank until/.test(v.detail) ? v : undefined;
  }, 60_000, 100);
  t.equal(waiting.verdict, 'WAITING');
  await waitAllWithdrawn(db, [D], 1);

  const requests = await simAdminClient(sim.url).requests();
  const money = requests.filter((r) => MONEY_APIS.has(r.api));
  t.ok(money.length > 0, `${money.length} money requests`);
  const early = money.filter((r) => Date.parse(r.at) < Number(w.ends_ms));
  t.same(early, [], 'none sent inside the window');
  const kstYmd = (iso: string) => new Date(Date.parse(iso) + 9 * 3_600_000).toISOString().slice(0, 10).replaceAll('-', '');
  const misdated = money.filter((r) => (r.body as { Header: { Tsymd: string } }).Header.Tsymd !== kstYmd(r.at));
  t.same(misdated, [], 'each sent under the Korean date it was sent on');
  await checkInvariants(t, db, sim.url);
});
