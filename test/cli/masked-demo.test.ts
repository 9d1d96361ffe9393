/**
 * Issue 23, item 2, done when: "no 10-digit account number in any page,
 * alert or log line produced by the demo". `settle demo --keep` runs as a
 * real process (its worker's log lines captured, at the production level
 * `info`); a second day waits for the registration of a loan account the bank
 * does not know (a stage detail and failing register jobs that name it), and
 * a FinAcno is refused (an alert). Then every console page of the days, the
 * CLI's outputs and the alerts are read, and no run of 10+ digits in them may
 * be an account number or FinAcno of the database (compared with the
 * database's own numbers, so byte counts and timestamps do not count). The
 * journal export (a data file for accounting) is not a person's reading and
 * keeps the numbers.
 */
import { spawn } from 'node:child_process';
import { sql } from 'slonik';
import t from 'tap';
import { z } from 'zod';
import { createDbPool } from '../../src/db/pool.js';
import { consoleSession } from '../helpers/console.js';
import { adminQuery, freshDatabase } from '../helpers/db.js';
import { noonSeoul, pastDate } from '../helpers/fixtures.js';
import { CLI, runCli, waitFor } from '../helpers/procs.js';

const TOKEN = 'mask-demo-operator-token-0123';

t.test('the demo: no account number or FinAcno in any page, CLI output, alert or log line', async (t) => {
  const { url } = await freshDatabase(t);
  const demoUrl = (() => { const u = new URL(url); u.pathname = '/settlement_demo'; return u.toString(); })();
  t.teardown(() => adminQuery('drop database if exists settlement_demo with (force)'));

  const out: string[] = [];
  const child = spawn(process.execPath, [CLI, 'demo', '--accounts', '40', '--timeout-s', '400', '--keep'], {
    env: { ...process.env, DATABASE_URL: url, LOG_LEVEL: 'info', HTTP_PORT: '0', CONSOLE_TOKEN: TOKEN, CONSOLE_VIEWER_TOKEN: '', CONSOLE_USERS: '', CONSOLE_DATABASE_URL: '', SETTLE_WATCH_PARENT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  let buf = '';
  const take = (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) (out.push(buf.slice(0, i)), (buf = buf.slice(i + 1)));
  };
  child.stdout.on('data', take);
  child.stderr.on('data', take);
  await waitFor('the demo settled its day and kept running', async () => {
    if (child.exitCode !== null) throw new Error(`settle demo exited (${child.exitCode}):\n${out.slice(-30).join('\n')}`);
    return out.some((l) => l.startsWith('kept running:'));
  }, 480_000, 250);
  t.ok(out.some((l) => l.startsWith('demo OK')), 'the demo settled and reconciled its day');
  const base = /^console: (http:\/\/\S+)/.exec(out.find((l) => l.startsWith('console: ')) ?? '')?.[1]?.replace(/\/$/, '');
  t.ok(base, `the console's URL is printed (${base})`);

  const db = await createDbPool(demoUrl, { maximumPoolSize: 3 });
  t.teardown(() => db.end());
  const D = await db.oneFirst(sql.type(z.object({ d: z.string() }))`select (settlement.today() - 1)::text as d`);
  const D2 = pastDate(2);

  // A second day: a loan account the bank does not know waits for its registration.
  const STRANGER = '1000009999';
  await db.query(sql.unsafe`select settlement.add_loan_account(${STRANGER}, '011', 'stranger')`);
  await db.query(sql.unsafe`select settlement.accrue('mask-d2-1', ${STRANGER}, 'tax', 5000, ${noonSeoul(D2)}::timestamptz)`);
  await db.query(sql.unsafe`select settlement.enqueue_stage('record', ${D2}::date, 'tax')`);
  // A FinAcno that is not the answer to this system's registration: the real one of another account (refused, alerted, posted by the alert job).
  const other = await db.one(sql.type(z.object({ a: z.string(), f: z.string() }))`select account_no as a, fin_acno as f from settlement.accounts where role = 'loan' and fin_acno is not null order by 1 limit 1`);
  t.equal(await db.oneFirst(sql.type(z.object({ r: z.string() }))`select settlement.record_fin_account(${STRANGER}, 'RG-X', ${other.f}, '20260101') as r`), 'refused', 'a FinAcno redirect is refused');
  await waitFor('the pay stage of the second day waits for the stranger\'s registration', async () => {
    const d = await db.maybeOneFirst(sql.type(z.object({ d: z.string().nullable() }))`
      select detail as d from settlement.stage_runs where business_date = ${D2}::date and kind = 'tax' and stage = 'pay'`);
    return d && /waiting for the fin-accounts/.test(d);
  }, 120_000, 250);
  // The bank refuses to register an account it does not know: the register job fails (logged) and is retried.
  await waitFor('a register job failed for the stranger', async () => {
    const n = await db.oneFirst(sql.type(z.object({ n: z.number() }))`
      select count(*)::int as n from graphile_worker.jobs where task_identifier = 'register' and last_error is not null`);
    return n > 0;
  }, 120_000, 250);
  await waitFor('the alert was posted (no webhook: logged)', async () => out.some((l) => l.includes('alert:unsent') && l.includes('fin_acno_refused')), 60_000, 250);
  await db.query(sql.unsafe`select * from settlement.detect_alerts()`);

  // Every console page of the days, signed in as an operator.
  const cookie = await consoleSession(base!, TOKEN);
  const pages: Array<[string, string]> = [];
  for (const p of ['/', `/day/${D}`, `/day/${D}/report`, `/day/${D}/report.csv`, `/day/${D}/retry`, `/day/${D2}`, `/day/${D2}/report`, `/day/${D2}/retry`, '/history?days=30', '/history?days=90', '/workers']) {
    const r = await fetch(`${base}${p}`, { headers: { cookie } });
    t.equal(r.status, 200, `console ${p}`);
    pages.push([`console ${p}`, await r.text()]);
  }

  // The CLI's outputs for the days (the operator's reads).
  const cli: Array<[string, string]> = [];
  for (const args of [['status'], ['status', '--check'], ['status', '--json'], ['failures'], ['failures', '--date', D2], ['report', '--date', D], ['report', '--date', D, '--format', 'csv'],
    ['report', '--date', D, '--format', 'json'], ['report', '--date', D2], ['reconcile', '--date', D, '--wait-s', '5', '--reason', 'mask test'], ['retry', '--date', D2, '--dry-run'], ['change', 'list', '--all']]) {
    const r = await runCli(args, { DATABASE_URL: demoUrl, BANK_URL: '' });
    t.ok(r.code === 0 || r.code === 1, `settle ${args.join(' ')} ran (exit ${r.code})${r.code !== 0 && r.code !== 1 ? `: ${r.stderr}` : ''}`);
    cli.push([`settle ${args.join(' ')}`, r.stdout + r.stderr]);
  }

  // The alerts as stored (what the webhook posts: "daily-settlement: " + message) and their keys.
  const alerts = await db.any(sql.type(z.object({ key: z.string(), message: z.string() }))`select key, message from settlement.alerts order by id`);
  t.ok(alerts.some((a) => a.key.startsWith('fin_acno_refused')), 'the refused FinAcno is alerted');

  // Stop the demo (Ctrl-C): its last lines are log lines too.
  child.kill('SIGINT');
  await exited;

  // The database's own numbers.
  const numbers = new Set(await db.anyFirst(sql.type(z.object({ n: z.string() }))`
    select account_no as n from settlement.accounts union select fin_acno from settlement.accounts where fin_acno is not null
    union select acno from settlement.statement_lines`));
  t.ok(numbers.size > 40, `${numbers.size} account numbers and FinAcnos to look for`);
  const finAcnos = [...numbers].filter((n) => n.length > 20);

  const texts: Array<[string, string]> = [
    ...pages,
    ...cli,
    ...alerts.map((a): [string, string] => [`alert ${a.key}`, `${a.key} daily-settlement: ${a.message}`]),
    ...out.map((l, i): [string, string] => [`demo/worker output line ${i + 1}`, l]),
  ];
  let looked = 0;
  const leaks: string[] = [];
  for (const [where, text] of texts) {
    for (const m of text.match(/\d{6,}/g) ?? []) {
      looked++;
      if (numbers.has(m)) leaks.push(`${where}: ${m} in …${text.slice(Math.max(0, text.indexOf(m) - 80), text.indexOf(m) + 30)}…`);
    }
    for (const f of finAcnos) if (text.includes(f)) leaks.push(`${where}: FinAcno ${f}`);
  }
  t.same(leaks.slice(0, 20), [], `no account number or FinAcno in ${texts.length} pages, outputs, alerts and log lines (${looked} runs of digits looked at)`);

  // What a person reads still tells the accounts apart: by their last four.
  const all = texts.map(([, x]) => x).join('\n');
  t.match(all, /\*\*\*\*9999/, 'the stranger shows as ****9999');
  t.ok(pages.find(([w]) => w === `console /day/${D2}`)![1].includes('****9999'), 'the second day\'s page names the waiting account by its last four');
  t.ok(out.length > 100, `${out.length} demo and worker log lines read`);
});
