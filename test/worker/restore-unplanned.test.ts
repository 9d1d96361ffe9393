/**
 * Restore a backup taken BEFORE the pay stage planned the day (issue 26): the
 * original plans, pays and withdraws the day after the backup point under
 * numbers the backup never saw; the restored database must plan each chunk
 * under the number it was paid under (docs/deploy/restore.md, step 5).
 * (test/worker/restore.test.ts: a backup taken mid-payout, and the matching
 * on hand-written statements.)
 */
import t from 'tap';
import { sql } from 'slonik';
import { z } from 'zod';
import { createDbPool } from '../../src/db/pool.js';
import { KINDS } from '../../src/domain.js';
import { registerAtSimulator, seed } from '../../src/seed.js';
import { backup, restoreBackup } from '../helpers/backup.js';
import { checkInvariants, prepareSim, startSim, TOKEN, waitAllWithdrawn, workerEnv } from '../helpers/day.js';
import { freshDb, TEST_STATEMENT_TIMEOUT_MS } from '../helpers/db.js';
import { pastDate } from '../helpers/fixtures.js';
import { runCli, spawnWorker } from '../helpers/procs.js';
import { simulatorTransfers } from '../helpers/bank-record.js';
import { waitReconcile } from '../helpers/reconcile.js';

const count = z.object({ n: z.bigint() });

const payoutRow = z.object({ entry_id: z.bigint(), seq: z.number(), is_tuno: z.string(), tsymd: z.string().nullable(), state: z.string() });

t.test('restore a backup taken before the day was planned, the day paid after it: each chunk is adopted under its forgotten number, nothing is paid twice', async (t) => {
  const a = await freshDb(t);
  const sim = await startSim(t, { latencyMs: 30, jitterMs: 10 });
  const D = pastDate(1);
  await seed(a.db, { date: D, accounts: 40, kinds: ['tax', 'platform_fee'] });
  await prepareSim(a.db, sim);
  await registerAtSimulator(a.db, sim.url);
  await a.db.query(sql.unsafe`select settlement.configure_reconcile('-1 day')`);
  // The day is recorded (no worker yet): its pay jobs wait; nothing is planned.
  for (const k of KINDS) await a.db.query(sql.unsafe`select * from settlement.run_stage('record', ${D}::date, ${k}::settlement.kind)`);
  t.equal(await a.db.oneFirst(sql.type(count)`select count(*) as n from settlement.transfers`), 0n, 'nothing is planned when the backup is taken');

  const b = await backup(t, a.url);
  t.pass(`backup taken with ${b.kind === 'pg_dump' ? 'pg_dump --format=custom' : 'one repeatable-read snapshot (pg_dump cannot read this server)'}`);

  // The original database plans, pays and withdraws the day; then it is lost.
  const env = (url: string) => workerEnv(url, sim.url, { WORKER_CONCURRENCY: '4', BANK_MAX_IN_FLIGHT: '4' });
  const wa = await spawnWorker(t, env(a.url));
  await waitAllWithdrawn(a.db, [D], KINDS.length, 150_000);
  wa.child.kill('SIGTERM');
  t.equal(await wa.exited, 0, 'the first worker stopped cleanly');
  const booked = await simulatorTransfers(sim.url);
  const paidBefore = await a.db.any(sql.type(z.object({ entry_id: z.bigint(), seq: z.number(), is_tuno: z.string() }))`
    select entry_id, seq, is_tuno from settlement.transfers where purpose = 'payout' and state = 'succeeded' order by entry_id, seq`);
  t.ok(paidBefore.length > 0 && paidBefore.length + 2 === booked.length, `the original paid ${paidBefore.length} chunks and 2 withdrawals`);
  const sameAmount = await a.db.oneFirst(sql.type(count)`
    select count(*) as n from (select entry_id from settlement.transfers where purpose = 'payout' group by entry_id, amount having count(*) > 1) x`);
  t.ok(sameAmount > 0n, `${sameAmount} entries were paid in several chunks of the same amount (told apart by nothing but their numbers)`);

  // Restored into a new database, migrated, after-restore, as docs/deploy/restore.md says.
  const url = await restoreBackup(t, b);
  // (with the production environment: a first migrate writes the shared settings from it)
  const mig = await runCli(['migrate'], { DATABASE_URL: url, BANK_MAX_IN_FLIGHT: '4' });
  t.equal(mig.code, 0, `settle migrate on the restored database\n${mig.stdout}${mig.stderr}`);
  const db = await createDbPool(url, { maximumPoolSize: 4, statementTimeoutMs: TEST_STATEMENT_TIMEOUT_MS });
  t.teardown(() => db.end());
  t.equal(await db.oneFirst(sql.type(count)`select count(*) as n from settlement.transfers`), 0n, 'the restored database has planned nothing');
  const cliEnv = { DATABASE_URL: url, BANK_URL: sim.url, BANK_ACCESS_TOKEN: TOKEN, BANK_TIMEOUT_MS: '5000' };
  const r = await runCli(['after-restore', '--reason', 'restored the backup taken before the day was planned'], cliEnv);
  t.equal(r.code, 0, `after-restore exits 0\n${r.stdout}${r.stderr}`);
  t.match(r.stdout, new RegExp(`${KINDS.length} day\\(s\\) before today were not paid out in the backup`), 'it counts the (day, kind)s not paid out in the backup');
  t.notMatch(r.stdout, /PAUSED/, 'every booking since the backup point is explained: nothing is paused');
  t.equal(await db.oneFirst(sql.type(count)`select count(*) as n from settlement.pauses where resumed_at is null`), 0n, 'no pause');

  // Workers against the restored database, the SAME bank.
  await spawnWorker(t, env(url));
  await waitAllWithdrawn(db, [D], KINDS.length, 150_000);
  await waitReconcile(db, D, ['tax', 'platform_fee'], 'done', 150_000);
  const after = await simulatorTransfers(sim.url);
  t.equal(after.length, booked.length, `the bank booked nothing more (${booked.length} transfers before the restore, ${after.length} after)`);
  const planned = await db.any(sql.type(payoutRow)`
    select entry_id, seq, is_tuno, tsymd, state::text as state from settlement.transfers where purpose = 'payout' order by entry_id, seq`);
  t.same(planned.map((x) => `${x.entry_id}#${x.seq} ${x.is_tuno}`), paidBefore.map((x) => `${x.entry_id}#${x.seq} ${x.is_tuno}`),
    'every chunk is planned under the very number it was paid under after the backup point');
  t.ok(planned.every((x) => x.state === 'succeeded' && x.tsymd !== null), 'each is succeeded, asked about under its date');
  const details = await db.anyFirst(sql.type(z.object({ detail: z.string() }))`
    select detail from settlement.stage_runs where business_date = ${D}::date and stage = 'pay' and kind in ('tax', 'platform_fee') order by kind`);
  t.ok(details.every((d) => /booked already under forgotten IsTunos/.test(d)), `the pay stage says what it adopted: ${details.join(' | ')}`);
  const w = await db.anyFirst(sql.type(z.object({ is_tuno: z.string() }))`select is_tuno from settlement.transfers where purpose = 'withdrawal' and state = 'succeeded'`);
  t.ok(w.length === 2 && w.every((x) => booked.some((b) => b.isTuno === x)), 'the withdrawals are adopted too');
  await checkInvariants(t, db, sim.url);
});

