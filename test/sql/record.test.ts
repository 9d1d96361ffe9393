import t from 'tap';
import { sql } from 'slonik';
import { z } from 'zod';
import { runStage } from '../../src/db/stages.js';
import { seed } from '../../src/seed.js';
import { freshDb, pgClient } from '../helpers/db.js';
import { makeAccounts, noonSeoul, pastDate, seoulToday } from '../helpers/fixtures.js';

const D = pastDate(1);

const sums = z.object({ accruals: z.bigint(), entries: z.bigint(), n_entries: z.bigint(), n_accruals: z.bigint(), in_entries: z.bigint() });
async function totals(db: Awaited<ReturnType<typeof freshDb>>['db'], kind = 'tax') {
  return db.one(sql.type(sums)`
    select (select coalesce(sum(amount), 0) from settlement.accruals where settle_date = ${D}::date and kind = ${kind}::settlement.kind)::bigint as accruals,
           (select coalesce(sum(amount), 0) from settlement.entries where business_date = ${D}::date and kind = ${kind}::settlement.kind)::bigint as entries,
           (select count(*) from settlement.entries where business_date = ${D}::date and kind = ${kind}::settlement.kind) as n_entries,
           (select count(*) from settlement.accruals where settle_date = ${D}::date and kind = ${kind}::settlement.kind) as n_accruals,
           (select coalesce(sum(accrual_count), 0) from settlement.entries where business_date = ${D}::date and kind = ${kind}::settlement.kind)::bigint as in_entries`);
}

async function journalBalanced(db: Awaited<ReturnType<typeof freshDb>>['db']) {
  return db.oneFirst(sql.type(z.object({ n: z.bigint() }))`
    select count(*) as n from (select journal_id from settlement.journal_lines group by journal_id having sum(amount) <> 0) x`);
}

t.test('record called twice records each accrual once', async (t) => {
  const { db } = await freshDb(t);
  await seed(db, { date: D, accounts: 50, kinds: ['tax'] });
  const a = await runStage(db, 'record', D, 'tax');
  const b = await runStage(db, 'record', D, 'tax');
  t.equal(a.outcome, 'done');
  t.equal(b.outcome, 'already_done');
  const s = await totals(db);
  t.equal(s.entries, s.accruals, 'G1: entries sum to the accruals');
  t.equal(s.n_entries, 50n, 'one entry per loan account');
  t.equal(s.in_entries, s.n_accruals, 'every accrual counted in exactly one entry');
  t.equal(await journalBalanced(db), 0n, 'journal balances');
  const status = await db.one(sql.type(z.object({ record: z.string(), entries: z.bigint(), amount_recorded: z.bigint() }))`
    select record, entries, amount_recorded from settlement.daily_status where business_date = ${D}::date and kind = 'tax'`);
  t.same(status, { record: 'done', entries: 50n, amount_recorded: s.accruals }, 'daily_status shows it');
});

t.test('record from eight connections at once: done exactly once', async (t) => {
  const { db } = await freshDb(t, { poolSize: 8 });
  await seed(db, { date: D, accounts: 2000, kinds: ['tax'] });
  const results = await Promise.all(Array.from({ length: 8 }, () => runStage(db, 'record', D, 'tax')));
  const outcomes = results.map((r) => r.outcome);
  t.equal(outcomes.filter((o) => o === 'done').length, 1, `one done (${outcomes.join(',')})`);
  t.ok(outcomes.every((o) => ['done', 'busy', 'already_done'].includes(o)), 'the rest are busy or already_done');
  const s = await totals(db);
  t.equal(s.entries, s.accruals);
  t.equal(s.n_entries, 2000n);
  t.equal(await journalBalanced(db), 0n);
  const runs = await db.oneFirst(sql.type(z.object({ n: z.bigint() }))`select count(*) as n from settlement.journal_entries where event = 'record'`);
  t.equal(runs, 1n, 'one record journal entry');
});

