/**
 * The worker's word checked against the bank's statement (issue 22, item 4):
 *
 * 1. A statement read proves non-booking only if it is credible: it answers a
 *    read the database itself asked for (statements_to_read's request, within
 *    its time, once) and shows every booking the ledger already knows on that
 *    account and those dates. The attack: a stolen worker login records a
 *    forged empty statement while a booked transfer is unresolved, then lets
 *    decide_unresolved re-plan it under a new number (paid twice).
 * 2. Confirm is proven by the bank: before a kind's withdrawal its payouts of
 *    the day must be on the settlement account's statement. The attack: a
 *    payout claimed and recorded succeeded by the stolen login, never sent;
 *    the withdrawal would take its amount from other money on the account.
 *
 * Real Postgres, a real login holding settlement_worker (the attacker), the
 * SQL the worker calls.
 */
import t, { type Test } from 'tap';
import { sql } from 'slonik';
import { z } from 'zod';
import type { DatabasePool } from '../../src/db/pool.js';
import { configureReconcile, reconciliationBreaks } from '../../src/db/reconcile.js';
import { runStage } from '../../src/db/stages.js';
import { seed, settlementAccountNo } from '../../src/seed.js';
import { freshDb } from '../helpers/db.js';
import { pastDate } from '../helpers/fixtures.js';
import { workerLogin as sharedWorkerLogin } from '../helpers/roles.js';
import { claimTransfer, finishTransfer } from '../helpers/transfers.js';

const D = pastDate(1);
const S = settlementAccountNo('tax');
const row = z.object({ id: z.number(), is_tuno: z.string(), amount: z.bigint(), to_account: z.string() });
type Row = z.infer<typeof row>;

const workerLogin = (t: Test, url: string) => sharedWorkerLogin(t, url, 'se');

/** A paid-out day (D, tax): its chunks planned, nothing sent; every payout goes to the settlement account S. */
async function plannedDay(t: Test, accounts: number) {
  const { url, db } = await freshDb(t);
  await seed(db, { date: D, accounts, perAccount: 1, kinds: ['tax'] });
  await db.query(sql.unsafe`update settlement.accounts set fin_acno = '0082' || account_no where role = 'loan'`);
  t.equal((await runStage(db, 'record', D, 'tax')).outcome, 'done');
  t.equal((await runStage(db, 'pay', D, 'tax')).outcome, 'done');
  const rows = await db.any(sql.type(row)`
    select id::int as id, is_tuno, amount, to_account from settlement.transfers where business_date = ${D}::date and purpose = 'payout' order by id`);
  return { url, db, rows: [...rows] };
}

/** The real worker pays x: claims it and records the bank's booking. */
async function pay(db: DatabasePool, x: Row) {
  await claimTransfer(db, x.id, 'real-worker', 60_000);
  await finishTransfer(db, x.id, x.is_tuno, { outcome: 'succeeded', processedAt: '20260101120000' });
}

const tsymdOf = (db: DatabasePool, id: number) => db.oneFirst(sql.type(z.object({ d: z.string() }))`select tsymd as d from settlement.transfers where id = ${id}`);
const transferOf = (db: DatabasePool, id: number) => db.one(sql.type(z.object({ state: z.string(), is_tuno: z.string() }))`
  select state::text as state, is_tuno from settlement.transfers where id = ${id}`);
const alerts = (db: DatabasePool, problem: string) => db.oneFirst(sql.type(z.object({ n: z.number() }))`
  select count(*)::int as n from settlement.alerts where problem = ${problem}`);
const withdrawals = (db: DatabasePool) => db.oneFirst(sql.type(z.object({ n: z.number() }))`
  select count(*)::int as n from settlement.transfers where business_date = ${D}::date and purpose = 'withdrawal'`);

/** The statement line the bank prints on the settlement account for payout x (our reference DS<IsTuno>). */
function lineOf(x: Row, ymd: string, n: number) {
  return { trdd: ymd, txtm: `12000${n}`, mnrc_drot_dsnc: '2', tram: x.amount.toString(), aftr_blnc: '0', balance_sign: '+', smr: null, hnis_cd: '011',
    hnbr_cd: '0110001', ccyn: '0', tuno: `${ymd}00000000000${n}`, bnpr_cntn: `DS${x.is_tuno}` };
}

