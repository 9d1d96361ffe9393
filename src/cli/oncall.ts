import { z } from 'zod';
import { createNhBankClient } from '../bank/client.js';
import type { Config } from '../config.js';
import { activePauses, asOperator, dailyStatus, pause, payoutFailures, problems, resume, retryDay, retryPreview, type RetryPreviewRow, revealAccount, type VerdictRow, verdicts, workerStatus, type WorkerStatus } from '../db/operations.js';
import { formatPayeeChange, payeeChanges } from '../db/changes.js';
import { dateSchema, kindSchema } from '../domain.js';
import type { Logger } from '../log.js';
import { parseCommand } from './args.js';
import { withDb } from './commands.js';
import { formatStatus, money } from './status-table.js';
import { maskAccount, maskDigits } from '../mask.js';

const reasonSchema = z.string().trim().min(1, 'must not be empty').max(1000, 'must be at most 1000 characters');

const age = (s: number | null) => (s === null ? '-' : s < 120 ? `${Math.round(s)} s` : s < 7200 ? `${Math.round(s / 60)} min` : `${Math.round(s / 3600)} h`);

export function formatWorkers(w: WorkerStatus): string {
  if (w.registered === 0) return 'workers: none registered — nothing is settling (start `settle worker`)';
  return `workers: ${w.alive} alive of ${w.registered} registered (oldest heartbeat ${age(w.oldest_age_s)} ago; silent after ${age(w.silent_after_s)})${w.alive === 0 ? ' — nothing is settling' : ''}`;
}

export function formatVerdicts(rows: readonly VerdictRow[]): string[] {
  const width = Math.max(0, ...rows.map((r) => r.verdict.length));
  const out: string[] = [];
  for (const r of rows) {
    out.push(`${r.business_date}  ${r.verdict.padEnd(width)}  ${r.detail ?? ''}`);
    if (r.next_command) out.push(`${' '.repeat(12 + width)}next: ${r.next_command}`);
  }
  return out;
}

/** `settle status`: the verdict per day, the workers, pauses, then the table. `--check`: exit 1 if anything needs a person. */
export async function cmdStatus(argv: string[], config: Config, logger: Logger) {
  const o = parseCommand(
    argv,
    { date: { type: 'string' }, json: { type: 'boolean' }, check: { type: 'boolean' } },
    z.object({ date: dateSchema.optional(), json: z.boolean().optional(), check: z.boolean().optional() }).strict(),
  );
  await withDb(config, logger, async (db) => {
    if (o.check) {
      const ps = (await problems(db)).filter((p) => !o.date || p.business_date === null || p.business_date === o.date);
      if (o.json) console.log(JSON.stringify({ ok: ps.length === 0, problems: ps }, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), 2));
      else if (ps.length === 0) console.log('OK: nothing needs a person');
      else for (const p of ps) console.log(`NEEDS A PERSON: ${p.message}${p.next_command ? ` (next: ${p.next_command})` : ''}`);
      process.exitCode = ps.length === 0 ? 0 : 1;
      return;
    }
    const [vs, w, pauses, rows, payees] = await Promise.all([verdicts(db, o.date), workerStatus(db), activePauses(db), dailyStatus(db, o.date), payeeChanges(db)]);
    // --json stays settlement.daily_status's rows (scripts read it); the verdict is settlement.verdict.
    if (o.json) return void console.log(JSON.stringify(rows, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), 2));
    const out = [...formatVerdicts(vs), formatWorkers(w)];
    for (const p of pauses) out.push(`paused: ${p.kind ?? 'every kind'} since ${p.paused_at} by ${p.paused_by}: ${p.reason}`);
    for (const p of payees) out.push(formatPayeeChange(p));
    console.log(`${out.join('\n')}\n\n${formatStatus(rows)}`);
  });
}

export async function cmdPause(argv: string[], config: Config, logger: Logger) {
  const o = parseCommand(argv, { kind: { type: 'string' }, reason: { type: 'string' } }, z.object({ kind: kindSchema.optional(), reason: reasonSchema }).strict());
  await withDb(config, logger, async (db) => {
    const fresh = await asOperator(db, o.reason, (q) => pause(q, o.kind ?? null, o.reason));
    console.log(`${fresh ? 'paused' : 'already paused'}: bank calls for ${o.kind ?? 'every kind'} (calls in flight finish; \`settle resume${o.kind ? ` --kind ${o.kind}` : ''}\` to go on)`);
  });
}

export async function cmdResume(argv: string[], config: Config, logger: Logger) {
  const o = parseCommand(argv, { kind: { type: 'string' }, reason: { type: 'string' } }, z.object({ kind: kindSchema.optional(), reason: reasonSchema.optional() }).strict());
  await withDb(config, logger, async (db) => {
    const n = await asOperator(db, o.reason, (q) => resume(q, o.kind ?? null));
    const still = await activePauses(db);
    console.log(`resumed ${n} pause(s)${still.length ? `; still paused: ${still.map((p) => p.kind ?? 'every kind').join(', ')}` : ''}`);
  });
}

/**
 * `settle retry --date D [--kind K] [--dry-run] [--force] [--reason R]`: every
 * kind of the day that failed for good, or one. With a BANK_URL it asks the
 * bank first and refuses while a paying account is SHORT (`--force` retries anyway).
 */
