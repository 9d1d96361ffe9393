import t from 'tap';
import type { JobHelpers } from 'graphile-worker';
import { sql } from 'slonik';
import { z } from 'zod';
import { createDbLimiter } from '../src/bank/db-limiter.js';
import { createNhBankClient } from '../src/bank/nh-client.js';
import { loadConfig } from '../src/config.js';
import { runStage } from '../src/db/queries.js';
import { RetryLaterError, type TaskContext } from '../src/jobs/context.js';
import { createLogger } from '../src/log.js';
import { fundSimulator, seed } from '../src/seed.js';
import { createPayoutTask } from '../tasks/payout.js';
import { createStageTask } from '../tasks/stage.js';
import { createWithdrawTask } from '../tasks/withdraw.js';
import { startSim, TOKEN } from './helpers/day.js';
import { freshDb } from './helpers/db.js';
import { pastDate } from './helpers/fixtures.js';

const D = pastDate(1);
let jobId = 0;
// The part of graphile-worker's helpers the tasks read: the job's identity.
const helpers = (task: string) => ({ job: { id: String(++jobId), attempts: 1, task_identifier: task } }) as unknown as JobHelpers;

t.test('the same task run twice, concurrently and again later, moves money once', async (t) => {
  const { db } = await freshDb(t, { poolSize: 12 });
  const sim = await startSim(t, { latencyMs: 50, jitterMs: 0 });
  await seed(db, { date: D, accounts: 4, kinds: ['tax'] });
  await fundSimulator(db, sim.url);
  const config = loadConfig({ BANK_URL: sim.url, BANK_ACCESS_TOKEN: TOKEN });
  await db.query(sql.unsafe`select settlement.configure('Asia/Seoul', 100000, 4)`);
  // Each "process" has its own bank client calling through the shared, database-wide limit.
  const ctxFor = (holder: string): TaskContext => {
    const limiter = createDbLimiter(db, { holder: () => holder, leaseMs: 10_000, maxWaitMs: 30_000, localCap: 4 });
    const bank = createNhBankClient({ baseUrl: sim.url, iscd: config.bank.iscd, fintechApsno: config.bank.fintechApsno, accessToken: TOKEN, perCallLimit: config.bank.perCallLimit, timeoutMs: 2000, limiter });
    t.teardown(() => bank.close());
    return { db, bank, config, logger: createLogger('silent'), holder: () => holder, claimLeaseMs: 30_000, limiter, slotLeaseMs: 10_000 };
  };
  const stageA = createStageTask(ctxFor('pool-a'));
  const stageB = createStageTask(ctxFor('pool-b'));

  // Eight concurrent record + pay stage jobs for one day: one of each does the work.
  await Promise.all(Array.from({ length: 8 }, (_, i) => (i % 2 ? stageA : stageB)({ stage: 'record', date: D, kind: 'tax' }, helpers('stage'))));
  await Promise.all(Array.from({ length: 8 }, (_, i) => (i % 2 ? stageA : stageB)({ stage: 'pay', date: D, kind: 'tax' }, helpers('stage'))));
  const chunks = await db.anyFirst(sql.type(z.object({ id: z.number() }))`select id::int as id from settlement.chunks order by id`);
  t.ok(chunks.length >= 4, `${chunks.length} chunks, created once`);

  // Two "processes" run every payout job at the same time; then both again.
  const payA = createPayoutTask(ctxFor('pool-a'));
  const payB = createPayoutTask(ctxFor('pool-b'));
  const settled = await Promise.allSettled(chunks.flatMap((id) => [payA({ chunk_id: id }, helpers('payout')), payB({ chunk_id: id }, helpers('payout'))]));
  const busy = settled.filter((r) => r.status === 'rejected');
  t.ok(busy.length > 0, `${busy.length} duplicate runs overlapped a live attempt`);
  t.ok(busy.every((r) => (r as PromiseRejectedResult).reason instanceof RetryLaterError), 'a concurrent duplicate is told to retry later, nothing else fails');
  await Promise.all(chunks.flatMap((id) => [payA({ chunk_id: id }, helpers('payout')), payB({ chunk_id: id }, helpers('payout'))]));

  const transfers = (await (await fetch(`${sim.url}/_sim/transfers`)).json()) as Array<{ isTuno: string }>;
  t.equal(transfers.length, chunks.length, 'one booking per chunk');
  t.equal(new Set(transfers.map((x) => x.isTuno)).size, transfers.length, 'no IsTuno twice');
  const journal = await db.oneFirst(sql.type(z.object({ n: z.bigint() }))`select count(*) as n from settlement.journal_entries where event = 'payout'`);
  t.equal(journal, BigInt(chunks.length), 'one journal entry per chunk');

  t.equal((await runStage(db, 'confirm', D, 'tax')).outcome, 'done');
  t.equal((await runStage(db, 'withdraw', D, 'tax')).outcome, 'started');
  const wA = createWithdrawTask(ctxFor('pool-a'));
  const wB = createWithdrawTask(ctxFor('pool-b'));
  await Promise.allSettled([wA({ date: D, kind: 'tax' }, helpers('withdraw')), wB({ date: D, kind: 'tax' }, helpers('withdraw'))]);
  await Promise.all([wA({ date: D, kind: 'tax' }, helpers('withdraw')), wB({ date: D, kind: 'tax' }, helpers('withdraw'))]);
  const after = (await (await fetch(`${sim.url}/_sim/transfers`)).json()) as Array<{ apiNm: string }>;
  t.equal(after.filter((x) => x.apiNm === 'ReceivedTransferAccountNumber').length, 1, 'one withdrawal booked');
  t.equal((await runStage(db, 'withdraw', D, 'tax')).outcome, 'already_done');
  const held = await db.oneFirst(sql.type(z.object({ n: z.bigint() }))`select count(*) as n from settlement.bank_slots where holder is not null`);
  t.equal(held, 0n, 'every bank-call slot was given back');
  const stats = sim.statsSnapshot() as { maxInFlight: number };
  t.ok(stats.maxInFlight <= 4, `never more than the 4 configured calls in flight (saw ${stats.maxInFlight})`);
});
