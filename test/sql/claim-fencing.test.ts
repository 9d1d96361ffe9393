/**
 * Claim fencing against a stolen worker login (issue 22, item 4, last bullet):
 * only the attempt holding a transfer's claim changes it, and nothing a
 * `settlement_worker` login can do without the worker process's own secret
 * lets an operator's retry send a number again while the bank may still book
 * it.
 *
 * The attacks, each run on main before the fix (where each succeeded):
 * - the pool id is public (graphile_worker.jobs.locked_by): claiming a live
 *   claim in its name gave a new token; release_pool(pool id) freed its claims;
 * - claim tokens came from a sequence: the token of a live attempt was its
 *   neighbour's;
 * - a claim freed while its attempt was still out (recover_dead_workers with a
 *   threshold of 0 frees every pool), claimed again and recorded failed:
 *   that finish lowered sent_until to now, so retry_failed planned a new
 *   number while the first request could still be booked; and the first
 *   attempt's "no answer" afterwards left no trace, so the retry stayed open.
 *
 * Real Postgres, a real login holding settlement_worker (the attacker), the
 * SQL the worker calls; the database's clock is the explorer's movable one, so
 * "the lease has ended" is a clock move, not a sleep.
 */
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { sql } from 'slonik';
import { z } from 'zod';
import { createDbPool } from '../../src/db/pool.js';
import { runStage } from '../../src/db/stages.js';
import { seed } from '../../src/seed.js';
import { explorerDb } from '../explore/db.js';
import { TEST_STATEMENT_TIMEOUT_MS } from '../helpers/db.js';
import { workerLogin } from '../helpers/roles.js';
import { claimTransfer, finishTransfer } from '../helpers/transfers.js';

const D = '2026-03-10';
const kstIso = (s: string) => new Date(Date.parse(`${s}+09:00`)).toISOString();

/** Day D (tax) paid out on a fixed clock (D + 1, 12:00 KST): its chunks planned, nothing sent. */
async function plannedDay(t: Test, accounts: number) {
  const { db: owner, url } = await explorerDb(t);
  const setClock = (kst: string) => owner.query('update settlement_meta.explore_clock set at = $1', [kstIso(kst)]);
  await setClock('2026-03-11T12:00:00');
  const db = await createDbPool(url, { maximumPoolSize: 2, statementTimeoutMs: TEST_STATEMENT_TIMEOUT_MS });
  t.teardown(() => db.end());
  await owner.query('delete from settlement.bank_windows');
  await seed(db, { date: D, accounts, perAccount: 1, kinds: ['tax'] });
  await db.query(sql.unsafe`update settlement.accounts set fin_acno = '0082' || account_no where role = 'loan'`);
  t.equal((await runStage(db, 'record', D, 'tax')).outcome, 'done');
  t.equal((await runStage(db, 'pay', D, 'tax')).outcome, 'done');
  const ids = (await owner.query(`select id::int as id, is_tuno from settlement.transfers where business_date = $1 and purpose = 'payout' order by id`, [D]))
    .rows as { id: number; is_tuno: string }[];
  const row = async (id: number) => (await owner.query(`
    select state::text as state, claimed_by, claimed_until, sent_until, claim_token::text as token, is_tuno
    from settlement.transfers where id = $1`, [id])).rows[0] as { state: string; claimed_by: string | null; claimed_until: Date | null; sent_until: Date | null; token: string | null; is_tuno: string };
  const code = (q: string, params: unknown[] = []) => owner.query(q, params).then(() => 'ok', (e: { code?: string }) => e.code ?? 'error');
  return { owner, db, url, ids, row, setClock, code };
}

/** A claim of transfer `id` in `holder`'s name, as a statement answering the claim's json (claimJson; add ->> 'field') or its text (claimText). */
const claimJson = (id: number, holder: string) =>
  `select settlement.claim_transfers(array[${id}]::bigint[], array['${holder}'], 60000, 0, '{}', 0) -> 'claims' -> 0`;
const claimText = (id: number, holder: string) =>
  `select settlement.claim_transfers(array[${id}]::bigint[], array['${holder}'], 60000, 0, '{}', 0) -> 'claims' ->> 0`;

