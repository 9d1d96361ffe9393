import t from 'tap';
import { sql } from 'slonik';
import { z } from 'zod';
import { simAdminClient } from '../../src/bank-sim/sim-admin-client.js';
import { dailyStatus, enqueueStage, retryFailed } from '../../src/db/operations.js';
import { seed } from '../../src/seed.js';
import { checkInvariants, prepareSim, startSim, waitAllWithdrawn, workerEnv } from '../helpers/day.js';
import { freshDb } from '../helpers/db.js';
import { pastDate } from '../helpers/fixtures.js';
import { spawnWorker, waitFor } from '../helpers/procs.js';
import { claimTransfer, finishTransfer } from '../helpers/transfers.js';

async function setBalance(simUrl: string, accountNo: string, balance: bigint) {
  await simAdminClient(simUrl).openAccounts([{ bncd: '011', acno: accountNo, balance }]);
}

t.test('insufficient funds blocks the day, shows in payout_failures, and completes after funding + retry_failed', async (t) => {
  const { url, db } = await freshDb(t);
  const sim = await startSim(t);
  const D = pastDate(1);
  await seed(db, { date: D, accounts: 12, kinds: ['tax'] });
  await prepareSim(db, sim);
  const poor = '1000000003';
  const owed = await db.oneFirst(sql.type(z.object({ a: z.bigint() }))`select sum(amount)::bigint as a from settlement.accruals where account_no = ${poor}`);
  await setBalance(sim.url, poor, 0n);
  await spawnWorker(t, workerEnv(url, sim.url));
  await enqueueStage(db, 'record', D, 'tax');

  const blocked = await waitFor('confirm blocked', async () => {
    const [r] = await dailyStatus(db, D);
    return r?.confirm === 'blocked' ? r : undefined;
  });
  t.ok(blocked.chunks_failed > 0n, `${blocked.chunks_failed} chunk(s) failed for good`);
  t.equal(blocked.withdraw, 'pending', 'no withdrawal while blocked');
  t.equal(blocked.chunks_succeeded + blocked.chunks_failed, blocked.chunks_total, 'the other chunks were paid');
  const failures = await db.any(sql.type(z.object({ problem: z.string(), what: z.string(), from_account: z.string(), bank_code: z.string(), bank_message: z.string(), is_tuno: z.string() }))`
    select problem, what, from_account, bank_code, bank_message, is_tuno from settlement.payout_failures`);
  t.ok(failures.length > 0 && failures.every((f) => f.problem === 'failed' && f.what === 'payout' && f.from_account === poor && f.bank_code === 'S0211' && f.bank_message.length > 0),
    'payout_failures shows the account, the bank code and message');
  t.same(await db.any(sql.type(z.object({ a: z.string() }))`select attention as a from settlement.daily_status where attention is not null`).then((r) => r.length), 1, 'daily_status flags the day');

  // Retrying before the cause is fixed just fails again, nothing is paid twice.
  await setBalance(sim.url, poor, owed);
  const n = await retryFailed(db, D, 'tax');
  t.equal(BigInt(n), blocked.chunks_failed, 'retry_failed re-enqueued the failed chunks');
  t.equal(await retryFailed(db, D, 'tax'), 0, 'a second retry finds nothing failed');
  await waitAllWithdrawn(db, [D], 1);
  const attempts = await db.any(sql.type(z.object({ is_tuno: z.string(), outcome: z.string() }))`
    select a.is_tuno, a.outcome::text as outcome from settlement.transfer_attempts a join settlement.transfers x on x.id = a.transfer_id
    where x.purpose = 'payout' and a.outcome = 'failed'`);
  t.equal(attempts.length, failures.length, 'the failed attempts stay in the history under their old IsTunos');
  const newTunos = await db.anyFirst(sql.type(z.object({ is_tuno: z.string() }))`select is_tuno from settlement.transfers where attempt = 2`);
  t.ok(newTunos.every((x) => !failures.some((f) => f.is_tuno === x)), 'the retried chunks went out under new IsTunos');
  await checkInvariants(t, db, sim.url);
  const code = (p: Promise<unknown>) => p.then(() => null, (e: { code?: string }) => e.code);
  t.equal(await code(retryFailed(db, D, 'tax')), 'day_withdrawn', 'retry_failed refuses a day already withdrawn (ST012)');
});

t.test('retry_failed never re-sends a transfer that has a succeeded attempt', async (t) => {
  const { db } = await freshDb(t);
  const D = pastDate(1);
  await seed(db, { date: D, accounts: 1, kinds: ['tax'] });
  await db.query(sql.unsafe`update settlement.accounts set fin_acno = '00820100000000000001' where account_no = '1000000001'`);
  await db.query(sql.unsafe`select settlement.run_stage('record', ${D}::date, 'tax')`);
  await db.query(sql.unsafe`select settlement.run_stage('pay', ${D}::date, 'tax')`);
  const x = await db.one(sql.type(z.object({ id: z.bigint(), is_tuno: z.string() }))`select id, is_tuno from settlement.transfers order by id limit 1`);
  // What tampering by a superuser with triggers switched off would leave: a
  // succeeded attempt, and the transfer marked failed (the state machine
  // trigger refuses this to anyone else, see hardening.test.ts).
  await claimTransfer(db, Number(x.id), 'w', 1000);
  await finishTransfer(db, Number(x.id), x.is_tuno, { outcome: 'succeeded', processedAt: '20260101120000' });
  await db.transaction(async (tx) => {
    await tx.query(sql.unsafe`set local session_replication_role = replica`);
    await tx.query(sql.unsafe`update settlement.transfers set state = 'failed', fail_code = 'X' where id = ${x.id}`);
  });
  const code = await retryFailed(db, D, 'tax').then(() => null, (e: { code?: string }) => e.code);
  t.equal(code, 'transfer_already_succeeded', 'ST013');
});

t.test('retry_failed rejects bad input', async (t) => {
  const { url, db } = await freshDb(t);
  const pg = await import('../helpers/db.js').then((m) => m.pgClient(t, url));
  const code = (p: Promise<unknown>) => p.then(() => null, (e: { code?: string }) => e.code);
  t.equal(await code(pg.query(`select settlement.retry_failed(null, 'tax')`)), 'ST001');
  t.equal(await code(pg.query(`select settlement.retry_failed('2020-01-01', 'tax')`)), 'ST010', 'unknown day');
  t.equal(await code(pg.query(`select settlement.enqueue_stage(null)`)), 'ST001');
  // A claim of a transfer that does not exist: claim_transfers answers 'missing' for it, and its decoder names the error.
  const missing = await pg.query(`select settlement.claim_transfers('{424242}', '{x}', 1000, 0, '{}', 0) as r`);
  t.equal(missing.rows[0].r.claims[0].action, 'missing');
  t.equal(await claimTransfer(db, 424242, 'x', 1000).then(() => null, (e: { sqlstate?: string }) => e.sqlstate), 'ST008');
  t.equal(await code(pg.query(`select settlement.finish_transfers('{1}', '{1}', '{maybe}', '{NULL}', '{NULL}', '{NULL}', '{}')`)), 'ST009');
  t.equal(await code(pg.query(`select settlement.finish_transfers('{424242}', '{1}', '{failed}', '{NULL}', '{X}', '{y}', '{}')`)), 'ST008');
});
