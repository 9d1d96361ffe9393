import t from 'tap';
import { sql } from 'slonik';
import { z } from 'zod';
import { dailyStatus } from '../../src/db/operations.js';
import { runStage } from '../../src/db/stages.js';
import { seed } from '../../src/seed.js';
import { prepareSim, startSim, waitAllWithdrawn, workerEnv } from '../helpers/day.js';
import { freshDb, pgClient } from '../helpers/db.js';
import { makeAccounts, noonSeoul, pastDate } from '../helpers/fixtures.js';
import { spawnWorker, waitFor } from '../helpers/procs.js';
import { claimTransfer, finishTransfer } from '../helpers/transfers.js';

const codeOf = (p: Promise<unknown>) => p.then(() => null, (e: { code?: string }) => e.code ?? String(e));
const n = (db: import('../../src/db/pool.js').DatabasePool, q: ReturnType<typeof sql.unsafe>) => db.oneFirst(sql.type(z.object({ n: z.bigint() }))`${q}`);

t.test('absurd accruals are refused with their own SQLSTATE and change nothing', async (t) => {
  const { url, db } = await freshDb(t);
  const [acct] = await makeAccounts(db, 1);
  const c = await pgClient(t, url);
  const accrue = (ref: string, amount: string, at: string) => codeOf(c.query('select settlement.accrue($1, $2, $3, $4::bigint, $5::timestamptz)', [ref, acct, 'tax', amount, at]));
  const now = noonSeoul(pastDate(1));
  t.equal(await accrue('max', '9223372036854775807', now), 'ST030', 'bigint max: over the per-accrual maximum');
  t.equal(await accrue('big', '300000000000000', now), 'ST030', '3e14: over the per-accrual maximum');
  for (const at of ['-infinity', 'infinity', '4713-01-01 BC', '1899-12-31', '2999-01-01', noonSeoul(pastDate(40))]) {
    t.equal(await accrue(`d-${at}`, '100', at), 'ST031', `occurred_at ${at}: outside the window`);
  }
  for (const ref of ['', ' ', '\t \n', 'a\nb', 'x\u0000y'.replace('\u0000', '\u0001'), '\u200b', 'a\u200db', '\ufeff']) {
    t.equal(await accrue(ref, '100', now), ref === '' ? 'ST032' : 'ST032', `source_ref ${JSON.stringify(ref)} refused`);
  }
  t.equal(await n(db, sql.unsafe`select count(*) as n from settlement.accruals`), 0n, 'nothing was stored');
  t.equal(await accrue('fine', '100', now), null, 'a sane accrual still goes in');
});

t.test('history cannot be rewritten, even by a connection with every grant', async (t) => {
  const { url, db } = await freshDb(t);
  await seed(db, { date: pastDate(1), accounts: 2, kinds: ['tax'] });
  await db.query(sql.unsafe`update settlement.accounts set fin_acno = '0082' || account_no where role = 'loan'`);
  await runStage(db, 'record', pastDate(1), 'tax');
  await runStage(db, 'pay', pastDate(1), 'tax');
  const x = await db.one(sql.type(z.object({ id: z.bigint(), is_tuno: z.string() }))`select id, is_tuno from settlement.transfers order by id limit 1`);
  await claimTransfer(db, Number(x.id), 'w', 1000);
  await finishTransfer(db, Number(x.id), x.is_tuno, { outcome: 'succeeded', processedAt: '20260101120000' });
  const c = await pgClient(t, url);
  const cases: Array<[string, string]> = [
    [`update settlement.transfers set state = 'failed', fail_code = 'X' where id = ${x.id}`, 'a succeeded transfer never changes'],
    [`update settlement.transfers set amount = amount + 1 where state = 'pending'`, 'amounts never change'],
    [`update settlement.transfers set is_tuno = '199999999999999999' where state = 'pending'`, 'no new IsTuno without a failed attempt'],
    [`update settlement.transfers set state = 'succeeded', processed_at = '20260101120000', settled_at = now() where state = 'pending'`, 'pending cannot jump to succeeded'],
    [`delete from settlement.transfers where state = 'pending'`, 'transfers are never deleted'],
    [`update settlement.accruals set amount = 1`, 'accruals are history'],
    [`delete from settlement.entries`, 'entries are history'],
    [`update settlement.transfer_attempts set outcome = 'failed'`, 'attempts are history'],
    [`update settlement.journal_lines set amount = amount * 2`, 'posted journal lines never change'],
    [`insert into settlement.journal_lines (journal_id, line_no, ledger_account, amount)
      select id, 9, 'bank:x', 0 + 1 from settlement.journal_entries limit 1`, 'a posted entry takes no more lines'],
  ];
  for (const [q, what] of cases) t.equal(await codeOf(c.query(q)), 'ST007', what);
  // A balanced pair appended later is refused too (the balance trigger alone would let it in).
  t.equal(await codeOf(c.query(`insert into settlement.journal_lines (journal_id, line_no, ledger_account, amount)
    select id, l.n, l.a, l.v from settlement.journal_entries, (values (8, 'bank:x', 5::bigint), (9, 'bank:y', -5::bigint)) l(n, a, v) where event = 'payout' limit 2`)), 'ST007', 'no balanced pair appended to a posted entry');
});

