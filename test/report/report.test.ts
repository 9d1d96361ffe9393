/**
 * What finance and on-call look at (issue 25), on a day settled by a real
 * worker against the bank simulator over HTTP:
 * - after withdraw, while the day's bank statement is not final
 *   (reconcile_after 2 hours after the date's end in KST), the verdict is
 *   WAITING with the time it becomes final, in settle status, the console and
 *   the metrics; then it reconciles and is DONE;
 * - settle report: the totals row equals settlement.daily_status summed over
 *   the kinds, each kind row equals its daily_status row; CSV, JSON, table
 *   and the console's CSV download agree;
 * - settle export journal: every entry balances, the lines come in
 *   (entry, line) order, and the export equals the ledger (ledger_balances,
 *   journal_lines) to the won; paged reads give the same lines;
 * - bad dates and ranges are usage errors (exit 2), read as a viewer login.
 */
import { sql } from 'slonik';
import t from 'tap';
import { z } from 'zod';
import { configureReconcile } from '../../src/db/reconcile.js';
import { dailyStatus, enqueueStage, verdicts } from '../../src/db/operations.js';
import type { Kind } from '../../src/domain.js';
import { claimTransfer, finishTransfer } from '../helpers/transfers.js';
import { consoleSession } from '../helpers/console.js';

const VIEWER_TOKEN = 'report-viewer-token-0123456789abcdef';
import { dayReport, exportJournal, history, type JournalLine } from '../../src/db/report.js';
import { JOURNAL_COLUMNS, REPORT_COLUMNS } from '../../src/report/format.js';
import { ensureLoginRole } from '../../src/runtime.js';
import { seed } from '../../src/seed.js';
import { prepareSim, startSim, waitAllWithdrawn, workerEnv } from '../helpers/day.js';
import { freshDb, pgClient } from '../helpers/db.js';
import { pastDate } from '../helpers/fixtures.js';
import { runCli, spawnWorker, waitFor } from '../helpers/procs.js';
import { parsePrometheus, sampleValue } from '../helpers/prom.js';
import { waitReconcile } from '../helpers/reconcile.js';

const VIEWER = { name: 'settle_test_viewer', password: 'settle-test-viewer', role: 'settlement_viewer' };
const KINDS_OF_DAY: Kind[] = ['tax', 'platform_fee'];

