import t from 'tap';
import { enqueueStage } from '../../src/db/operations.js';
import { KINDS } from '../../src/domain.js';
import { seed } from '../../src/seed.js';
import { checkInvariants, prepareSim, startSim, waitAllWithdrawn, workerEnv } from '../helpers/day.js';
import { freshDb } from '../helpers/db.js';
import { pastDate } from '../helpers/fixtures.js';
import { spawnWorker } from '../helpers/procs.js';

t.test('a full day for every kind with three worker processes', async (t) => {
  const { url, db } = await freshDb(t);
  const sim = await startSim(t, { latencyMs: 20, jitterMs: 10, maxInFlight: 8 });
  const D = pastDate(1);
  const s = await seed(db, { date: D, accounts: 40 });
  await prepareSim(db, sim);
  const workers = await Promise.all([1, 2, 3].map(() => spawnWorker(t, workerEnv(url, sim.url))));
  t.equal(new Set(workers.map((w) => w.poolId)).size, 3, 'three distinct worker pools');

  t.equal(await enqueueStage(db, 'record', D, null), KINDS.length, 'one record job per kind');
  const rows = await waitAllWithdrawn(db, [D], KINDS.length);
  t.equal(rows.reduce((a, r) => a + r.amount_recorded, 0n), s.amount, 'recorded everything seeded');
  for (const r of rows) {
    t.equal(r.amount_paid, r.amount_recorded, `${r.kind}: paid = recorded`);
    t.equal(r.amount_withdrawn, r.amount_paid, `${r.kind}: withdrawn = paid`);
    t.equal(r.chunks_succeeded, r.chunks_total, `${r.kind}: every chunk succeeded`);
  }
  const { counts } = await checkInvariants(t, db, sim.url);
  t.equal(counts.withdrawals, BigInt(KINDS.length), 'one withdrawal per kind');
  const stats = sim.statsSnapshot() as { maxInFlight: number; maxArrivals?: number };
  t.ok(stats.maxInFlight <= 8, `the bank never saw more than BANK_MAX_IN_FLIGHT=8 calls at once (saw ${stats.maxInFlight})`);
  // Every worker took part (SKIP LOCKED spreads the jobs).
  const busy = workers.filter((w) => w.logs.some((l) => l.includes('"event":"transfer:result"') || l.includes('"event":"stage:outcome"')));
  t.ok(busy.length >= 2, `jobs ran on several processes (${busy.length} of 3 logged work)`);
});
