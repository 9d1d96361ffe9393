import { randomBytes } from 'node:crypto';
import t from 'tap';
import { sql } from 'slonik';
import { z } from 'zod';
import { seed } from '../../src/seed.js';
import { adminQuery, freshDb } from '../helpers/db.js';
import { pastDate } from '../helpers/fixtures.js';
import { runCli } from '../helpers/procs.js';
import { asLogin } from '../helpers/roles.js';

/** A login holding settlement_operator, as a DATABASE_URL (dropped when the test ends). */
async function operatorUrl(t: { teardown(fn: () => unknown): void }, url: string, tag: string): Promise<{ url: string; name: string }> {
  const name = `settle_c_${tag}_${randomBytes(4).toString('hex')}`;
  await adminQuery(`create role ${name} login password 'pw'; grant settlement_operator to ${name}`);
  t.teardown(() => adminQuery(`drop role if exists ${name}`).catch(() => undefined));
  return { url: asLogin(url, { name, password: 'pw' }), name };
}

t.test('settle change: propose as one login, the same login cannot approve, another does; list; bad input is a usage error; status shows the payee change', async (t) => {
  const { url, db } = await freshDb(t);
  const D = pastDate(1);
  await seed(db, { date: D, accounts: 2, kinds: ['tax'] });
  const alice = await operatorUrl(t, url, 'alice');
  const bob = await operatorUrl(t, url, 'bob');
  const corp = async () => db.oneFirst(sql.type(z.object({ x: z.string() }))`select corporate_account as x from settlement.kind_accounts where kind = 'tax'`);

  const p = await runCli(['change', 'propose', '--target', 'kind_accounts', '--set', '{"kind":"tax","corporate_account":"3000000002"}', '--reason', 'tax goes to the new corporate account'], { DATABASE_URL: alice.url });
  t.equal(p.code, 0, p.stderr);
  const id = /change #(\d+) proposed/.exec(p.stdout)?.[1];
  t.ok(id, `the change's id is printed: ${p.stdout}`);
  t.match(p.stdout, /before: .*"corporate_account":"\*\*\*\*0001"/, 'with the row before (accounts masked, issue 23)');
  t.match(p.stdout, /after: .*"corporate_account":"\*\*\*\*0002"/, 'and after');
  t.notMatch(p.stdout, /3000000002/, 'no account number in full in what a person reads');
  t.equal(await corp(), '3000000001', 'nothing applied yet');

  const list = await runCli(['change', 'list'], { DATABASE_URL: bob.url });
  t.match(list.stdout, new RegExp(`#${id} PENDING kind_accounts \\(two people\\) proposed by ${alice.name}`), 'list shows it pending');
  const listJson = await runCli(['change', 'list', '--json'], { DATABASE_URL: bob.url });
  t.match(listJson.stdout, /"corporate_account": "3000000002"/, 'the approver checks every digit in the data (--json, the changes table an operator reads)');

  const self = await runCli(['change', 'approve', '--id', id!, '--reason', 'me'], { DATABASE_URL: alice.url });
  t.equal(self.code, 1, 'the proposer cannot approve');
  t.match(self.stderr, /another login must approve it/);
  t.equal(await corp(), '3000000001');

  const ok = await runCli(['change', 'approve', '--id', id!, '--reason', 'confirmed with finance'], { DATABASE_URL: bob.url });
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stdout, new RegExp(`change #${id} approved and applied`));
  t.equal(await corp(), '3000000002', 'applied');

  const st = await runCli(['status'], { DATABASE_URL: bob.url });
  t.equal(st.code, 0, st.stderr);
  t.match(st.stdout, new RegExp(`payee of tax changed at .* by change #${id} \\(proposed by ${alice.name}, approved by ${bob.name}\\): settlement \\*\\*\\*\\*0001 \\(app 001\\), corporate \\*\\*\\*\\*0002`), 'status shows when the payee changed');

  const bad = await runCli(['change', 'propose', '--target', 'transfers', '--set', '{}', '--reason', 'x'], { DATABASE_URL: alice.url });
  t.equal(bad.code, 2, 'an unknown target is a usage error');
  const badJson = await runCli(['change', 'propose', '--target', 'limits', '--set', 'nope', '--reason', 'x'], { DATABASE_URL: alice.url });
  t.equal(badJson.code, 2, 'a --set that is not a JSON object is a usage error');
  t.match(badJson.stderr, /--set: must be a JSON object/);
  const noReason = await runCli(['change', 'reject', '--id', id!], { DATABASE_URL: alice.url });
  t.equal(noReason.code, 2, 'a missing reason is a usage error');
  const again = await runCli(['change', 'reject', '--id', id!, '--reason', 'late'], { DATABASE_URL: alice.url });
  t.equal(again.code, 1, 'a decided change cannot be rejected');
  t.match(again.stderr, /is applied already/);
  const all = await runCli(['change', 'list', '--all'], { DATABASE_URL: alice.url });
  t.match(all.stdout, new RegExp(`#${id} APPLIED .*; applied by ${bob.name} at .*: confirmed with finance`));
});
