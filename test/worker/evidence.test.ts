/**
 * The bank's evidence always wins (issue 21), through the SQL functions the
 * worker and the operators call: booking evidence makes a transfer succeeded
 * whatever state it was in (A), a finish only changes a transfer while it
 * holds the live claim and decide_unresolved only counts a read made after the
 * last possible send (C), malformed batches are refused (F) and slots are
 * given back on every error path (G), and a person decides with evidence (E).
 * The end-to-end cases with a worker and the simulator are in
 * test/evidence-e2e.test.ts.
 */
import t, { type Test } from 'tap';
import type pg from 'pg';
import { sql } from 'slonik';
import { z } from 'zod';
import { SLOTS_OF_THIS_CONNECTION } from '../../src/db/bank-slots.js';
import type { DatabasePool } from '../../src/db/pool.js';
import { configureReconcile, decideUnresolved, reconciliationBreaks } from '../../src/db/reconcile.js';
import { runStage } from '../../src/db/stages.js';
import { loanAccountNo, seed, settlementAccountNo } from '../../src/seed.js';
import { freshDb, pgClient } from '../helpers/db.js';
import { pastDate } from '../helpers/fixtures.js';
import { runCli } from '../helpers/procs.js';
import { claimTransfer, finishTransfer } from '../helpers/transfers.js';

const D = pastDate(1);
const code = (p: Promise<unknown>) => p.then(() => 'ok', (e: { code?: string; sqlstate?: string }) => e.sqlstate ?? e.code);
const row = z.object({ id: z.number(), is_tuno: z.string(), amount: z.bigint(), to_account: z.string() });

/** A paid-out day (D, tax) whose chunks are planned and nothing sent: n payouts. */
async function plannedDay(t: Test, accounts = 2) {
  const { url, db } = await freshDb(t);
  await seed(db, { date: D, accounts, perAccount: 1, kinds: ['tax'] });
  await db.query(sql.unsafe`update settlement.accounts set fin_acno = '0082' || account_no where role = 'loan'`);
  t.equal((await runStage(db, 'record', D, 'tax')).outcome, 'done');
  t.equal((await runStage(db, 'pay', D, 'tax')).outcome, 'done');
  const rows = await db.any(sql.type(row)`
    select id::int as id, is_tuno, amount, to_account from settlement.transfers where business_date = ${D}::date and purpose = 'payout' order by id`);
  const c = await pgClient(t, url);
  return { url, db, c, rows };
}

/** One bank answer recorded by an attempt that does not hold the claim (no token): the one-by-one form of finish_transfers, as 0.x wrote it. */
async function answerWithoutClaim(c: pg.Client, id: number, isTuno: string, outcome: string, processedAt: string | null = null, bankCode: string | null = null) {
  const r = await c.query(`select settlement.finish_transfers($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], '{}') as r`,
    [[id], [isTuno], [outcome], [processedAt], [bankCode], [outcome === 'succeeded' ? null : 'test']]);
  return (r.rows[0].r as string[])[0];
}

const transfer = (db: DatabasePool, id: number) => db.one(sql.type(z.object({ state: z.string(), is_tuno: z.string(), attempt: z.number(), claimed_until: z.string().nullable() }))`
  select state::text as state, is_tuno, attempt, claimed_until::text as claimed_until from settlement.transfers where id = ${id}`);
const attempts = (db: DatabasePool, id: number) => db.any(sql.type(z.object({ is_tuno: z.string(), outcome: z.string(), code: z.string().nullable() }))`
  select is_tuno, outcome::text as outcome, code from settlement.transfer_attempts where transfer_id = ${id} order by id`);
const journalRefs = (db: DatabasePool, id: number) => db.anyFirst(sql.type(z.object({ ref: z.string() }))`
  select e.ref from settlement.journal_entries e where e.event = 'payout' and e.memo like ${`transfer ${id} %`} order by e.id`);

