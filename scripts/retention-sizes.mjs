#!/usr/bin/env node
// Measures what the database keeps per payout chunk: settles a day end to end
// (`settle demo`, against the in-process bank simulator, reconciled with the
// bank's statements) at two sizes, each in a fresh embedded Postgres, and
// reports pg_total_relation_size (table + indexes + TOAST) of every table of
// the settlement and graphile_worker schemas. The per-million figure is the
// difference between the two runs divided by the difference in chunks (so the
// fixed cost of empty tables and indexes cancels), times a million. Sizes are
// as the run leaves them (no VACUUM FULL): what the tables occupy in use.
//
//   npm run build && node scripts/retention-sizes.mjs [--accounts 300,1500]
//
// A payout chunk is one `transfers` row (the demo makes about 8.6 per account).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { startEmbeddedPostgres } = await import(path.join(root, 'dist/src/db/embedded.js'));
const CLI = path.join(root, 'dist/src/cli/main.js');

const arg = process.argv.indexOf('--accounts');
const sizes = (arg > 0 ? process.argv[arg + 1] : '300,1500').split(',').map(Number);
if (sizes.length !== 2 || !sizes.every((n) => Number.isInteger(n) && n > 0) || sizes[0] >= sizes[1]) {
  console.error('usage: node scripts/retention-sizes.mjs [--accounts SMALL,LARGE]');
  process.exit(2);
}

async function measure(accounts) {
  const cwd = mkdtempSync(path.join(os.tmpdir(), 'settle-sizes-'));
  try {
    const env = { ...process.env, LOG_LEVEL: 'warn' };
    delete env.DATABASE_URL;
    delete env.BANK_URL;
    const started = Date.now();
    const code = await new Promise((resolve) => {
      const child = spawn(process.execPath, [CLI, 'demo', '--accounts', String(accounts), '--timeout-s', '3600'], { cwd, env, stdio: ['ignore', 'ignore', 'inherit'] });
      child.on('exit', (c) => resolve(c));
    });
    if (code !== 0) throw new Error(`settle demo --accounts ${accounts} exited ${code}`);
    const db = await startEmbeddedPostgres({ dataDir: path.join(cwd, '.data', 'pg'), database: 'settlement_demo' });
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    try {
      const chunks = Number((await c.query('select count(*) from settlement.transfers')).rows[0].count);
      const rows = (
        await c.query(`select n.nspname || '.' || c.relname as name, pg_total_relation_size(c.oid)::bigint as bytes
          from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where c.relkind in ('r', 'p') and n.nspname in ('settlement', 'graphile_worker')`)
      ).rows;
      const tables = Object.fromEntries(rows.map((r) => [r.name, Number(r.bytes)]));
      console.error(`${accounts} accounts: ${chunks} chunks, settled and reconciled in ${((Date.now() - started) / 1000).toFixed(0)} s`);
      return { chunks, tables };
    } finally {
      await c.end();
      await db.stop();
    }
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
}

const small = await measure(sizes[0]);
const large = await measure(sizes[1]);
const perMillion = (name) => ((large.tables[name] ?? 0) - (small.tables[name] ?? 0)) / (large.chunks - small.chunks) * 1e6;
const mb = (b) => (b / 2 ** 20).toFixed(0).padStart(8);
const groups = {
  transfers: ['settlement.transfers', 'settlement.transfer_attempts', 'settlement.transfer_evidence'],
  journal: ['settlement.journal_entries', 'settlement.journal_lines'],
  'statement lines': ['settlement.statement_lines', 'settlement.line_matches', 'settlement.statement_reads'],
  'graphile jobs': Object.keys(large.tables).filter((n) => n.startsWith('graphile_worker.')),
};
console.log(`chunks: ${small.chunks} and ${large.chunks}; MiB per million chunks (from the difference)\n`);
console.log(`${'table'.padEnd(44)}${'MiB/1M'.padStart(8)}${'at small'.padStart(10)}${'at large'.padStart(10)}`);
const names = Object.keys(large.tables).filter((n) => Math.abs(perMillion(n)) >= 0.5 * 2 ** 20).sort((a, b) => perMillion(b) - perMillion(a));
for (const n of names) console.log(`${n.padEnd(44)}${mb(perMillion(n))}${mb(small.tables[n] ?? 0).padStart(10)}${mb(large.tables[n]).padStart(10)}`);
console.log('');
for (const [g, members] of Object.entries(groups)) {
  console.log(`${g.padEnd(44)}${mb(members.reduce((s, n) => s + perMillion(n), 0))}   (${members.filter((n) => n in large.tables).join(', ')})`);
}
const all = Object.keys(large.tables).reduce((s, n) => s + perMillion(n), 0);
console.log(`${'every table of both schemas'.padEnd(44)}${mb(all)}`);
