import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'slonik';
import { z } from 'zod';
import { BANK_SLOT_LOCK_CLASS, SLOTS_OF_THIS_CONNECTION } from '../../src/db/bank-slots.js';
import { SettlementError } from '../../src/db/errors.js';
import { runStage } from '../../src/db/stages.js';
import { RetryLaterError, type Claim } from '../../src/domain.js';
import { createBankDesk, type Attempt, type BankDesk } from '../../src/desk/index.js';
import { registerAtSimulator, seed } from '../../src/seed.js';
import { prepareSim, startSim } from '../helpers/day.js';
import { freshDb, pgClient } from '../helpers/db.js';
import { pastDate } from '../helpers/fixtures.js';
import { waitFor } from '../helpers/procs.js';

const D = pastDate(1);
const slotsInUse = (db: Awaited<ReturnType<typeof freshDb>>['db']) =>
  db.oneFirst(sql.type(z.object({ n: z.bigint() }))`select settlement.bank_slots_in_use() as n`);

function desk(t: { teardown(fn: () => unknown): void }, url: string, name: string, extra: Partial<Parameters<typeof createBankDesk>[0]> = {}): BankDesk {
  // As a worker process holds its claims: "<pool>#<its secret>" (src/worker/runner.ts).
  const d = createBankDesk({ url, holder: () => `${name}#secret-of-${name}`, claimLeaseMs: 30_000, maxWaitMs: 20_000, applicationName: name, ...extra });
  t.teardown(() => d.close());
  return d;
}

/** A fresh database with a day of `accounts` chunks recorded and paid at a zero-latency simulator (jobs enqueued, no worker running). */
async function paidDay(t: Parameters<typeof freshDb>[0] & { equal: Function }, accounts: number, poolSize?: number) {
  const { url, db } = await freshDb(t, poolSize === undefined ? {} : { poolSize });
  const sim = await startSim(t, { latencyMs: 0, jitterMs: 0 });
  await seed(db, { date: D, accounts, kinds: ['tax'] });
  await prepareSim(db, sim);
  await registerAtSimulator(db, sim.url);
  t.equal((await runStage(db, 'record', D, 'tax')).outcome, 'done');
  t.equal((await runStage(db, 'pay', D, 'tax')).outcome, 'done');
  return { url, db };
}

t.test('three desks (three processes) never have more calls in flight than the cap, and give every slot back', async (t) => {
  const { url, db } = await freshDb(t);
  await db.query(sql.unsafe`select settlement.configure('Asia/Seoul', 100000, 3)`);
  const desks = ['desk-a', 'desk-b', 'desk-c'].map((n) => desk(t, url, n));
  let inside = 0;
  let most = 0;
  const call = async () => {
    inside++;
    most = Math.max(most, inside);
    await sleep(15);
    inside--;
  };
  await Promise.all(Array.from({ length: 60 }, (_, i) => desks[i % 3]!.gate().run(call)));
  t.equal(most, 3, `at most 3 calls at once across the desks, and the cap was used (saw ${most})`);
  await waitFor('every slot given back', async () => (await slotsInUse(db)) === 0n, 5_000, 20);
  t.equal(await slotsInUse(db), 0n, 'no slot is held once the desks have nothing to do');
  t.equal(desks.reduce((a, d) => a + d.inUse(), 0), 0, 'and the desks know it');
});