t.test('a live claim is taken again, or freed, only by the process that holds it; its token cannot be guessed', async (t) => {
  const { db, url, ids, row } = await plannedDay(t, 3);
  const attacker = await workerLogin(t, url, 'cf');
  const [x, y] = ids;
  const real = `pool-real#${randomBytes(18).toString('base64url')}`;
  const c = await claimTransfer(db, x!.id, real, 60_000);
  t.equal(c.action, 'send', 'the real worker claims x');
  const before = await row(x!.id);
  t.equal(before.claimed_by, 'pool-real', 'the database keeps the pool id (public, as in graphile_worker.jobs.locked_by), not the secret');

  // Knowing the pool id is not enough.
  t.equal(await attacker.one(`${claimJson(x!.id, 'pool-real')} ->> 'action'`), 'busy', 'a claim in the pool\'s name: busy');
  t.equal(await attacker.one(`${claimJson(x!.id, 'pool-real#guess')} ->> 'action'`), 'busy', 'with a guessed secret: busy');
  t.equal(await attacker.one(`select settlement.release_pool('pool-real')`), '', 'release_pool with the pool id runs (its jobs and heartbeat are freed) ...');
  t.equal(await attacker.one(`select settlement.release_pool('pool-real#guess')`), '', '... and with a guessed secret');
  const after = await row(x!.id);
  t.same([after.claimed_by, after.claimed_until, after.token], [before.claimed_by, before.claimed_until, before.token], '... but the claim stands: same holder, lease and token');

  // The token: the attacker's own claim says nothing about the live one.
  const own = JSON.parse(await attacker.one(claimText(y!.id, 'attacker'))) as { action: string; claim_token: string };
  t.equal(own.action, 'send', 'the attacker claims a free transfer y');
  const guesses = [-3, -2, -1, 1, 2, 3].map((d) => (BigInt(own.claim_token) + BigInt(d)).toString());
  t.notOk(guesses.includes(before.token!), 'the live token is not a neighbour of the attacker\'s own');
  for (const g of guesses) {
    t.equal(await attacker.one(`select (settlement.finish_transfers(array[${x!.id}]::bigint[], array['${x!.is_tuno}'], '{failed}', '{null}', '{E9999}', '{guessed}', '{}', array[${g}]::bigint[]))[1]`),
      'stale', `failed with a guessed token ${g}: stale`);
  }
  t.equal((await row(x!.id)).state, 'sending', 'x is still the real attempt\'s');

  // The process that holds the claim may take it again (its own retry).
  const again = await claimTransfer(db, x!.id, real, 60_000);
  t.equal(again.action, 'send', 'the same holder string takes its live claim again');
  t.not(again.claim_token, c.claim_token, 'with a new token');
  t.equal(await finishTransfer(db, x!.id, x!.is_tuno, { outcome: 'failed', code: 'E0001', message: 'old token' }, c.claim_token), 'stale', 'the old token is stale now');
});

