import t from 'tap';
import { sql } from 'slonik';
import { z } from 'zod';
import { startSim, workerEnv } from './helpers/day.js';
import { freshDb } from './helpers/db.js';
import { spawnWorker, waitFor } from './helpers/procs.js';

t.test('a job with a bad payload fails for good with a named error and changes nothing', async (t) => {
  const { url, db } = await freshDb(t);
  const sim = await startSim(t);
  const w = await spawnWorker(t, workerEnv(url, sim.url));
  const bad: Array<[string, string]> = [
    ['payout', '{"chunk_id":"abc"}'],
    ['payout', '{"chunk_id":1,"extra":true}'],
    ['stage', '{"stage":"bogus"}'],
    ['stage', '{"stage":"record","date":"2026-02-30","kind":"tax"}'],
    ['withdraw', '{"date":"2026-01-01"}'],
  ];
  for (const [task, payload] of bad) {
    await db.query(sql.unsafe`select graphile_worker.add_job(${task}, ${payload}::json, max_attempts => 25)`);
  }
  const jobs = await waitFor('bad jobs failed for good', async () => {
    const rows = await db.any(sql.type(z.object({ attempts: z.number(), max_attempts: z.number(), last_error: z.string().nullable() }))`
      select attempts, max_attempts, last_error from graphile_worker.jobs where task_identifier in ('payout', 'stage', 'withdraw')`);
    return rows.length === bad.length && rows.every((r) => r.last_error && r.attempts >= r.max_attempts) ? rows : undefined;
  }, 30_000);
  for (const j of jobs) t.match(j.last_error, /PayloadError|invalid payload/, `named error: ${j.last_error?.split('\n')[0]}`);
  t.ok(jobs.every((j) => j.attempts === 1), 'not retried');
  const changed = await db.oneFirst(sql.type(z.object({ n: z.bigint() }))`
    select (select count(*) from settlement.days) + (select count(*) from settlement.chunks) + (select count(*) from settlement.journal_entries) as n`);
  t.equal(changed, 0n, 'nothing changed');
  t.ok(w.logs.some((l) => l.includes('"event":"job:bad_payload"')), 'logged as job:bad_payload');

  const port = JSON.parse(w.logs.find((l) => l.includes('"event":"http:listen"'))!).port as number;
  const health = await fetch(`http://127.0.0.1:${port}/healthz`);
  t.equal(health.status, 200, 'health endpoint answers');
  t.match(await health.json(), { status: 'ok', pool: w.poolId });
  const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  t.match(metrics, /settle_jobs_total\{task="payout",result="error"\} \d+/, 'metrics count job results');
});
