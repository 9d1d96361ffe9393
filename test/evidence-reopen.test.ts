/**
 * The bank's evidence always wins (issue 21), end to end. B: a statement line
 * that belongs to a day already reconciled (here a cancellation of one of its
 * payouts, read when the next day reconciles the same account and date)
 * reopens that day. A worker process and the simulator over HTTP.
 */
import t from 'tap';
import { sql } from 'slonik';
import { z } from 'zod';
import { simAdminClient } from '../src/bank-sim/sim-admin-client.js';
import { configureReconcile, enqueueStage, reconciliationBreaks } from '../src/db/queries.js';
import { seed, settlementAccountNo } from '../src/seed.js';
import { prepareSim, startSim, waitAllWithdrawn, workerEnv } from './helpers/day.js';
import { freshDb } from './helpers/db.js';
import { pastDate } from './helpers/fixtures.js';
import { spawnWorker } from './helpers/procs.js';
import { waitReconcile } from './helpers/reconcile.js';

t.test('B (e2e): a cancellation after the day reconciled reopens that day: a break of its own, BLOCKED, in problems(), an alert', async (t) => {
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

  // The next day is paid and withdrawn (its reconcile waits for the default
  // grace) before the bank reverses the payout (the reversal takes it back
  // out of the settlement account, whose money has moved on).
  await configureReconcile(db, '2 hours');
  await enqueueStage(db, 'record', D2, 'tax');
  await waitAllWithdrawn(db, [D2], 1);
  await admin.cancel(booked.tuno);
  // D2 reconciles: it reads the same account on the same date.
  await configureReconcile(db, '-1 day');
  await enqueueStage(db, 'reconcile', D2, 'tax');
  await waitReconcile(db, D1, ['tax'], 'blocked');
  const b1 = await reconciliationBreaks(db, D1, 'tax');
  t.ok(b1.length >= 1 && b1.every((b) => b.problem === 'cancelled' && b.amount === x.amount), `${D1} has the cancellation as its break: ${JSON.stringify(b1.map((b) => b.detail))}`);
  t.ok(b1.some((b) => b.account_no === settlementAccountNo('tax')), 'on the settlement account');
  t.ok(b1.every((b) => b.is_tuno === null && /no reference/.test(b.detail)), 'not paired by amount: a break for a person');
  const v = await db.oneFirst(sql.type(z.object({ v: z.string() }))`select verdict as v from settlement.day_verdicts where business_date = ${D1}::date and kind = 'tax'`);
  t.equal(v, 'BLOCKED', `${D1}'s verdict is BLOCKED`);
  const p = await db.anyFirst(sql.type(z.object({ k: z.string() }))`select key as k from settlement.problems()`);
  t.ok(p.includes(`blocked:${D1}:tax`), 'problems() lists it');
  await db.query(sql.unsafe`select * from settlement.detect_alerts()`);
  const alert = await db.maybeOneFirst(sql.type(z.object({ k: z.string() }))`select key as k from settlement.alerts where key = ${`blocked:${D1}:tax`} and cleared_at is null`);
  t.equal(alert, `blocked:${D1}:tax`, 'an alert is open');
  await waitReconcile(db, D2, ['tax'], 'done');
  t.same(await reconciliationBreaks(db, D2), [], `${D2}'s payouts are not blamed for it`);
});
