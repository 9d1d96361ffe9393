import { cpSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import {
  checkMigrations,
  LogicMismatchError,
  loadLogic,
  loadMigrations,
  migrate,
  MigrationChecksumError,
  MigrationUnknownError,
  sqlDir,
} from '../../src/db/migrate.js';
import { freshDatabase, pgClient } from '../helpers/db.js';
import { runCli } from '../helpers/procs.js';

const schemaFiles = () => readdirSync(path.join(sqlDir(), 'schema')).filter((f) => f.endsWith('.sql'));
const logicFiles = () => readdirSync(path.join(sqlDir(), 'logic')).filter((f) => f.endsWith('.sql'));

function copySql(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'settle-sql-'));
  cpSync(sqlDir(), dir, { recursive: true });
  return dir;
}

t.test('a second run applies nothing', async (t) => {
  const { url } = await freshDatabase(t, { empty: true });
  const first = await migrate(url);
  t.same(first.applied, schemaFiles().sort(), 'every schema file applied on an empty database');
  t.same(first.logic, logicFiles().sort(), 'every logic file applied, in name order');
  const second = await migrate(url);
  t.same(second.applied, [], 'no schema file applied the second time');
  t.same(second.logic, [], 'no logic file re-applied the second time');
  const c = await pgClient(t, url);
  const r = await c.query('select count(*)::int as n from settlement_meta.migrations');
  t.equal(r.rows[0].n, schemaFiles().length, 'one row per schema file');
  const l = await c.query('select name, checksum from settlement_meta.logic order by name');
  t.same(l.rows, loadLogic().map((f) => ({ name: f.name, checksum: f.checksum })), 'one checksum per logic file');
});

t.test('eight concurrent migrators all succeed and apply each migration once', async (t) => {
  const { url } = await freshDatabase(t, { empty: true });
  const results = await Promise.all(Array.from({ length: 8 }, () => migrate(url)));
  const applied = results.flatMap((r) => r.applied);
  t.equal(applied.length, new Set(applied).size, 'no migration applied twice');
  t.equal(applied.length, schemaFiles().length, 'every migration applied exactly once overall');
  t.equal(results.filter((r) => r.logic.length > 0).length, 1, 'the logic applied by one migrator only');
});

t.test('a migration edited after it was applied is refused and changes nothing', async (t) => {
  const { url } = await freshDatabase(t, { empty: true });
  const dir = copySql();
  await migrate(url, { dir });
  const first = readdirSync(path.join(dir, 'schema')).filter((f) => f.endsWith('.sql')).sort()[0]!;
  writeFileSync(path.join(dir, 'schema', first), readFileSync(path.join(dir, 'schema', first), 'utf8') + '\n-- edited\n');
  writeFileSync(path.join(dir, 'schema', '9999_extra.sql'), 'create table settlement.should_not_exist (x int);');
  await t.rejects(migrate(url, { dir }), MigrationChecksumError, 'refused with MigrationChecksumError');
  const c = await pgClient(t, url);
  const r = await c.query(`select to_regclass('settlement.should_not_exist') as t`);
  t.equal(r.rows[0].t, null, 'later migrations were not applied');
});

t.test('a database built by the migration chain before the baseline is refused by name', async (t) => {
  const { url } = await freshDatabase(t, { empty: true });
  await migrate(url);
  const c = await pgClient(t, url);
  // What the numbered chain (0001_schema.sql … 0031_desk.sql) recorded.
  await c.query(`delete from settlement_meta.migrations`);
  await c.query(`insert into settlement_meta.migrations (id, name, checksum) values (1, '0001_schema.sql', 'x'), (31, '0031_desk.sql', 'y')`);
  const before = await c.query('select name, checksum from settlement_meta.logic order by name');
  await t.rejects(migrate(url), { name: 'MigrationUnknownError', message: /0001_schema\.sql, 0031_desk\.sql/ }, 'migrate names the migrations it does not know');
  await t.rejects(checkMigrations(url), MigrationUnknownError, 'and so does the start-up check');
  t.same((await c.query('select name, checksum from settlement_meta.logic order by name')).rows, before.rows, 'nothing re-applied');
});

t.test('a changed logic file is re-applied with every other, in one transaction; a failing one changes nothing', async (t) => {
  const { url } = await freshDatabase(t, { empty: true });
  const dir = copySql();
  await migrate(url, { dir });
  const c = await pgClient(t, url);
  const support = path.join(dir, 'logic', '10_support.sql');
  const original = readFileSync(support, 'utf8');

  // A new body for krw (a comment inside it) and a function of a later file broken: nothing of it lands.
  writeFileSync(support, original.replace(/(create or replace function settlement\.krw\(p bigint\) returns text\s+language sql immutable as \$\$)/, '$1 -- changed\n'));
  t.not(readFileSync(support, 'utf8'), original, 'the test changed the file');
  const console = path.join(dir, 'logic', '85_console.sql');
  writeFileSync(console, readFileSync(console, 'utf8') + '\ncreate or replace function settlement.broken() returns int language sql as $$ select nope $$;\n');
  await t.rejects(migrate(url, { dir }), { message: /logic 85_console\.sql failed/ }, 'the failing file is named');
  const krw = async () => (await c.query(`select prosrc from pg_proc where oid = 'settlement.krw(bigint)'::regprocedure`)).rows[0].prosrc as string;
  t.notMatch(await krw(), /changed/, 'the earlier file of the same run was rolled back');
  t.equal((await c.query(`select to_regproc('settlement.broken') as f`)).rows[0].f, null);

  writeFileSync(console, readFileSync(path.join(sqlDir(), 'logic', '85_console.sql'), 'utf8'));
  await t.rejects(checkMigrations(url, { dir }), { name: 'LogicMismatchError', message: /10_support\.sql/ }, 'the start-up check names the file that differs');
  const r = await migrate(url, { dir });
  t.same(r.applied, []);
  t.same(r.logic, logicFiles().sort(), 'every logic file re-applied');
  t.match(await krw(), /changed/, 'the new body is in place');
  await checkMigrations(url, { dir });
  t.pass('the start-up check passes on the new build');
  await t.rejects(checkMigrations(url), LogicMismatchError, 'and refuses the other build');
});