/** The reads the database asks for now, as the worker's reader gets them. */
async function asked(w: Awaited<ReturnType<typeof workerLogin>>) {
  return w.rows(`select bncd, acno, ymd, to_ymd, to_char(asked_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as asked_at from settlement.statements_to_read()`);
}

const answer = (w: Awaited<ReturnType<typeof workerLogin>>, n: Record<string, string>, lines: unknown[]) =>
  w.one(`select settlement.record_statement($1, $2, $3, $4, $5::jsonb, $6::timestamptz) as n`, [n['bncd'], n['acno'], n['ymd'], n['to_ymd'], JSON.stringify(lines), n['asked_at']]);

t.test('1: a forged empty statement proves no non-booking; only a credible read the database asked for decides an unresolved transfer', async (t) => {
  const { url, db, rows } = await plannedDay(t, 3);
  const [x0, x1, x2] = [rows[0]!, rows[1]!, rows[2]!];
  // The simulator's setting: a statement is final at once (so the attack needs no waiting).
  await configureReconcile(db, '-1 day');
  await pay(db, x0);
  await pay(db, x1);
  // The real worker's call for x2 is in flight (and the bank books it).
  const real = await claimTransfer(db, x2.id, 'real-worker', 60_000);
  const w = await workerLogin(t, url);
  const ymd = await tsymdOf(db, x2.id);

  // The attack of issue 22, step 1: 'unresolved' while the real call is in flight — fenced by the claim (already on main).
  t.equal(await w.one(`select settlement.finish_transfers(array[${x2.id}]::bigint[], array['${x2.is_tuno}'], '{unresolved}', '{null}', '{null}', '{x}', '{}')`),
    'stale', 'unresolved from a login that does not hold the claim: stale');
  // The real attempt ends unresolved (its answer was lost after the bank booked it): the statement decides it.
  t.equal(await finishTransfer(db, x2.id, x2.is_tuno, { outcome: 'unresolved', reason: 'timeout after sending' }, real.claim_token), 'unresolved');

  // Step 2: a forged empty statement, written ad hoc (no read the database asked for).
  t.equal(await w.one(`select settlement.record_statement('011', '${S}', '${ymd}', '${ymd}', '[]'::jsonb, now()) as n`), 'null',
    'an ad-hoc statement answering no read request: refused');
  t.equal(await alerts(db, 'statement_refused'), 1, 'and alerted');
  // Step 3: decide_unresolved.
  t.equal(await w.one(`select decision from settlement.decide_unresolved()`), 'none', 'decide_unresolved decides nothing on it');
  t.same(await transferOf(db, x2.id), { state: 'sending', is_tuno: x2.is_tuno }, 'x2 keeps its number: nothing is sent again');
  const reads = await db.oneFirst(sql.type(z.object({ n: z.number() }))`select count(*)::int as n from settlement.statement_reads`);
  t.equal(reads, 0, 'no statement read recorded');

  // A read the database asked for, answered empty (or partial) while the ledger knows bookings on that account and date.
  await db.query(sql.unsafe`select settlement.configure_statement_checks('0 seconds'::interval, null)`);
  let needs = await asked(w);
  const need = needs.find((n) => n['acno'] === S && n['ymd'] === ymd);
  t.ok(need, 'the reconcile path asks for the settlement account\'s statement of that date');
  t.equal(await answer(w, need!, []), 'null', 'an empty answer where x0 and x1 are known booked: refused');
  t.equal(await alerts(db, 'statement_refused'), 2, 'and alerted');
  t.equal(await answer(w, need!, [lineOf(x0, ymd, 1), lineOf(x2, ymd, 3)]), 'null', 'a partial answer (x1 missing): refused (a request is answered once)');
  needs = await asked(w);
  const again = needs.find((n) => n['acno'] === S && n['ymd'] === ymd)!;
  t.equal(await answer(w, again, [lineOf(x0, ymd, 1)]), 'null', 'a partial answer (x1 missing): refused');
  t.equal(await w.one(`select decision from settlement.decide_unresolved()`), 'none', 'still nothing decided');
  t.same(await transferOf(db, x2.id), { state: 'sending', is_tuno: x2.is_tuno }, 'x2 still keeps its number');
  const msg = await db.oneFirst(sql.type(z.object({ m: z.string() }))`select message as m from settlement.alerts where problem = 'statement_refused' order by id desc limit 1`);
  t.match(msg, /\*\*\*\*\d{4}/, 'the alert names the account, masked');
  t.notMatch(msg, new RegExp(S), 'never in full');

  // A stale request (past its time) is refused too.
  await db.query(sql.unsafe`select settlement.configure_statement_checks(null, '1 millisecond'::interval)`);
  const late = (await asked(w)).find((n) => n['acno'] === S && n['ymd'] === ymd)!;
  await db.query(sql.unsafe`select pg_sleep(0.01)`);
  t.equal(await answer(w, late, [lineOf(x0, ymd, 1), lineOf(x1, ymd, 2), lineOf(x2, ymd, 3)]), 'null', 'an answer after the request\'s time: refused');
  await db.query(sql.unsafe`select settlement.configure_statement_checks(null, '1 hour'::interval)`);

  // The bank's real statement, read by the reconcile path: x2 was booked.
  const real2 = (await asked(w)).find((n) => n['acno'] === S && n['ymd'] === ymd)!;
  t.equal(await answer(w, real2, [lineOf(x0, ymd, 1), lineOf(x1, ymd, 2), lineOf(x2, ymd, 3)]), '2', 'the credible read is recorded (x0\'s line was kept from the refused answer to an open request; answers to no open request stored nothing)');
  t.equal(await db.oneFirst(sql.type(z.object({ n: z.number() }))`select count(*)::int as n from settlement.statement_reads`), 1, 'and counts as a read');
  t.equal(await w.one(`select decision from settlement.decide_unresolved()`), 'succeeded', 'and decides x2: booked');
  t.same(await transferOf(db, x2.id), { state: 'succeeded', is_tuno: x2.is_tuno }, 'x2 succeeded under its one number');
});

