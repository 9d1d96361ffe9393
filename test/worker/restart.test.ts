import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { sql } from 'slonik';
import { z } from 'zod';
import { startEmbeddedPostgres, freePort } from '../../src/db/embedded.js';
import { migrate } from '../../src/db/migrate.js';
import { createDbPool } from '../../src/db/pool.js';
import { enqueueStage } from '../../src/db/operations.js';
import { KINDS } from '../../src/domain.js';
import { ensureLoginRole } from '../../src/runtime.js';
import { seed } from '../../src/seed.js';
import { TEST_WORKER_LOGIN } from '../helpers/roles.js';
import { checkInvariants, prepareSim, startSim, waitAllWithdrawn, workerEnv } from '../helpers/day.js';
import { pastDate } from '../helpers/fixtures.js';
import { spawnWorker, waitFor } from '../helpers/procs.js';

/**
 * A Postgres of this test's own (the shared one must not be restarted under
 * other test files), restarted in the middle of payouts: the same worker
 * processes stay up, reconnect and finish the day, paying nothing twice.
 */
t.test('workers survive a database restart mid-payout and finish the day exactly once', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'settle-restart-'));
  chmodSync(dir, 0o755);
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // A port free now (a random one could be in use, e.g. another test's connection's ephemeral port:
  // the start then failed at once, seen once in a full run); kept across the restart.
  const port = await freePort();
  const start = () => startEmbeddedPostgres({ dataDir: path.join(dir, 'pg'), persistent: true, database: 'postgres', port });
  let pg = await start();
  t.teardown(() => pg.stop());
  await migrate(pg.url);
  await ensureLoginRole(pg.url, TEST_WORKER_LOGIN);
  const db = await createDbPool(pg.url, { maximumPoolSize: 4 });
  t.teardown(() => db.end());
  const sim = await startSim(t, { latencyMs: 60, jitterMs: 20 });
  const D = pastDate(1);
  await seed(db, { date: D, accounts: 60, kinds: ['tax', 'platform_fee'] });
  await prepareSim(db, sim);
  const env = workerEnv(pg.url, sim.url, { WORKER_CONCURRENCY: '6' });
  const workers = [await spawnWorker(t, env), await spawnWorker(t, env)];
  await enqueueStage(db, 'record', D, null);
  await waitFor('payouts under way', async () =>
    (await db.oneFirst(sql.type(z.object({ n: z.bigint() }))`select count(*) as n from settlement.transfers where state = 'succeeded'`)) >= 10n);

  await pg.stop();
  await new Promise((r) => setTimeout(r, 3000));
  pg = await start();
  const alive = workers.every((w) => w.child.exitCode === null && w.child.signalCode === null);
  t.ok(alive, 'both workers are still running after the restart');
  if (!alive) for (const w of workers) t.comment(w.logs.slice(-15).join('\n'));

  await waitAllWithdrawn(db, [D], KINDS.length, 180_000);
  t.ok(workers.every((w) => w.child.exitCode === null), 'the same processes finished the day');
  t.ok(workers.some((w) => w.logs.some((l) => l.includes('worker:runner_restarted') || l.includes('worker:beat_failed'))), 'they noticed the database was away');
  await checkInvariants(t, db, sim.url);
});
