import t from 'tap';
import { sql } from 'slonik';
import { z } from 'zod';
import { freshDb, pgClient } from '../helpers/db.js';
import { pastDate } from '../helpers/fixtures.js';

/*
 * graphile-worker's add_job clears the key of an already locked job, then
 * inserts ON CONFLICT (key) DO UPDATE WHERE locked_at is null. A worker that
 * locks the keyed job between the two (here: a transaction holding the lock,
 * committed while add_job waits on the conflict) leaves add_job with neither
 * an insert nor an update. settlement.add_stage_job / add_reconcile_job then
 * add a job without a key, so what this transaction changed is acted upon.
 * (The test locks the job through graphile-worker's private table, as its
 * get_job does; the product never touches that table.)
 */
const cases = [
  { name: 'a stage wake-up', key: (D: string) => `stage:pay:${D}:tax`, task: 'stage', add: (D: string) => `select settlement.add_stage_job('pay', '${D}', 'tax')` },
  { name: 'a reconcile wake-up', key: () => 'reconcile', task: 'reconcile', add: () => `select settlement.add_reconcile_job()` },
];

for (const c of cases) {
  t.test(`${c.name} is not lost when a worker locks the keyed job while it is being added`, async (t) => {
    const { url, db } = await freshDb(t);
    const D = pastDate(1);
    const key = c.key(D);
    const worker = await pgClient(t, url);
    const adder = await pgClient(t, url);
    await adder.query(c.add(D));
    await worker.query('begin');
    await worker.query(`update graphile_worker._private_jobs set locked_at = now(), locked_by = 'test-worker' where key = $1`, [key]);
    const adderPid = (await adder.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid;
    const adding = adder.query(c.add(D)); // waits on the conflict with the locked row
    // Commit only once the adder is really waiting on that row lock (however
    // slow the machine), so the race this test is about always happens.
    const waiting = async () =>
      (await db.oneFirst(sql.type(z.object({ w: z.string().nullable() }))`select wait_event_type as w from pg_stat_activity where pid = ${adderPid}`)) === 'Lock';
    for (let i = 0; !(await waiting()); i++) {
      if (i > 3000) throw new Error('the adder never waited on the locked job');
      await new Promise((r) => setTimeout(r, 10));
    }
    await worker.query('commit');
    await adding;
    const jobs = await db.any(sql.type(z.object({ key: z.string().nullable(), locked: z.boolean() }))`
      select key, locked_at is not null as locked from graphile_worker.jobs where task_identifier = ${c.task} order by id`);
    t.equal(jobs.length, 2, `the locked job and a new one: ${JSON.stringify(jobs)}`);
    t.same(jobs.filter((j) => !j.locked).length, 1, 'one job not locked will run after the locked one');
  });
}
