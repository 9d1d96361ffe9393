#!/usr/bin/env node
// Proves a squash of the SQL faithful: builds one database with the numbered
// migration chain of a git revision (sql/NNNN_*.sql, applied as that
// revision's migrate did: graphile-worker's migrations, then each file in its
// own transaction) and one with this tree's layout (sql/schema + sql/logic,
// through dist/src/db/migrate.js), dumps both with `pg_dump --schema-only`,
// and compares them object by object (pg_dump's "-- Name: …; Type: …" blocks):
// (schemas settlement, settlement_meta and graphile_worker, whose grants the
// baseline makes): tables, constraints, indexes, sequences, types, triggers, views, function
// signatures and attributes, grants (ACL) and comments exactly (whitespace
// collapsed); function bodies apart from `--` comments and whitespace.
//
//   npm run build && node scripts/compare-schema.mjs postgres://postgres@127.0.0.1:5432/postgres [--ref 55ec6ef] [--layout-ref <rev>]
//
// --layout-ref takes the layout (sql/) of another revision: at the squash's
// own commit the two must be the same schema; on this tree the changes made
// after the squash on purpose are listed (CHANGED_AFTER_SQUASH) with why.
//
// The server must match the pg_dump on PATH (or set PG_DUMP). Prints each
// difference and exits 1 if there is any not listed in EXPECTED below.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { runMigrations } from 'graphile-worker';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { migrate } = await import(path.join(root, 'dist/src/db/migrate.js'));

// Differences the new layout makes on purpose (each explained in the README).
const EXPECTED = new Map([
  ['settlement_meta api(text, text[]) FUNCTION', 'the grant helper of 0023: the one grants table in sql/logic/90_grants.sql replaces it'],
  ['settlement_meta FUNCTION api(p_role text, p_functions text[]) ACL', 'its grants'],
  ['settlement_meta logic TABLE', 'the checksums of sql/logic/'],
  ['settlement_meta logic logic_pkey CONSTRAINT', 'its key'],
  ['settlement_meta TABLE logic ACL', 'readable by the roles, as migrations is'],
  ['settlement TABLE line_matches COMMENT', 'names the file that now holds the matching rule'],
]);