t.test('2: a payout recorded succeeded but never sent blocks the withdrawal with a break; no other money leaves the account', async (t) => {
  const { url, db, rows } = await plannedDay(t, 2);
  const [x0, x1] = [rows[0]!, rows[1]!];
  await pay(db, x0);
  // The attack: the stolen login claims x1 and records it succeeded; it is never sent.
  const w = await workerLogin(t, url);
  const claim = await w.one(`select settlement.claim_transfers(array[${x1.id}]::bigint[], '{attacker}', 60000, 0, '{}', 0) -> 'claims' -> 0 ->> 'claim_token'`);
  t.match(claim, /^[0-9]+$/, 'the stolen login can claim');
  t.equal(await w.one(`select (settlement.finish_transfers(array[${x1.id}]::bigint[], array['${x1.is_tuno}'], '{succeeded}', '{20260101120000}', '{null}', '{null}', '{}', array[${claim}]::bigint[]))[1]`),
    'succeeded', 'and record it succeeded');
  t.equal((await runStage(db, 'confirm', D, 'tax')).outcome, 'done', 'confirm, from our own records, is done');

  const first = await runStage(db, 'withdraw', D, 'tax');
  t.equal(first.outcome, 'not_ready', 'withdraw waits for the bank\'s statement to show the day\'s payouts');
  t.equal(await withdrawals(db), 0, 'no withdrawal');
  const ymd = await tsymdOf(db, x1.id);
  // One read of the settlement account for the day-kind, not one per chunk.
  const needs = (await asked(w)).filter((n) => n['acno'] === S);
  t.same(needs.map((n) => n['ymd']), [ymd], 'one statement read asked for the settlement account');
  // The bank shows x0 (x1 was never sent).
  t.equal(await answer(w, needs[0]!, [lineOf(x0, ymd, 1)]), '1');
  const waiting = await runStage(db, 'withdraw', D, 'tax');
  t.equal(waiting.outcome, 'not_ready', 'within config.statement_lag the statement may simply not show it yet: the stage waits, no break');
  t.match(waiting.detail, /1 payout/);
  t.same(await reconciliationBreaks(db, D), [], 'no break yet');
  t.equal(await withdrawals(db), 0, 'and no withdrawal');

  // The bound passes (config.statement_lag, a setting; here set to 0 instead of waiting an hour): the read made after it did not show x1.
  await db.query(sql.unsafe`select settlement.configure_statement_checks('0 seconds'::interval, null)`);
  t.same((await asked(w)).filter((n) => n['acno'] === S), [], 'no read more: the read made after the bound decides');
  for (const run of [1, 2]) {
    const r = await runStage(db, 'withdraw', D, 'tax');
    t.equal(r.outcome, 'blocked', `withdraw is blocked (run ${run})`);
    t.match(r.detail, /no line on the statement/);
  }
  const b = await reconciliationBreaks(db, D, 'tax');
  t.same(b.map((x) => [x.problem, x.transfer_id, x.amount]), [['missing_line', BigInt(x1.id), x1.amount]], 'one missing_line break: the payout never seen at the bank');
  t.equal(await withdrawals(db), 0, 'no withdrawal: no other money leaves the settlement account');
  const verdict = await db.oneFirst(sql.type(z.object({ v: z.string() }))`select verdict as v from settlement.day_verdicts where business_date = ${D}::date and kind = 'tax'`);
  t.equal(verdict, 'BLOCKED', 'the day is BLOCKED (alerted by the watch)');
});