t.test('A: a booking answered for the number a transfer was recorded failed under makes it succeeded; retry finds nothing to send again', async (t) => {
  const { db, c, rows } = await plannedDay(t);
  const x = rows[0]!;
  await claimTransfer(db, x.id, 'w1', 60_000);
  t.equal(await finishTransfer(db, x.id, x.is_tuno, { outcome: 'failed', code: 'E1', message: 'refused' }), 'failed');
  // A second attempt (or a late answer) under the same number: the bank booked it.
  t.equal(await answerWithoutClaim(c, x.id, x.is_tuno, 'succeeded', '20260101120000'), 'succeeded', 'the evidence is taken');
  const now = await transfer(db, x.id);
  t.equal(now.state, 'succeeded', 'the transfer is succeeded');
  t.equal(now.is_tuno, x.is_tuno, 'under the booked number');
  t.same(await journalRefs(db, x.id), [x.is_tuno], 'its journal entry is posted once');
  const ev = await db.any(sql.type(z.object({ is_tuno: z.string(), booked: z.boolean(), source: z.string() }))`
    select is_tuno, booked, source from settlement.transfer_evidence where transfer_id = ${x.id}`);
  t.same(ev, [{ is_tuno: x.is_tuno, booked: true, source: 'answer' }], 'the evidence is recorded');
  t.same(await reconciliationBreaks(db, D), [], 'no orphan: the money is the transfer\'s');
  t.equal(await db.oneFirst(sql.type(z.object({ n: z.number() }))`select settlement.retry_failed(${D}::date, 'tax') as n`), 0, 'retry_failed re-plans nothing');
  t.equal((await transfer(db, x.id)).is_tuno, x.is_tuno, 'and no new number');
  // Told again: nothing more.
  t.equal(await answerWithoutClaim(c, x.id, x.is_tuno, 'succeeded', '20260101120000'), 'already_settled');
  t.same(await journalRefs(db, x.id), [x.is_tuno], 'still one journal entry');
});

t.test('A: a late booking of an older number withdraws a newer number never sent, and a newer number already sent becomes the orphan', async (t) => {
  const { db, c, rows } = await plannedDay(t, 2);
  const [x, y] = [rows[0]!, rows[1]!];
  for (const r of [x, y]) {
    await claimTransfer(db, r.id, 'w1', 60_000);
    t.equal(await finishTransfer(db, r.id, r.is_tuno, { outcome: 'failed', code: 'E1', message: 'refused' }), 'failed');
  }
  t.equal(await db.oneFirst(sql.type(z.object({ n: z.number() }))`select settlement.retry_failed(${D}::date, 'tax') as n`), 2);
  // y's new number is claimed (it may have been sent); x's is not.
  const y2 = await claimTransfer(db, y.id, 'w2', 60_000);
  t.not(y2.is_tuno, y.is_tuno);
  const x2 = (await transfer(db, x.id)).is_tuno;

  t.equal(await answerWithoutClaim(c, x.id, x.is_tuno, 'succeeded', '20260101120000'), 'succeeded', 'x: the old number\'s booking is taken');
  const xs = await transfer(db, x.id);
  t.same([xs.state, xs.is_tuno], ['succeeded', x.is_tuno], 'x is succeeded under the booked number');
  t.same((await attempts(db, x.id)).map((a) => [a.is_tuno, a.outcome, a.code]), [[x.is_tuno, 'failed', 'E1'], [x2, 'failed', 'withdrawn']],
    'the newer number, never sent, is withdrawn');

  t.equal(await answerWithoutClaim(c, y.id, y.is_tuno, 'succeeded', '20260101120000'), 'succeeded', 'y: the old number\'s booking is taken');
  const ys = await transfer(db, y.id);
  t.same([ys.state, ys.is_tuno, ys.claimed_until], ['succeeded', y.is_tuno, null], 'y is succeeded under the booked number, its claim gone');
  t.same((await attempts(db, y.id)).map((a) => [a.is_tuno, a.outcome, a.code]), [[y.is_tuno, 'failed', 'E1'], [y2.is_tuno, 'sending', 'superseded']],
    'the newer number, claimed, is kept with an unknown outcome');
  t.same(await reconciliationBreaks(db, D), [], 'no orphan yet');
  // The newer attempt's own answers: a failure changes nothing; a booking is the orphan.
  t.equal(await finishTransfer(db, y.id, y2.is_tuno, { outcome: 'failed', code: 'E2', message: 'x' }, y2.claim_token), 'stale');
  t.equal(await finishTransfer(db, y.id, y2.is_tuno, { outcome: 'succeeded', processedAt: '20260101120500' }, y2.claim_token), 'stale');
  const b = await reconciliationBreaks(db, D);
  t.same(b.map((x) => [x.problem, x.is_tuno]), [['orphan', y2.is_tuno]], 'the newer number\'s booking is the orphan, in suspense');
  t.same([await journalRefs(db, x.id), await journalRefs(db, y.id)], [[x.is_tuno], [y.is_tuno]], 'one journal entry each, under the booked number');
  const sums = await db.oneFirst(sql.type(z.object({ n: z.bigint() }))`
    select count(*) as n from (select journal_id from settlement.journal_lines group by 1 having sum(amount) <> 0) x`);
  t.equal(sums, 0n, 'every journal entry balances');
});

