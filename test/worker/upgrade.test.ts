import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { sql } from 'slonik';
import { z } from 'zod';
import { migrate, sqlDir } from '../../src/db/migrate.js';
import { enqueueStage } from '../../src/db/operations.js';
import { KINDS } from '../../src/domain.js';
import { seed } from '../../src/seed.js';
import { checkInvariants, prepareSim, startSim, waitAllWithdrawn, workerEnv } from '../helpers/day.js';
import { freshDb } from '../helpers/db.js';
import { pastDate } from '../helpers/fixtures.js';
import { CLI, runCli, spawnWorker, waitFor, type WorkerProc } from '../helpers/procs.js';

const count = z.object({ n: z.bigint() });

/**
 * "The next version": this build's compiled code with a new schema migration
 * and a changed logic file, in a folder of its own (its dist/ finds its own
 * sql/, as a release's does).
 */
function nextVersion(t: { teardown(fn: () => unknown): void }): string {
  const root = path.resolve(sqlDir(), '..');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'settle-next-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  cpSync(path.join(root, 'dist', 'src'), path.join(dir, 'dist', 'src'), { recursive: true });
  cpSync(path.join(root, 'sql'), path.join(dir, 'sql'), { recursive: true });
  cpSync(path.join(root, 'package.json'), path.join(dir, 'package.json'));
  cpSync(path.join(root, 'crontab'), path.join(dir, 'crontab'));
  symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'));
  writeFileSync(path.join(dir, 'sql', 'schema', '0999_next_version.sql'),
    'create table settlement.next_version_probe (id integer primary key);\n');
  const support = path.join(dir, 'sql', 'logic', '10_support.sql');
  const text = readFileSync(support, 'utf8');
  const changed = text.replace(/(create or replace function settlement\.krw\(p bigint\) returns text\s+language sql immutable as \$\$)/, '$1 -- the next version\n');
  if (changed === text) throw new Error('could not change 10_support.sql');
  writeFileSync(support, changed);
  return dir;
}

async function readyz(w: WorkerProc): Promise<{ status: number; body: string }> {
  const line = await waitFor('the worker\'s http:listen', async () => w.logs.find((l) => l.includes('"event":"http:listen"')), 30_000);
  const port = (JSON.parse(line) as { port: number }).port;
  const r = await fetch(`http://127.0.0.1:${port}/readyz`);
  return { status: r.status, body: await r.text() };
}

t.test('rolling upgrade: settle migrate while a worker pays a day; the old worker drains (readyz 503, no new old worker starts), the new one finishes the day exactly once', async (t) => {
  const { url, db } = await freshDb(t);
  const sim = await startSim(t, { latencyMs: 80, jitterMs: 20 });
  const D = pastDate(1);
  await seed(db, { date: D, accounts: 60, kinds: ['tax', 'platform_fee'] });
  await prepareSim(db, sim);
  const env = workerEnv(url, sim.url, { WORKER_CONCURRENCY: '4', BANK_MAX_IN_FLIGHT: '4' });
  const old = await spawnWorker(t, env);
  await waitFor('the old worker ready', async () => (await readyz(old)).status === 200, 30_000);
  await enqueueStage(db, 'record', D, null);
  const total = await waitFor('chunks planned', async () => {
    const n = await db.oneFirst(sql.type(count)`select count(*) as n from settlement.transfers where purpose = 'payout'`);
    return n > 0n ? n : undefined;
  });
  await waitFor('some chunks paid', async () =>
    (await db.oneFirst(sql.type(count)`select count(*) as n from settlement.transfers where purpose = 'payout' and state = 'succeeded'`)) * 5n >= total);

  // 1. Migrate first, while the old worker pays.
  const next = nextVersion(t);
  const r = await migrate(url, { dir: path.join(next, 'sql') });
  t.same(r.applied, ['0999_next_version.sql'], 'the new schema migration applied');
  t.ok(r.logic.length > 0, 'sql/logic re-applied');
  const open = await db.oneFirst(sql.type(count)`select count(*) as n from settlement.transfers where purpose = 'payout' and state in ('pending', 'sending')`);
  t.ok(open > 0n, `the day was still being paid when the migration landed (${open} chunks open)`);
  t.ok(old.child.exitCode === null, 'the old worker is still running');
  const ready = await readyz(old);
  t.equal(ready.status, 503, 'the old worker is no longer ready');
  t.match(ready.body, /10_support\.sql/, `it names what differs: ${ready.body.slice(0, 200)}`);
  const refused = await runCli(['worker'], { ...env, HTTP_PORT: '0' });
  t.equal(refused.code, 2, 'a new worker of the old build refuses to start (exit 2)');
  t.match(refused.stderr, /migrations this version does not have \(0999_next_version\.sql\)/, refused.stderr.trim());

  // 2. Start the new worker, 3. stop the old one.
  const fresh = await spawnWorker(t, env, { cli: path.join(next, 'dist', 'src', 'cli', 'main.js') });
  t.not(fresh.child.exitCode, 2, 'the new build starts');
  t.equal(path.resolve(CLI) === path.join(next, 'dist', 'src', 'cli', 'main.js'), false, 'it is another build\'s folder');
  await waitFor('the new worker ready', async () => (await readyz(fresh)).status === 200, 30_000);
  old.child.kill('SIGTERM');
  t.equal(await old.exited, 0, 'the old worker stops cleanly');
  t.same(old.logs.filter((l) => /"level":(5|6)0/.test(l)), [], 'with no error-level line');
  t.equal(await db.oneFirst(sql.type(count)`select count(*) as n from settlement.transfers where claimed_by = ${old.poolId} and claimed_until is not null`), 0n,
    'and leaves no claim behind (its transfers go to the new worker now, not after a lease)');

  await waitAllWithdrawn(db, [D], KINDS.length, 150_000);
  t.ok(fresh.child.exitCode === null, 'the new worker finished the day');
  await checkInvariants(t, db, sim.url);
});
