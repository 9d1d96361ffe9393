/**
 * `npm test`: one Postgres per run (embedded unless DATABASE_URL is set), a
 * migrated template database, then tap over the compiled test files, which
 * each clone the template (test/helpers/db.ts). Prints `N passed, N failed`.
 */
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startEmbeddedPostgres } from '../../src/db/embedded.js';
import { migrate } from '../../src/db/migrate.js';
import { ensureLoginRole } from '../../src/runtime.js';
import { TEST_WORKER_LOGIN } from '../helpers/roles.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const testDir = path.resolve(here, '..');

async function admin(url: string, sqlText: string) {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(sqlText);
  } finally {
    await c.end();
  }
}

/**
 * Tests pick their business dates from the clock they run at ("yesterday",
 * "four days ago"); the product's default withdrawal deadline (the start of the
 * date + 1 day 12 hours) then passes or not depending on the hour the suite
 * runs at. So every test database starts with a deadline no test date reaches
 * (ten years after the date); a test about the deadline sets its own, relative
 * to the database's clock. Written with triggers off: a fixture, not an
 * operator's change, so no audit row.
 */
async function testClockSettings(url: string) {
  await admin(
    url,
    `begin; set local session_replication_role = replica;
     update settlement.ops_settings set withdraw_deadline = interval '3650 days';
     -- No bank quiet hours unless a test sets them (test/worker/quiet.test.ts):
     -- a test must not wait from 23:30 to 00:30 KST.
     delete from settlement.bank_windows; commit`,
  );
}

function withDb(url: string, db: string): string {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
}

async function main() {
  const args = process.argv.slice(2);
  let stopDb = async () => {};
  let adminUrl = process.env.DATABASE_URL;
  let tmp: string | undefined;
  if (!adminUrl) {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'settle-test-pg-'));
    chmodSync(tmp, 0o755); // initdb runs as the postgres user when we are root
    const e = await startEmbeddedPostgres({ dataDir: path.join(tmp, 'pg'), persistent: false, database: 'postgres' });
    adminUrl = e.url;
    stopDb = e.stop;
    console.log(`test database: embedded Postgres (${adminUrl.replace(/:[^:@/]*@/, ':***@')})`);
  } else {
    console.log(`test database: DATABASE_URL (${adminUrl.replace(/:[^:@/]*@/, ':***@')})`);
  }
  const template = `settle_tpl_${process.pid}`;
  let code = 1;
  try {
    await admin(adminUrl, `drop database if exists ${template}`);
    await admin(adminUrl, `create database ${template}`);
    await migrate(withDb(adminUrl, template));
    await testClockSettings(withDb(adminUrl, template));
    // Worker processes in the tests log in with settlement_worker only (test/helpers/day.ts).
    await ensureLoginRole(adminUrl, TEST_WORKER_LOGIN);

    // Every *.test.js under test/ (grouped by capability in folders), helpers and the harness aside.
    const find = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
        e.isDirectory() ? (e.name === 'helpers' || e.name === 'harness' ? [] : find(path.join(dir, e.name)))
          : e.name.endsWith('.test.js') ? [path.join(dir, e.name)] : []);
    // A compiled test whose source is gone (moved or deleted; tsc does not clean dist/) is not run.
    const sourceDir = path.resolve(testDir, '../../test');
    const files = args.length > 0 ? args : find(testDir).filter((f) => existsSync(path.join(sourceDir, path.relative(testDir, f)).replace(/\.js$/, '.ts'))).sort();
    const tap = spawn(
      process.execPath,
      [path.resolve(here, '../../../node_modules/tap/dist/esm/run.mjs'), '--disable-coverage', '--reporter=tap', '--timeout=300', '--jobs=2', ...files],
      { env: { ...process.env, SETTLE_TEST_ADMIN_URL: adminUrl, SETTLE_TEST_TEMPLATE: template, DATABASE_URL: '' }, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let passed = 0;
    let failed = 0;
    let buf = '';
    tap.stdout.on('data', (d: Buffer) => {
      process.stdout.write(d);
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        // First-level subtests of each file: "    ok 3 - name" / "    not ok 3 - name".
        if (/^    ok \d+ /.test(line)) passed++;
        else if (/^    not ok \d+ /.test(line)) failed++;
      }
    });
    code = await new Promise<number>((resolve) => tap.on('close', (c) => resolve(c ?? 1)));
    if (code !== 0 && failed === 0) failed = 1;
    console.log(`${passed} passed, ${failed} failed`);
  } finally {
    await admin(adminUrl, `drop database if exists ${template} with (force)`).catch(() => undefined);
    await stopDb().catch(() => undefined);
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
  process.exit(code);
}

main().catch((e) => {
  console.error(e);
  console.log('0 passed, 1 failed');
  process.exit(1);
});
