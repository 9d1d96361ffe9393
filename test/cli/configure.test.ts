import t from 'tap';
import { sql } from 'slonik';
import { z } from 'zod';
import { enqueueStage } from '../../src/db/operations.js';
import { seed } from '../../src/seed.js';
import { prepareSim, startSim, TOKEN, waitAllWithdrawn, workerEnv } from '../helpers/day.js';
import { freshDb } from '../helpers/db.js';
import { pastDate } from '../helpers/fixtures.js';
import { runCli, spawnWorker } from '../helpers/procs.js';

const after = z.object({ a: z.string() });

t.test('settle configure --reconcile-after: bad intervals change nothing; a good one is set and audited; settle reconcile says what it waits for, in KST', async (t) => {
  const { url, db } = await freshDb(t);
  const sim = await startSim(t);
  const env = { DATABASE_URL: url, BANK_URL: sim.url, BANK_ACCESS_TOKEN: TOKEN };
  const current = () => db.oneFirst(sql.type(after)`select reconcile_after::text as a from settlement.config where id`);
  const before = await current();

  for (const [bad, why] of [[['--reconcile-after', 'soon'], /--reconcile-after: "soon" is not an interval/], [['--reconcile-after', '40 days'], /--reconcile-after: must be between -1 day and 30 days/],
    [['--reconcile-after=-2 days'], /between -1 day and 30 days/], [['--reconcile-after', '-1 day'], /--reconcile-after/], [['--reconcile-after', ''], /--reconcile-after: must not be empty/]] as const) {
    const r = await runCli(['configure', ...bad], env);
    t.equal(r.code, 2, `${bad.join(' ')}: a usage error (exit 2)`);
    t.match(r.stderr, why, `${bad.join(' ')}: named (${r.stderr.trim()})`);
  }
  t.equal(await current(), before, 'nothing changed');

  // A day paid today: its statement (today's date, KST) is final two days after its end.
  const D = pastDate(1);
  await seed(db, { date: D, accounts: 8, kinds: ['tax'] });
  await prepareSim(db, sim);
  const set = await runCli(['configure', '--reconcile-after', '2 days', '--reason', 'the bank completes statements late'], env);
  t.equal(set.code, 0, `set (exit 0): ${set.stdout}${set.stderr}`);
  t.match(set.stdout, /reconcile_after = 2 days/, 'it says what it set');
  t.equal(await current(), '2 days');
  const audit = await db.maybeOne(sql.type(z.object({ reason: z.string().nullable(), args: z.unknown() }))`
    select reason, args from settlement.operator_actions where action = 'configure_reconcile' order by id desc limit 1`);
  t.equal(audit?.reason, 'the bank completes statements late', 'audited with its reason');

  await spawnWorker(t, workerEnv(url, sim.url));
  await enqueueStage(db, 'record', D, 'tax');
  await waitAllWithdrawn(db, [D], 1, 120_000);
  const finalBy = await db.oneFirst(sql.type(z.object({ f: z.string() }))`select settlement.local_time(settlement.statement_final_by(${D}::date, 'tax')) as f`);
  t.match(finalBy, / KST$/, `the statement is final at ${finalBy}`);
  const waiting = await runCli(['reconcile', '--date', D, '--kind', 'tax', '--wait-s', '0'], env);
  t.equal(waiting.code, 0, `waiting is not a failure (exit 0): ${waiting.stdout}${waiting.stderr}`);
  t.ok(waiting.stdout.includes(`not reconciled yet: waiting for the bank statement, final at ${finalBy} (the date's end + reconcile_after 2 days`),
    `it says why and until when, in KST:\n${waiting.stdout}`);
  t.notMatch(waiting.stdout, /\d{2}:\d{2}:\d{2}(\.\d+)?\+00/, 'no time in UTC');

  const now = await runCli(['configure', '--reconcile-after=-1 day', '--reason', 'simulator'], env);
  t.equal(now.code, 0);
  const done = await runCli(['reconcile', '--date', D, '--kind', 'tax', '--wait-s', '120'], env);
  t.equal(done.code, 0, `reconciled (exit 0): ${done.stdout}${done.stderr}`);
  t.match(done.stdout, new RegExp(`${D} tax +reconciled: \\d+ statement line\\(s\\) matched`), 'the day is reconciled once the grace allows it');
});
