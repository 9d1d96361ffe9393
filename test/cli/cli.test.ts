import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { freshDatabase } from '../helpers/db.js';
import { pastDate } from '../helpers/fixtures.js';
import { runCli } from '../helpers/procs.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

t.test('bad arguments: one line, non-zero exit, nothing done', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [['frobnicate'], /unknown command/],
    [['seed'], /--date/],
    [['seed', '--date', '2026-02-30'], /--date: date is not a real calendar date/],
    [['seed', '--date', '2026-01-01', '--accounts', '-3'], /accounts/],
    [['seed', '--date', '2026-01-01', '--accounts', 'many'], /--accounts: must be a whole number/],
    [['run', 'paying'], /stage/],
    [['run', 'record', '--date', '0000-01-01'], /--date: date must be between 2000-01-01 and 2099-12-31/],
    [['run', 'pay', '--kind', 'interest'], /--kind/],
    [['retry', '--kind', 'tax'], /--date/],
    [['reconcile', '--wait-s', '-1'], /--wait-s/],
    [['reconcile', '--kind', 'interest'], /--kind/],
    [['status', '--colour'], /Unknown option '--colour'/],
    [['bank-sim', '--drop-rate', '2'], /--drop-rate: must be a number from 0 to 1/],
    [['worker', '--concurrency', '0'], /--concurrency/],
    [['reveal', '1000000001', '--reason', 'x'], /account: name the account as it is shown/],
    [['reveal', '****0001'], /--reason/],
    [['reveal', '****0001', '--transfer', 'x', '--reason', 'x'], /--transfer: must be a transfer id/],
  ];
  for (const [args, re] of cases) {
    const r = await runCli(args, { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' });
    t.not(r.code, 0, `settle ${args.join(' ')} exits non-zero`);
    t.match(r.stderr, re, `settle ${args.join(' ')}: ${r.stderr.trim()}`);
    t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
  }
});

t.test('bad configuration names every problem', async (t) => {
  const r = await runCli(['status'], { BANK_MAX_IN_FLIGHT: '0', SETTLEMENT_TIMEZONE: 'Nowhere/Land' });
  t.equal(r.code, 2);
  t.match(r.stderr, /BANK_MAX_IN_FLIGHT/);
  t.match(r.stderr, /SETTLEMENT_TIMEZONE/);
});

t.test('with a DATABASE_URL and no BANK_URL the worker refuses to use a fake bank', async (t) => {
  const r = await runCli(['worker'], { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none', BANK_URL: '' });
  t.equal(r.code, 2);
  t.match(r.stderr, /BANK_SIMULATOR=in-process/);
});

/** The README's commands table: each row's command and the flags it shows. */
function readmeCommands(): { name: string; flags: string[] }[] {
  const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
  const table = readme.slice(readme.indexOf('| command | what it does |'));
  const rows = table.slice(0, table.indexOf('\n\n')).split('\n').slice(2);
  return rows.map((row) => {
    const cell = /^\| `settle ([a-z-]+)([^`]*)`/.exec(row);
    if (!cell) throw new Error(`README commands row not understood: ${row}`);
    return { name: cell[1]!, flags: [...new Set(cell[2]!.match(/--[a-z][a-z-]*/g) ?? [])].sort() };
  });
}

t.test('--help lists every command; settle alone is a usage error', async (t) => {
  const r = await runCli(['--help']);
  t.equal(r.code, 0);
  const names = readmeCommands().map((c) => c.name);
  t.same([...names].sort(), ['after-restore', 'bank-sim', 'bank-window', 'change', 'configure', 'console', 'demo', 'export', 'failures', 'migrate', 'pause', 'reconcile', 'report', 'resume', 'retry', 'reveal', 'run', 'seed', 'status', 'worker'], 'the README lists every command');
  for (const c of names) t.match(r.stdout, new RegExp(`\\n  ${c}\\b`), `settle --help lists ${c}`);
  const bare = await runCli([]);
  t.equal(bare.code, 2, 'settle with no command exits 2');
  t.match(bare.stderr, /Usage: settle <command>/, 'and prints the usage on stderr');
  t.equal(bare.stdout, '');
});

t.test('settle <command> --help shows that command, with the flags the README shows for it', async (t) => {
  for (const c of readmeCommands()) {
    const r = await runCli([c.name, '--help']);
    t.equal(r.code, 0, `${c.name} --help exits 0`);
    t.match(r.stdout, new RegExp(`^Usage: settle ${c.name}\\b`), `${c.name} --help starts with its own usage`);
    t.notMatch(r.stdout, /^Commands:/m, `${c.name} --help is not the global help`);
    const usage = r.stdout.slice(0, r.stdout.indexOf('\n\n'));
    const helpFlags = [...new Set(usage.match(/--[a-z][a-z-]*/g) ?? [])].sort();
    t.same(helpFlags, c.flags, `settle ${c.name}: the README's flags are the command's own`);
  }
});

t.test('migrate, seed, status, run and retry against DATABASE_URL', async (t) => {
  const { url } = await freshDatabase(t, { empty: true });
  const env = { DATABASE_URL: url };
  const D = pastDate(1);
  const m = await runCli(['migrate'], env);
  t.equal(m.code, 0, m.stderr);
  t.match(m.stdout, /applied/);
  t.match((await runCli(['migrate'], env)).stdout, /up to date/);
  const s = await runCli(['seed', '--date', D, '--accounts', '20'], env);
  t.equal(s.code, 0, s.stderr);
  t.match(s.stdout, /seeded 20 loan accounts and \d+ accruals/);
  const again = await runCli(['seed', '--date', D, '--accounts', '20'], env);
  t.match(again.stdout, /and 0 accruals/, 'seeding the same day again adds nothing');
  const st = await runCli(['status'], env);
  t.equal(st.code, 0);
  t.match(st.stdout, new RegExp(`${D}\\s+tax\\s+pending`));
  const run = await runCli(['run', 'record', '--date', D], env);
  t.match(run.stdout, /enqueued 6 record job/);
  const retry = await runCli(['retry', '--date', D, '--kind', 'tax'], env);
  t.match(retry.stdout, /re-enqueued 0 failed/);
  const json = await runCli(['status', '--json', '--date', D], env);
  t.equal(JSON.parse(json.stdout).length, 6);
});