t.test('a claim freed while its attempt is out: the bound stays, retry waits for it, and an answer never learnt keeps the number from being sent again', async (t) => {
  const { owner, db, url, ids, row, setClock, code } = await plannedDay(t, 2);
  const attacker = await workerLogin(t, url, 'cf');
  const [x] = ids;
  const real = `pool-real#${randomBytes(18).toString('base64url')}`;
  await owner.query(`select settlement.worker_beat('pool-real', 'host', 1)`);
  const c = await claimTransfer(db, x!.id, real, 60_000);
  const bound = (await row(x!.id)).sent_until!;
  t.equal(c.action, 'send', 'the real worker claims x for 60 s and sends');

  // The pool still beats, but a threshold of 0 counts it dead: its claims are freed.
  await setClock('2026-03-11T12:00:01');
  t.match(await attacker.one(`select settlement.recover_dead_workers(0)`), /pool-real/, 'recover_dead_workers(0) frees the live pool');
  const stolen = JSON.parse(await attacker.one(claimText(x!.id, 'attacker'))) as { action: string; claim_token: string };
  t.equal(stolen.action, 'send', 'the attacker claims x');
  t.equal(await attacker.one(`select (settlement.finish_transfers(array[${x!.id}]::bigint[], array['${x!.is_tuno}'], '{failed}', '{null}', '{E9999}', '{forged}', '{}', array[${stolen.claim_token}]::bigint[]))[1]`),
    'failed', 'and records it failed with its own token');
  const failed = await row(x!.id);
  t.equal(failed.state, 'failed');
  t.ok(failed.sent_until!.getTime() >= bound.getTime(), 'sent_until keeps the first attempt\'s lease: the failure is no proof that its request is over');
  t.equal(await code(`select settlement.retry_failed($1::date, 'tax')`, [D]), 'ST015', 'retry_failed: transfer_may_be_in_flight (ST015) until then');
  t.equal(await code(`select * from settlement.retry_day($1::date)`, [D]), 'ST015', 'retry_day too');
  t.equal((await row(x!.id)).is_tuno, x!.is_tuno, 'nothing re-planned');

  // The real attempt's request had no answer (a timeout): its number may be booked.
  t.equal(await finishTransfer(db, x!.id, x!.is_tuno, { outcome: 'unresolved', reason: 'timeout after 30000 ms' }, c.claim_token), 'already_settled',
    'the real attempt\'s "no answer" changes nothing (x is recorded failed) ...');
  t.same((await owner.query('select is_tuno, message from settlement.unknown_outcomes where transfer_id = $1', [x!.id])).rows,
    [{ is_tuno: x!.is_tuno, message: 'timeout after 30000 ms' }], '... and kept: an attempt that never learnt its outcome');
  await setClock('2026-03-11T12:05:00');
  t.equal(await code(`select settlement.retry_failed($1::date, 'tax')`, [D]), 'ST016', 'after the lease: retry_failed refuses (ST016: the bank may have booked it)');
  t.equal((await row(x!.id)).is_tuno, x!.is_tuno, 'nothing re-planned');

  // A person with the bank's word decides it; then the retry plans a new number.
  t.equal(await code(`select settlement.decide_transfer($1, false, '')`, [x!.id]), 'ST018', 'decide_transfer without evidence: ST018');
  t.equal((await owner.query(`select settlement.decide_transfer($1, false, 'NH call centre: IsTuno not booked, ref 4711') as r`, [x!.id])).rows[0].r, 'not_booked',
    'a person records that the bank did not book it');
  t.equal((await row(x!.id)).state, 'failed', 'the transfer stays failed');
  t.equal((await owner.query(`select settlement.retry_failed($1::date, 'tax') as n`, [D])).rows[0].n, 1, 'and retry_failed plans it again');
  t.not((await row(x!.id)).is_tuno, x!.is_tuno, 'under a new number');
  t.equal((await owner.query(`select count(*)::int as n from settlement.operator_actions where action = 'decide_transfer'`)).rows[0].n, 1, 'the decision is audited');
});

t.test('decide_transfer: "not booked" waits while a request may still be at the bank', async (t) => {
  const { db, ids, row, setClock, code } = await plannedDay(t, 1);
  const [x] = ids;
  const real = `pool-real#${randomBytes(18).toString('base64url')}`;
  await claimTransfer(db, x!.id, real, 60_000);
  // The process takes its own claim again (its retry) and that attempt learns nothing.
  const again = await claimTransfer(db, x!.id, real, 60_000);
  const bound = (await row(x!.id)).sent_until!;
  await setClock('2026-03-11T12:00:10');
  t.equal(await finishTransfer(db, x!.id, x!.is_tuno, { outcome: 'unresolved', reason: 'timeout' }, again.claim_token), 'unresolved');
  const r = await row(x!.id);
  t.ok(r.sent_until!.getTime() >= bound.getTime(), 'the answer does not lower sent_until below the first attempt\'s lease');
  t.equal(await code(`select settlement.decide_transfer($1, false, 'bank says no')`, [x!.id]), 'ST017', 'not booked: refused while the first attempt\'s lease runs');
  await setClock('2026-03-11T12:05:00');
  t.equal(await code(`select settlement.decide_transfer($1, false, 'bank says no')`, [x!.id]), 'ok', 'after it: decided');
});
