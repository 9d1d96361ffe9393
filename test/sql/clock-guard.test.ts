import { randomBytes } from 'node:crypto';
import pg from 'pg';
import t from 'tap';
import { adminQuery, freshDatabase, pgClient } from '../helpers/db.js';
import { asLogin } from '../helpers/roles.js';

/**
 * The SQL reads its clock through settlement_meta.now() (sql/schema/0004_clock.sql).
 * Moving it is how the schedule explorer moves business time in its scratch
 * database, so it must not be a back door: no application role can replace,
 * alter, drop or shadow it, and it reads no setting a session could SET.
 */
const ROLES = ['settlement_ingest', 'settlement_viewer', 'settlement_operator', 'settlement_worker'] as const;
const BODY = ' select pg_catalog.now() ';

t.test('no application role can change the SQL clock', async (t) => {
  const { url } = await freshDatabase(t);
  const owner = await pgClient(t, url);
  const suffix = randomBytes(4).toString('hex');
  const logins: string[] = [];
  t.teardown(async () => {
    for (const l of logins) await adminQuery(`drop role if exists ${l}`).catch(() => undefined);
  });
  const clockText = async () =>
    (await owner.query(`select prosrc, provolatile, proconfig, prosecdef, pg_get_userbyid(proowner) as owner from pg_proc where oid = 'settlement_meta.now()'::regprocedure`)).rows[0];
  const before = await clockText();
  t.equal(before.prosrc, BODY, 'in a migrated database the clock is pg_catalog.now()');
  t.equal(before.provolatile, 's', 'stable (inlined, read once per statement like now())');
  t.equal(before.proconfig, null, 'no SET clause (it stays inlinable and reads no setting)');

  for (const role of ROLES) {
    const name = `settle_t_clk_${role.replace('settlement_', '')}_${suffix}`;
    await adminQuery(`create role ${name} login password 'pw'; grant ${role} to ${name}`);
    logins.push(name);
    const c = new pg.Client({ connectionString: asLogin(url, { name, password: 'pw' }) });
    await c.connect();
    t.teardown(() => c.end());
    const run = (q: string) => c.query(q).then(() => 'ok', (e: { code?: string; message: string }) => e.code ?? e.message);
    const DENIED = '42501';
    const tries: [string, string][] = [
      [`create or replace function settlement_meta.now() returns timestamptz language sql stable as $$ select timestamptz '2000-01-01' $$`, 'replace it'],
      [`alter function settlement_meta.now() rename to was_now`, 'rename it'],
      [`alter function settlement_meta.now() set search_path = public`, 'give it settings'],
      [`alter function settlement_meta.now() owner to ${name}`, 'take it over'],
      [`drop function settlement_meta.now()`, 'drop it'],
      [`create function settlement_meta.now(x int) returns timestamptz language sql as $$ select timestamptz '2000-01-01' $$`, 'add an overload'],
      [`create function settlement.now() returns timestamptz language sql as $$ select timestamptz '2000-01-01' $$`, 'create a clock in settlement'],
      [`create schema settlement_clock_${suffix}`, 'create a schema'],
    ];
    for (const [q, what] of tries) t.equal(await run(q), DENIED, `${role}: cannot ${what}`);
    // Every setting a session may SET is its own business: none moves the clock.
    await c.query(`set timezone = 'Pacific/Kiritimati'`);
    await c.query(`select set_config('settlement.now', '2000-01-01', false), set_config('settlement_meta.now', '2000-01-01', false)`);
    const r = await c.query(`select settlement_meta.now() = now() as same`);
    t.equal(r.rows[0].same, true, `${role}: after setting custom settings the clock is still now()`);
    const priv = await owner.query(
      `select has_schema_privilege($1, 'settlement_meta', 'create') as meta, has_schema_privilege($1, 'settlement', 'create') as settlement,
              pg_has_role($1, (select proowner from pg_proc where oid = 'settlement_meta.now()'::regprocedure), 'usage') as owner_member`,
      [name],
    );
    t.same(priv.rows[0], { meta: false, settlement: false, owner_member: false }, `${role}: no CREATE on the schemas, not a member of the clock's owner`);
  }
  t.same(await clockText(), before, 'the clock is unchanged after every attempt');
});

t.test('the owner moves the clock in a scratch database, and the logic follows it', async (t) => {
  const { url } = await freshDatabase(t);
  const c = await pgClient(t, url);
  await c.query(`create or replace function settlement_meta.now() returns timestamptz language sql stable as $$ select timestamptz '2030-06-30 23:59:00+09' $$`);
  t.same((await c.query(`select settlement.today()::text as d, settlement.bank_ymd() as y`)).rows[0], { d: '2030-06-30', y: '20300630' });
  await c.query(`create or replace function settlement_meta.now() returns timestamptz language sql stable as $$ select timestamptz '2030-07-01 00:00:01+09' $$`);
  t.same((await c.query(`select settlement.today()::text as d, settlement.bank_ymd() as y`)).rows[0], { d: '2030-07-01', y: '20300701' }, 'past midnight KST');
});
