/**
 * The bank's evidence always wins (issue 21), end to end. D: a request our own
 * checks refuse before it reaches the wire is not an unknown outcome. C (the
 * bank client against the simulator over HTTP): no send starts under a past
 * date or after the claim ends. A and C with a worker: test/evidence-e2e.test.ts.
 */
import t, { type Test } from 'tap';
import { sql } from 'slonik';
import { z } from 'zod';
import { simAdminClient } from '../../src/bank-sim/sim-admin-client.js';
import { runStage } from '../../src/db/stages.js';
import { registerAtSimulator, seed } from '../../src/seed.js';
import { prepareSim, startSim, TOKEN, workerEnv } from '../helpers/day.js';
import { freshDb } from '../helpers/db.js';
import { pastDate } from '../helpers/fixtures.js';
import { spawnWorker, waitFor } from '../helpers/procs.js';

async function plannedDay(t: Test, D: string, accounts = 3) {
  const { url, db } = await freshDb(t);
  const sim = await startSim(t);
  await seed(db, { date: D, accounts, kinds: ['tax'] });
  await prepareSim(db, sim);
  await registerAtSimulator(db, sim.url);
  t.equal((await runStage(db, 'record', D, 'tax')).outcome, 'done');
  t.equal((await runStage(db, 'pay', D, 'tax')).outcome, 'done');
  return { url, db, sim };
}

t.test('D (e2e): a request our own validation refuses is never sent: the chunk fails for good with the reason, once', async (t) => {
  const D = pastDate(1);
  const { url, db, sim } = await plannedDay(t, D, 4);
  const over = await db.oneFirst(sql.type(z.object({ n: z.number() }))`select count(*)::int as n from settlement.transfers where purpose = 'payout' and amount > 50000`);
  t.ok(over > 0, `${over} chunk(s) planned over the limit about to be set`);
  // The per-call limit is lowered after the chunks were planned.
  await db.query(sql.unsafe`select settlement.configure('Asia/Seoul', 50000, 8)`);
  await spawnWorker(t, workerEnv(url, sim.url, { BANK_PER_CALL_LIMIT: '50000' }));
  const f = await waitFor('the chunks over the limit fail for good', async () => {
    const r = await db.any(sql.type(z.object({ problem: z.string(), bank_code: z.string().nullable(), bank_message: z.string().nullable() }))`
      select problem, bank_code, bank_message from settlement.payout_failures where business_date = ${D}::date`);
    return r.length === over && r.every((x) => x.problem === 'failed') ? r : undefined;
  }, 90_000);
  t.ok(f.every((x) => x.bank_code === 'not_sent' && /per-call limit/.test(x.bank_message ?? '')), 'recorded as not sent, with the reason');
  const confirm = await waitFor('confirm blocked', async () => {
    const r = await db.maybeOne(sql.type(z.object({ state: z.string(), detail: z.string() }))`
      select state::text as state, detail from settlement.stage_runs where business_date = ${D}::date and kind = 'tax' and stage = 'confirm'`);
    return r?.state === 'blocked' ? r : undefined;
  }, 60_000);
  t.match(confirm.detail, /failed for good/, 'the day blocks once, with the cause');
  t.equal(await db.oneFirst(sql.type(z.object({ n: z.number() }))`select count(*)::int as n from settlement.transfers where unresolved_since is not null`), 0, 'nothing unresolved');
  const bank = (await (await fetch(`${sim.url}/_sim/transfers`)).json()) as Array<{ amount: string }>;
  t.ok(bank.every((b) => BigInt(b.amount) <= 50000n), 'nothing over the limit reached the bank');
});

t.test('C (bank client, simulator over HTTP): a send is checked against the database\'s date and the claim\'s lease right before it goes; after either, the attempt only asks', async (t) => {
  const { createNhBankClient } = await import('../../src/bank/client.js');
  const { startBankSimulator } = await import('../../src/bank-sim/simulator.js');
  const { emptyCodeBook } = await import('../../src/bank/port.js');
  const ISCD = '000123';
  const APSNO = '001';
  // 00:00:05 KST on 2025-03-15: the attempt was claimed (and its Tsymd fixed) on the 14th.
  const AFTER_MIDNIGHT = new Date('2025-03-14T15:00:05Z');
  const sim = await startBankSimulator({ accessToken: TOKEN, iscd: ISCD, recordRequests: true }, { now: () => AFTER_MIDNIGHT });
  t.teardown(() => sim.close());
  const admin = simAdminClient(sim.url);
  await admin.openAccounts([{ acno: '3020000001001', balance: 1_000_000n }, { acno: '3020000009001', balance: 0n }]);
  await admin.registerContracts([{ iscd: ISCD, fintechApsno: APSNO, bncd: '011', acno: '3020000009001' }]);
  const [loan] = await admin.registerFinAccounts([{ bncd: '011', acno: '3020000001001' }]);
  const codes = await admin.codes();
  const client = createNhBankClient({
    baseUrl: sim.url, iscd: ISCD, fintechApsno: APSNO, accessToken: TOKEN, perCallLimit: 100_000n, timeoutMs: 1_000, retries: 2, minBackoffMs: 5, maxBackoffMs: 20,
    codeBook: (api, rpcd) => codes.find((c) => c.rpcd === rpcd && c.apis.includes(api))?.class ?? emptyCodeBook(api, rpcd), now: () => AFTER_MIDNIGHT,
  });
  t.teardown(() => client.close());
  const order = { purpose: 'payout' as const, isTuno: '100000000000000071', tsymd: '20250314', fintechApsno: APSNO, finAcno: loan!.finAcno, amount: 70_000n, memo: 'DS100000000000000071', sendable: true, resume: false };
  const r = await client.transfer(order);
  t.equal(r.status, 'unresolved', `the date is over by the clock: ${JSON.stringify(r)}`);
  const sent = (await admin.requests()).filter((q) => q.api === 'DrawingTransfer');
  t.equal(sent.length, 0, 'nothing was sent under the past date');
  // The same on the right date, but with the claim's lease over: only asks.
  const onTime = { ...order, isTuno: '100000000000000072', memo: 'DS100000000000000072', tsymd: '20250315', sendUntilMs: AFTER_MIDNIGHT.getTime() - 1 };
  const r2 = await client.transfer(onTime);
  t.equal(r2.status, 'unresolved', 'a lease that is over: no send');
  t.equal((await admin.requests()).filter((q) => q.api === 'DrawingTransfer').length, 0, 'still nothing sent');
  const r3 = await client.transfer({ ...onTime, isTuno: '100000000000000073', memo: 'DS100000000000000073', sendUntilMs: AFTER_MIDNIGHT.getTime() + 60_000 });
  t.equal(r3.status, 'succeeded', 'within the date and the lease it sends');
});

t.test('C: a worker whose attempt could outlast config.max_attempt refuses to start (its claims would be refused)', async (t) => {
  const { url } = await freshDb(t);
  const sim = await startSim(t);
  const { runCli } = await import('../helpers/procs.js');
  const r = await runCli(['worker'], { ...workerEnv(url, sim.url, { BANK_TIMEOUT_MS: '600000' }), HTTP_PORT: '0' });
  t.equal(r.code, 2, 'refused as a configuration error');
  t.match(r.stderr, /BANK_TIMEOUT_MS=600000 makes one transfer attempt last up to \d+ ms, longer than settlement\.config\.max_attempt/, 'says why');
});
