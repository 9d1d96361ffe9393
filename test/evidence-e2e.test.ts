/**
 * The bank's evidence always wins (issue 21), end to end: a worker process,
 * the simulator over HTTP, and a second party (a stale attempt, or a stolen
 * worker login) acting through the same SQL functions while the worker's
 * call is in flight. The simulator is held slow while the interleaving is
 * set up, so the worker's call cannot finish before it (its timeouts and
 * retries are the ordinary ones).
 */
import t, { type Test } from 'tap';
import { sql } from 'slonik';
import { z } from 'zod';
import { simAdminClient } from '../src/bank-sim/sim-admin-client.js';
import type { DatabasePool } from '../src/db/pool.js';
import { configureReconcile, decideUnresolved, enqueueStage, reconciliationBreaks, runStage } from '../src/db/queries.js';
import { registerAtSimulator, seed, settlementAccountNo } from '../src/seed.js';
import { checkInvariants, prepareSim, startSim, TOKEN, waitAllWithdrawn, workerEnv } from './helpers/day.js';
import { freshDb, pgClient } from './helpers/db.js';
import { pastDate } from './helpers/fixtures.js';
import { spawnWorker, waitFor } from './helpers/procs.js';
import { waitReconcile } from './helpers/reconcile.js';
import { claimTransfer, finishTransfer } from './helpers/transfers.js';

const transferRow = z.object({ id: z.number(), is_tuno: z.string(), fin_acno: z.string(), fintech_apsno: z.string(), memo: z.string(), amount: z.bigint(), to_account: z.string() });
type Row = z.infer<typeof transferRow>;

