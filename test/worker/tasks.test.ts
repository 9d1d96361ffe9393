import t from 'tap';
import type { JobHelpers } from 'graphile-worker';
import { sql } from 'slonik';
import { z } from 'zod';
import { createNhBankClient } from '../../src/bank/client.js';
import { loadConfig } from '../../src/config.js';
import { runStage } from '../../src/db/stages.js';
import { createDbClock } from '../../src/jobs/clock.js';
import { createLiveCodeBook } from '../../src/jobs/codebook.js';
import { RetryLaterError } from '../../src/domain.js';
import type { TaskContext } from '../../src/tasks/context.js';
import { createBankDesk } from '../../src/desk/index.js';
import { createLogger } from '../../src/log.js';
import { registerAtSimulator, seed } from '../../src/seed.js';
import { createReconcileTask } from '../../src/tasks/reconcile.js';
import { createStageTask } from '../../src/tasks/stage.js';
import { createTransferTask } from '../../src/tasks/transfer.js';
import { prepareSim, startSim, TOKEN } from '../helpers/day.js';
import { freshDb } from '../helpers/db.js';
import { pastDate } from '../helpers/fixtures.js';
import { waitFor } from '../helpers/procs.js';

const D = pastDate(1);
let jobId = 0;
// The part of graphile-worker's helpers the tasks read: the job's identity.
const helpers = (task: string) => ({ job: { id: String(++jobId), attempts: 1, task_identifier: task } }) as unknown as JobHelpers;

t.test('the same task run twice, concurrently and again later, moves money once', async (t) => {
  const { url, db } = await freshDb(t, { poolSize: 12 });
  const sim = await startSim(t, { latencyMs: 50, jitterMs: 0 });
  await seed(db, { date: D, accounts: 4, kinds: ['tax'] });
  await prepareSim(db, sim);
  await registerAtSimulator(db, sim.url);
  const config = loadConfig({ BANK_URL: sim.url, BANK_ACCESS_TOKEN: TOKEN });
  await db.query(sql.unsafe`select settlement.configure('Asia/Seoul', 100000, 4)`);
  const clock = await createDbClock(db);
  const codeBook = await createLiveCodeBook(db);
  // Each "process" has its own bank client calling through the shared, database-wide limit.
  const ctxFor = (holder: string): TaskContext => {
    const desk = createBankDesk({ url, holder: () => `${holder}#secret-of-${holder}`, claimLeaseMs: 30_000, maxWaitMs: 30_000 });
    t.teardown(() => desk.close());
    const bank = createNhBankClient({ baseUrl: sim.url, iscd: config.bank.iscd, fintechApsno: config.bank.fintechApsno, accessToken: TOKEN, brdtBrno: config.bank.brdtBrno,
      svcCodes: config.bank.svcCodes, perCallLimit: config.bank.perCallLimit, timeoutMs: 2000, codeBook: codeBook.lookup, now: clock.now });
    t.teardown(() => bank.close());
    return { db, bank, config, logger: createLogger('silent'), holder: () => `${holder}#secret-of-${holder}`, claimLeaseMs: 30_000, desk, clock };
  };
  const stageA = createStageTask(ctxFor('pool-a'));
  const stageB = createStageTask(ctxFor('pool-b'));

  // Eight concurrent record + pay stage jobs for one day: one of each does the work.
  // A run that finds the stage busy asks to run again later (RetryLaterError).
  const eight = (stage: string) => Promise.allSettled(Array.from({ length: 8 }, (_, i) => (i % 2 ? stageA : stageB)({ stage, date: D, kind: 'tax' }, helpers('stage'))));
  for (const stage of ['record', 'pay']) {
    const runs = await eight(stage);
    t.ok(runs.every((r) => r.status === 'fulfilled' || r.reason instanceof RetryLaterError), `${stage}: concurrent duplicates either ran or were told to retry later`);
  }
  const chunks = await db.anyFirst(sql.type(z.object({ id: z.number() }))`select id::int as id from settlement.transfers where purpose = 'payout' order by id`);
  t.ok(chunks.length >= 4, `${chunks.length} chunks, created once`);

  // Two "processes" run every transfer job at the same time; then both again.
  const runA = createTransferTask(ctxFor('pool-a'));
  const runB = createTransferTask(ctxFor('pool-b'));
  const twice = (ids: readonly number[]) => ids.flatMap((id) => [runA({ transfer_id: id }, helpers('transfer')), runB({ transfer_id: id }, helpers('transfer'))]);
  const settled = await Promise.allSettled(twice(chunks));
  const busy = settled.filter((r) => r.status === 'rejected');
  t.ok(busy.length > 0, `${busy.length} duplicate runs overlapped a live attempt`);
  t.ok(busy.every((r) => (r as PromiseRejectedResult).reason instanceof RetryLaterError), 'a concurrent duplicate is told to retry later, nothing else fails');
  await Promise.all(twice(chunks));

  const transfers = (await (await fetch(`${sim.url}/_sim/transfers`)).json()) as Array<{ isTuno: string; api: string }>;
  t.equal(transfers.length, chunks.length, 'one booking per chunk');
  t.equal(new Set(transfers.map((x) => x.isTuno)).size, transfers.length, 'no IsTuno twice');
  const journal = await db.oneFirst(sql.type(z.object({ n: z.bigint() }))`select count(*) as n from settlement.journal_entries where event = 'payout'`);
  t.equal(journal, BigInt(chunks.length), 'one journal entry per chunk');

  t.equal((await runStage(db, 'confirm', D, 'tax')).outcome, 'done');
  // Confirm is proven by the bank: the withdrawal waits until the reconcile
  // task has read the settlement account's statement showing the payouts.
  t.equal((await runStage(db, 'withdraw', D, 'tax')).outcome, 'not_ready', 'withdraw waits for the statement to show the payouts');
  await createReconcileTask(ctxFor('pool-a'))({}, helpers('reconcile'));
  t.equal((await runStage(db, 'withdraw', D, 'tax')).outcome, 'started');
  const w = await db.oneFirst(sql.type(z.object({ id: z.number() }))`select id::int as id from settlement.transfers where purpose = 'withdrawal'`);
  await Promise.allSettled(twice([w]));
  await Promise.all(twice([w]));
  const after = (await (await fetch(`${sim.url}/_sim/transfers`)).json()) as Array<{ api: string }>;
  t.equal(after.filter((x) => x.api === 'ReceivedTransferAccountNumber').length, 1, 'one withdrawal booked');
  t.equal((await runStage(db, 'withdraw', D, 'tax')).outcome, 'already_done');
  // A desk keeps a freed slot a moment (lingerMs, 50 ms) for its next claim, then gives it back.
  const slotsInUse = () => db.oneFirst(sql.type(z.object({ n: z.bigint() }))`select settlement.bank_slots_in_use() as n`);
  await waitFor('every bank-call slot given back', async () => (await slotsInUse()) === 0n, 5_000, 20);
  t.equal(await slotsInUse(), 0n, 'every bank-call slot was given back');
  const stats = sim.statsSnapshot() as { maxInFlight: number };
  t.ok(stats.maxInFlight <= 4, `never more than the 4 configured calls in flight (saw ${stats.maxInFlight})`);
});