t.test('a day that is not over is not recorded', async (t) => {
  const { db } = await freshDb(t);
  const [acct] = await makeAccounts(db, 1);
  const today = seoulToday();
  await db.query(sql.unsafe`select settlement.accrue('today', ${acct!}, 'tax', 100, ${noonSeoul(today)}::timestamptz)`);
  const r = await runStage(db, 'record', today, 'tax');
  t.equal(r.outcome, 'not_ready');
  t.match(r.detail, 'not over yet');
  const n = await db.oneFirst(sql.type(z.object({ n: z.bigint() }))`select count(*) as n from settlement.entries`);
  t.equal(n, 0n, 'nothing recorded');
});

t.test('an accrual racing the record stage is recorded exactly once (same day or next)', async (t) => {
  const { db } = await freshDb(t, { poolSize: 12 });
  await seed(db, { date: D, accounts: 300, kinds: ['tax'] });
  const accrues = Array.from({ length: 40 }, (_, i) =>
    db.query(sql.unsafe`select settlement.accrue(${'race-' + i}, '1000000001', 'tax', 1000, ${noonSeoul(D)}::timestamptz)`));
  const [rec] = await Promise.all([runStage(db, 'record', D, 'tax'), ...accrues]);
  t.equal(rec.outcome, 'done');
  const row = await db.one(sql.type(z.object({ on_day: z.bigint(), next_day: z.bigint() }))`
    select count(*) filter (where settle_date = ${D}::date) as on_day, count(*) filter (where settle_date > ${D}::date) as next_day
    from settlement.accruals where source_ref like 'race-%'`);
  t.equal(row.on_day + row.next_day, 40n);
  const s = await totals(db);
  t.equal(s.entries, s.accruals, 'entries equal exactly the accruals that stayed on the day');
  t.equal(s.in_entries, s.n_accruals);
});

t.test('the journal is append-only and every entry balances (enforced by the database)', async (t) => {
  const { url, db } = await freshDb(t);
  await seed(db, { date: D, accounts: 5, kinds: ['tax'] });
  await runStage(db, 'record', D, 'tax');
  const c = await pgClient(t, url);
  const code = (p: Promise<unknown>) => p.then(() => null, (e: { code?: string }) => e.code);
  t.equal(await code(c.query('update settlement.journal_lines set amount = amount + 1')), 'ST007', 'update refused');
  t.equal(await code(c.query('delete from settlement.journal_lines')), 'ST007', 'delete of lines refused');
  t.equal(await code(c.query('delete from settlement.journal_entries')), 'ST007', 'delete of entries refused');
  t.equal(await code(c.query('update settlement.journal_entries set memo = $1', ['x'])), 'ST007', 'update of entries refused');
  t.equal(await code(c.query('truncate settlement.journal_lines cascade')), 'ST007', 'truncate refused');
  t.equal(await code(c.query(`select settlement.post_journal(current_date, 'tax', 'correction', 'x', '[{"account":"a","amount":5},{"account":"b","amount":-4}]')`)), 'ST006', 'unbalanced entry refused');
  const ok = await c.query(`select settlement.post_journal(current_date, 'tax', 'correction', 'fix-1', '[{"account":"a","amount":5},{"account":"b","amount":-5}]') as id`);
  t.ok(ok.rows[0].id, 'a balanced correction posts');
  t.equal(await journalBalanced(db), 0n);
});

t.test('run_stage rejects missing arguments with ST001', async (t) => {
  const { url } = await freshDb(t);
  const c = await pgClient(t, url);
  const err = await c.query(`select * from settlement.run_stage('record', null, 'tax')`).then(() => null, (e) => e);
  t.equal(err?.code, 'ST001');
  const bad = await c.query(`select * from settlement.run_stage('nope', current_date, 'tax')`).then(() => null, (e) => e);
  t.equal(bad?.code, '22P02', 'an unknown stage is refused by the enum');
});
