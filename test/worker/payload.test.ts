import t from 'tap';
import { sql } from 'slonik';
import { z } from 'zod';
import { startSim, workerEnv } from '../helpers/day.js';
import { freshDb } from '../helpers/db.js';
import { spawnWorker, waitFor } from '../helpers/procs.js';

t.test('a job that can never succeed fails for good at once with a named error and changes nothing', async (t) => {
  const { url, db } = await freshDb(t);
  const sim = await startSim(t);
  const w = await spawnWorker(t, workerEnv(url, sim.url));
  const bad: Array<[string, string, string]> = [
    ['transfer', '{"transfer_id":"abc"}', 'invalid_payload'],
    ['transfer', '{"transfer_id":1,"extra":true}', 'invalid_payload'],
    ['transfer', '{"transfer_id":100000000000000000000}', 'invalid_payload'],
    ['transfer', '{"transfer_id":424242}', 'transfer_not_found'],
    ['register', '{"account_no":"12ab"}', 'invalid_payload'],
    ['register', '{"account_no":"9999999999"}', 'unknown_account'],
    ['stage', '{"stage":"bogus"}', 'invalid_payload'],
    ['stage', '{"stage":"record","date":"2026-02-30","kind":"tax"}', 'invalid_payload'],
  ];
  for (const [task, payload] of bad) {
    await db.query(sql.unsafe`select graphile_worker.add_job(${task}, ${payload}::json, max_attempts => 25)`);
  }
  const rejected = await waitFor('bad jobs rejected', async () => {
    const rows = await db.any(sql.type(z.object({ task: z.string(), code: z.string(), error: z.string(), payload: z.unknown() }))`
      select task, code, error, payload from settlement.rejected_jobs order by id`);
    return rows.length === bad.length ? rows : undefined;
  }, 30_000);
  // jsonb keeps its own key order: compare payloads with sorted keys.
  const canon = (v: unknown) => JSON.stringify(v, (_k, x) => (x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort()) : x));
  for (const [task, payload, code] of bad) {
    const r = rejected.find((x) => x.task === task && canon(x.payload) === canon(JSON.parse(payload)));
    t.equal(r?.code, code, `${task} ${payload}: ${code} (${r?.error.split('\n')[0]})`);
  }
  const left = await db.oneFirst(sql.type(z.object({ n: z.bigint() }))`select count(*) as n from graphile_worker.jobs where task_identifier in ('transfer', 'register', 'stage')`);
  t.equal(left, 0n, 'taken off the queue at once, not retried 25 times');
  const changed = await db.oneFirst(sql.type(z.object({ n: z.bigint() }))`
    select (select count(*) from settlement.days) + (select count(*) from settlement.transfers) + (select count(*) from settlement.journal_entries) as n`);
  t.equal(changed, 0n, 'nothing changed');
  t.ok(w.logs.some((l) => l.includes('"event":"job:rejected"') && l.includes('"level":50')), 'logged as job:rejected at error');

  const port = JSON.parse(w.logs.find((l) => l.includes('"event":"http:listen"'))!).port as number;
  const health = await fetch(`http://127.0.0.1:${port}/healthz`);
  t.equal(health.status, 200, 'health endpoint answers');
});
