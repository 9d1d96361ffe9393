/**
 * `npm run explore -- [--seed N | --seeds COUNT [--from S]] [--steps M] [--schedule "step; step; ..."]`
 *
 *   --seed N        runs seed N and prints every step (a replay)
 *   --schedule "…"  with --seed: replays that step list (a shrunk schedule as printed) instead of the generated one
 *   --shrink        with --seed: shrink a failing schedule and print the short one
 *   --seeds COUNT   runs COUNT seeds from --from (default 1), a progress line every few seconds;
 *                   the first failure is shrunk and printed, and the run goes on (--stop-at-first to stop)
 *   --steps M       scheduled steps per seed before the drain (default 60)
 *   --focus money   the bank never cancels nor books money nobody sent (searches the payment defects)
 *   --kinds 2       a second kind (platform_fee) settles beside tax, on the same loan accounts
 *   --no-shrink     print failures as found
 *   --keep          keep the scratch database after the run (its name is printed) to look at what a schedule left
 *
 * One scratch database per process: DATABASE_URL (a superuser's: the reset
 * between seeds truncates with triggers off) or an embedded Postgres.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startEmbeddedPostgres } from '../../src/db/embedded.js';
import { migrate } from '../../src/db/migrate.js';
import { formatRun, runSeed, shrink, type RunResult } from './explorer.js';
import { installClock, PROFILE } from './world.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<number> {
  let stop = async () => {};
  let tmp: string | undefined;
  let adminUrl = process.env['DATABASE_URL'];
  if (!adminUrl) {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'settle-explore-pg-'));
    chmodSync(tmp, 0o755);
    const e = await startEmbeddedPostgres({ dataDir: path.join(tmp, 'pg'), persistent: false, database: 'postgres' });
    adminUrl = e.url;
    stop = e.stop;
  }
  const name = `settle_explore_${process.pid}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`drop database if exists ${name}`);
  await admin.query(`create database ${name}`);
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  await migrate(u.toString());
  const db = new pg.Client({ connectionString: u.toString() });
  await db.connect();
  await db.query('set client_min_messages = warning');
  await installClock(db);
  let code = 0;
  try {
    const steps = Number(arg('steps') ?? 60);
    const focus = arg('focus') === 'money' ? 'money' : 'all';
    const kinds = arg('kinds') === '2' ? 2 : 1;
    const one = arg('seed');
    if (one !== undefined) {
      const schedule = arg('schedule')?.split(';').map((x) => x.trim()).filter(Boolean);
      const quiet = process.argv.includes('--shrink');
      let r = await runSeed(db, Number(one), { steps, focus, kinds, log: quiet ? undefined : (l) => console.log(l) }, schedule);
      if (quiet && r.violation) {
        r = await shrink(db, Number(one), r, { budget: Number(arg('budget') ?? 400) });
        console.log(formatRun(r, `seed ${one}: ${r.violation!.invariant} (shrunk to ${r.schedule.length} scheduled steps)`));
        console.log(`  replay: npm run explore -- --seed ${one}${kinds === 2 ? ' --kinds 2' : ''} --schedule "${r.schedule.join('; ')}"`);
      }
      console.log(r.violation ? `seed ${one}: VIOLATED ${r.violation.invariant}: ${r.violation.detail}` : `seed ${one}: every invariant held (${r.steps.length} steps)`);
      code = r.violation ? 1 : 0;
    } else {
      const count = Number(arg('seeds') ?? 100);
      const from = Number(arg('from') ?? 1);
      const stopAtFirst = process.argv.includes('--stop-at-first');
      const t0 = Date.now();
      let last = t0;
      const failures: RunResult[] = [];
      for (let s = from; s < from + count; s++) {
        const r = await runSeed(db, s, { steps, focus, kinds });
        if (r.violation) {
          const small = process.argv.includes('--no-shrink') ? r : await shrink(db, s, r);
          failures.push(small);
          console.log(formatRun(small, `seed ${s}: ${r.violation.invariant} (shrunk from ${r.schedule.length} to ${small.schedule.length} scheduled steps)`));
          console.log(`  replay: npm run explore -- --seed ${s}${kinds === 2 ? ' --kinds 2' : ''} --schedule "${small.schedule.join('; ')}"`);
          code = 1;
          if (stopAtFirst) break;
        }
        const now = Date.now();
        if (now - last > 5000 || s === from + count - 1) {
          last = now;
          const done = s - from + 1;
          console.log(`explore: ${done}/${count} seeds, ${failures.length} failing, ${(done / ((now - t0) / 1000)).toFixed(1)} seeds/s`);
        }
      }
      const byInvariant = new Map<string, number[]>();
      for (const f of failures) byInvariant.set(f.violation!.invariant, [...(byInvariant.get(f.violation!.invariant) ?? []), f.seed]);
      for (const [k, v] of byInvariant) console.log(`  ${k}: seeds ${v.join(', ')}`);
      if (PROFILE) for (const [k, v] of [...PROFILE].sort((a, b) => b[1].ms - a[1].ms).slice(0, 15)) console.log(`${v.ms.toFixed(0).padStart(7)} ms ${String(v.n).padStart(6)}x ${k}`);
    }
  } finally {
    await db.end().catch(() => undefined);
    if (process.argv.includes('--keep')) console.log(`kept database ${name}`);
    else await admin.query(`drop database if exists ${name} with (force)`).catch(() => undefined);
    await admin.end().catch(() => undefined);
    await stop().catch(() => undefined);
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
  return code;
}

main().then((c) => process.exit(c), (e) => {
  console.error(e);
  process.exit(2);
});