async function bookDirectly(simUrl: string, c: Row, tsymd: string) {
  const body = {
    Header: { ApiNm: 'DrawingTransfer', Tsymd: tsymd, Trtm: '120000', Iscd: '000001', FintechApsno: c.fintech_apsno, ApiSvcCd: 'DrawingTransferA', IsTuno: c.is_tuno, AccessToken: TOKEN },
    FinAcno: c.fin_acno, Tram: c.amount.toString(), DractOtlt: c.memo,
  };
  const r = await fetch(`${simUrl}/DrawingTransfer.nh`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const j = (await r.json()) as { Header: { Rpcd: string; Rsms: string } };
  if (j.Header.Rpcd !== '00000') throw new Error(`direct booking failed: ${j.Header.Rpcd} ${j.Header.Rsms}`);
}

async function plannedDay(t: Test, D: string, accounts = 3) {
  const { url, db } = await freshDb(t);
  const sim = await startSim(t);
  await seed(db, { date: D, accounts, kinds: ['tax'] });
  await prepareSim(db, sim);
  await registerAtSimulator(db, sim.url);
  t.equal((await runStage(db, 'record', D, 'tax')).outcome, 'done');
  t.equal((await runStage(db, 'pay', D, 'tax')).outcome, 'done');
  const rows = await db.any(sql.type(transferRow)`
    select id::int as id, is_tuno, fin_acno, fintech_apsno, memo, amount, to_account from settlement.transfers where purpose = 'payout' order by id`);
  return { url, db, sim, rows };
}

/** Every IsTuno transfer `id` has held, and how many bookings the bank has under them. */
async function bookingsOf(db: DatabasePool, simUrl: string, id: number) {
  const numbers = await db.anyFirst(sql.type(z.object({ n: z.string() }))`
    select is_tuno as n from settlement.transfers where id = ${id} union select is_tuno from settlement.transfer_attempts where transfer_id = ${id}`);
  const bank = (await (await fetch(`${simUrl}/_sim/transfers`)).json()) as Array<{ isTuno: string; cancelTuno?: string | null }>;
  return bank.filter((b) => numbers.includes(b.isTuno)).length;
}

const claimedByWorker = (db: DatabasePool, id: number, not: string) =>
  waitFor(`transfer ${id} claimed by the worker`, async () => {
    const r = await db.maybeOne(sql.type(z.object({ claimed_by: z.string().nullable(), state: z.string() }))`
      select claimed_by, state::text as state from settlement.transfers where id = ${id}`);
    return r && r.state === 'sending' && r.claimed_by !== null && r.claimed_by !== not ? r : undefined;
  }, 60_000, 20);

t.test('A (e2e): a stale attempt\'s failure cannot undo the booking the live attempt finds; the day is paid once and nothing is retried', async (t) => {
  const D = pastDate(1);
  const { url, db, sim, rows } = await plannedDay(t, D);
  const admin = simAdminClient(sim.url);
  const x = rows[0]!;
  // An attempt that sent x and lost its claim (its lease is over) ...
  const old = await claimTransfer(db, x.id, 'old-pool', 1);
  await bookDirectly(sim.url, x, old.tsymd!);
  // ... and the worker's attempt, held at the bank while the old one answers.
  await admin.configure({ latencyMs: 15_000, jitterMs: 0 });
  await spawnWorker(t, workerEnv(url, sim.url));
  await claimedByWorker(db, x.id, 'old-pool');
  const late = await finishTransfer(db, x.id, x.is_tuno, { outcome: 'failed', code: 'E0001', message: 'the old attempt\'s answer' }, old.claim_token ?? null);
  t.equal(late, 'stale', 'the old attempt\'s failure, without the live claim, is stale');
  await admin.configure({ latencyMs: 5, jitterMs: 3 });

  const settled = await waitFor('x settled', async () => {
    const r = await db.one(sql.type(z.object({ state: z.string(), is_tuno: z.string() }))`select state::text as state, is_tuno from settlement.transfers where id = ${x.id}`);
    return r.state === 'succeeded' || r.state === 'failed' ? r : undefined;
  }, 120_000);
  t.same(settled, { state: 'succeeded', is_tuno: x.is_tuno }, 'x is succeeded under the number the bank booked');
  t.equal(await db.oneFirst(sql.type(z.object({ n: z.number() }))`select count(*)::int as n from settlement.transfers where state = 'failed'`), 0, 'nothing failed');
  const retried = await db.oneFirst(sql.type(z.object({ n: z.number() }))`select coalesce(sum(retried), 0)::int as n from settlement.retry_day(${D}::date)`);
  t.equal(retried, 0, 'settle retry has nothing to send again');
  await waitAllWithdrawn(db, [D], 1);
  t.equal(await bookingsOf(db, sim.url, x.id), 1, 'the bank booked x once');
  t.same(await reconciliationBreaks(db, D), [], 'no orphan');
  await checkInvariants(t, db, sim.url);
});

t.test('C (e2e): while the worker\'s send is in flight, a forged "unresolved" and an empty statement decide nothing; the transfer is paid once', async (t) => {
  const D = pastDate(1);
  const { url, db, sim, rows } = await plannedDay(t, D);
  const admin = simAdminClient(sim.url);
  const x = rows[0]!;
  await configureReconcile(db, '-1 day');
  await admin.configure({ latencyMs: 15_000, jitterMs: 0 });
  await spawnWorker(t, workerEnv(url, sim.url));
  await claimedByWorker(db, x.id, '');
  const tsymd = await db.oneFirst(sql.type(z.object({ d: z.string() }))`select tsymd as d from settlement.transfers where id = ${x.id}`);
  // A second party with the worker's login: "unresolved" without the claim, then an empty statement read now.
  const c = await pgClient(t, url);
  const r = await c.query(`select settlement.finish_transfers($1::bigint[], $2::text[], '{unresolved}', '{NULL}', '{NULL}', '{forged}', '{}') as r`, [[x.id], [x.is_tuno]]);
  t.same(r.rows[0].r, ['stale'], 'an answer without the live claim is stale');
  await db.query(sql.unsafe`select settlement.record_statement('011', ${x.to_account}, ${tsymd}, ${tsymd}, '[]'::jsonb)`);
  t.same((await decideUnresolved(db)).filter((d) => Number(d.transfer_id) === x.id), [], 'decide_unresolved decides nothing while the worker may send');
  t.equal(await db.oneFirst(sql.type(z.object({ t: z.string() }))`select is_tuno as t from settlement.transfers where id = ${x.id}`), x.is_tuno, 'no new number');
  await admin.configure({ latencyMs: 5, jitterMs: 3 });
  await waitAllWithdrawn(db, [D], 1);
  t.equal(await bookingsOf(db, sim.url, x.id), 1, 'the bank booked x once');
  await checkInvariants(t, db, sim.url);
});

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
  await admin.cancel(booked.tuno);

  // The next day runs and reads the same account and date.
  await enqueueStage(db, 'record', D2, 'tax');
  await waitAllWithdrawn(db, [D2], 1);
  await waitReconcile(db, D1, ['tax'], 'blocked');
  const b1 = await reconciliationBreaks(db, D1, 'tax');
  t.ok(b1.length >= 1 && b1.every((b) => b.problem === 'cancelled'), `${D1} has the cancellation as its break: ${JSON.stringify(b1.map((b) => b.detail))}`);
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

t.test('D (e2e): a request our own validation refuses is never sent: the chunk fails for good with the reason, once', async (t) => {
  const D = pastDate(1);
  const { url, db, sim } = await plannedDay(t, D, 4);
  const over = await db.oneFirst(sql.type(z.object({ n: z.number() }))`select count(*)::int as n from settlement.transfers where purpose = 'payout' and amount > 50000`);
  t.ok(over > 0, `${over} chunk(s) planned over the limit about to be set`);
  // The per-call limit is lowered after the chunks were planned.
  await db.query(sql.unsafe`select settlement.configure('Asia/Seoul', 50000, 8)`);
  await spawnWorker(t, workerEnv(url, sim.url, { BANK_PER_CALL_LIMIT: '50000' }));
  const f = await waitFor('the chunks over the limit fail for good', async () => {
    const r = await db.any(sql.type(z.object({ problem: z.string(), bank_code: z.string().nullable(), bank_message: z.string().nullable() }))`
      select problem, bank_code, bank_message from settlement.payout_failures where business_date = ${D}::date`);
    return r.length === over && r.every((x) => x.problem === 'failed') ? r : undefined;
  }, 90_000);
  t.ok(f.every((x) => x.bank_code === 'not_sent' && /per-call limit/.test(x.bank_message ?? '')), 'recorded as not sent, with the reason');
  const confirm = await waitFor('confirm blocked', async () => {
    const r = await db.maybeOne(sql.type(z.object({ state: z.string(), detail: z.string() }))`
      select state::text as state, detail from settlement.stage_runs where business_date = ${D}::date and kind = 'tax' and stage = 'confirm'`);
    return r?.state === 'blocked' ? r : undefined;
  }, 60_000);
  t.match(confirm.detail, /failed for good/, 'the day blocks once, with the cause');
  t.equal(await db.oneFirst(sql.type(z.object({ n: z.number() }))`select count(*)::int as n from settlement.transfers where unresolved_since is not null`), 0, 'nothing unresolved');
  const bank = (await (await fetch(`${sim.url}/_sim/transfers`)).json()) as Array<{ amount: string }>;
  t.ok(bank.every((b) => BigInt(b.amount) <= 50000n), 'nothing over the limit reached the bank');
});

t.test('C (bank client, simulator over HTTP): a send is checked against the database\'s date and the claim\'s lease right before it goes; after either, the attempt only asks', async (t) => {
  const { createNhBankClient } = await import('../src/bank/client.js');
  const { startBankSimulator } = await import('../src/bank-sim/simulator.js');
  const { emptyCodeBook } = await import('../src/bank/port.js');
  const ISCD = '000123';
  const APSNO = '001';
  // 00:00:05 KST on 2025-03-15: the attempt was claimed (and its Tsymd fixed) on the 14th.
  const AFTER_MIDNIGHT = new Date('2025-03-14T15:00:05Z');
  const sim = await startBankSimulator({ accessToken: TOKEN, iscd: ISCD, recordRequests: true }, { now: () => AFTER_MIDNIGHT });
  t.teardown(() => sim.close());
  const admin = simAdminClient(sim.url);
  await admin.openAccounts([{ acno: '3020000001001', balance: 1_000_000n }, { acno: '3020000009001', balance: 0n }]);
  await admin.registerContracts([{ iscd: ISCD, fintechApsno: APSNO, bncd: '011', acno: '3020000009001' }]);
  const [loan] = await admin.registerFinAccounts([{ bncd: '011', acno: '3020000001001' }]);
  const codes = await admin.codes();
  const client = createNhBankClient({
    baseUrl: sim.url, iscd: ISCD, fintechApsno: APSNO, accessToken: TOKEN, perCallLimit: 100_000n, timeoutMs: 1_000, retries: 2, minBackoffMs: 5, maxBackoffMs: 20,
    codeBook: (api, rpcd) => codes.find((c) => c.rpcd === rpcd && c.apis.includes(api))?.class ?? emptyCodeBook(api, rpcd), now: () => AFTER_MIDNIGHT,
  });
  t.teardown(() => client.close());
  const order = { purpose: 'payout' as const, isTuno: '100000000000000071', tsymd: '20250314', fintechApsno: APSNO, finAcno: loan!.finAcno, amount: 70_000n, memo: 'DS100000000000000071', sendable: true, resume: false };
  const r = await client.transfer(order);
  t.equal(r.status, 'unresolved', `the date is over by the clock: ${JSON.stringify(r)}`);
  const sent = (await admin.requests()).filter((q) => q.api === 'DrawingTransfer');
  t.equal(sent.length, 0, 'nothing was sent under the past date');
  // The same on the right date, but with the claim's lease over: only asks.
  const onTime = { ...order, isTuno: '100000000000000072', memo: 'DS100000000000000072', tsymd: '20250315', sendUntilMs: AFTER_MIDNIGHT.getTime() - 1 };
  const r2 = await client.transfer(onTime);
  t.equal(r2.status, 'unresolved', 'a lease that is over: no send');
  t.equal((await admin.requests()).filter((q) => q.api === 'DrawingTransfer').length, 0, 'still nothing sent');
  const r3 = await client.transfer({ ...onTime, isTuno: '100000000000000073', memo: 'DS100000000000000073', sendUntilMs: AFTER_MIDNIGHT.getTime() + 60_000 });
  t.equal(r3.status, 'succeeded', 'within the date and the lease it sends');
});
