/**
 * graphile-worker shuts its own pool down when it cannot record what its
 * jobs did ("Failed to complete jobs …: deadlock detected", seen in a demo run
 * under load), and that pool's jobs stay locked by it. The worker replaces the
 * runner as it does after losing the database: its stop bounded, the pool's
 * jobs and claims freed, a new runner; the day then settles exactly once.
 *
 * The real worker runner in this process, a real Postgres and the simulator
 * over HTTP; graphile-worker's pool:fatalError event (what it emits before it
 * shuts the pool down) is raised on the worker's event bus, since no public
 * way makes its completion fail on purpose.
 */
import t from 'tap';
import { loadConfig } from '../../src/config.js';
import { enqueueStage } from '../../src/db/operations.js';
import { KINDS } from '../../src/domain.js';
import { createLogger } from '../../src/log.js';
import { ensureLoginRole } from '../../src/runtime.js';
import { seed } from '../../src/seed.js';
import { startWorker } from '../../src/worker/runner.js';
import { checkInvariants, prepareSim, startSim, waitAllWithdrawn, workerEnv } from '../helpers/day.js';
import { freshDb } from '../helpers/db.js';
import { pastDate } from '../helpers/fixtures.js';
import { waitFor } from '../helpers/procs.js';
import { TEST_WORKER_LOGIN } from '../helpers/roles.js';

t.test('graphile-worker gives up its pool: the worker replaces the runner, frees what the pool held, and the day settles once', async (t) => {
  const { url, db } = await freshDb(t);
  await ensureLoginRole(url, TEST_WORKER_LOGIN);
  const sim = await startSim(t, { latencyMs: 20, jitterMs: 5 });
  const D = pastDate(1);
  await seed(db, { date: D, accounts: 12, kinds: ['tax'] });
  await prepareSim(db, sim);
  const env = workerEnv(url, sim.url);
  const lines: string[] = [];
  const logger = createLogger('info', { destination: { write: (s: string) => void lines.push(s) } });
  const worker = await startWorker({ config: loadConfig(env), databaseUrl: env.DATABASE_URL, bankUrl: sim.url, logger, crontab: '' });
  t.teardown(() => worker.stop());
  const first = worker.poolId();

  worker.events.emit('pool:fatalError', {
    error: Object.assign(new Error('deadlock detected'), { code: '40P01' }), action: 'completeJob',
    workerPool: undefined as never, ctx: undefined as never,
  });
  const second = await waitFor('a new runner', async () =>
    worker.poolId() !== first && lines.some((l) => l.includes('worker:runner_restarted')) ? worker.poolId() : undefined, 60_000);
  t.not(second, first, `a new pool (${first} → ${second})`);
  t.ok(lines.some((l) => l.includes('"worker:runner_lost"') && l.includes('graphile-worker could not completeJob: deadlock detected')),
    'the reason is logged: graphile-worker could not completeJob');

  // The process goes on working: a whole day, exactly once.
  await enqueueStage(db, 'record', D, null);
  await waitAllWithdrawn(db, [D], KINDS.length, 150_000);
  await checkInvariants(t, db, sim.url);
});