t.test('a desk whose connection dies frees its slots with it, and carries on with a new one', async (t) => {
  const { url, db } = await freshDb(t);
  await db.query(sql.unsafe`select settlement.configure('Asia/Seoul', 100000, 2)`);
  const errors: unknown[] = [];
  const a = desk(t, url, 'desk-dies', { onError: (e) => errors.push(e) });
  const b = desk(t, url, 'desk-waits');
  let release!: () => void;
  const held = a.gate().run(() => new Promise<void>((r) => (release = r)));
  const held2 = a.gate().run(() => new Promise<void>((r) => setTimeout(r, 10)));
  await held2;
  await waitFor('desk-dies holding a slot', async () => (await slotsInUse(db)) >= 1n, 5_000, 20);
  const admin = await pgClient(t, url);
  await admin.query(`select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'desk-dies'`);
  await waitFor('its slots freed with the connection', async () => (await slotsInUse(db)) === 0n, 5_000, 20);
  t.pass('the slots came back when the connection died, though the call had not ended');
  t.ok(errors.length > 0, 'the desk reported its lost connection');
  // Both slots are free for another process now.
  let both = 0;
  await Promise.all([0, 1].map(() => b.gate().run(async () => {
    both++;
    await sleep(20);
  })));
  t.equal(both, 2, 'another desk uses both slots');
  release();
  await held;
  // The desk that lost its connection opens another for its next call.
  let ran = false;
  await a.gate().run(async () => {
    ran = true;
    t.equal(await slotsInUse(db), 1n, 'its new call holds a slot on its new connection');
  });
  t.ok(ran, 'the next call through the desk ran');
});

t.test('claims and outcomes in batches give each transfer the answers one by one would', async (t) => {
  const { url, db } = await paidDay(t, 6, 4);
  const ids = await db.anyFirst(sql.type(z.object({ id: z.number() }))`select id::int as id from settlement.transfers where purpose = 'payout' order by id limit 5`);
  t.equal(ids.length, 5, 'five chunks to work with');
  const [ok, no, later, stale, twice] = ids as [number, number, number, number, number];
  const d = desk(t, url, 'desk-batch');

  // Five attempts at once: their claims travel together; a second attempt on
  // the same transfer in this process is told to come back later. Each
  // attempt stays open until its outcome is recorded below, with its claim
  // (only the attempt holding the claim records failed or unresolved).
  const gate = new Promise<void>((r) => setTimeout(r, 50));
  let releaseAll!: () => void;
  const open = new Promise<void>((r) => (releaseAll = r));
  const attempt: Attempt[] = [];
  const claimedBack: Array<(c: Claim) => void> = [];
  const claimed = [0, 1, 2, 3, 4].map((i) => new Promise<Claim>((r) => (claimedBack[i] = r)));
  const running = [ok, no, later, stale, twice].map((id, i) => d.withAttempt(id, async (a) => {
    attempt[i] = a;
    const c = await a.claim();
    await gate;
    claimedBack[i]!(c);
    await open;
  }));
  const results = await Promise.allSettled([...claimed, d.withAttempt(twice, (a) => a.claim())]);
  const claims = results.slice(0, 5).map((r) => (r.status === 'fulfilled' ? r.value as Claim : null));
  t.ok(claims.every((c) => c?.action === 'send' && c.sendable && !c.resume), 'every chunk claimed for a first send');
  t.same(claims.map((c) => Number(c?.transfer_id)), [ok, no, later, stale, twice], 'each claim is its own transfer');
  const dup = results[5]!;
  t.ok(dup.status === 'rejected' && dup.reason instanceof RetryLaterError, 'the same transfer attempted twice at once in one process: retry later');
  const claimedBy = await db.anyFirst(sql.type(z.object({ c: z.string().nullable() }))`select claimed_by as c from settlement.transfers where id = any(${sql.array(ids, 'int8')})`);
  t.ok(claimedBy.every((c) => c === 'desk-batch'), 'claimed in the desk\'s name');

  // Outcomes, together: a success, a failure, an unresolved answer, and an
  // answer under a number the transfer does not hold.
  const tuno = (i: number) => claims[i]!.is_tuno;
  const finished = await Promise.all([
    attempt[0]!.finish(tuno(0), { outcome: 'succeeded', processedAt: `${D.replaceAll('-', '')}120000` }),
    attempt[1]!.finish(tuno(1), { outcome: 'failed', code: 'E0001', message: 'refused' }),
    attempt[2]!.finish(tuno(2), { outcome: 'unresolved', reason: 'timeout' }),
    attempt[3]!.finish('99999999999999', { outcome: 'failed', code: 'E0001', message: 'refused' }),
  ]);
  t.same(finished, ['succeeded', 'failed', 'unresolved', 'stale'], 'each outcome recorded as finish_transfer would');
  releaseAll();
  await Promise.all(running);
  const again = await d.withAttempt(ok, (a) => a.finish(tuno(0), { outcome: 'succeeded', processedAt: `${D.replaceAll('-', '')}120000` }));
  t.equal(again, 'already_settled', 'a second success for the same transfer changes nothing');
  const settledClaim = await d.withAttempt(ok, (a) => a.claim());
  t.equal(settledClaim.action, 'settled', 'a settled transfer is not claimed again');

  const states = await db.any(sql.type(z.object({ id: z.number(), state: z.string(), unresolved: z.boolean() }))`
    select id::int as id, state::text as state, unresolved_since is not null as unresolved from settlement.transfers where id = any(${sql.array(ids, 'int8')}) order by id`);
  t.same(states.map((s) => s.state), ['succeeded', 'failed', 'sending', 'sending', 'sending'], 'states as recorded');
  t.ok(states[2]!.unresolved, 'the unresolved one is marked to be asked about');
  const attempts = await db.oneFirst(sql.type(z.object({ n: z.bigint() }))`select count(*) as n from settlement.transfer_attempts where transfer_id = any(${sql.array(ids, 'int8')})`);
  t.equal(attempts, 2n, 'one attempt row per settled outcome');
  const journal = await db.any(sql.type(z.object({ ref: z.string(), lines: z.bigint(), sum: z.bigint() }))`
    select e.ref, count(l.*) as lines, coalesce(sum(l.amount), 0)::bigint as sum
    from settlement.journal_entries e join settlement.journal_lines l on l.journal_id = e.id
    where e.event = 'payout' group by e.ref`);
  t.same(journal.map((j) => [j.ref, j.lines, j.sum]), [[tuno(0), 4n, 0n]], 'one balanced four-line entry, for the success only');

  // A transfer that does not exist is refused by name, the others in its batch go on.
  const missing = await Promise.allSettled([d.withAttempt(99_999_999, (a) => a.claim()), d.withAttempt(twice, (a) => a.claim())]);
  t.ok(missing[0].status === 'rejected' && missing[0].reason instanceof SettlementError && missing[0].reason.code === 'transfer_not_found', 'a missing transfer: transfer_not_found');
  t.ok(missing[1].status === 'fulfilled' && missing[1].value.action === 'send', 'the other claim of the batch is answered');
});

