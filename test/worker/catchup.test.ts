import t from 'tap';
import { parseCrontab } from 'graphile-worker';
import { sql } from 'slonik';
import { z } from 'zod';
import { seed } from '../../src/seed.js';
import { projectCrontab } from '../../src/worker/runner.js';
import { checkInvariants, prepareSim, startSim, waitAllWithdrawn, workerEnv } from '../helpers/day.js';
import { freshDb } from '../helpers/db.js';
import { pastDate } from '../helpers/fixtures.js';
import { spawnWorker } from '../helpers/procs.js';

t.test('the crontab schedules every stage with job keys and backfill', async (t) => {
  const items = parseCrontab(projectCrontab());
  const stages = items.filter((i) => i.task === 'stage').map((i) => (i.payload as { stage: string }).stage).sort();
  t.same(stages, ['confirm', 'pay', 'reconcile', 'record', 'withdraw'], 'one entry per stage');
  for (const i of items) {
    t.ok(i.options.jobKey, `${i.identifier} has a job key (duplicate ticks collapse)`);
    t.ok(i.options.backfillPeriod > 0, `${i.identifier} backfills missed ticks`);
  }
  t.equal(items.find((i) => i.task === 'reconcile')?.options.queueName, 'settlement:reconcile', 'the reconcile tick runs in the serial reconcile queue');
});

t.test('reconcile jobs, from the crontab or from a stage, share one serial queue', async (t) => {
  const { db } = await freshDb(t);
  await db.query(sql.unsafe`select settlement.add_reconcile_job()`);
  await db.query(sql.unsafe`select settlement.add_reconcile_job(now() + interval '1 hour')`);
  const jobs = await db.any(sql.type(z.object({ queue_name: z.string().nullable(), key: z.string().nullable() }))`
    select queue_name, key from graphile_worker.jobs where task_identifier = 'reconcile'`);
  t.same(jobs, [{ queue_name: 'settlement:reconcile', key: 'reconcile' }], 'one job (its key collapses the second), in the queue whose jobs run one at a time');
});

t.test('days missed while the service was down are all caught up, oldest first, by one cron tick', async (t) => {
  const { url, db } = await freshDb(t);
  const sim = await startSim(t);
  const days = [pastDate(4), pastDate(3), pastDate(2)];
  for (const d of days) await seed(db, { date: d, accounts: 8, kinds: ['tax'] });
  await prepareSim(db, sim);
  await spawnWorker(t, workerEnv(url, sim.url));
  // What the crontab enqueues each minute (no date: every open day).
  await db.query(sql.unsafe`select graphile_worker.add_job('stage', '{"stage":"record","_cron":{"ts":"2026-01-01T00:00:00Z"}}'::json, job_key => 'cron:stage:record')`);
  await waitAllWithdrawn(db, days, 1);
  const order = await db.anyFirst(sql.type(z.object({ d: z.string() }))`
    select business_date::text as d from settlement.stage_runs where stage = 'record' order by finished_at`);
  t.same(order, days, 'recorded oldest first');
  await checkInvariants(t, db, sim.url);
});
