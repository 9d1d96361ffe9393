import http from 'node:http';
import t from 'tap';
import { sql } from 'slonik';
import { z } from 'zod';
import { simAdminClient } from '../../src/bank-sim/sim-admin-client.js';
import { dailyStatus, detectAlerts, enqueueStage } from '../../src/db/operations.js';
import { seed } from '../../src/seed.js';
import { prepareSim, startSim, waitAllWithdrawn, workerEnv } from '../helpers/day.js';
import { freshDb } from '../helpers/db.js';
import { pastDate } from '../helpers/fixtures.js';
import { runCli, spawnWorker, waitFor, type WorkerProc } from '../helpers/procs.js';
import { parsePrometheus, sampleValue } from '../helpers/prom.js';

/** A local webhook receiver: every JSON body posted to it. */
async function receiver(t: { teardown(fn: () => unknown): void }) {
  const bodies: Array<{ text?: unknown }> = [];
  const server = http.createServer((req, res) => {
    let b = '';
    req.on('data', (d) => (b += d));
    req.on('end', () => {
      bodies.push(JSON.parse(b));
      res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise((r) => server.close(r)));
  const addr = server.address() as { port: number };
  return { url: `http://127.0.0.1:${addr.port}/hook`, bodies };
}

async function httpPort(w: WorkerProc): Promise<number> {
  return waitFor('the worker\'s http:listen', async () => {
    const line = w.logs.find((l) => l.includes('"event":"http:listen"'));
    return line ? (JSON.parse(line).port as number) : undefined;
  }, 30_000, 100);
}

const scrape = async (port: number) => {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  return { status: res.status, families: parsePrometheus(await res.text()) };
};

t.test('a day blocked by insufficient funds: metrics, status --check, one alert; after funding and retry everything clears', async (t) => {
  const { url, db } = await freshDb(t);
  const sim = await startSim(t);
  const hook = await receiver(t);
  const D = pastDate(1);
  await seed(db, { date: D, accounts: 12, kinds: ['tax'] });
  await prepareSim(db, sim);
  // Only the blocked day may alert here (its withdrawal deadline is days away).
  await db.query(sql.unsafe`update settlement.ops_settings set withdraw_deadline = '5 days'`);
  const poor = '1000000003';
  const owed = await db.oneFirst(sql.type(z.object({ a: z.bigint() }))`select sum(amount)::bigint as a from settlement.accruals where account_no = ${poor}`);
  await simAdminClient(sim.url).openAccounts([{ bncd: '011', acno: poor, balance: 0n }]);
  const w = await spawnWorker(t, workerEnv(url, sim.url, { ALERT_WEBHOOK_URL: hook.url }));
  const port = await httpPort(w);
  await enqueueStage(db, 'record', D, 'tax');
  await waitFor('confirm blocked', async () => (await dailyStatus(db, D))[0]?.confirm === 'blocked');

  // /metrics, parsed by a real Prometheus text parser.
  const m1 = await scrape(port);
  t.equal(m1.status, 200);
  const day = { business_date: D, kind: 'tax' };
  const failed = sampleValue(m1.families, 'settle_day_chunks_failed', day);
  t.ok(failed !== undefined && failed > 0, `failed chunks shown: ${failed}`);
  t.equal(sampleValue(m1.families, 'settle_day_unpaid_krw', day), Number(owed), 'unpaid KRW of the day and kind');
  t.equal(sampleValue(m1.families, 'settle_day_blocked', day), 1);
  t.equal(sampleValue(m1.families, 'settle_day_stage', { ...day, stage: 'confirm', state: 'blocked' }), 1);
  t.ok((sampleValue(m1.families, 'settle_bank_calls_total', { api: 'transfer_payout', outcome: 'failed' }) ?? 0) >= failed!, 'bank failures counted as failed transfers, not job successes');
  t.ok(m1.families.some((f) => f.name === 'settle_bank_call_duration_seconds' && f.type === 'HISTOGRAM'), 'bank latency histogram');
  t.ok(m1.families.some((f) => f.name === 'settle_worker_heartbeat_age_seconds' && f.metrics.some((s) => s.labels?.pool_id === w.poolId)), 'heartbeat age of this worker');
  t.ok(m1.families.some((f) => f.name === 'process_cpu_user_seconds_total'), 'default process metrics');
  t.same(m1.families.filter((f) => !f.help).map((f) => f.name), [], '# HELP on every family');

  // The check names it and exits 1.
  const check = await runCli(['status', '--check'], { DATABASE_URL: url });
  t.equal(check.code, 1, check.stderr);
  t.match(check.stdout, new RegExp(`${D} tax BLOCKED`));
  const status = await runCli(['status', '--date', D], { DATABASE_URL: url });
  t.match(status.stdout, new RegExp(`^${D}\\s+BLOCKED\\s+tax: confirm blocked`, 'm'));
  t.match(status.stdout, /workers: 1 alive/);

  // One alert, whatever the number of watches (the crontab's, and ours).
  await detectAlerts(db);
  await detectAlerts(db);
  await waitFor('the webhook got the alert', async () => hook.bodies.length >= 1, 30_000);
  t.equal(hook.bodies.length, 1, 'one message');
  t.match(String(hook.bodies[0]!.text), new RegExp(`${D} tax BLOCKED.*settle retry --date ${D}`));
  // The alert task records the delivery after the webhook answered: wait for that write, however slow the machine.
  const sent = await waitFor('the alert recorded as sent', async () => {
    const a = await db.one(sql.type(z.object({ sent: z.boolean(), cleared: z.boolean() }))`select sent_at is not null as sent, cleared_at is not null as cleared from settlement.alerts where key = ${'blocked:' + D + ':tax'}`);
    return a.sent ? a : undefined;
  }, 30_000, 100);
  t.same(sent, { sent: true, cleared: false });

  // Dry run, then fund and retry the whole day.
  const dry = await runCli(['retry', '--date', D, '--dry-run'], { DATABASE_URL: url, BANK_URL: sim.url, BANK_ACCESS_TOKEN: 'test-token' });
  t.equal(dry.code, 0, dry.stderr);
  t.match(dry.stdout, new RegExp(`tax payout from \\*{4}${poor.slice(-4)}: \\d+ transfer\\(s\\), [0-9,]+ KRW .*available 0 KRW, SHORT`));
  // A retry its own dry run shows SHORT would fail again: refused, nothing changed.
  const failedBefore = await db.oneFirst(sql.type(z.object({ n: z.bigint() }))`select count(*) as n from settlement.transfers where business_date = ${D}::date and state = 'failed'`);
  const refused = await runCli(['retry', '--date', D, '--reason', 'too early'], { DATABASE_URL: url, BANK_URL: sim.url, BANK_ACCESS_TOKEN: 'test-token' });
  t.equal(refused.code, 1, `retry refused while SHORT: ${refused.stdout}${refused.stderr}`);
  t.match(refused.stdout, new RegExp(`not retried: .*\\n.*tax payout from \\*{4}${poor.slice(-4)}: .*SHORT`));
  t.equal(await db.oneFirst(sql.type(z.object({ n: z.bigint() }))`select count(*) as n from settlement.transfers where business_date = ${D}::date and state = 'failed'`), failedBefore, 'the refused retry changed nothing');
  await simAdminClient(sim.url).openAccounts([{ bncd: '011', acno: poor, balance: owed }]);
  const retry = await runCli(['retry', '--date', D, '--reason', 'loan account funded'], { DATABASE_URL: url });
  t.equal(retry.code, 0, retry.stderr);
  t.match(retry.stdout, /re-enqueued \d+ failed transfer\(s\) for .* tax/);
  await waitAllWithdrawn(db, [D], 1);

  // /metrics serves a snapshot at most METRICS_SNAPSHOT_MS old: wait for one made after the payout.
  const m2 = await waitFor('a metrics snapshot after the payout', async () => {
    const m = await scrape(port);
    return sampleValue(m.families, 'settle_day_chunks_failed', day) === 0 ? m : undefined;
  }, 30_000, 500);
  t.equal(sampleValue(m2.families, 'settle_day_chunks_failed', day), 0, 'failed chunks clear');
  t.equal(sampleValue(m2.families, 'settle_day_unpaid_krw', day), 0, 'unpaid KRW clears');
  t.equal(sampleValue(m2.families, 'settle_day_blocked', day), 0);
  // Withdrawn; DONE comes with reconcile, once the statement of the day's transfers is final.
  t.equal(sampleValue(m2.families, 'settle_day_verdict', { ...day, verdict: 'BLOCKED' }) ?? 0, 0, 'no longer BLOCKED');
  const ok = await runCli(['status', '--check'], { DATABASE_URL: url });
  t.equal(ok.code, 0, ok.stdout + ok.stderr);
  await detectAlerts(db);
  t.ok(await db.oneFirst(sql.type(z.object({ c: z.boolean() }))`select cleared_at is not null as c from settlement.alerts where key = ${'blocked:' + D + ':tax'}`), 'the alert is recorded as cleared');
  t.equal(hook.bodies.length, 1, 'still one message');
  const audit = await db.one(sql.type(z.object({ action: z.string(), reason: z.string().nullable(), application_name: z.string() }))`
    select action, reason, application_name from settlement.operator_actions where action = 'retry_day'`);
  t.same(audit, { action: 'retry_day', reason: 'loan account funded', application_name: 'settle-cli' });
});

t.test('/healthz, /readyz', async (t) => {
  const { url } = await freshDb(t);
  const sim = await startSim(t);
  const w = await spawnWorker(t, workerEnv(url, sim.url));
  const port = await httpPort(w);
  const h = await fetch(`http://127.0.0.1:${port}/healthz`);
  t.equal(h.status, 200);
  const r = await fetch(`http://127.0.0.1:${port}/readyz`);
  const body = (await r.json()) as { status: string; problems: string[] };
  t.equal(r.status, 200, JSON.stringify(body));
  t.equal(body.status, 'ready');
  t.equal((await fetch(`http://127.0.0.1:${port}/nope`)).status, 404);
});

/** GET with a Host header of our choosing (fetch does not let us set one). */
const getWithHost = (port: number, path: string, host: string) =>
  new Promise<{ status: number; body: string }>((resolve, reject) =>
    http.get({ host: '127.0.0.1', port, path, headers: { host }, agent: false }, (res) => {
      let b = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (b += d));
      res.on('end', () => resolve({ status: res.statusCode!, body: b }));
    }).on('error', reject));

t.test('64 concurrent scrapes: one database snapshot, on a pool of its own; any Host; nothing about accounts; no console without a user', async (t) => {
  const { url, db } = await freshDb(t);
  const sim = await startSim(t);
  const D = pastDate(1);
  await seed(db, { date: D, accounts: 4, kinds: ['tax'] });
  await prepareSim(db, sim);
  // A long snapshot period, so the count below cannot depend on how fast this machine is.
  const w = await spawnWorker(t, workerEnv(url, sim.url, { METRICS_SNAPSHOT_MS: '600000' }));
  const port = await httpPort(w);
  t.ok(w.logs.some((l) => l.includes('"event":"console:off"')), 'no console user configured: the console is off (logged)');
  t.equal((await fetch(`http://127.0.0.1:${port}/`, { redirect: 'manual' })).status, 404, 'and / is not served');
  await enqueueStage(db, 'record', D, 'tax');
  await waitAllWithdrawn(db, [D], 1);

  const snapshots = (body: string) => sampleValue(parsePrometheus(body), 'settle_metrics_snapshots_total', {});
  // Nobody has scraped this worker yet: the 64 come to a cold cache at once.
  const hosts = ['10.1.2.3:9464', '127.0.0.1.rebind.evil.example', 'prometheus.monitoring.svc', `127.0.0.1:${port}`];
  const replies = await Promise.all(Array.from({ length: 64 }, (_, i) => getWithHost(port, '/metrics', hosts[i % hosts.length]!)));
  t.same(replies.map((r) => r.status), Array(64).fill(200), '64 concurrent scrapes, with any Host (scrapers use the pod\'s address), all answered');
  const seen = new Set(replies.map((r) => snapshots(r.body)));
  t.same([...seen], [1], '64 concurrent scrapes: 1 database snapshot between them (settle_metrics_snapshots_total)');
  const later = await Promise.all(Array.from({ length: 64 }, () => getWithHost(port, '/metrics', 'anything.example')));
  t.same([...new Set(later.map((r) => snapshots(r.body)))], [1], '64 more within METRICS_SNAPSHOT_MS: no further snapshot');
  t.ok(replies.every((r) => sampleValue(parsePrometheus(r.body), 'settle_day_recorded_krw', { business_date: D, kind: 'tax' })! > 0), 'each shows the day');
  const accounts = await db.anyFirst(sql.type(z.object({ a: z.string() }))`
    select account_no as a from settlement.accounts union all select fin_acno from settlement.accounts where fin_acno is not null`);
  t.ok(accounts.length > 8);
  // Names, labels and help text only: a sample's value (a byte count, a timestamp) may contain any digits.
  const words = (body: string) => body.split('\n').map((l) => (l.startsWith('#') ? l : l.replace(/\s+[-+0-9.eE]+(\s+[0-9]+)?$|\s+(NaN|[+-]Inf)$/, ''))).join('\n');
  t.notOk(replies.some((r) => accounts.some((a) => words(r.body).includes(a))), 'no account number or FinAcno in any scrape');
  for (const p of ['/healthz', '/readyz']) {
    const r = await getWithHost(port, p, 'evil.example');
    t.equal(r.status, 200, `${p} answers any Host`);
    t.notOk(accounts.some((a) => r.body.includes(a)), `${p} says nothing about accounts`);
  }
  const pool = await db.oneFirst(sql.type(z.object({ n: z.bigint() }))`
    select count(*) as n from pg_stat_activity where application_name = 'settle-metrics' and datname = current_database()`);
  t.ok(pool >= 1n && pool <= 2n, `/metrics reads on its own pool (${pool} connection(s) named settle-metrics, at most 2)`);
});