/** RFC 4180 CSV (quoted fields, doubled quotes, CRLF) into rows of fields. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') (field += '"'), i++;
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') row.push(field), (field = '');
    else if (c === '\r' && text[i + 1] === '\n') {
      row.push(field);
      rows.push(row);
      (row = []), (field = ''), i++;
    } else field += c;
  }
  if (field !== '' || row.length > 0) throw new Error('CSV does not end with CRLF');
  return rows;
}

const records = (text: string) => {
  const [head, ...body] = parseCsv(text);
  return { head: head!, rows: body.map((r) => Object.fromEntries(head!.map((h, i) => [h, r[i]!]))) };
};

t.test('a settled day: WAITING for its statement, then DONE; the report equals daily_status; the journal export equals the ledger', async (t) => {
  const { url, db } = await freshDb(t);
  const sim = await startSim(t);
  const D = pastDate(1);
  await seed(db, { date: D, accounts: 5, kinds: KINDS_OF_DAY });
  await prepareSim(db, sim);
  // The grace in production's range (at least config.max_attempt): the
  // statement of the date the transfers are sent on is final 2 hours after
  // that date's end in KST — in the future whatever the hour (a grace worked
  // out from now() fell under max_attempt, ST022, from 23:00 KST).
  await configureReconcile(db, '2 hours');
  const viewerUrl = await ensureLoginRole(url, VIEWER);
  const w = await spawnWorker(t, workerEnv(url, sim.url, { CONSOLE_DATABASE_URL: viewerUrl, CONSOLE_VIEWER_TOKEN: VIEWER_TOKEN }));
  const port = await waitFor('http:listen', async () => {
    const line = w.logs.find((l) => l.includes('"event":"http:listen"'));
    return line ? (JSON.parse(line).port as number) : undefined;
  }, 60_000, 100);
  const base = `http://127.0.0.1:${port}`;
  // Every console page needs a sign-in: a viewer's session.
  const headers = { cookie: await consoleSession(base, VIEWER_TOKEN) };
  for (const k of KINDS_OF_DAY) await enqueueStage(db, 'record', D, k);
  await waitAllWithdrawn(db, [D], KINDS_OF_DAY.length, 180_000);

  // WAITING: withdrawn, the statement not final yet.
  const wait = await db.one(sql.type(z.object({ final_by: z.string(), local: z.string(), ahead: z.boolean() }))`
    select max(f)::text as final_by, settlement.local_time(max(f)) as local, max(f) > now() as ahead
    from (select settlement.statement_final_by(${D}::date, k::settlement.kind) as f from unnest(${sql.array(KINDS_OF_DAY, 'text')}) k) x`);
  t.ok(wait.ahead, `the day's last statement is final in the future (${wait.final_by})`);
  const [v] = await verdicts(db, D);
  t.equal(v?.verdict, 'WAITING', 'withdrawn and waiting for the statement: WAITING, not IN PROGRESS');
  t.match(v?.detail, `until ${wait.local}`, 'until when, in KST');
  t.match(v?.detail, /statement becomes final/);
  const status = await runCli(['status', '--date', D], { DATABASE_URL: viewerUrl });
  t.equal(status.code, 0, status.stderr);
  t.match(status.stdout, new RegExp(`${D}\\s+WAITING\\s+.*until ${wait.local}`), 'settle status says WAITING until when');
  const metrics = parsePrometheus(await (await fetch(`${base}/metrics`)).text());
  for (const k of KINDS_OF_DAY) {
    t.equal(sampleValue(metrics, 'settle_day_verdict', { business_date: D, kind: k, verdict: 'WAITING' }), 1, `metrics: ${k} WAITING`);
    t.equal(sampleValue(metrics, 'settle_day_verdict', { business_date: D, kind: k, verdict: 'IN PROGRESS' }), undefined, `metrics: ${k} not IN PROGRESS`);
  }
  const dayPage = await (await fetch(`${base}/day/${D}`, { headers })).text();
  t.match(dayPage, /<section class="kind" id="tax" data-kind="tax" data-verdict="WAITING">/, 'the console shows WAITING');
  t.ok(dayPage.includes(`until ${wait.local}`), 'the console says until when');
  const early = await runCli(['report', '--date', D, '--format', 'csv'], { DATABASE_URL: viewerUrl });
  t.equal(records(early.stdout).rows.find((r) => r['kind'] === 'TOTAL')?.['reconcile_done_at'], '', 'the report: not reconciled yet');

  // The statement is final now: reconcile, DONE.
  await configureReconcile(db, '-1 day');
  for (const k of KINDS_OF_DAY) await enqueueStage(db, 'reconcile', D, k);
  await waitReconcile(db, D, KINDS_OF_DAY, 'done', 180_000);
  t.equal((await verdicts(db, D))[0]?.verdict, 'DONE');

  // The report against daily_status.
  const status2 = await dailyStatus(db, D);
  const sum = (f: (r: (typeof status2)[number]) => bigint) => status2.reduce((a, r) => a + f(r), 0n).toString();
  const csv = await runCli(['report', '--date', D, '--format', 'csv'], { DATABASE_URL: viewerUrl });
  t.equal(csv.code, 0, csv.stderr);
  const rep = records(csv.stdout);
  t.same(rep.head, REPORT_COLUMNS.map(([h]) => h), 'the CSV header names every column');
  t.same(rep.rows.map((r) => r['kind']), [...KINDS_OF_DAY, 'TOTAL'], 'a row per kind, then the totals');
  const total = rep.rows.find((r) => r['kind'] === 'TOTAL')!;
  const pairs: Array<[string, (r: (typeof status2)[number]) => bigint]> = [
    ['entries', (r) => r.entries], ['recorded_krw', (r) => r.amount_recorded], ['chunks', (r) => r.chunks_total],
    ['chunks_succeeded', (r) => r.chunks_succeeded], ['paid_krw', (r) => r.amount_paid], ['chunks_failed', (r) => r.chunks_failed],
    ['chunks_unresolved', (r) => r.chunks_unresolved], ['withdrawn_krw', (r) => r.amount_withdrawn],
  ];
  for (const [col, f] of pairs) {
    t.equal(total[col], sum(f), `totals: ${col} = daily_status summed over the kinds`);
    for (const s of status2) t.equal(rep.rows.find((r) => r['kind'] === s.kind)?.[col], f(s).toString(), `${s.kind}: ${col} = daily_status`);
  }
  const accr = await db.one(sql.type(z.object({ n: z.bigint(), krw: z.bigint() }))`
    select count(*) as n, sum(amount)::bigint as krw from settlement.accruals where settle_date = ${D}::date`);
  t.equal(total['accruals'], accr.n.toString());
  t.equal(total['accruals_krw'], accr.krw.toString(), 'accruals KRW = recorded KRW = paid = withdrawn on a clean day');
  t.equal(total['accruals_krw'], total['withdrawn_krw']);
  t.ok(BigInt(total['paid_krw']!) > 0n, 'money moved');
  for (const k of KINDS_OF_DAY) {
    const r = rep.rows.find((x) => x['kind'] === k)!;
    t.match(r['withdrawal_bank_tuno'], /^\d+$/, `${k}: the bank's transaction number of the withdrawal, from the statement`);
    t.equal(r['withdrawal_state'], 'succeeded');
    t.match(r['withdrawn_at'], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+09:00$/, 'times in KST with their offset');
    for (const c of ['record_done_at', 'first_payout_at', 'last_payout_at', 'confirm_done_at', 'withdraw_done_at', 'reconcile_done_at']) t.not(r[c], '', `${k}: ${c}`);
    t.ok(r['confirm_done_at']! <= r['withdraw_done_at']! && r['withdraw_done_at']! <= r['reconcile_done_at']!, 'confirm, withdraw, reconcile in order');
    t.equal(r['orphans'], '0');
    t.equal(r['breaks_open'], '0');
  }
  const json = await runCli(['report', '--date', D, '--format', 'json'], { DATABASE_URL: viewerUrl });
  t.equal(json.code, 0, json.stderr);
  t.match(json.stdout, /"paid_krw": \d+,/, 'JSON amounts are integer numbers');
  const parsed = JSON.parse(json.stdout) as Array<Record<string, unknown>>;
  t.same(parsed.map((r) => Object.fromEntries(Object.entries(r).map(([k, x]) => [k, x === null ? '' : String(x)]))), rep.rows, 'JSON = CSV');
  const table = await runCli(['report', '--date', D], { DATABASE_URL: viewerUrl });
  t.equal(table.code, 0);
  t.match(table.stdout, /paid_krw\s+[\d,]+\s+[\d,]+\s+[\d,]+/, 'the table: a column per kind and the total');
  // The console's Report tab and its CSV download: the same rows.
  const tab = await (await fetch(`${base}/day/${D}/report`, { headers })).text();
  t.match(tab, /<table class="report" id="report">/);
  t.match(tab, /href="\/day\/[0-9-]+\/report\.csv"/);
  const download = await fetch(`${base}/day/${D}/report.csv`, { headers });
  t.match(download.headers.get('content-type'), /^text\/csv/);
  t.match(download.headers.get('content-disposition'), `settlement-report-${D}.csv`);
  t.equal(await download.text(), csv.stdout, 'the console\'s CSV download is the same bytes as settle report --format csv');

  // The journal export against the ledger.
  const exp = await runCli(['export', 'journal', '--from', D, '--to', D], { DATABASE_URL: viewerUrl });
  t.equal(exp.code, 0, exp.stderr);
  const j = records(exp.stdout);
  t.same(j.head, JOURNAL_COLUMNS, 'the CSV header names every column');
  const dates = await db.anyFirst(sql.type(z.object({ d: z.string() }))`select distinct business_date::text as d from settlement.journal_entries`);
  t.same(dates, [D], 'every journal entry of this database is of D: the export of D is the whole ledger');
  const lines = await db.one(sql.type(z.object({ lines: z.bigint(), entries: z.bigint(), debit: z.bigint() }))`
    select count(*) as lines, count(distinct journal_id) as entries, sum(amount) filter (where amount > 0)::bigint as debit from settlement.journal_lines`);
  t.equal(BigInt(j.rows.length), lines.lines, 'every journal line, once');
  const byEntry = new Map<string, bigint>();
  const byAccount = new Map<string, bigint>();
  let prev: [bigint, number] = [0n, 0];
  let ordered = true;
  let debit = 0n;
  for (const r of j.rows) {
    const key: [bigint, number] = [BigInt(r['entry_id']!), Number(r['line_no'])];
    if (key[0] < prev[0] || (key[0] === prev[0] && key[1] <= prev[1])) ordered = false;
    prev = key;
    const d = BigInt(r['debit_krw']!);
    const c = BigInt(r['credit_krw']!);
    if ((d === 0n) === (c === 0n)) t.fail(`line ${r['entry_id']}/${r['line_no']} is a debit or a credit, not both or neither`);
    debit += d;
    byEntry.set(r['entry_id']!, (byEntry.get(r['entry_id']!) ?? 0n) + d - c);
    byAccount.set(r['account']!, (byAccount.get(r['account']!) ?? 0n) + d - c);
  }
  t.ok(ordered, 'stable order: (entry_id, line_no) ascending');
  t.equal(BigInt(byEntry.size), lines.entries, 'every entry');
  t.same([...byEntry.values()].filter((x) => x !== 0n), [], 'every entry balances: debits = credits');
  t.equal(debit, lines.debit, 'total debits = the ledger\'s, to the won');
  const ledger = await db.any(sql.type(z.object({ ledger_account: z.string(), balance: z.bigint() }))`select ledger_account, balance from settlement.ledger_balances order by 1`);
  t.same([...byAccount.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([a, b]) => ({ ledger_account: a, balance: b })).sort((x, y) => (x.ledger_account < y.ledger_account ? -1 : 1)),
    [...ledger].sort((x, y) => (x.ledger_account < y.ledger_account ? -1 : 1)), 'per account, the export equals settlement.ledger_balances to the won');
  const transfers = await db.any(sql.type(z.object({ id: z.bigint(), is_tuno: z.string() }))`select id, is_tuno from settlement.transfers where state = 'succeeded'`);
  const tuno = new Map(transfers.map((x) => [x.id.toString(), x.is_tuno]));
  const moved = j.rows.filter((r) => r['event'] === 'payout' || r['event'] === 'withdrawal');
  t.ok(moved.length > 0 && moved.every((r) => r['reference_type'] === 'transfer' && tuno.get(r['transfer_id']!) === r['is_tuno']), 'payout and withdrawal lines name their transfer and its IsTuno');
  t.ok(j.rows.filter((r) => r['event'] === 'record').every((r) => r['reference_type'] === 'accruals' && r['reference'] === `record:${D}:${r['kind']}`), 'record lines name the day\'s accruals');
  // JSON: the same lines; two exports at once: the same bytes.
  const [ej, e1, e2] = await Promise.all([
    runCli(['export', 'journal', '--from', D, '--to', D, '--format', 'json'], { DATABASE_URL: viewerUrl }),
    runCli(['export', 'journal', '--from', D, '--to', D], { DATABASE_URL: viewerUrl }),
    runCli(['export', 'journal', '--from', D, '--to', D], { DATABASE_URL: viewerUrl }),
  ]);
  t.equal(ej.code, 0, ej.stderr);
  t.same((JSON.parse(ej.stdout) as Array<Record<string, unknown>>).map((r) => Object.fromEntries(Object.entries(r).map(([k, x]) => [k, x === null ? '' : String(x)]))), j.rows, 'JSON = CSV');
  t.equal(e1.stdout, exp.stdout, 'run again: the same export');
  t.equal(e2.stdout, exp.stdout, 'and concurrently');
  // Paged reads (keyset): 7 lines a page give the same lines.
  const paged: JournalLine[] = [];
  let pages = 0;
  const r = await exportJournal(db, D, D, async (ls) => void (pages++, paged.push(...ls)), 7);
  t.ok(pages > 2, `${pages} pages of 7 lines`);
  t.same(paged.map((l) => `${l.entry_id}/${l.line_no}/${l.debit_krw}/${l.credit_krw}/${l.account}`), j.rows.map((x) => `${x['entry_id']}/${x['line_no']}/${x['debit_krw']}/${x['credit_krw']}/${x['account']}`), 'paged: the same lines in the same order');
  t.equal(r.debit, r.credit);
  t.equal(r.debit, lines.debit);
  // Another range: nothing, still a header.
  const none = await runCli(['export', 'journal', '--from', '2001-01-01', '--to', '2001-01-31'], { DATABASE_URL: viewerUrl });
  t.equal(none.code, 0);
  t.equal(none.stdout, `${JOURNAL_COLUMNS.join(',')}\r\n`, 'no line: the header only');
});

t.test('bad dates and ranges are usage errors (exit 2) and read nothing; a day that does not exist is exit 1', async (t) => {
  const unreachable = { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' };
  const usage: string[][] = [
    ['report'],
    ['report', '--date', '2026-02-30'],
    ['report', '--date', '26-01-01'],
    ['report', '--date', '2026-01-01', '--format', 'xml'],
    ['report', '--date', '2026-01-01', '--kind', 'tax'],
    ['export'],
    ['export', 'ledger', '--from', '2026-01-01', '--to', '2026-01-02'],
    ['export', 'journal', '--from', '2026-01-01'],
    ['export', 'journal', '--from', '2026-01-03', '--to', '2026-01-02'],
    ['export', 'journal', '--from', '2026-13-01', '--to', '2026-12-02'],
    ['export', 'journal', '--from', '2026-01-01', '--to', '2026-01-02', '--format', 'table'],
  ];
  for (const args of usage) {
    const r = await runCli(args, unreachable);
    t.equal(r.code, 2, `${args.join(' ')}: exit 2 (${r.stderr.trim()})`);
    t.match(r.stderr, /^settle: /, 'one line saying why');
  }
  const { url } = await freshDb(t);
  const viewerUrl = await ensureLoginRole(url, VIEWER);
  const r = await runCli(['report', '--date', '2001-01-01'], { DATABASE_URL: viewerUrl });
  t.equal(r.code, 1);
  t.match(r.stderr, /no settlement day 2001-01-01/);
  // The same refusals in SQL, by name, for a viewer.
  const c = await pgClient(t, viewerUrl);
  const code = (q: string) => c.query(q).then(() => 'ok', (e: { code?: string }) => e.code);
  t.equal(await code(`select * from settlement.journal_export_page(null, '2026-01-01', 0, 0, 10)`), 'ST001', 'no range: ST001');
  t.equal(await code(`select * from settlement.journal_export_page('2026-01-02', '2026-01-01', 0, 0, 10)`), 'ST050', 'from after to: ST050');
  t.equal(await code(`select * from settlement.journal_export_page('2026-01-01', '2026-01-02', 0, 0, 10)`), 'ok', 'a range: read');
  t.equal(await code(`select * from settlement.day_report where business_date = '2026-01-01'`), 'ok', 'the viewer reads the report');
  t.equal(await code(`select * from settlement.history(90)`), 'ok', 'and the history');
});

t.test('a day with chunks failed for good and one unresolved: the report, the history and the verdict agree with the database', async (t) => {
  const { db } = await freshDb(t);
  const D = pastDate(2);
  await seed(db, { date: D, accounts: 3, kinds: ['tax'] });
  await db.query(sql.unsafe`update settlement.accounts set fin_acno = '0082' || account_no where role = 'loan'`);
  await db.query(sql.unsafe`select settlement.run_stage('record', ${D}::date, 'tax')`);
  await db.query(sql.unsafe`select settlement.run_stage('pay', ${D}::date, 'tax')`);
  // As the transfer task would record the bank's answers: account 2 has no money, one chunk is left unresolved.
  const xs = await db.any(sql.type(z.object({ id: z.bigint(), from_account: z.string() }))`
    select id, from_account from settlement.transfers where business_date = ${D}::date order by id`);
  const unresolvedId = xs.find((x) => x.from_account !== '1000000002')!.id;
  for (const x of xs) {
    const c = await claimTransfer(db, Number(x.id), 'test-pool', 60_000);
    const o = x.id === unresolvedId ? { outcome: 'unresolved' as const, reason: 'timeout' }
      : x.from_account === '1000000002' ? { outcome: 'failed' as const, code: 'S0211', message: 'insufficient funds' }
      : { outcome: 'succeeded' as const, processedAt: '20260101120000' };
    await finishTransfer(db, Number(x.id), c.is_tuno, o);
  }
  const facts = await db.one(sql.type(z.object({ failed: z.bigint(), failed_krw: z.bigint(), paid: z.bigint(), unresolved_krw: z.bigint() }))`
    select count(*) filter (where state = 'failed') as failed, coalesce(sum(amount) filter (where state = 'failed'), 0)::bigint as failed_krw,
           coalesce(sum(amount) filter (where state = 'succeeded'), 0)::bigint as paid,
           coalesce(sum(amount) filter (where unresolved_since is not null), 0)::bigint as unresolved_krw
    from settlement.transfers where business_date = ${D}::date`);
  t.ok(facts.failed > 0n, `${facts.failed} chunk(s) failed for good`);
  const [tax, total] = await dayReport(db, D);
  t.equal(tax?.kind, 'tax');
  t.equal(total?.is_total, true);
  for (const r of [tax!, total!]) {
    t.equal(r.chunks_failed, facts.failed);
    t.equal(r.failed_krw, facts.failed_krw);
    t.equal(r.paid_krw, facts.paid);
    t.equal(r.chunks_unresolved, 1n);
    t.equal(r.unresolved_krw, facts.unresolved_krw);
    t.equal(r.chunks_succeeded + r.chunks_failed + r.chunks_unresolved + r.chunks_pending, r.chunks, 'every chunk in one column');
    t.equal(r.paid_krw + r.failed_krw + r.unresolved_krw + r.pending_krw, r.chunks_krw, 'and its KRW');
    t.equal(r.withdrawn_krw, 0n);
    t.equal(r.withdrawal_state, null, 'no withdrawal yet');
  }
  t.equal(total!.confirm_done_at, null, 'confirm is not done');
  t.not(total!.record_done_at, null, 'record is');
  const [h] = await history(db, 30);
  t.equal(h?.chunks_failed, facts.failed, 'history: each failed attempt once');
  t.equal(h?.paid_krw, facts.paid);
  t.equal(h?.done_hours, null, 'not DONE: no hours');
  t.equal(h?.verdict, 'IN PROGRESS', 'one chunk is still unresolved');
});