t.test('A: retry refuses a transfer the bank has booked or may still book', async (t) => {
  const { db, rows } = await plannedDay(t, 1);
  const x = rows[0]!;
  await claimTransfer(db, x.id, 'w1', 60_000);
  t.equal(await finishTransfer(db, x.id, x.is_tuno, { outcome: 'failed', code: 'E1', message: 'refused' }), 'failed');
  // The statement shows a line with its reference (read, not yet matched).
  const ymd = await db.oneFirst(sql.type(z.object({ d: z.string() }))`select tsymd as d from settlement.transfers where id = ${x.id}`);
  const line = [{ trdd: ymd, txtm: '120000', mnrc_drot_dsnc: '2', tram: x.amount.toString(), aftr_blnc: '0', balance_sign: '+', smr: null, hnis_cd: null,
    hnbr_cd: null, ccyn: '0', tuno: `${ymd}000000000001`, bnpr_cntn: `DS${x.is_tuno}` }];
  await db.query(sql.unsafe`select settlement.record_statement('011', ${x.to_account}, ${ymd}, ${ymd}, ${JSON.stringify(line)}::jsonb, settlement.ask_statement('011', ${x.to_account}, ${ymd}, ${ymd}))`);
  const before = await transfer(db, x.id);
  t.equal(await code(db.query(sql.unsafe`select settlement.retry_failed(${D}::date, 'tax')`)), 'ST016', 'retry_failed: transfer_may_be_booked');
  t.equal(await code(db.query(sql.unsafe`select * from settlement.retry_day(${D}::date)`)), 'ST016', 'retry_day too');
  t.same(await transfer(db, x.id), before, 'nothing changed');
});

t.test('C: only the attempt holding the live claim changes a transfer; decide_unresolved waits for a read after the last possible send', async (t) => {
  const { db, c, rows } = await plannedDay(t, 1);
  const x = rows[0]!;
  await configureReconcile(db, '-1 day');
  // A live attempt: it may still send (under today's date, fixed by its claim).
  const a1 = await claimTransfer(db, x.id, 'a1', 600_000);
  t.match(a1.claim_token, /^[0-9]+$/, 'a claim carries a fencing token');
  const ymd = await db.oneFirst(sql.type(z.object({ d: z.string() }))`select tsymd as d from settlement.transfers where id = ${x.id}`);
  // Someone else (a stale attempt, a stolen login) says 'unresolved' and 'failed'.
  t.equal(await answerWithoutClaim(c, x.id, x.is_tuno, 'unresolved'), 'stale', 'an unresolved answer without the claim: stale');
  t.equal(await answerWithoutClaim(c, x.id, x.is_tuno, 'failed', null, 'E9'), 'stale', 'a failure without the claim: stale');
  const s = await transfer(db, x.id);
  t.same([s.state, s.claimed_until !== null], ['sending', true], 'still sending, still claimed');
  // A statement read now (empty) while the attempt may still send.
  await db.query(sql.unsafe`select settlement.record_statement('011', ${x.to_account}, ${ymd}, ${ymd}, '[]'::jsonb, settlement.ask_statement('011', ${x.to_account}, ${ymd}, ${ymd}))`);
  t.same(await decideUnresolved(db), [], 'decide_unresolved decides nothing while the attempt may still send');
  t.equal((await transfer(db, x.id)).is_tuno, x.is_tuno, 'no new number');
  // The attempt itself ends unresolved; only a read after that counts.
  t.equal(await finishTransfer(db, x.id, x.is_tuno, { outcome: 'unresolved', reason: 'not found; date over' }, a1.claim_token), 'unresolved');
  t.same(await decideUnresolved(db), [], 'a read made before the attempt ended proves nothing');
  await db.query(sql.unsafe`select settlement.record_statement('011', ${x.to_account}, ${ymd}, ${ymd}, '[]'::jsonb, settlement.ask_statement('011', ${x.to_account}, ${ymd}, ${ymd}))`);
  const d = await decideUnresolved(db);
  t.same(d.map((r) => [r.transfer_id, r.decision]), [[BigInt(x.id), 'not_booked']], 'a read after it decides');
});