export async function cmdRetry(argv: string[], config: Config, logger: Logger) {
  const o = parseCommand(
    argv,
    { date: { type: 'string' }, kind: { type: 'string' }, 'dry-run': { type: 'boolean' }, force: { type: 'boolean' }, reason: { type: 'string' } },
    z.object({ date: dateSchema, kind: kindSchema.optional(), dryRun: z.boolean().optional(), force: z.boolean().optional(), reason: reasonSchema.optional() }).strict(),
  );
  await withDb(config, logger, async (db) => {
    const rows = await retryPreview(db, o.date, o.kind ?? null);
    if (o.dryRun) {
      if (rows.length === 0) return void console.log(`nothing failed for good on ${o.date}${o.kind ? ` ${o.kind}` : ''}: nothing to retry`);
      console.log(`would retry (dry run, nothing changed):`);
      for (const p of await preview(rows, config)) console.log(p.line);
      return;
    }
    // A retry that its own dry run shows SHORT would fail again for the same reason: refuse it.
    if (rows.length > 0 && config.bank.url && !o.force) {
      const short = (await preview(rows, config)).filter((p) => p.short);
      if (short.length > 0) {
        console.log(`not retried: the bank shows too little money on ${short.length} paying account(s); fund them first (or --force):`);
        for (const p of short) console.log(p.line);
        process.exitCode = 1;
        return;
      }
    }
    const r = await asOperator(db, o.reason, (q) => retryDay(q, o.date, o.kind ?? null));
    if (r.length === 0) return void console.log(`re-enqueued 0 failed transfer(s) for ${o.date}${o.kind ? ` ${o.kind}` : ''}: nothing failed for good`);
    for (const x of r) console.log(`re-enqueued ${x.retried} failed transfer(s) for ${o.date} ${x.kind}`);
  });
}

/** One line per kind and paying account, with the account's shortfall against its available balance at the bank. */
async function preview(rows: readonly RetryPreviewRow[], config: Config): Promise<{ line: string; short: boolean }[]> {
  const bank = config.bank.url
    ? createNhBankClient({ baseUrl: config.bank.url, iscd: config.bank.iscd, fintechApsno: config.bank.fintechApsno, accessToken: config.bank.accessToken, perCallLimit: config.bank.perCallLimit, timeoutMs: config.bank.timeoutMs, retries: 1, maxRetryTimeMs: config.bank.timeoutMs })
    : undefined;
  try {
    const lines: { line: string; short: boolean }[] = [];
    for (const r of rows) {
      let short = false;
      let balance = 'balance: not asked (no BANK_URL)';
      if (r.purpose === 'withdrawal') balance = 'balance: not asked (the contracted account has no fin-account)';
      else if (bank && r.fin_acno) {
        try {
          const b = await bank.balance(r.fin_acno);
          const missing = r.amount - b.available;
          short = missing > 0n;
          balance = `available ${money(b.available)} KRW, ${short ? `SHORT ${money(missing)} KRW` : 'enough'}`;
        } catch (e) {
          balance = `balance: could not ask the bank (${maskDigits((e as Error).message.split('\n')[0]!)})`;
        }
      }
      lines.push({ line: `  ${r.kind} ${r.purpose} from ${maskAccount(r.from_account)}: ${r.transfers} transfer(s), ${money(r.amount)} KRW (bank code ${r.bank_codes ?? '-'}); ${balance}`, short });
    }
    return lines;
  } finally {
    bank?.close();
  }
}

/** `settle failures [--date D]`: settlement.payout_failures. */
export async function cmdFailures(argv: string[], config: Config, logger: Logger) {
  const o = parseCommand(argv, { date: { type: 'string' }, json: { type: 'boolean' } }, z.object({ date: dateSchema.optional(), json: z.boolean().optional() }).strict());
  await withDb(config, logger, async (db) => {
    const rows = await payoutFailures(db, o.date);
    if (o.json) return void console.log(JSON.stringify(rows, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), 2));
    if (rows.length === 0) return void console.log(`no failed or unresolved transfers${o.date ? ` on ${o.date}` : ''}`);
    for (const r of rows) {
      console.log(`${r.business_date} ${r.kind} ${r.problem} ${r.what} #${r.transfer_id} ${maskAccount(r.from_account)} -> ${maskAccount(r.to_account)} ${money(r.amount)} KRW IsTuno ${r.is_tuno} attempt ${r.attempt}: ${r.bank_code ?? ''} ${r.bank_message ?? ''} (since ${r.since ?? '-'})`);
      if (r.problem === 'unresolved') console.log(`  undecided: ${r.undecided_why ?? 'the final statement decides it at the next reconcile run'}`);
    }
  });
}

/**
 * `settle reveal <****1234> [--transfer N] [--role R] --reason R`: every output shows
 * accounts masked; this prints one in full, on purpose, audited
 * (settlement.reveal_account: operator_actions `reveal_account`, who and why).
 */
export async function cmdReveal(argv: string[], config: Config, logger: Logger) {
  const o = parseCommand(
    argv,
    { transfer: { type: 'string' }, role: { type: 'string' }, reason: { type: 'string' } },
    z.object({
      account: z.string().trim().regex(/^\**[0-9]{4}$/, 'name the account as it is shown: **** and its last four digits (e.g. ****1234)'),
      transfer: z.string().regex(/^[1-9][0-9]{0,17}$/, 'must be a transfer id').transform(BigInt).optional(),
      role: z.enum(['loan', 'settlement', 'corporate']).optional(),
      reason: reasonSchema,
    }).strict(),
    ['account'],
  );
  await withDb(config, logger, async (db) => {
    const a = await asOperator(db, o.reason, (q) => revealAccount(q, o.account, o.reason, { transferId: o.transfer, role: o.role }));
    console.log(`${a.role} account ${a.account_no} (bank ${a.bank_code})${a.fin_acno ? `, FinAcno ${a.fin_acno}` : ''} — revealed on purpose, recorded in settlement.operator_actions (reveal_account)`);
  });
}
