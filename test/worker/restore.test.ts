import pg from 'pg';
import t from 'tap';
import { sql } from 'slonik';
import { z } from 'zod';
import { createDbPool } from '../../src/db/pool.js';
import { enqueueStage } from '../../src/db/operations.js';
import { KINDS } from '../../src/domain.js';
import { seed } from '../../src/seed.js';
import { checkInvariants, prepareSim, startSim, TOKEN, waitAllWithdrawn, workerEnv } from '../helpers/day.js';
import { freshDatabase, freshDb, TEST_STATEMENT_TIMEOUT_MS } from '../helpers/db.js';
import { pastDate } from '../helpers/fixtures.js';
import { runCli, spawnWorker, waitFor } from '../helpers/procs.js';
import { simulatorTransfers } from '../helpers/bank-record.js';
import { waitReconcile } from '../helpers/reconcile.js';

/**
 * A backup taken the way pg_dump takes one: every table of the database's
 * schemas read in ONE repeatable-read snapshot (the machine's pg_dump is
 * version 15 and refuses the tests' PostgreSQL 18 server), plus the
 * sequences. restore() loads it into another database as pg_restore
 * --disable-triggers would (session_replication_role = replica).
 */
const SCHEMAS = ['settlement', 'settlement_meta', 'graphile_worker'];
interface Dump { tables: { name: string; cols: string[]; rows: string }[]; sequences: { name: string; last: string | null }[] }

async function dump(url: string): Promise<Dump> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query('begin isolation level repeatable read read only');
    const tables = await c.query<{ name: string; cols: string[] }>(`
      select format('%I.%I', n.nspname, r.relname) as name,
             array_agg(format('%I', a.attname) order by a.attnum) as cols
      from pg_class r join pg_namespace n on n.oid = r.relnamespace
      join pg_attribute a on a.attrelid = r.oid and a.attnum > 0 and not a.attisdropped and a.attgenerated = ''
      where r.relkind in ('r', 'p') and n.nspname = any($1) group by 1 order by 1`, [SCHEMAS]);
    const out: Dump = { tables: [], sequences: [] };
    for (const tb of tables.rows) {
      const r = await c.query<{ rows: string }>(`select coalesce(json_agg(x), '[]')::text as rows from ${tb.name} x`);
      out.tables.push({ ...tb, rows: r.rows[0]!.rows });
    }
    const seqs = await c.query<{ name: string; last: string | null }>(`
      select format('%I.%I', schemaname, sequencename) as name, last_value::text as last from pg_sequences where schemaname = any($1)`, [SCHEMAS]);
    out.sequences = seqs.rows;
    await c.query('commit');
    return out;
  } finally {
    await c.end();
  }
}

async function restore(url: string, d: Dump): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query('begin');
    await c.query("set local session_replication_role = 'replica'");
    for (const tb of d.tables) await c.query(`delete from ${tb.name}`);
    for (const tb of d.tables) {
      const cols = tb.cols.join(', ');
      await c.query(`insert into ${tb.name} (${cols}) overriding system value select ${cols} from json_populate_recordset(null::${tb.name}, $1::json)`, [tb.rows]);
    }
    for (const s of d.sequences) {
      await c.query(s.last === null ? `select setval('${s.name}', 1, false)` : `select setval('${s.name}', ${s.last}, true)`);
    }
    await c.query('commit');
  } finally {
    await c.end();
  }
}

const count = z.object({ n: z.bigint() });