t.test('C: configure_reconcile refuses a grace shorter than the longest attempt; a claim longer than it is refused', async (t) => {
  const { db, c, rows } = await plannedDay(t, 1);
  for (const g of ['0', '5 minutes', '59 minutes']) {
    t.equal(await code(configureReconcile(db, g)), 'ST022', `grace ${g}: refused`);
  }
  t.equal(await code(configureReconcile(db, '2 hours')), 'ok', '2 hours: accepted');
  t.equal(await db.oneFirst(sql.type(z.object({ g: z.string() }))`select reconcile_after::text as g from settlement.config`), '02:00:00');
  t.equal(await code(c.query(`select settlement.claim_transfers($1::bigint[], '{w}', 61 * 60 * 1000, 0, '{}', 0)`, [[rows[0]!.id]])), 'ST019',
    'a lease longer than config.max_attempt: refused');
  t.equal((await transfer(db, rows[0]!.id)).state, 'pending', 'and not claimed');
});

t.test('F: claim_transfers and finish_transfers refuse a batch naming a transfer twice', async (t) => {
  const { db, c, rows } = await plannedDay(t, 2);
  const [x, y] = [rows[0]!, rows[1]!];
  t.equal(await code(c.query(`select settlement.claim_transfers($1::bigint[], '{w,w,w}', 60000, 0, '{}', 0)`, [[x.id, y.id, x.id]])), 'ST014', 'claims: duplicate_in_batch');
  t.same([(await transfer(db, x.id)).state, (await transfer(db, y.id)).state], ['pending', 'pending'], 'nothing claimed');
  const a = await claimTransfer(db, x.id, 'w', 60_000);
  const before = await transfer(db, x.id);
  t.equal(await code(c.query(`select settlement.finish_transfers($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], '{}', $7::bigint[])`,
    [[x.id, x.id], [x.is_tuno, x.is_tuno], ['failed', 'succeeded'], [null, '20260101120000'], ['E', null], ['m', null], [a.claim_token, a.claim_token]])), 'ST014', 'finishes: duplicate_in_batch');
  t.same(await transfer(db, x.id), before, 'nothing changed');
  t.same(await attempts(db, x.id), [], 'no attempt recorded');
});

t.test('G: slots are given back when a batch is refused', async (t) => {
  const { url, rows } = await plannedDay(t, 1);
  const c = await pgClient(t, url);
  const held = async () => (await c.query(SLOTS_OF_THIS_CONNECTION)).rows.map((r: { slot: number }) => r.slot).sort();
  const r = await c.query(`select settlement.claim_transfers('{}', '{}', 60000, 2, '{}', 0) as r`);
  const slots = (r.rows[0].r as { slots: number[] }).slots;
  t.equal(slots.length, 2, 'two slots taken');
  t.equal(await code(c.query(`select settlement.finish_transfers($1::bigint[], '{}', '{}', '{}', '{}', '{}', $2::int[])`, [[rows[0]!.id], slots])), 'ST001', 'a malformed finish batch is refused');
  t.same(await held(), [], 'the slots it gave back are free all the same');
  // A refused claim batch takes no slot and no "waiting" lock.
  t.equal(await code(c.query(`select settlement.claim_transfers($1::bigint[], '{}', 60000, 2, '{}', 1)`, [[rows[0]!.id]])), 'ST001');
  t.same(await held(), [], 'no slot held after a refused claim');
  const waiting = await c.query(`select count(*)::int as n from pg_locks where pid = pg_backend_pid() and locktype = 'advisory' and objid = 0 and classid = settlement.bank_slot_lock_class()`);
  t.equal(waiting.rows[0].n, 0, 'nor the waiting lock');
});