t.test('2: payouts the statement shows late are waited for, then withdrawn once, by one read per settlement account', async (t) => {
  const { url, db, rows } = await plannedDay(t, 3);
  // The bank may take 16 s to show a booking: read again every 2 s until then.
  await db.query(sql.unsafe`select settlement.configure_statement_checks('16 seconds'::interval, null)`);
  for (const x of rows) await pay(db, x);
  t.equal((await runStage(db, 'confirm', D, 'tax')).outcome, 'done');
  t.equal((await runStage(db, 'withdraw', D, 'tax')).outcome, 'not_ready');
  const w = await workerLogin(t, url);
  const ymd = await tsymdOf(db, rows[0]!.id);
  const n1 = (await asked(w)).filter((n) => n['acno'] === S);
  t.equal(n1.length, 1, 'one read for three chunks');
  // The bank shows two of three so far.
  t.equal(await answer(w, n1[0]!, [lineOf(rows[0]!, ymd, 1), lineOf(rows[1]!, ymd, 2)]), '2');
  t.equal((await runStage(db, 'withdraw', D, 'tax')).outcome, 'not_ready', 'one not shown yet: wait');
  t.same((await asked(w)).filter((n) => n['acno'] === S), [], 'no read again at once (the next one is due later)');
  // Read again a little later: every payout shown.
  await db.query(sql.unsafe`select pg_sleep(2.1)`);
  const n2 = (await asked(w)).filter((n) => n['acno'] === S);
  t.equal(n2.length, 1);
  t.equal(await answer(w, n2[0]!, rows.map((x, i) => lineOf(x, ymd, i + 1))), '1', 'the third line is new');
  const [a, b] = await Promise.all([runStage(db, 'withdraw', D, 'tax'), runStage(db, 'withdraw', D, 'tax')]);
  const outs = [a.outcome, b.outcome].sort();
  t.ok(outs.includes('started') && ['busy', 'in_progress'].includes(outs.find((o) => o !== 'started') ?? ''), `two at once: one starts it (${outs.join(', ')})`);
  t.equal((await runStage(db, 'withdraw', D, 'tax')).outcome, 'in_progress', 'again: in progress, nothing new');
  t.equal(await withdrawals(db), 1, 'one withdrawal');
  const total = await db.oneFirst(sql.type(z.object({ a: z.bigint() }))`
    select amount as a from settlement.transfers where business_date = ${D}::date and purpose = 'withdrawal'`);
  t.equal(total, rows.reduce((s, x) => s + x.amount, 0n), 'of exactly the day\'s payouts');
  t.same(await reconciliationBreaks(db, D), [], 'no break');
});
