/**
 * The bank's evidence always wins (issue 21), end to end. B: a statement line
 * that belongs to a day already reconciled (here a cancellation of one of its
 * payouts, read when the next day reconciles the same account and date)
 * reopens that day. A worker process and the simulator over HTTP.
 */
import t from 'tap';
import { sql } from 'slonik';
import { z } from 'zod';
import { simAdminClient } from '../../src/bank-sim/sim-admin-client.js';
import { configureReconcile, reconciliationBreaks } from '../../src/db/reconcile.js';
import { enqueueStage } from '../../src/db/operations.js';
import { seed, settlementAccountNo } from '../../src/seed.js';
import { apiPath, defaultApiSvcCodes, kstHms, kstYmd } from '../../src/nh/contract.js';
import { prepareSim, startSim, TOKEN, waitAllWithdrawn, workerEnv } from '../helpers/day.js';
import { freshDb } from '../helpers/db.js';
import { pastDate } from '../helpers/fixtures.js';
import { spawnWorker } from '../helpers/procs.js';
import { waitReconcile } from '../helpers/reconcile.js';

/** A DrawingTransfer booked by hand with the memo of one of our numbers: the bank books that reference a second time. */
async function duplicateOf(simUrl: string, y: { is_tuno: string; amount: bigint; fin_acno: string; fintech_apsno: string }) {
  const now = new Date();
  const body = {
    Header: { ApiNm: 'DrawingTransfer', Tsymd: kstYmd(now), Trtm: kstHms(now), Iscd: '000001', FintechApsno: y.fintech_apsno,
      ApiSvcCd: defaultApiSvcCodes().DrawingTransfer, IsTuno: `88${Date.now() % 1e9}`, AccessToken: TOKEN },
    FinAcno: y.fin_acno, Tram: y.amount.toString(), DractOtlt: `DS${y.is_tuno}`,
  };
  const res = await fetch(`${simUrl}${apiPath('DrawingTransfer')}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const json = (await res.json()) as { Header: { Rpcd: string; Rsms: string } };
  if (json.Header.Rpcd !== '00000') throw new Error(`hand DrawingTransfer refused: ${json.Header.Rpcd} ${json.Header.Rsms}`);
}

t.test('B (e2e): a cancellation and a duplicate booking after the day reconciled reopen that day: breaks of its own, BLOCKED, in problems(), an alert', async (t) => {
  const [D1, D2] = [pastDate(2), pastDate(1)];
  const { url, db } = await freshDb(t);
  const sim = await startSim(t);
  const admin = simAdminClient(sim.url);
  await seed(db, { date: D1, accounts: 3, kinds: ['tax'] });
  await seed(db, { date: D2, accounts: 3, kinds: ['tax'] });
  await prepareSim(db, sim);
  await configureReconcile(db, '-1 day');
  await spawnWorker(t, workerEnv(url, sim.url));
  await enqueueStage(db, 'record', D1, 'tax');
  await waitAllWithdrawn(db, [D1], 1);
  await waitReconcile(db, D1, ['tax'], 'done');
  t.same(await reconciliationBreaks(db, D1), [], `${D1} reconciled with no break`);

  // The bank cancels one of D1's payouts after D1 is DONE.
  const x = await db.one(sql.type(z.object({ is_tuno: z.string(), amount: z.bigint() }))`
    select is_tuno, amount from settlement.transfers where business_date = ${D1}::date and purpose = 'payout' order by id limit 1`);
  const booked = (await admin.transfers()).find((b) => b.isTuno === x.is_tuno)!;
  t.ok(booked, 'booked at the bank');
  // And books another of D1's payouts a second time (a line with its reference again).
  const y = await db.one(sql.type(z.object({ is_tuno: z.string(), amount: z.bigint(), from_account: z.string(), fin_acno: z.string(), fintech_apsno: z.string() }))`
    select is_tuno, amount, from_account, fin_acno, fintech_apsno from settlement.transfers
    where business_date = ${D1}::date and purpose = 'payout' and is_tuno <> ${x.is_tuno} order by id limit 1`);

  // The next day is paid and withdrawn (its reconcile waits for the default
  // grace) before the bank reverses the payout (the reversal takes it back
  // out of the settlement account, whose money has moved on).
  await configureReconcile(db, '2 hours');
  await enqueueStage(db, 'record', D2, 'tax');
  await waitAllWithdrawn(db, [D2], 1);
  await admin.cancel(booked.tuno);
  const loan = await admin.account('011', y.from_account);
  await admin.openAccounts([{ bncd: '011', acno: y.from_account, balance: loan.balance + y.amount }]);
  await duplicateOf(sim.url, y);
  // D2 reconciles: it reads the same account on the same date.
  await configureReconcile(db, '-1 day');
  await enqueueStage(db, 'reconcile', D2, 'tax');
  await waitReconcile(db, D1, ['tax'], 'blocked');
  // D1 blocks at the first of its lines D2's reconcile matches; the loan
  // account's line may come in a later read of that run (under load it did):
  // D2's reconcile done is every read of it made and matched.
  await waitReconcile(db, D2, ['tax'], 'done');
  const all = await reconciliationBreaks(db, D1, 'tax');
  const b1 = all.filter((b) => b.problem === 'cancelled');
  t.ok(b1.length >= 1 && b1.every((b) => b.amount === x.amount), `${D1} has the cancellation as its break: ${JSON.stringify(all.map((b) => b.detail))}`);
  t.ok(b1.some((b) => b.account_no === settlementAccountNo('tax')), 'on the settlement account');
  t.ok(b1.every((b) => b.is_tuno === null && /no reference/.test(b.detail)), 'not paired by amount: a break for a person');
  const dup = all.filter((b) => b.problem === 'orphan');
  t.same(dup.map((b) => [b.is_tuno, b.amount, b.account_no]).sort(), [[y.is_tuno, y.amount, y.from_account], [y.is_tuno, y.amount, settlementAccountNo('tax')]].sort(),
    'the second booking of a D1 number is an orphan of D1, on both accounts');
  const journaled = await db.oneFirst(sql.type(z.object({ n: z.number() }))`
    select count(*)::int as n from settlement.breaks where business_date = ${D1}::date and problem = 'orphan' and journal_id is not null`);
  t.ok(dup.every((b) => /is a second line for IsTuno/.test(b.detail)) && journaled === dup.length, 'a duplicate, in suspense');
  t.equal(all.length, b1.length + dup.length, 'nothing else');
  const v = await db.oneFirst(sql.type(z.object({ v: z.string() }))`select verdict as v from settlement.day_verdicts where business_date = ${D1}::date and kind = 'tax'`);
  t.equal(v, 'BLOCKED', `${D1}'s verdict is BLOCKED`);
  const p = await db.anyFirst(sql.type(z.object({ k: z.string() }))`select key as k from settlement.problems()`);
  t.ok(p.includes(`blocked:${D1}:tax`), 'problems() lists it');
  await db.query(sql.unsafe`select * from settlement.detect_alerts()`);
  const alert = await db.maybeOneFirst(sql.type(z.object({ k: z.string() }))`select key as k from settlement.alerts where key = ${`blocked:${D1}:tax`} and cleared_at is null`);
  t.equal(alert, `blocked:${D1}:tax`, 'an alert is open');
  t.same(await reconciliationBreaks(db, D2), [], `${D2}'s payouts are not blamed for it`);
});