t.test('restore a backup taken mid-payout, run after-restore, finish on the same bank: nothing is paid twice, bank = ledger', async (t) => {
  const a = await freshDb(t);
  const sim = await startSim(t, { latencyMs: 60, jitterMs: 20 });
  const D = pastDate(1);
  await seed(a.db, { date: D, accounts: 60, kinds: ['tax', 'platform_fee'] });
  await prepareSim(a.db, sim);
  // Statements are final at once (the day can be reconciled within the test).
  await a.db.query(sql.unsafe`select settlement.configure_reconcile('-1 day')`);
  const env = (url: string) => workerEnv(url, sim.url, { WORKER_CONCURRENCY: '4', BANK_MAX_IN_FLIGHT: '4' });
  const wa = await spawnWorker(t, env(a.url));
  await enqueueStage(a.db, 'record', D, null);
  const total = await waitFor('chunks planned', async () => {
    const n = await a.db.oneFirst(sql.type(count)`select count(*) as n from settlement.transfers where purpose = 'payout'`);
    return n > 0n ? n : undefined;
  });
  await waitFor('a quarter of the chunks paid', async () =>
    (await a.db.oneFirst(sql.type(count)`select count(*) as n from settlement.transfers where purpose = 'payout' and state = 'succeeded'`)) * 4n >= total);

  const backup = await dump(a.url);
  const inBackup = JSON.parse(backup.tables.find((x) => x.name === 'settlement.transfers')!.rows) as { state: string; purpose: string }[];
  const openInBackup = inBackup.filter((x) => x.state === 'pending' || x.state === 'sending').length;
  t.ok(openInBackup > 0, `the backup was taken mid-payout (${openInBackup} of ${inBackup.length} chunks still open in it)`);
  t.equal(inBackup.filter((x) => x.purpose === 'withdrawal').length, 0, 'the backup has no withdrawal yet');

  // The original database finishes the day (and forgets nothing); then it is lost.
  await waitAllWithdrawn(a.db, [D], KINDS.length, 150_000);
  wa.child.kill('SIGTERM');
  t.equal(await wa.exited, 0, 'the first worker stopped cleanly');
  const booked = await simulatorTransfers(sim.url);

  // Restored into a new database.
  const b = await freshDatabase(t);
  await restore(b.url, backup);
  const db = await createDbPool(b.url, { maximumPoolSize: 4, statementTimeoutMs: TEST_STATEMENT_TIMEOUT_MS });
  t.teardown(() => db.end());
  t.equal(await db.oneFirst(sql.type(count)`select count(*) as n from settlement.transfers where state in ('pending', 'sending')`), BigInt(openInBackup),
    'the restored database has the backup\'s open transfers');

  // Bad inputs change nothing.
  const cliEnv = { DATABASE_URL: b.url, BANK_URL: sim.url, BANK_ACCESS_TOKEN: TOKEN, BANK_TIMEOUT_MS: '5000' };
  const noReason = await runCli(['after-restore'], cliEnv);
  t.equal(noReason.code, 2, 'after-restore without --reason is a usage error (exit 2)');
  t.match(noReason.stderr, /--reason/, 'it names the flag');
  const noBank = await runCli(['after-restore', '--reason', 'x'], { ...cliEnv, BANK_URL: '', BANK_SIMULATOR: '' });
  t.not(noBank.code, 0, `after-restore without BANK_URL refuses (exit ${noBank.code}): ${noBank.stderr.trim()}`);
  t.equal(await db.oneFirst(sql.type(z.object({ g: z.number() }))`select generation as g from settlement.is_tuno_space`), 0, 'refusals moved no generation');

  const r = await runCli(['after-restore', '--reason', 'restored the backup taken mid-payout'], cliEnv);
  t.equal(r.code, 0, `after-restore exits 0\n${r.stdout}${r.stderr}`);
  t.match(r.stdout, /IsTuno generation 1/, 'the IsTuno generation moved on');
  t.match(r.stdout, new RegExp(`${openInBackup} open transfer\\(s\\): each is asked about`), 'every open transfer is to be asked about first');
  t.match(r.stdout, /statements: read \d+ account\(s\)/, 'the statements since the backup point were read');
  const asked = await db.oneFirst(sql.type(count)`
    select count(*) as n from settlement.transfers where state in ('pending', 'sending') and tsymd is null`);
  t.equal(asked, 0n, 'no open transfer is left that would be sent without asking the bank first');
  const again = await runCli(['after-restore', '--reason', 'twice'], cliEnv);
  t.equal(again.code, 0, 'running it again is harmless');
  t.equal(await db.oneFirst(sql.type(z.object({ g: z.number() }))`select generation as g from settlement.is_tuno_space`), 2,
    'a second restore of the same database moves the generation again (each restore is its own)');
  t.equal(await db.oneFirst(sql.type(count)`select count(*) as n from settlement.operator_actions where action = 'after_restore'`), 2n, 'each is audited');

  // Workers against the restored database, the SAME bank.
  await spawnWorker(t, env(b.url));
  await waitAllWithdrawn(db, [D], KINDS.length, 150_000);
  await waitReconcile(db, D, ['tax', 'platform_fee'], 'done', 150_000);
  const after = await simulatorTransfers(sim.url);
  t.equal(after.length, booked.length, `the bank booked nothing more (${booked.length} transfers before the restore, ${after.length} after)`);
  const w = await db.any(sql.type(z.object({ is_tuno: z.string(), state: z.string() }))`
    select is_tuno, state::text as state from settlement.transfers where purpose = 'withdrawal' order by kind`);
  t.ok(w.length === 2 && w.every((x) => x.state === 'succeeded' && x.is_tuno.startsWith('1000') && booked.some((b) => b.isTuno === x.is_tuno)),
    `each withdrawal the bank made after the backup point is adopted under its own (generation 0) number, not sent again: ${JSON.stringify(w)}`);
  await checkInvariants(t, db, sim.url);
});

t.test('IsTuno: generation 0 numbers as before; after_restore needs a reason and moves the generation', async (t) => {
  const { db } = await freshDb(t);
  const first = await db.oneFirst(sql.type(z.object({ n: z.string() }))`select settlement.next_is_tuno() as n`);
  t.match(first, /^1000[0-9]{14}$/, `generation 0: '1' + 000 + the sequence (${first})`);
  await t.rejects(db.query(sql.unsafe`select settlement.after_restore(null)`), /reason is required/, 'no reason: ST061');
  await db.query(sql.unsafe`select settlement.after_restore('test')`);
  const next = await db.oneFirst(sql.type(z.object({ n: z.string() }))`select settlement.next_is_tuno() as n`);
  t.match(next, /^1001[0-9]{14}$/, `generation 1 after a restore (${next})`);
  t.ok(next > first, 'numbers only grow');
  const held = await db.oneFirst(sql.type(z.object({ h: z.string().nullable() }))`select settlement.restore_hold() as h`);
  t.match(held ?? '', /not read yet/, 'no stage plans a transfer until the statements are read');
});
