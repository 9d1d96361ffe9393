import t from 'tap';
import { sql, type DatabasePool } from 'slonik';
import { z } from 'zod';
import { enqueueStage } from '../../src/db/operations.js';
import { KINDS } from '../../src/domain.js';
import { seed } from '../../src/seed.js';
import { checkInvariants, prepareSim, startSim, waitAllWithdrawn, workerEnv } from '../helpers/day.js';
import { freshDb } from '../helpers/db.js';
import { pastDate } from '../helpers/fixtures.js';
import { spawnWorker, waitFor, type WorkerProc } from '../helpers/procs.js';

const count = z.object({ n: z.bigint() });

/** Log lines at pino's error level or above (50 error, 60 fatal). */
const errorLines = (w: WorkerProc) =>
  w.logs.filter((l) => {
    try {
      return (JSON.parse(l) as { level?: number }).level! >= 50;
    } catch {
      return l.trim() !== ''; // stderr: anything there is a problem
    }
  });

/** What a stopped worker pool may still hold: claims, locked jobs, its registration. */
async function held(db: DatabasePool, poolId: string) {
  return {
    claims: await db.oneFirst(sql.type(count)`select count(*) as n from settlement.transfers where claimed_by = ${poolId} and claimed_until is not null`),
    jobs: await db.oneFirst(sql.type(count)`select count(*) as n from graphile_worker.jobs where locked_by = ${poolId}`),
    registered: await db.oneFirst(sql.type(count)`select count(*) as n from settlement.workers where pool_id = ${poolId}`),
  };
}

t.test('SIGTERM while payouts are in flight: the calls out finish, the rest is released, exit 0 with no error-level line; the next worker pays the day exactly once', async (t) => {
  const { url, db } = await freshDb(t);
  const sim = await startSim(t, { latencyMs: 150, jitterMs: 50 });
  const D = pastDate(1);
  await seed(db, { date: D, accounts: 60, kinds: ['tax', 'platform_fee'] });
  await prepareSim(db, sim);
  // More jobs than the worker runs at once: the job runner holds some it has not started.
  const env = workerEnv(url, sim.url, { WORKER_CONCURRENCY: '8', BANK_MAX_IN_FLIGHT: '8' });
  const first = await spawnWorker(t, env);
  await enqueueStage(db, 'record', D, null);
  await waitFor('payouts in flight', async () =>
    (await db.oneFirst(sql.type(count)`select count(*) as n from settlement.transfers where purpose = 'payout' and claimed_until is not null`)) >= 4n, 60_000, 20);
  first.child.kill('SIGTERM');
  t.equal(await first.exited, 0, 'the worker exits 0');
  t.same(errorLines(first), [], 'no error-level line in its log');
  t.ok(first.logs.some((l) => l.includes('"event":"worker:stop"')), 'it logged its stop');
  t.same(await held(db, first.poolId), { claims: 0n, jobs: 0n, registered: 0n }, 'it holds no claim and no job, and deregistered');
  const open = await db.oneFirst(sql.type(count)`select count(*) as n from settlement.transfers where purpose = 'payout' and state in ('pending', 'sending')`);
  t.ok(open > 0n, `the day was not finished when it stopped (${open} chunks open)`);

  const second = await spawnWorker(t, env);
  await waitAllWithdrawn(db, [D], KINDS.length);
  t.ok(second.child.exitCode === null, 'the second worker finished the day');
  await sim.whenIdle();
  await checkInvariants(t, db, sim.url);
});

t.test('a bank that does not answer cannot hold a stop: after WORKER_STOP_TIMEOUT_MS the worker releases its claims and jobs and exits; the next worker asks the bank first and pays exactly once', async (t) => {
  const { url, db } = await freshDb(t);
  const sim = await startSim(t, { latencyMs: 5 });
  const D = pastDate(1);
  await seed(db, { date: D, accounts: 3, kinds: ['tax'] });
  await prepareSim(db, sim);
  const env = workerEnv(url, sim.url, { BANK_TIMEOUT_MS: '30000', WORKER_STOP_TIMEOUT_MS: '2000' });
  const first = await spawnWorker(t, env);
  await waitFor('the loan accounts registered', async () =>
    (await db.oneFirst(sql.type(count)`select count(*) as n from settlement.accounts where role = 'loan' and fin_acno is null`)) === 0n, 60_000);
  // From now on every call waits 20 s: far longer than the stop may take.
  sim.configure({ latencyMs: 20_000 });
  await enqueueStage(db, 'record', D, 'tax');
  await waitFor('a payout call out', async () =>
    (await db.oneFirst(sql.type(count)`select count(*) as n from settlement.transfers where purpose = 'payout' and claimed_by = ${first.poolId} and claimed_until is not null`)) > 0n, 60_000, 20);
  // Let the request leave (the claim comes first).
  await waitFor('the simulator holding a request', async () => (sim.statsSnapshot()['inFlight'] as number) > 0, 30_000, 20);
  first.child.kill('SIGTERM');
  // Well under the 20 s a call takes: the stop did not wait for the bank.
  const code = await Promise.race([first.exited, new Promise<string>((r) => setTimeout(() => r('still running'), 15_000))]);
  t.equal(code, 0, 'the worker exits 0 without waiting for the bank\'s answers');
  t.ok(first.logs.some((l) => l.includes('"event":"worker:stop_timeout"')), 'it says it released work still in hand');
  t.same(errorLines(first), [], 'no error-level line in its log');
  t.same(await held(db, first.poolId), { claims: 0n, jobs: 0n, registered: 0n }, 'its claims and jobs are released at once (not after a lease or a dead-worker timeout)');

  sim.configure({ latencyMs: 5 });
  const second = await spawnWorker(t, env);
  await waitAllWithdrawn(db, [D], 1);
  t.ok(second.child.exitCode === null, 'the second worker finished the day');
  await sim.whenIdle();
  await checkInvariants(t, db, sim.url);
});

t.test('a worker with the default settings: concurrency from the sizing rule, no batch-size warning from graphile-worker, a quick and quiet stop', async (t) => {
  const { url, db } = await freshDb(t);
  const sim = await startSim(t);
  const w = await spawnWorker(t, workerEnv(url, sim.url, { WORKER_CONCURRENCY: '', BANK_MAX_IN_FLIGHT: '' }));
  const start = JSON.parse(w.logs.find((l) => l.includes('"event":"worker:start"'))!) as { concurrency: number; max_in_flight: number };
  t.same([start.concurrency, start.max_in_flight], [100, 50], 'concurrency 100: twice the default cap of 50');
  await db.query(sql.unsafe`select graphile_worker.add_job('watch', '{}'::json)`);
  await waitFor('the job run', async () => (await db.oneFirst(sql.type(count)`select count(*) as n from graphile_worker.jobs`)) === 0n, 30_000);
  w.child.kill('SIGTERM');
  t.equal(await w.exited, 0, 'it exits 0');
  t.notOk(w.logs.some((l) => /batch size/i.test(l)), 'graphile-worker did not warn about its batch size');
  t.same(w.logs.filter((l) => /"level":(40|50|60)/.test(l) && !l.includes('"event":"sim:in_process"')), [], 'no warning or error in its log');
  t.same(await held(db, w.poolId), { claims: 0n, jobs: 0n, registered: 0n }, 'nothing held');
});