t.test('claim_transfers and finish_transfers refuse malformed batches and change nothing', async (t) => {
  const { url, db } = await paidDay(t, 2);
  const id = await db.oneFirst(sql.type(z.object({ id: z.number() }))`select id::int as id from settlement.transfers where purpose = 'payout' order by id limit 1`);
  const c = await pgClient(t, url);
  const code = (p: Promise<unknown>) => p.then(() => 'ok', (e: { code?: string }) => e.code);
  t.equal(await code(c.query(`select settlement.claim_transfers($1::bigint[], $2::text[], 1000, 0, '{}', 0)`, [[id], []])), 'ST001', 'claims: ids and holders of different lengths');
  await c.query(`select settlement.claim_transfers($1::bigint[], $2::text[], 60000, 0, '{}', 0)`, [[id], ['p']]);
  const before = await db.one(sql.type(z.object({ state: z.string(), n: z.bigint() }))`
    select state::text as state, (select count(*) from settlement.transfer_attempts) as n from settlement.transfers where id = ${id}`);
  t.equal(before.state, 'sending', 'claimed');
  const finish = (outcomes: unknown[], tunos: unknown[] = ['x']) =>
    code(c.query(`select settlement.finish_transfers($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], '{}')`,
      [[id], tunos, outcomes, [null], [null], [null]]));
  t.equal(await finish(['maybe']), 'ST009', 'an outcome that is not succeeded, failed or unresolved');
  t.equal(await finish([null]), 'ST009', 'a missing outcome');
  t.equal(await finish(['failed'], []), 'ST001', 'arrays of different lengths');
  const after = await db.one(sql.type(z.object({ state: z.string(), n: z.bigint() }))`
    select state::text as state, (select count(*) from settlement.transfer_attempts) as n from settlement.transfers where id = ${id}`);
  t.same(after, before, 'nothing changed');
  await db.query(sql.unsafe`select settlement.configure('Asia/Seoul', 100000, 2)`);
  const s = await c.query(`select settlement.claim_transfers('{}', '{}', 1000, 5, '{}', 0) as r`);
  t.equal((s.rows[0].r as { slots: number[] }).slots.length, 2, 'no more slots than the cap, however many are asked for');
  const s2 = await c.query(`select settlement.claim_transfers('{}', '{}', 1000, 5, $1::int[], 0) as r`, [(s.rows[0].r as { slots: number[] }).slots]);
  t.same((s2.rows[0].r as { slots: number[] }).slots, [], 'a connection holding every slot gets none again (a session lock is re-entrant: it would count twice)');
  // One lock class for the slots, the same number in SQL and in TypeScript.
  t.equal((await c.query('select settlement.bank_slot_lock_class() as k')).rows[0].k, BANK_SLOT_LOCK_CLASS, 'bank_slot_lock_class() = BANK_SLOT_LOCK_CLASS');
  t.same((await c.query(SLOTS_OF_THIS_CONNECTION)).rows.map((r: { slot: number }) => r.slot).sort(), [...(s.rows[0].r as { slots: number[] }).slots].sort(), 'the slots this connection holds are found under that class');
});

