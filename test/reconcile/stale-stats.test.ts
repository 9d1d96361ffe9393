import t from 'tap';
import { sql } from 'slonik';
import { z } from 'zod';
import { enqueueStage } from '../../src/db/operations.js';
import { seed } from '../../src/seed.js';
import { checkInvariants, prepareSim, startSim, waitAllWithdrawn, workerEnv } from '../helpers/day.js';
import { freshDb } from '../helpers/db.js';
import { pastDate } from '../helpers/fixtures.js';
import { spawnWorker } from '../helpers/procs.js';
import { ledgerMirrorsStatements, waitReconcile } from '../helpers/reconcile.js';

/**
 * Issue 26: reconcile on a server whose statistics are stale (autovacuum
 * off, as a busy or freshly restored database can effectively be) took 32 s
 * for 9 transfers and hit the 60 s statement timeout. Here autovacuum is off
 * for every settlement table before anything is written, so nothing analyzes
 * them while a day of a few thousand transfers is paid; the reconcile stage
 * then runs on the worker's default statement timeout (60 s): it must end
 * done, not blocked by a cancelled statement.
 */
t.test('reconcile of a day of a few thousand transfers with autovacuum off completes inside the statement timeout', async (t) => {
  const { url, db } = await freshDb(t);
  const tables = await db.any(sql.type(z.object({ s: z.string(), r: z.string() }))`
    select schemaname as s, relname as r from pg_stat_user_tables where schemaname in ('settlement', 'graphile_worker')`);
  for (const x of tables) await db.query(sql.unsafe`alter table ${sql.identifier([x.s, x.r])} set (autovacuum_enabled = false)`);
  t.ok(tables.length > 10, `autovacuum off for ${tables.length} tables`);
  await db.query(sql.unsafe`select settlement.configure_reconcile('-1 day')`);
  const sim = await startSim(t, { latencyMs: 2, jitterMs: 2, maxInFlight: 40 });
  const D = pastDate(1);
  await seed(db, { date: D, accounts: 1500, kinds: ['tax'] });
  await prepareSim(db, sim);
  const env = workerEnv(url, sim.url, { WORKER_CONCURRENCY: '40', BANK_MAX_IN_FLIGHT: '40' });
  await spawnWorker(t, env);
  await spawnWorker(t, env);
  await enqueueStage(db, 'record', D, 'tax');
  await waitAllWithdrawn(db, [D], 1, 300_000);
  const n = await db.oneFirst(sql.type(z.object({ n: z.bigint() }))`select count(*) as n from settlement.transfers`);
  t.ok(n >= 1500n, `${n} transfers`);
  const analyzed = await db.oneFirst(sql.type(z.object({ n: z.bigint() }))`
    select count(*) as n from pg_stat_user_tables where schemaname = 'settlement' and relname in ('transfers', 'statement_lines', 'line_matches') and last_autoanalyze is not null`);
  t.equal(analyzed, 0n, 'autovacuum analyzed none of them');
  const rows = await waitReconcile(db, D, ['tax'], 'done', 300_000);
  t.match(rows[0]!.detail, /transfers matched to \d+ statement lines/, `reconciled: ${rows[0]!.detail}`);
  const errors = await db.oneFirst(sql.type(z.object({ n: z.bigint() }))`
    select count(*) as n from settlement.stage_runs where business_date = ${D}::date and detail like 'error:%'`);
  t.equal(errors, 0n, 'no stage of the day was cancelled or failed on the way');
  await ledgerMirrorsStatements(t, db);
  await checkInvariants(t, db, sim.url);
});
