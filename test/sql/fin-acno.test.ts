import t from 'tap';
import { sql } from 'slonik';
import { z } from 'zod';
import { freshDb } from '../helpers/db.js';
import { roleSessions, workerLogin as sharedWorkerLogin } from '../helpers/roles.js';

/** A worker login (answers the first value, or the error's SQLSTATE; a function returning void answers 'ok'). */
async function workerLogin(t: { teardown(fn: () => unknown): void }, url: string) {
  const w = await sharedWorkerLogin(t, url, 'f');
  return (q: string) => w.one(q).then((v) => (['none', 'null', ''].includes(v) ? 'ok' : v));
}

t.test('a FinAcno is accepted only as the answer to this system\'s own registration of that account, once; anything else is refused and alerted', async (t) => {
  const { url, db } = await freshDb(t);
  const ingest = await roleSessions(t, url, 'fa')('settlement_ingest');
  t.equal(await ingest(`select settlement.add_loan_account('1888000001', '011', 'a')`), 'ok');
  t.equal(await ingest(`select settlement.add_loan_account('1888000002', '011', 'b')`), 'ok');
  const worker = await workerLogin(t, url);
  const fin = async (a: string) => db.maybeOneFirst(sql.type(z.object({ f: z.string().nullable() }))`select fin_acno as f from settlement.accounts where account_no = ${a}`);
  const alerts = async () => db.oneFirst(sql.type(z.object({ n: z.bigint() }))`select count(*) as n from settlement.alerts where problem = 'fin_acno_refused'`);

  // The attack of issue 22: a FinAcno of the attacker's choosing before registration finished.
  t.equal(await worker(`select settlement.record_fin_account('1888000001', '77777', '99999999', '20261201')`), 'refused', 'a FinAcno with no registration this system started: refused');
  t.equal(await fin('1888000001'), null, 'nothing stored');
  t.equal(await alerts(), 1n, 'and alerted');
  t.equal(await worker(`select settlement.record_fin_rgno('1888000001', '77777')`), 'ST067', 'an Rgno for a registration the database did not start: refused (ST067)');

  // The system's own registration: the database starts it (fin_registration), the bank's Rgno is stored once.
  t.equal(await worker(`select account_no from settlement.fin_registration('1888000001')`), '1888000001', 'the register task starts the registration');
  t.equal(await worker(`select settlement.record_fin_rgno('1888000001', '12345')`), 'ok', 'the bank\'s Rgno');
  t.equal(await worker(`select settlement.record_fin_rgno('1888000001', '66666')`), 'ST067', 'another Rgno over it: refused');
  t.equal(await worker(`select settlement.record_fin_account('1888000001', '66666', '99999999', '20261201')`), 'refused', 'a FinAcno for another Rgno: refused');
  t.equal(await fin('1888000001'), null);
  t.equal(await alerts(), 2n);
  t.equal(await worker(`select settlement.record_fin_account('1888000001', '12345', '00820001', '20261201')`), 'registered', 'the answer to its own Rgno: accepted');
  t.equal(await fin('1888000001'), '00820001');
  t.equal(await worker(`select settlement.record_fin_account('1888000001', '12345', '00820001', '20261201')`), 'already_registered', 'the same answer again: a no-op');
  t.equal(await worker(`select settlement.record_fin_account('1888000001', '12345', '99999999', '20261201')`), 'refused', 'once: another FinAcno later is refused');
  t.equal(await fin('1888000001'), '00820001', 'the FinAcno stays');
  t.equal(await alerts(), 3n, 'every refusal alerted');
  t.equal(await fin('1888000002'), null, 'the other account untouched');
  const a = await db.oneFirst(sql.type(z.object({ m: z.string() }))`select message as m from settlement.alerts where problem = 'fin_acno_refused' order by id limit 1`);
  t.match(a, /FinAcno .* for loan account \*\*\*\*0001 refused/, 'the alert names the account (masked)');
});