t.test('E: a person decides an unresolved transfer with evidence; settle failures says why the statement has not', async (t) => {
  const { url, db, rows } = await plannedDay(t, 2);
  const [x, y] = [rows[0]!, rows[1]!];
  await configureReconcile(db, '-1 day');
  const ymd = await db.oneFirst(sql.type(z.object({ d: z.string() }))`select settlement.bank_ymd() as d`);
  await db.query(sql.unsafe`
    update settlement.transfers set state = 'sending', tsymd = ${ymd}, unresolved_since = now(), unresolved_reason = 'test: result check failed', updated_at = now()
    where id in (${x.id}, ${y.id})`);
  // y: the bank confirms by other means (its statement is not final yet).
  t.equal(await db.oneFirst(sql.type(z.object({ r: z.string() }))`select settlement.decide_transfer(${y.id}, true, 'NH branch: booked at 12:00') as r`), 'succeeded');
  t.equal((await transfer(db, y.id)).state, 'succeeded', 'y is succeeded');
  t.same(await journalRefs(db, y.id), [y.is_tuno], 'with its journal entry');
  // A foreign deposit of the same amount, with no reference, on the settlement account.
  const line = [{ trdd: ymd, txtm: '235959', mnrc_drot_dsnc: '2', tram: x.amount.toString(), aftr_blnc: '0', balance_sign: '+', smr: null, hnis_cd: null,
    hnbr_cd: null, ccyn: '0', tuno: `${ymd}000000000009`, bnpr_cntn: 'RENT' }];
  await new Promise((r) => setTimeout(r, 20));
  await db.query(sql.unsafe`select settlement.record_statement('011', ${x.to_account}, ${ymd}, ${ymd}, ${JSON.stringify(line)}::jsonb, settlement.ask_statement('011', ${x.to_account}, ${ymd}, ${ymd}))`);
  t.same((await decideUnresolved(db)).filter((d) => Number(d.transfer_id) === x.id), [], 'the statement cannot decide x');
  const why = await db.oneFirst(sql.type(z.object({ w: z.string().nullable() }))`select undecided_why as w from settlement.payout_failures where transfer_id = ${x.id}`);
  t.match(why, /unreferenced line .* same amount/, `payout_failures.undecided_why says why: ${why}`);
  t.match(why, /decide_transfer/, 'and what a person can do');
  const cli = await runCli(['failures', '--date', D], { DATABASE_URL: url });
  t.equal(cli.code, 0, cli.stderr);
  t.match(cli.stdout, new RegExp(`unresolved payout #${x.id} .*\\n  undecided: an unreferenced line of the same amount`), `settle failures shows it:\n${cli.stdout}`);

  t.equal(await code(db.query(sql.unsafe`select settlement.decide_transfer(${x.id}, false, ' ')`)), 'ST018', 'no evidence: evidence_required');
  t.equal(await code(db.query(sql.unsafe`select settlement.decide_transfer(${x.id}, null, 'x')`)), 'ST018', 'booked or not must be said');
  t.equal(await code(db.query(sql.unsafe`select settlement.decide_transfer(424242, false, 'x')`)), 'ST008', 'unknown transfer');
  await db.query(sql.unsafe`update settlement.transfers set claimed_by = 'w', claimed_until = now() + interval '1 minute' where id = ${x.id}`);
  t.equal(await code(db.query(sql.unsafe`select settlement.decide_transfer(${x.id}, false, 'x')`)), 'ST017', 'refused while claimed');
  await db.query(sql.unsafe`update settlement.transfers set claimed_by = null, claimed_until = null where id = ${x.id}`);

  t.equal(await db.oneFirst(sql.type(z.object({ r: z.string() }))`select settlement.decide_transfer(${x.id}, false, 'NH branch: no booking under DS' || ${x.is_tuno}) as r`), 'not_booked');
  const xs = await transfer(db, x.id);
  t.same([xs.state, xs.attempt], ['pending', 2], 'x is planned again under a new number');
  t.not(xs.is_tuno, x.is_tuno);
  t.same((await attempts(db, x.id)).map((a) => [a.is_tuno, a.outcome, a.code]), [[x.is_tuno, 'failed', 'decided_by_person']]);
  const audit = await db.anyFirst(sql.type(z.object({ a: z.string() }))`select action as a from settlement.operator_actions where action = 'decide_transfer' order by id`);
  t.equal(audit.length, 2, 'both decisions are audited');
  const ev = await db.any(sql.type(z.object({ booked: z.boolean(), source: z.string(), detail: z.string() }))`
    select booked, source, detail from settlement.transfer_evidence where transfer_id in (${x.id}, ${y.id}) order by transfer_id`);
  t.same(ev.map((e) => [e.booked, e.source]), [[false, 'person'], [true, 'person']], 'the evidence is kept');
  t.equal(await code(db.query(sql.unsafe`select settlement.decide_transfer(${y.id}, false, 'x')`)), 'ST017', 'a settled transfer is not decided again');
  void loanAccountNo; void settlementAccountNo;
});