// What issue 19's second step changed on purpose after the squash (a schema
// file, sql/schema/0002_money_once.sql, and the logic): with --layout-ref at
// the squash's own commit none of these shows.
const CHANGED_AFTER_SQUASH = [
  [/ (claim_transfer|finish_transfer|try_bank_slot|give_bank_slot|journal_transfer|after_payout)\(/, 'dropped by 0002_money_once.sql: claim_transfers / finish_transfers are the only claim and finish; nothing called the one-slot functions'],
  [/^settlement (TABLE )?bank_slots( bank_slots_pkey)? (TABLE|CONSTRAINT|ACL)$/, 'dropped by 0002_money_once.sql: the leased slot table nothing read'],
  [/^settlement transfer_claim TYPE$/, 'dropped by 0002_money_once.sql: only claim_transfer returned it'],
  [/ bank_slot_lock_class\(\)/, 'the advisory-lock class of bank slots, one named constant'],
  [/ (claim_transfers|finish_transfers|after_withdrawal|decide_unresolved)\(/, 'the batch functions hold the one claim and finish (finish_transfer folded in; decide_unresolved calls finish_transfers)'],
  [/ (take_bank_slots|give_bank_slots|others_waiting_for_slots|bank_slots_in_use|console_workers)\(/, 'the lock class by bank_slot_lock_class()'],
  [/ (configure_unaudited|release_pool|recover_dead_workers)\(/, 'no longer write (or mention) the dropped bank_slots table'],
];

const args = process.argv.slice(2);
const serverUrl = args.find((a, i) => !a.startsWith('--') && !['--ref', '--layout-ref'].includes(args[i - 1] ?? '')) ?? process.env.DATABASE_URL;
const ref = args.includes('--ref') ? args[args.indexOf('--ref') + 1] : '55ec6ef';
// The layout of another revision (its sql/, applied by this tree's migrate): the squash's own commit proves the squash alone.
const layoutRef = args.includes('--layout-ref') ? args[args.indexOf('--layout-ref') + 1] : undefined;
if (!serverUrl) {
  console.error('usage: node scripts/compare-schema.mjs <postgres url of a server> [--ref <git revision>]');
  process.exit(2);
}
const withDb = (db) => Object.assign(new URL(serverUrl), { pathname: `/${db}` }).toString();

async function admin(text) {
  const c = new pg.Client({ connectionString: serverUrl });
  await c.connect();
  try {
    await c.query(text);
  } finally {
    await c.end();
  }
}

/** The chain of `ref`, applied the way that revision's src/db/migrate.ts did. */
async function buildOld(url) {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'settle-chain-'));
  try {
    execFileSync('sh', ['-c', `git -C "${root}" archive ${ref} sql | tar -x -C "${tmp}"`]);
    const files = readdirSync(path.join(tmp, 'sql')).filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f)).sort();
    await runMigrations({ connectionString: url, logger: undefined });
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      await c.query('set client_min_messages = warning');
      await c.query(`create schema if not exists settlement_meta;
        create table if not exists settlement_meta.migrations (id integer primary key, name text not null, checksum text not null, applied_at timestamptz not null default now());`);
      for (const f of files) {
        await c.query('begin');
        await c.query('insert into settlement_meta.migrations (id, name, checksum) values ($1, $2, $3)', [Number(f.slice(0, 4)), f, 'x']);
        await c.query(readFileSync(path.join(tmp, 'sql', f), 'utf8'));
        await c.query('commit');
      }
      return files;
    } finally {
      await c.end();
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** `pg_dump -s` split into objects: key "schema name type" → normalised text. */
function dumpObjects(url) {
  const text = execFileSync(process.env.PG_DUMP ?? 'pg_dump', ['--schema-only', '--no-owner', '--schema=settlement', '--schema=settlement_meta', '--schema=graphile_worker', url], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  const objects = new Map();
  const parts = text.split(/^-- Name: /m).slice(1);
  for (const part of parts) {
    const nl = part.indexOf('\n');
    const m = /^(.*); Type: (.*); Schema: (.*); Owner: .*$/.exec(part.slice(0, nl));
    if (!m) throw new Error(`unexpected dump header: ${part.slice(0, nl)}`);
    const [, name, type, schema] = m;
    let body = part.slice(nl + 1).replace(/^--\s*$/gm, '').replace(/^-- PostgreSQL database dump complete[\s\S]*$/m, '').trim();
    // An ACL's grants in a canonical order (pg_dump prints them in the order they were made).
    if (type === 'ACL') body = body.split(/;\s*/).filter(Boolean).sort().join(';\n') + ';';
    const key = `${schema} ${name} ${type}`;
    const isFunction = type === 'FUNCTION';
    objects.set(key, { type, raw: body, norm: normalise(body, isFunction) });
  }
  return objects;
}

/** Whitespace collapsed; in a function, `--` comments (outside single quotes) dropped too. */
function normalise(body, dropComments) {
  let out = '';
  if (dropComments) {
    for (let i = 0; i < body.length; i++) {
      const c = body[i];
      if (c === "'") {
        const j = body.indexOf("'", i + 1);
        out += body.slice(i, j + 1);
        i = j;
      } else if (c === '-' && body[i + 1] === '-') {
        const j = body.indexOf('\n', i);
        i = j < 0 ? body.length : j - 1;
      } else out += c;
    }
  } else out = body;
  return out.replace(/\s+/g, ' ').trim();
}

const stamp = `${process.pid}_${Date.now()}`;
const oldDb = `compare_chain_${stamp}`;
const newDb = `compare_layout_${stamp}`;
let unexpected = 0;
let changed = 0;
try {
  await admin(`create database ${oldDb}`);
  await admin(`create database ${newDb}`);
  const chain = await buildOld(withDb(oldDb));
  let layout;
  if (layoutRef) {
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'settle-layout-'));
    try {
      execFileSync('sh', ['-c', `git -C "${root}" archive ${layoutRef} sql | tar -x -C "${tmp}"`]);
      layout = await migrate(withDb(newDb), { dir: path.join(tmp, 'sql') });
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  } else layout = await migrate(withDb(newDb));
  console.log(`chain of ${ref}: ${chain.join(' ')}`);
  console.log(`layout${layoutRef ? ` of ${layoutRef}` : ''}: ${layout.applied.join(' ')} + ${layout.logic.join(' ')}`);
  const a = dumpObjects(withDb(oldDb));
  const b = dumpObjects(withDb(newDb));
  const counts = {};
  const bodyOnly = [];
  for (const key of [...new Set([...a.keys(), ...b.keys()])].sort()) {
    const x = a.get(key);
    const y = b.get(key);
    const type = (x ?? y).type;
    counts[type] = (counts[type] ?? 0) + 1;
    let problem = null;
    if (!y) problem = 'only in the chain';
    else if (!x) problem = 'only in the layout';
    else if (x.norm !== y.norm) problem = 'differs';
    else if (x.raw.replace(/\s+/g, ' ') !== y.raw.replace(/\s+/g, ' ')) bodyOnly.push(key);
    if (!problem) continue;
    const why = EXPECTED.get(key);
    if (why) {
      console.log(`expected: ${key}: ${problem} (${why})`);
      continue;
    }
    const after = layoutRef ? undefined : CHANGED_AFTER_SQUASH.find(([re]) => re.test(key));
    if (after) {
      changed++;
      console.log(`changed after the squash: ${key}: ${problem} (${after[1]})`);
      continue;
    }
    unexpected++;
    console.log(`DIFFERENCE: ${key}: ${problem}`);
    if (x && y) console.log(`  chain:  ${x.norm.slice(0, 400)}\n  layout: ${y.norm.slice(0, 400)}`);
  }
  // Reference rows (pg_dump -s has no data): every settlement table's rows, timestamps left out.
  const rows = async (url) => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      const tables = (await c.query(`select c.relname from pg_class c where c.relnamespace = 'settlement'::regnamespace and c.relkind = 'r' order by 1`)).rows;
      const out = {};
      for (const { relname } of tables) {
        const r = await c.query(`select coalesce(jsonb_agg(to_jsonb(t) - 'updated_at' - 'created_at' order by to_jsonb(t)::text), '[]') as j from settlement.${relname} t`);
        out[relname] = JSON.stringify(r.rows[0].j);
      }
      return out;
    } finally {
      await c.end();
    }
  };
  const ra = await rows(withDb(oldDb));
  const rb = await rows(withDb(newDb));
  for (const t of [...new Set([...Object.keys(ra), ...Object.keys(rb)])].sort()) {
    if (ra[t] !== rb[t] && !(t === 'bank_slots' && !layoutRef && ra[t] === '[]' && rb[t] === undefined)) {
      unexpected++;
      console.log(`DIFFERENCE: rows of settlement.${t}: chain ${ra[t]} layout ${rb[t]}`);
    }
  }
  console.log(`reference rows compared: ${Object.entries(ra).filter(([, v]) => v !== '[]').map(([k]) => k).join(', ')} (every other table empty in both)`);
  console.log(`objects compared by type: ${Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  console.log(`functions whose bodies differ in comments only: ${bodyOnly.length}${bodyOnly.length ? ` (${bodyOnly.map((k) => k.split(' ')[1].split('(')[0]).join(', ')})` : ''}`);
  console.log(unexpected > 0 ? `${unexpected} unexpected difference(s)` : changed > 0 ? `the same schema apart from ${changed} change(s) made after the squash, each listed` : 'the same schema');
} finally {
  await admin(`drop database if exists ${oldDb}`).catch(() => {});
  await admin(`drop database if exists ${newDb}`).catch(() => {});
}
process.exit(unexpected === 0 ? 0 : 1);
