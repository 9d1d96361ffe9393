import t, { type Test } from 'tap';
import { sql } from 'slonik';
import { z } from 'zod';
import { pause, resume } from '../../src/db/operations.js';
import { addReconcileJob, configureReconcile, decideUnresolved } from '../../src/db/reconcile.js';
import { runStage } from '../../src/db/stages.js';
import { registerAtSimulator, seed } from '../../src/seed.js';
import { checkInvariants, prepareSim, startSim, TOKEN, waitAllWithdrawn, workerEnv } from '../helpers/day.js';
import { freshDb } from '../helpers/db.js';
import { pastDate } from '../helpers/fixtures.js';
import { spawnWorker, waitFor } from '../helpers/procs.js';
import { waitReconcile } from '../helpers/reconcile.js';

const D = pastDate(1);
const transferRow = z.object({ id: z.number(), is_tuno: z.string(), fin_acno: z.string(), fintech_apsno: z.string(), memo: z.string(), amount: z.bigint() });
type Row = z.infer<typeof transferRow>;

/** Books a DrawingTransfer at the simulator directly, in NH's published layout: what an attempt that died after the bank booked it leaves behind. */
async function bookDirectly(simUrl: string, c: Row, tsymd: string) {
  const body = {
    Header: { ApiNm: 'DrawingTransfer', Tsymd: tsymd, Trtm: '120000', Iscd: '000001', FintechApsno: c.fintech_apsno, ApiSvcCd: 'DrawingTransferA', IsTuno: c.is_tuno, AccessToken: TOKEN },
    FinAcno: c.fin_acno, Tram: c.amount.toString(), DractOtlt: c.memo,
  };
  const r = await fetch(`${simUrl}/DrawingTransfer.nh`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const j = (await r.json()) as { Header: { Rpcd: string; Rsms: string } };
  if (j.Header.Rpcd !== '00000') throw new Error(`direct booking failed: ${j.Header.Rpcd} ${j.Header.Rsms}`);
}

async function paidDay(t: Test) {
  const { url, db } = await freshDb(t);
  const sim = await startSim(t);
  await seed(db, { date: D, accounts: 6, kinds: ['tax'] });
  await prepareSim(db, sim);
  await registerAtSimulator(db, sim.url);
  t.equal((await runStage(db, 'record', D, 'tax')).outcome, 'done');
  t.equal((await runStage(db, 'pay', D, 'tax')).outcome, 'done');
  const rows = await db.any(sql.type(transferRow)`
    select id::int as id, is_tuno, fin_acno, fintech_apsno, memo, amount from settlement.transfers where purpose = 'payout' order by id`);
  return { url, db, sim, rows };
}

t.test('transfers left "sending" by a dead attempt are resolved by result check: booked once, never twice', async (t) => {
  const { url, db, sim, rows } = await paidDay(t);
  const [booked, notBooked] = [rows[0]!, rows[1]!];
  const tsymd = await db.oneFirst(sql.type(z.object({ d: z.string() }))`select settlement.bank_ymd() as d`);
  // The state two crashed attempts leave: both claimed by a pool that is gone,
  // leases expired; the first reached the bank, the second did not.
  await db.query(sql.unsafe`
    update settlement.transfers set state = 'sending', tsymd = ${tsymd}, claimed_by = 'dead-pool', claimed_until = now() - interval '1 second'
    where id in (${booked.id}, ${notBooked.id})`);
  await bookDirectly(sim.url, booked, tsymd);

  await spawnWorker(t, workerEnv(url, sim.url));
  await waitAllWithdrawn(db, [D], 1);
  const transfers = (await (await fetch(`${sim.url}/_sim/transfers`)).json()) as Array<{ isTuno: string }>;
  t.equal(transfers.filter((x) => x.isTuno === booked.is_tuno).length, 1, 'the transfer booked before the crash is booked once');
  t.equal(transfers.filter((x) => x.isTuno === notBooked.is_tuno).length, 1, 'the transfer that never reached the bank is booked once, under its own IsTuno');
  await checkInvariants(t, db, sim.url);
});

t.test('after its date is over, a transfer the bank never got is never sent under its old number: the final statement proves it unbooked, then it is paid once under a new one', async (t) => {
  const { url, db, sim, rows } = await paidDay(t);
  const stuck = rows[0]!;
  // An attempt two Korean dates ago that died before the bank got it: that
  // date's statement is final (its end in KST + settlement.config.reconcile_after).
  await db.query(sql.unsafe`
    update settlement.transfers set state = 'sending', tsymd = to_char(now() at time zone 'Asia/Seoul' - interval '2 days', 'YYYYMMDD'),
      claimed_by = 'dead-pool', claimed_until = now() - interval '1 second'
    where id = ${stuck.id}`);
  await spawnWorker(t, workerEnv(url, sim.url));
  const f = await waitFor('the stuck transfer shows as unresolved', async () => {
    const r = await db.maybeOne(sql.type(z.object({ problem: z.string(), is_tuno: z.string() }))`
      select problem, is_tuno from settlement.payout_failures where transfer_id = ${stuck.id}`);
    return r ?? undefined;
  });
  t.equal(f.problem, 'unresolved', 'a result check that finds nothing, after the date, decides nothing');
  t.equal(f.is_tuno, stuck.is_tuno, 'still under its own IsTuno');
  const [s] = await db.any(sql.type(z.object({ confirm: z.string() }))`select confirm from settlement.daily_status`);
  t.equal(s?.confirm, 'pending', 'the day does not confirm on a guess');
  // What the crontab does every five minutes: read the final statements and decide.
  await addReconcileJob(db);
  await waitAllWithdrawn(db, [D], 1);
  const booked = (await (await fetch(`${sim.url}/_sim/transfers`)).json()) as Array<{ isTuno: string }>;
  t.notOk(booked.some((x) => x.isTuno === stuck.is_tuno), 'nothing was ever sent under the old number and date');
  const now = await db.one(sql.type(z.object({ is_tuno: z.string(), attempt: z.number(), state: z.string() }))`
    select is_tuno, attempt, state::text as state from settlement.transfers where id = ${stuck.id}`);
  t.equal(now.state, 'succeeded');
  t.equal(now.attempt, 2, 'planned again once');
  t.equal(booked.filter((x) => x.isTuno === now.is_tuno).length, 1, 'paid once under its new number');
  const proof = await db.oneFirst(sql.type(z.object({ code: z.string() }))`
    select code from settlement.transfer_attempts where is_tuno = ${stuck.is_tuno}`);
  t.equal(proof, 'not_in_statement', 'the old number\'s attempt records the statement as its proof');
  await checkInvariants(t, db, sim.url);
});

t.test('the final statement decides an unresolved transfer both ways, and only a read made after it was last claimed or answered', async (t) => {
  const { url, db, sim, rows } = await paidDay(t);
  const [booked, notBooked] = [rows[0]!, rows[1]!];
  // No worker may ask the bank about them (a result check would decide them
  // first): calls for the kind are paused; the statement is read all the same.
  await pause(db, 'tax', 'test: only the statement decides');
  await configureReconcile(db, '-1 day');
  const tsymd = await db.oneFirst(sql.type(z.object({ d: z.string() }))`select settlement.bank_ymd() as d`);
  // Both were sent today and their outcome is unknown; the bank booked the first only.
  await bookDirectly(sim.url, booked, tsymd);
  const before = await db.oneFirst(sql.type(z.object({ at: z.string() }))`select now()::text as at`);
  await new Promise((r) => setTimeout(r, 20));
  await db.query(sql.unsafe`
    update settlement.transfers set state = 'sending', tsymd = ${tsymd}, claimed_by = null, claimed_until = null,
      unresolved_since = now(), unresolved_reason = 'test: result check failed', updated_at = now()
    where id in (${booked.id}, ${notBooked.id})`);
  // Their jobs are gone: a job for the one re-planned can only come from the decision.
  for (const r of [booked, notBooked]) await db.query(sql.unsafe`select graphile_worker.remove_job(${'transfer:' + r.id})`);

  // A read of that statement asked for before they were last answered (empty,
  // as it would have been then) proves nothing about them.
  const settlement = await db.oneFirst(sql.type(z.object({ a: z.string() }))`select to_account as a from settlement.transfers where id = ${booked.id}`);
  await db.query(sql.unsafe`insert into settlement.statement_requests (bncd, acno, ymd, to_ymd, asked_at, answer_by)
    values ('011', ${settlement}, ${tsymd}, ${tsymd}, ${before}::timestamptz, now() + interval '1 hour')`);
  await db.query(sql.unsafe`select settlement.record_statement('011', ${settlement}, ${tsymd}, ${tsymd}, '[]'::jsonb, ${before}::timestamptz)`);
  t.same(await decideUnresolved(db), [], 'a read older than the transfers\' last answer decides nothing');
  const asked = await db.any(sql.type(z.object({ acno: z.string(), ymd: z.string() }))`select acno, ymd from settlement.statements_to_read()`);
  t.ok(asked.some((a) => a.acno === settlement && a.ymd === tsymd), 'the statement is asked for again');

  // The reconcile task reads it again and decides.
  await spawnWorker(t, workerEnv(url, sim.url));
  await addReconcileJob(db);
  const decided = await waitFor('both transfers decided by the statement', async () => {
    const r = await db.any(sql.type(z.object({ id: z.number(), state: z.string(), is_tuno: z.string(), attempt: z.number(), processed_at: z.string().nullable() }))`
      select id::int as id, state::text as state, is_tuno, attempt, processed_at from settlement.transfers where id in (${booked.id}, ${notBooked.id}) order by id`);
    return r.every((x) => x.state !== 'sending') ? r : undefined;
  });
  const [b, n] = decided;
  const line = await db.one(sql.type(z.object({ trdd: z.string(), txtm: z.string() }))`
    select trdd, txtm from settlement.statement_lines where ref_is_tuno = ${booked.is_tuno} and acno = ${settlement}`);
  t.equal(b!.state, 'succeeded', 'the transfer with a line on the final statement is succeeded');
  t.equal(b!.is_tuno, booked.is_tuno, 'under its own number');
  t.equal(b!.processed_at, line.trdd + line.txtm, 'recorded with the line\'s time');
  t.equal(n!.state, 'pending', 'the transfer with no line is not booked and planned again');
  t.not(n!.is_tuno, notBooked.is_tuno, 'under a new IsTuno');
  t.equal(n!.attempt, 2);
  const proof = await db.one(sql.type(z.object({ outcome: z.string(), code: z.string() }))`
    select outcome::text as outcome, code from settlement.transfer_attempts where is_tuno = ${notBooked.is_tuno}`);
  t.same(proof, { outcome: 'failed', code: 'not_in_statement' }, 'the old number\'s attempt records the statement as its proof');
  const job = await db.maybeOne(sql.type(z.object({ key: z.string() }))`
    select key from graphile_worker.jobs where key = ${'transfer:' + notBooked.id}`);
  t.ok(job, 'with its transfer job, added in the same transaction');

  // Resumed, the day is paid once and reconciles with no break.
  await resume(db, 'tax');
  await waitAllWithdrawn(db, [D], 1);
  await waitReconcile(db, D, ['tax'], 'done');
  const bank = (await (await fetch(`${sim.url}/_sim/transfers`)).json()) as Array<{ isTuno: string }>;
  t.equal(bank.filter((x) => x.isTuno === booked.is_tuno).length, 1, 'the booked transfer is booked once, never again');
  t.notOk(bank.some((x) => x.isTuno === notBooked.is_tuno), 'nothing was ever booked under the old number');
  t.equal(bank.filter((x) => x.isTuno === n!.is_tuno).length, 1, 'paid once under its new number');
  t.equal(await db.oneFirst(sql.type(z.object({ n: z.bigint() }))`select count(*) as n from settlement.breaks`), 0n, 'no break');
  await checkInvariants(t, db, sim.url);
});