t.test('a worker refuses to start against function bodies of another build (exit 2, naming the files)', async (t) => {
  const { url } = await freshDatabase(t);
  const c = await pgClient(t, url);
  await c.query(`update settlement_meta.logic set checksum = 'another build' where name in ('40_stages.sql', '50_transfers.sql')`);
  const r = await runCli(['worker'], { DATABASE_URL: url, BANK_URL: 'http://127.0.0.1:1', HTTP_PORT: '0' });
  t.equal(r.code, 2, r.stderr);
  t.match(r.stderr, /40_stages\.sql, 50_transfers\.sql/);
  t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
  t.equal((await c.query('select count(*)::int as n from settlement.workers')).rows[0].n, 0, 'no worker registered');
});

// What the project's schemas hold: every function (with its attributes, body,
// grants and comment), view, and trigger.
async function catalogue(c: import('pg').Client) {
  const functions = await c.query(`
    select p.oid::regprocedure::text as f, p.prosrc, p.prosecdef, p.proconfig, p.proacl::text, p.provolatile,
           pg_get_function_result(p.oid) as result, obj_description(p.oid, 'pg_proc') as comment
    from pg_proc p where p.pronamespace in ('settlement'::regnamespace, 'settlement_meta'::regnamespace) order by 1`);
  const views = await c.query(`
    select c.oid::regclass::text as v, pg_get_viewdef(c.oid) as def, c.relacl::text, obj_description(c.oid, 'pg_class') as comment
    from pg_class c where c.relnamespace = 'settlement'::regnamespace and c.relkind in ('v', 'm') order by 1`);
  const triggers = await c.query(`
    select t.tgname, pg_get_triggerdef(t.oid) as def from pg_trigger t join pg_class c on c.oid = t.tgrelid
    where c.relnamespace = 'settlement'::regnamespace and not t.tgisinternal order by 1`);
  return { functions: functions.rows, views: views.rows, triggers: triggers.rows };
}

t.test('the functions, views and triggers are exactly those of sql/logic, and re-applying it changes nothing', async (t) => {
  const { url } = await freshDatabase(t, { empty: true });
  await migrate(url);
  const c = await pgClient(t, url);
  const declared = { functions: new Set<string>(), views: new Set<string>(), triggers: new Set<string>() };
  for (const f of loadLogic()) {
    for (const m of f.sql.matchAll(/^create or replace function (settlement(?:_meta)?\.\w+)\(/gim)) declared.functions.add(m[1]!);
    for (const m of f.sql.matchAll(/^create or replace view (settlement\.\w+)/gim)) declared.views.add(m[1]!);
    for (const m of f.sql.matchAll(/^create or replace trigger (\w+)/gim)) declared.triggers.add(m[1]!);
  }
  // The one exception: the clock, which column defaults need before the logic
  // exists (sql/schema/0004_clock.sql); its text there is the logic's own.
  const clock = /create or replace function settlement_meta\.now\(\)[^;]*\$\$[^$]*\$\$;/;
  const logicClock = loadLogic().map((f) => f.sql.match(clock)?.[0]).find((x) => x);
  for (const m of loadMigrations()) {
    const own = m.sql.match(clock)?.[0];
    if (own) t.equal(own, logicClock, `${m.name}: the clock's text is the one in sql/logic`);
    t.notMatch(m.sql.replace(clock, ''), /create (or replace )?(function|view|trigger)/i, `${m.name} defines no function, view or trigger`);
  }
  // Every settlement.<name>(...) the logic calls is one of its functions (a
  // PL/pgSQL body naming a dropped function would only fail when it runs); a
  // table name before a column list is the other case.
  const tables = new Set((await c.query(`select relname from pg_class where relnamespace = 'settlement'::regnamespace and relkind = 'r'`)).rows.map((r) => `settlement.${r.relname}`));
  const called = new Set<string>();
  for (const f of loadLogic()) for (const m of f.sql.replace(/--[^\n]*/g, '').matchAll(/\b(settlement\.\w+)\s*\(/g)) called.add(m[1]!);
  t.same([...called].filter((n) => !declared.functions.has(n) && !tables.has(n)).sort(), [], 'the logic calls only functions it declares');
  const before = await catalogue(c);
  t.same(before.functions.map((r) => r.f.replace(/\(.*$/, '')).sort(), [...declared.functions].sort(), 'functions: nothing left over, nothing missing');
  t.same(before.views.map((r) => r.v).sort(), [...declared.views].sort(), 'views: nothing left over, nothing missing');
  t.same(before.triggers.map((r) => r.tgname).sort(), [...declared.triggers].sort(), 'triggers: nothing left over, nothing missing');
  t.equal(new Set(before.functions.map((r) => r.f.replace(/\(.*$/, ''))).size, before.functions.length, 'one definition per function name');

  for (let i = 1; i <= 2; i++) {
    await c.query('delete from settlement_meta.logic');
    const r = await migrate(url);
    t.same(r.logic, logicFiles().sort(), `re-applied (${i})`);
    t.same(await catalogue(c), before, `nothing changed (${i})`);
  }
});