t.test('B: a cancellation line is paired with its original by the reference printed on it, never by amount alone', async (t) => {
  const { db, rows } = await plannedDay(t, 2);
  const [x, y] = [rows[0]!, rows[1]!];
  for (const r of [x, y]) {
    await claimTransfer(db, r.id, 'w', 60_000);
    t.equal(await finishTransfer(db, r.id, r.is_tuno, { outcome: 'succeeded', processedAt: '20260101120000' }), 'succeeded');
  }
  const ymd = await db.oneFirst(sql.type(z.object({ d: z.string() }))`select tsymd as d from settlement.transfers where id = ${x.id}`);
  const line = (txtm: string, tuno: string, dsnc: string, ccyn: string, amount: bigint, text: string | null, smr: string | null = null) => ({
    trdd: ymd, txtm, mnrc_drot_dsnc: dsnc, tram: amount.toString(), aftr_blnc: '0', balance_sign: '+', smr, hnis_cd: null, hnbr_cd: null, ccyn, tuno: `${ymd}${tuno}`, bnpr_cntn: text });
  const lines = [
    line('120000', '000000000001', '2', '0', x.amount, `DS${x.is_tuno}`),
    line('120001', '000000000002', '2', '0', y.amount, `DS${y.is_tuno}`),
    // x's booking reversed, the reversal naming it (in Smr); then a reversal of y's amount naming nothing.
    line('130000', '000000000003', '3', '1', x.amount, null, `취소 DS${x.is_tuno}`),
    line('130001', '000000000004', '3', '1', y.amount, null, '취소'),
  ];
  await db.query(sql.unsafe`select settlement.record_statement('011', ${x.to_account}, ${ymd}, ${ymd}, ${JSON.stringify(lines)}::jsonb, settlement.ask_statement('011', ${x.to_account}, ${ymd}, ${ymd}))`);
  await db.query(sql.unsafe`select settlement.match_lines(${D}::date, 'tax')`);
  const m = await db.any(sql.type(z.object({ tuno: z.string(), rule: z.string(), transfer_id: z.number().nullable(), is_tuno: z.string().nullable(), cancels: z.string().nullable() }))`
    select l.tuno, m.rule, m.transfer_id::int as transfer_id, m.is_tuno, ol.tuno as cancels
    from settlement.line_matches m join settlement.statement_lines l on l.id = m.line_id left join settlement.statement_lines ol on ol.id = m.cancels_line_id
    where l.ccyn = '1' order by l.tuno`);
  t.same(m, [
    { tuno: `${ymd}000000000003`, rule: 'cancellation', transfer_id: x.id, is_tuno: x.is_tuno, cancels: `${ymd}000000000001` },
    { tuno: `${ymd}000000000004`, rule: 'cancellation', transfer_id: null, is_tuno: null, cancels: null },
  ], 'the reversal naming x is x\'s; the one naming nothing is nobody\'s (a person pairs it)');
});