t.test('a day whose stage raises is marked blocked and every other day and kind still settles', async (t) => {
  const { url, db } = await freshDb(t);
  const sim = await startSim(t);
  const [bad, good] = [pastDate(3), pastDate(2)];
  await seed(db, { date: good, accounts: 5, kinds: ['tax', 'platform_fee'] });
  await seed(db, { date: bad, accounts: 5, kinds: ['platform_fee'] });
  await prepareSim(db, sim);
  // What accrue now refuses, written behind its back: two accruals that overflow the day's sum.
  await db.query(sql.unsafe`select settlement.ensure_day(${bad}::date, 'tax')`);
  await db.query(sql.unsafe`insert into settlement.accruals (source_ref, account_no, kind, amount, occurred_at, origin_date, settle_date)
    select 'huge-' || i, '1000000001', 'tax', 9223372036854775807, ${noonSeoul(bad)}::timestamptz, ${bad}::date, ${bad}::date from generate_series(1, 2) i`);
  await spawnWorker(t, workerEnv(url, sim.url));
  // What the crontab enqueues each minute (no date: every open day, oldest first).
  await db.query(sql.unsafe`select graphile_worker.add_job('stage', '{"stage":"record","_cron":{"ts":"2026-01-01T00:00:00Z"}}'::json, job_key => 'cron:stage:record')`);
  await waitAllWithdrawn(db, [good], 2);
  const rows = await dailyStatus(db, bad);
  const tax = rows.find((r) => r.kind === 'tax')!;
  t.equal(tax.record, 'blocked', 'the broken day is blocked');
  t.match(tax.attention ?? '', /record: error: .*bigint out of range/, 'with the error in attention');
  await waitFor('the other kind of the broken date settles too', async () => (await dailyStatus(db, bad)).find((r) => r.kind === 'platform_fee')?.withdraw === 'done', 120_000);
});

t.test('pay refuses a day that needs more chunks than the limit, with a named reason', async (t) => {
  const { db } = await freshDb(t);
  const D = pastDate(1);
  await seed(db, { date: D, accounts: 3, kinds: ['tax'] });
  await db.query(sql.unsafe`update settlement.accounts set fin_acno = '0082' || account_no where role = 'loan'`);
  await db.query(sql.unsafe`update settlement.limits set max_chunks_per_day = 2`);
  await runStage(db, 'record', D, 'tax');
  const r = await runStage(db, 'pay', D, 'tax');
  t.equal(r.outcome, 'blocked');
  t.match(r.detail, /too many chunks: .* needs \d+ chunks, over settlement.limits.max_chunks_per_day 2/);
  t.equal(await n(db, sql.unsafe`select count(*) as n from settlement.transfers`), 0n, 'no chunk was made');
});

t.test('a worker started with other shared settings refuses to start, naming each difference', async (t) => {
  const { url, db } = await freshDb(t);
  const sim = await startSim(t);
  const first = await spawnWorker(t, workerEnv(url, sim.url));
  const { runCli } = await import('../helpers/procs.js');
  const r = await runCli(['worker'], { ...workerEnv(url, sim.url, { BANK_PER_CALL_LIMIT: '300000', SETTLEMENT_TIMEZONE: 'Pacific/Kiritimati', BANK_MAX_IN_FLIGHT: '5' }), HTTP_PORT: '0' });
  t.equal(r.code, 2, 'refused as a configuration error');
  for (const s of ['BANK_PER_CALL_LIMIT=300000', 'SETTLEMENT_TIMEZONE=Pacific/Kiritimati', 'BANK_MAX_IN_FLIGHT=5']) t.match(r.stderr, s, `names ${s}`);
  const cfg = await db.one(sql.type(z.object({ time_zone: z.string(), per_call_limit: z.bigint(), max_in_flight: z.number() }))`
    select time_zone, per_call_limit, max_in_flight from settlement.config`);
  t.same(cfg, { time_zone: 'Asia/Seoul', per_call_limit: 100000n, max_in_flight: 8 }, 'the first worker\'s settings stand');
  t.equal(first.child.exitCode, null, 'the first worker runs on');
  const ok = await runCli(['configure'], { DATABASE_URL: url, BANK_MAX_IN_FLIGHT: '5' });
  t.equal(ok.code, 0, `settle configure changes them on purpose: ${ok.stdout.trim()}`);
  t.equal(await db.oneFirst(sql.type(z.object({ m: z.number() }))`select max_in_flight as m from settlement.config`), 5);
});
