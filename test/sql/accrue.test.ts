import t from 'tap';
import { sql } from 'slonik';
import { z } from 'zod';
import { freshDb, pgClient } from '../helpers/db.js';
import { makeAccounts, noonSeoul, pastDate } from '../helpers/fixtures.js';

const D = pastDate(2);

async function counts(db: Awaited<ReturnType<typeof freshDb>>['db']) {
  return db.one(sql.type(z.object({ accruals: z.bigint(), days: z.bigint() }))`
    select (select count(*) from settlement.accruals) as accruals, (select count(*) from settlement.days) as days`);
}

t.test('accrue is idempotent on source_ref', async (t) => {
  const { db } = await freshDb(t);
  const [acct] = await makeAccounts(db, 1);
  const call = () => db.oneFirst(sql.type(z.object({ id: z.bigint() }))`
    select settlement.accrue('ref-1', ${acct!}, 'tax', 12345, ${noonSeoul(D)}::timestamptz) as id`);
  const a = await call();
  const b = await call();
  t.equal(a, b, 'the same id both times');
  const many = await Promise.all(Array.from({ length: 8 }, call));
  t.ok(many.every((x) => x === a), 'eight concurrent repeats return the same id');
  t.equal((await counts(db)).accruals, 1n, 'one row');
});

t.test('concurrent first calls with one source_ref insert once', async (t) => {
  const { db } = await freshDb(t);
  const [acct] = await makeAccounts(db, 1);
  const ids = await Promise.all(Array.from({ length: 8 }, () => db.oneFirst(sql.type(z.object({ id: z.bigint() }))`
    select settlement.accrue('race', ${acct!}, 'platform_fee', 500, ${noonSeoul(D)}::timestamptz) as id`)));
  t.equal(new Set(ids).size, 1);
  t.equal((await counts(db)).accruals, 1n);
});

t.test('bad input gets its named SQLSTATE and changes nothing', async (t) => {
  const { url, db } = await freshDb(t);
  const [acct] = await makeAccounts(db, 1);
  await db.query(sql.unsafe`select settlement.accrue('taken', ${acct!}, 'tax', 100, ${noonSeoul(D)}::timestamptz)`);
  const before = await counts(db);
  const c = await pgClient(t, url);
  const cases: Array<[string, string, unknown[]]> = [
    ['null source_ref', 'ST001', [null, acct, 'tax', 100, noonSeoul(D)]],
    ['null account', 'ST001', ['r1', null, 'tax', 100, noonSeoul(D)]],
    ['null kind', 'ST001', ['r1', acct, null, 100, noonSeoul(D)]],
    ['null amount', 'ST001', ['r1', acct, 'tax', null, noonSeoul(D)]],
    ['null occurred_at', 'ST001', ['r1', acct, 'tax', 100, null]],
    ['empty source_ref', 'ST032', ['', acct, 'tax', 100, noonSeoul(D)]],
    ['unknown account', 'ST002', ['r1', '9999999999', 'tax', 100, noonSeoul(D)]],
    ['a settlement account is not a loan account', 'ST002', ['r1', '2000000001', 'tax', 100, noonSeoul(D)]],
    ['zero amount', 'ST003', ['r1', acct, 'tax', 0, noonSeoul(D)]],
    ['negative amount', 'ST003', ['r1', acct, 'tax', -5, noonSeoul(D)]],
    ['source_ref reused with another amount', 'ST004', ['taken', acct, 'tax', 101, noonSeoul(D)]],
    ['source_ref reused with another kind', 'ST004', ['taken', acct, 'platform_fee', 100, noonSeoul(D)]],
    ['unknown kind', '22P02', ['r1', acct, 'interest', 100, noonSeoul(D)]],
  ];
  for (const [name, code, args] of cases) {
    const err = await c.query('select settlement.accrue($1, $2, $3::settlement.kind, $4, $5)', args).then(() => null, (e) => e);
    t.equal(err?.code, code, `${name}: ${code}`);
  }
  t.same(await counts(db), before, 'no row added by any bad call');
});

t.test('an accrual for a recorded day rolls into the next open day and keeps its origin', async (t) => {
  const { db } = await freshDb(t);
  const [acct] = await makeAccounts(db, 1);
  const d1 = pastDate(3);
  const d2 = pastDate(2);
  await db.query(sql.unsafe`select settlement.accrue('on-time', ${acct!}, 'tax', 1000, ${noonSeoul(d1)}::timestamptz)`);
  const r = await db.one(sql.type(z.object({ outcome: z.string(), detail: z.string() }))`select * from settlement.run_stage('record', ${d1}::date, 'tax')`);
  t.equal(r.outcome, 'done');
  await db.query(sql.unsafe`select settlement.accrue('late', ${acct!}, 'tax', 700, ${noonSeoul(d1)}::timestamptz)`);
  const late = await db.one(sql.type(z.object({ origin_date: z.string(), settle_date: z.string() }))`
    select origin_date, settle_date from settlement.accruals where source_ref = 'late'`);
  t.equal(late.origin_date, d1, 'keeps its origin date');
  t.equal(late.settle_date, d2, 'settled with the next open day');
  const entry1 = await db.oneFirst(sql.type(z.object({ amount: z.bigint() }))`select amount from settlement.entries where business_date = ${d1}::date`);
  t.equal(entry1, 1000n, 'the recorded day is not rewritten');
  const r2 = await db.one(sql.type(z.object({ outcome: z.string(), detail: z.string() }))`select * from settlement.run_stage('record', ${d2}::date, 'tax')`);
  t.equal(r2.outcome, 'done');
  t.match(r2.detail, '(1 late)');
  const entry2 = await db.one(sql.type(z.object({ amount: z.bigint(), late_count: z.number() }))`select amount, late_count from settlement.entries where business_date = ${d2}::date`);
  t.same(entry2, { amount: 700n, late_count: 1 }, 'recorded on the next day, marked late');
});
