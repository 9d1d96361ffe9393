import { cpSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { migrate, MigrationChecksumError, sqlDir } from '../src/db/migrate.js';
import { freshDatabase, pgClient } from './helpers/db.js';

t.test('a second run applies nothing', async (t) => {
  const { url } = await freshDatabase(t, { empty: true });
  const first = await migrate(url);
  t.ok(first.applied.length >= 6, 'every migration applied on an empty database');
  const second = await migrate(url);
  t.same(second.applied, [], 'nothing applied the second time');
  const c = await pgClient(t, url);
  const r = await c.query('select count(*)::int as n from settlement_meta.migrations');
  t.equal(r.rows[0].n, readdirSync(sqlDir()).filter((f) => f.endsWith('.sql')).length, 'one row per migration file');
});

t.test('eight concurrent migrators all succeed and apply each migration once', async (t) => {
  const { url } = await freshDatabase(t, { empty: true });
  const results = await Promise.all(Array.from({ length: 8 }, () => migrate(url)));
  const applied = results.flatMap((r) => r.applied);
  t.equal(applied.length, new Set(applied).size, 'no migration applied twice');
  t.equal(applied.length, readdirSync(sqlDir()).filter((f) => f.endsWith('.sql')).length, 'every migration applied exactly once overall');
});

t.test('a migration edited after it was applied is refused and changes nothing', async (t) => {
  const { url } = await freshDatabase(t, { empty: true });
  const dir = mkdtempSync(path.join(os.tmpdir(), 'settle-sql-'));
  cpSync(sqlDir(), dir, { recursive: true });
  await migrate(url, { dir });
  const first = readdirSync(dir).filter((f) => f.endsWith('.sql')).sort()[0]!;
  writeFileSync(path.join(dir, first), readFileSync(path.join(dir, first), 'utf8') + '\n-- edited\n');
  writeFileSync(path.join(dir, '9999_extra.sql'), 'create table settlement.should_not_exist (x int);');
  await t.rejects(migrate(url, { dir }), MigrationChecksumError, 'refused with MigrationChecksumError');
  const c = await pgClient(t, url);
  const r = await c.query(`select to_regclass('settlement.should_not_exist') as t`);
  t.equal(r.rows[0].t, null, 'later migrations were not applied');
});