t.test('while calls wait for slots, outcomes that come in within the batch window are recorded in one transaction; with no window, each in its own', async (t) => {
  const { url, db } = await paidDay(t, 8, 4);
  // One slot for the whole database: a call that holds it makes every other call wait.
  await db.query(sql.unsafe`select settlement.configure('Asia/Seoul', 100000, 1)`);
  const ids = await db.anyFirst(sql.type(z.object({ id: z.number() }))`select id::int as id from settlement.transfers where purpose = 'payout' order by id limit 6`);
  t.equal(ids.length, 6, 'six chunks to work with');

  /** Three outcomes `apartMs` apart while a call of this desk waits for the slot another holds; how many transactions recorded them. */
  const transactionsFor = async (name: string, windowMs: number, apartMs: number, three: number[]): Promise<number> => {
    // No periodic look for slots ends the window early (fallbackMs), nor
    // letting go of the "waiting" lock (flagLingerMs).
    const d = desk(t, url, name, { batchWindowMs: windowMs, fallbackMs: 60_000, flagLingerMs: 60_000, maxWaitMs: 60_000 });
    let letGo!: () => void;
    const holding = d.gate().run(() => new Promise<void>((r) => (letGo = r)));
    await waitFor('the slot held', async () => (await slotsInUse(db)) === 1n, 5_000, 10);
    const waiting = d.gate().run(async () => undefined);
    await sleep(100); // the waiting call's own round trip (it asks for a slot) is over
    const claims: Claim[] = [];
    const done = three.map((id, i) => d.withAttempt(id, async (a) => {
      const c = await a.claim();
      claims[i] = c;
      await sleep(apartMs * i);
      return a.finish(c.is_tuno, { outcome: 'succeeded', processedAt: `${D.replaceAll('-', '')}120000` });
    }));
    t.same(await Promise.all(done), ['succeeded', 'succeeded', 'succeeded'], `${name}: every outcome recorded`);
    letGo();
    await holding;
    await waiting;
    return db.oneFirst(sql.type(z.object({ n: z.number() }))`
      select count(distinct settled_at)::int as n from settlement.transfers where id = any(${sql.array(three, 'int8')})`);
  };
  // Far apart for a round trip, well inside the window (a loaded machine makes neither flaky).
  t.equal(await transactionsFor('desk-window', 3_000, 100, ids.slice(0, 3)), 1, 'outcomes 100 ms apart within a 3 s window: one transaction');
  t.equal(await transactionsFor('desk-no-window', 0, 400, ids.slice(3, 6)), 3, 'no window: each outcome in a transaction of its own');
});
