import { randomBytes } from 'node:crypto';
import pg from 'pg';
import t from 'tap';
import type { ConsoleUser } from '../../src/config.js';
import { CONSOLE_POOL_SIZE } from '../../src/console/mount.js';
import { createConsole } from '../../src/console/server.js';
import { createDbPool } from '../../src/db/pool.js';
import { createLogger } from '../../src/log.js';
import { ensureLoginRole } from '../../src/runtime.js';
import { seed } from '../../src/seed.js';
import { consoleSession, serveConsole } from '../helpers/console.js';
import { adminQuery, freshDb } from '../helpers/db.js';
import { pastDate } from '../helpers/fixtures.js';
import { asLogin } from '../helpers/roles.js';

const USERS: ConsoleUser[] = [{ name: 'viewer', role: 'viewer', token: 'viewer-token-0123456789ab' }];

t.test('the console shows when a kind\'s payee changed, and by whom', async (t) => {
  const { url, db } = await freshDb(t);
  await seed(db, { date: pastDate(1), accounts: 2, kinds: ['tax'] });
  const logins: pg.Client[] = [];
  for (const tag of ['alice', 'bob']) {
    const name = `settle_cp_${tag}_${randomBytes(4).toString('hex')}`;
    await adminQuery(`create role ${name} login password 'pw'; grant settlement_operator to ${name}`);
    const c = new pg.Client({ connectionString: asLogin(url, { name, password: 'pw' }) });
    await c.connect();
    logins.push(c);
    t.teardown(async () => {
      await c.end().catch(() => undefined);
      await adminQuery(`drop role if exists ${name}`).catch(() => undefined);
    });
  }
  const consoleUrl = await ensureLoginRole(url, { name: 'settle_test_console_payee', password: 'settle-test-console-payee', role: 'settlement_viewer' });
  const cdb = await createDbPool(consoleUrl, { maximumPoolSize: CONSOLE_POOL_SIZE, applicationName: 'settle-console' });
  t.teardown(() => cdb.end());
  const web = createConsole({ db: cdb, users: USERS, consoleHost: '127.0.0.1', hostnames: [], logger: createLogger('silent') });
  const port = await serveConsole(t, web);
  const base = `http://127.0.0.1:${port}`;
  const cookie = await consoleSession(base, USERS[0]!.token);
  const page = async () => (await fetch(`${base}/workers`, { headers: { cookie } })).text();

  t.notMatch(await page(), /payee-changes/, 'no payee change: no such section');
  const [alice, bob] = logins as [pg.Client, pg.Client];
  const id = (await alice.query(`select settlement.propose_change('kind_accounts', '{"kind":"tax","corporate_account":"3000000002"}', 'new corporate account') as id`)).rows[0].id as string;
  await bob.query(`select settlement.approve_change($1, 'checked')`, [id]);
  const html = await page();
  t.match(html, /<ul id="payee-changes"><li>payee of tax changed at [^<]* by change #\d+ \(proposed by settle_cp_alice_[0-9a-f]+, approved by settle_cp_bob_[0-9a-f]+\): settlement \*\*\*\*0001 \(app 001\), corporate \*\*\*\*0002/, 'the workers page names the change');
});
