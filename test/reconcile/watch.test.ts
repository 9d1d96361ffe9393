/**
 * The statement watch (settlement.watch_scope, settlement.match_watch): late
 * evidence of a reconciled day on a date no other day reads is found and
 * reopens that day. Driven by the schedule explorer's world (the product's
 * SQL, its statement reader and the simulator's ledger, on a database clock
 * the test moves), so the dates can pass.
 */
import t from 'tap';
import { formatRun, runSeed } from '../explore/explorer.js';
import { explorerDb } from '../explore/db.js';
import { SETTLE } from '../explore/world.js';
import { roleSessions } from '../helpers/roles.js';


// Seed 9's setup: days 2030-03-04 and 2030-03-05 (tax); `settle-day 2030-03-05`
// pays and reconciles both (their transfers go out on 2030-03-05 and -06).
const SETTLED = ['settle-day 2030-03-05'];
// Money nobody of ours sent lands on the settlement account on 2030-03-09:
// no day's transfers were sent on that date or the day before.
const LATE = ['tick 2030-03-09T10:00:00.000+09:00', 'orphan 100000'];

t.test('money with no reference on the settlement account, days after every day reconciled: the watch reads that date once it is over, and the break reopens the last day', async (t) => {
  const { db } = await explorerDb(t);
  const r = await runSeed(db, 9, { steps: 0 }, [...SETTLED, ...LATE]);
  t.equal(r.violation, undefined, `every invariant held\n${formatRun(r, 'watch')}`);
  const b = await db.query(`select business_date::text as d, problem, account_no, amount::text as amount, detail from settlement.breaks order by id`);
  t.same(b.rows.map((x) => [x.d, x.problem, x.account_no, x.amount]), [['2030-03-05', 'orphan', SETTLE, '100000']],
    `one break, of the last reconciled day: ${JSON.stringify(b.rows.map((x) => x.detail))}`);
  t.match(b.rows[0].detail, /matches no transfer: money in suspense/, 'in suspense, named as matching no transfer');
  const v = await db.query(`select business_date::text as d, verdict from settlement.day_verdicts order by 1`);
  t.same(v.rows.map((x) => [x.d, x.verdict]), [['2030-03-04', 'DONE'], ['2030-03-05', 'BLOCKED']], '2030-03-05 is BLOCKED again; 2030-03-04 stays DONE');
  const read = await db.query(`select ymd from settlement.statement_reads where acno = $1 order by ymd`, [SETTLE]);
  t.ok(read.rows.some((x) => x.ymd === '20300309'), 'the settlement account was read for 2030-03-09');
  const lines = await db.query(`select count(*)::int as n from settlement.statement_reads where acno <> $1 and ymd > '20300307'`, [SETTLE]);
  t.equal(lines.rows[0].n, 0, 'loan and corporate accounts are not watched');
});

t.test('with the watch off (statement_watch 0) the same money goes unseen: the explorer\'s balances invariant fails — the watch is what finds it', async (t) => {
  const { db } = await explorerDb(t);
  const r = await runSeed(db, 9, { steps: 0 }, ['watch 0', ...SETTLED, ...LATE]);
  t.equal(r.violation?.invariant, 'balances', `the books differ from the bank with no break: ${r.violation?.detail}`);
  const b = await db.query(`select count(*)::int as n from settlement.breaks`);
  t.equal(b.rows[0].n, 0, 'no break');
});

t.test('a payout of a reconciled day cancelled days later: a break of a reconciled day, found by the watch', async (t) => {
  const { db } = await explorerDb(t);
  const r = await runSeed(db, 9, { steps: 0 }, [...SETTLED, 'tick 2030-03-10T09:00:00.000+09:00', 'cancel t2']);
  t.equal(r.violation, undefined, `every invariant held\n${formatRun(r, 'watch')}`);
  const b = await db.query(`select business_date::text as d, problem, detail from settlement.breaks order by id`);
  t.same(b.rows.map((x) => x.problem), ['cancelled'], `the cancellation is a break: ${JSON.stringify(b.rows.map((x) => x.detail))}`);
  t.ok(['2030-03-04', '2030-03-05'].includes(b.rows[0].d), `of a reconciled day (${b.rows[0].d})`);
  const v = await db.query(`select verdict from settlement.day_verdicts where business_date = $1::date`, [b.rows[0].d]);
  t.equal(v.rows[0].verdict, 'BLOCKED', 'that day is BLOCKED again');
});

t.test('configure_statement_watch: bad input is refused by name and changes nothing; operators only; audited', async (t) => {
  const { db, url } = await explorerDb(t);
  const watch = async () => (await db.query(`select statement_watch::text as w from settlement.config where id`)).rows[0].w as string;
  t.equal(await watch(), '7 days', 'the default is 7 days');
  const as = roleSessions(t, url, 'watch');
  const op = await as('settlement_operator');
  for (const bad of ['null', `'-1 day'::interval`, `'367 days'::interval`]) {
    t.equal(await op(`select settlement.configure_statement_watch(${bad})`), 'ST024', `${bad}: ST024 invalid_statement_watch`);
  }
  t.equal(await watch(), '7 days', 'nothing changed');
  const worker = await as('settlement_worker');
  for (const role of ['settlement_worker', 'settlement_viewer', 'settlement_ingest']) {
    const s = role === 'settlement_worker' ? worker : await as(role);
    t.equal(await s(`select settlement.configure_statement_watch('1 day')`), '42501', `${role} may not set it`);
  }
  t.equal(await op(`select settlement.configure_statement_watch('30 days')`), 'ok', 'an operator sets it');
  t.equal(await watch(), '30 days');
  const a = await db.query(`select args from settlement.operator_actions where action = 'configure_statement_watch'`);
  t.same(a.rows.map((x) => x.args), [{ statement_watch: '30 days' }], 'audited');
  t.equal(await worker(`select settlement.match_watch()`), 'ok', 'the worker runs the watch\'s matcher');
  t.equal(await worker(`update settlement.config set statement_watch = '0'`), '42501', 'and cannot switch the watch off');
});
