import t from 'tap';
import { enqueueStage } from '../../src/db/operations.js';
import { KINDS } from '../../src/domain.js';
import { seed } from '../../src/seed.js';
import { checkInvariants, prepareSim, startSim, waitAllWithdrawn, workerEnv } from '../helpers/day.js';
import { freshDb } from '../helpers/db.js';
import { pastDate } from '../helpers/fixtures.js';
import { spawnWorker } from '../helpers/procs.js';

const seedArg = Number(process.env.SETTLE_CHAOS_SEED ?? 7);

t.test(`bank faults change nothing in the outcome (seed ${seedArg})`, async (t) => {
  const { url, db } = await freshDb(t);
  // Calls of 50 ms against a cap of 3 while the workers keep up to 10 in
  // flight: busy answers come whatever the machine's load (with 10 ms calls
  // and a cap of 6, a run beside a busy loop once saw none).
  const sim = await startSim(t, {
    latencyMs: 50, jitterMs: 10, maxInFlight: 3, seed: seedArg,
    failBeforeRate: 0.08, timeoutAfterRate: 0.05, dropRate: 0.05, slowRate: 0.05, malformedRate: 0.05,
  });
  const D = pastDate(1);
  await seed(db, { date: D, accounts: 40 });
  await prepareSim(db, sim);
  // A short client timeout so that timeouts after booking resolve quickly; more
  // workers than the cap so that the "busy" path is used too.
  const env = workerEnv(url, sim.url, { BANK_TIMEOUT_MS: '600', WORKER_CONCURRENCY: '5', BANK_MAX_IN_FLIGHT: '10' });
  await Promise.all([spawnWorker(t, env), spawnWorker(t, env)]);
  await enqueueStage(db, 'record', D, null);
  await waitAllWithdrawn(db, [D], KINDS.length, 240_000);
  const stats = sim.statsSnapshot() as { faults: Record<string, number>; rejected: Record<string, number> };
  t.comment(`faults injected: ${JSON.stringify(stats.faults)}; rejected: ${JSON.stringify(stats.rejected)}`);
  const injected = Object.values(stats.faults).reduce((a, b) => a + b, 0);
  t.ok(injected > 10, `faults were really injected (${injected})`);
  t.ok((stats.rejected.busy ?? 0) > 0, 'busy answers were seen (in-flight cap below BANK_MAX_IN_FLIGHT)');
  await checkInvariants(t, db, sim.url);
});
