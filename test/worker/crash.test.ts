import t from 'tap';
import { sql } from 'slonik';
import { z } from 'zod';
import { BANK_SLOT_LOCK_CLASS } from '../../src/db/bank-slots.js';
import { enqueueStage } from '../../src/db/operations.js';
import { KINDS } from '../../src/domain.js';
import { seed } from '../../src/seed.js';
import { checkInvariants, prepareSim, startSim, waitAllWithdrawn, workerEnv } from '../helpers/day.js';
import { freshDb } from '../helpers/db.js';
import { pastDate } from '../helpers/fixtures.js';
import { spawnWorker, waitFor } from '../helpers/procs.js';

t.test('a worker killed with SIGKILL mid-payout loses nothing and pays nothing twice', async (t) => {
  const { url, db } = await freshDb(t);
  // Slow bank: the victim is certainly holding jobs and bank calls when it dies.
  const sim = await startSim(t, { latencyMs: 150, jitterMs: 50, maxInFlight: 12 });
  const D = pastDate(1);
  await seed(db, { date: D, accounts: 150, kinds: ['tax', 'platform_fee'] });
  await prepareSim(db, sim);
  const env = workerEnv(url, sim.url, { WORKER_CONCURRENCY: '6', BANK_MAX_IN_FLIGHT: '12' });
  const victim = await spawnWorker(t, env);
  await enqueueStage(db, 'record', D, null);

  const total = await waitFor('chunks created', async () =>
    db.oneFirst(sql.type(z.object({ n: z.bigint() }))`select count(*) as n from settlement.transfers where purpose = 'payout'`).then((n) => (n > 0n ? n : undefined)));
  await waitFor('some chunks paid', async () => {
    const n = await db.oneFirst(sql.type(z.object({ n: z.bigint() }))`select count(*) as n from settlement.transfers where purpose = 'payout' and state = 'succeeded'`);
    return n >= total / 5n;
  });
  const survivor = await spawnWorker(t, env);
  // Bank-call slots are session locks of the worker's connections (named settle-worker:<pid>).
  const slotsOf = (pid: number) => db.oneFirst(sql.type(z.object({ n: z.bigint() }))`
    select count(*) as n from pg_locks l join pg_stat_activity a on a.pid = l.pid
    where l.locktype = 'advisory' and l.classid = ${BANK_SLOT_LOCK_CLASS} and l.objsubid = 2 and l.objid > 0 and l.granted
      and l.database = (select oid from pg_database where datname = current_database())
      and a.application_name = ${'settle-worker:' + victim.child.pid}`);
  const slotsHeld = await waitFor('the victim holding bank-call slots', async () => {
    const n = await slotsOf(victim.child.pid!);
    return n > 0n ? n : undefined;
  });
  const held = await db.oneFirst(sql.type(z.object({ n: z.bigint() }))`select count(*) as n from graphile_worker.jobs where locked_by = ${victim.poolId}`);
  victim.child.kill('SIGKILL');
  const killedAt = Date.now();
  await victim.exited;
  t.ok(held > 0n, `the victim held ${held} jobs when it was killed`);
  t.ok(slotsHeld > 0n, `the victim held ${slotsHeld} bank-call slots when it was killed`);
  await waitFor('the victim\'s slots given back', async () => (await slotsOf(victim.child.pid!)) === 0n, 10_000);
  t.ok(Date.now() - killedAt < 10_000, `its bank-call slots came back ${Date.now() - killedAt} ms after the kill (with its connections)`);

  await waitFor('the dead pool\'s jobs released', async () => {
    const n = await db.oneFirst(sql.type(z.object({ n: z.bigint() }))`select count(*) as n from graphile_worker.jobs where locked_by = ${victim.poolId}`);
    return n === 0n;
  }, 60_000);
  const releasedAfter = Date.now() - killedAt;
  t.ok(releasedAfter < 60_000, `G7: its jobs were released ${releasedAfter} ms after the kill (< 60 s)`);

  await waitAllWithdrawn(db, [D], KINDS.length, 120_000);
  t.ok(Date.now() - killedAt < 120_000, 'the day finished on the survivor');
  t.ok(survivor.logs.some((l) => l.includes('worker:recovered')), 'the survivor logged the recovery');
  const stats = sim.statsSnapshot() as { maxInFlight: number; rejected: { busy: number } };
  t.ok(stats.maxInFlight <= 12, `the cap of 12 calls in flight held through the kill (saw ${stats.maxInFlight})`);
  t.equal(stats.rejected.busy, 0, 'the bank never refused a call for being over the cap');
  await checkInvariants(t, db, sim.url);
});

t.test('SIGTERM stops a worker gracefully: exit 0, deregistered, no job left locked', async (t) => {
  const { url, db } = await freshDb(t);
  const sim = await startSim(t, { latencyMs: 100 });
  const D = pastDate(1);
  await seed(db, { date: D, accounts: 30, kinds: ['tax'] });
  await prepareSim(db, sim);
  const w = await spawnWorker(t, workerEnv(url, sim.url));
  await enqueueStage(db, 'record', D, 'tax');
  await waitFor('payouts under way', async () =>
    (await db.oneFirst(sql.type(z.object({ n: z.bigint() }))`select count(*) as n from settlement.transfers where purpose = 'payout' and state = 'succeeded'`)) > 0n);
  w.child.kill('SIGTERM');
  t.equal(await w.exited, 0, 'exit code 0');
  const rows = await db.oneFirst(sql.type(z.object({ n: z.bigint() }))`select count(*) as n from settlement.workers where pool_id = ${w.poolId}`);
  t.equal(rows, 0n, 'its heartbeat row is gone');
  const locked = await db.oneFirst(sql.type(z.object({ n: z.bigint() }))`select count(*) as n from graphile_worker.jobs where locked_by = ${w.poolId}`);
  t.equal(locked, 0n, 'it left no job locked');
  // The rest of the day finishes on another worker.
  await spawnWorker(t, workerEnv(url, sim.url));
  await waitAllWithdrawn(db, [D], 1, 120_000);
  await checkInvariants(t, db, sim.url);
});
