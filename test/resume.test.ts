import t from 'tap';
import { sql } from 'slonik';
import { z } from 'zod';
import { runStage } from '../src/db/queries.js';
import { fundSimulator, seed } from '../src/seed.js';
import { checkInvariants, startSim, TOKEN, waitAllWithdrawn, workerEnv } from './helpers/day.js';
import { freshDb } from './helpers/db.js';
import { pastDate } from './helpers/fixtures.js';
import { spawnWorker } from './helpers/procs.js';

const D = pastDate(1);
const chunkRow = z.object({ id: z.number(), is_tuno: z.string(), from_account: z.string(), to_account: z.string(), amount: z.bigint() });

/** Books a DrawingTransfer at the simulator directly: what an attempt that died after the bank booked it leaves behind. */
async function bookDirectly(simUrl: string, c: z.infer<typeof chunkRow>, tsymd: string) {
  const body = {
    Header: { ApiNm: 'DrawingTransfer', Tsymd: tsymd, Trtm: '120000', Iscd: '000001', FintechApsno: '001', ApiSvcCd: 'DrawingTransferA', IsTuno: c.is_tuno, AccessToken: TOKEN },
    FinAcno: c.from_account, Tram: c.amount.toString(), DractOtlt: 'x', MractOtlt: 'x', CtrtAcno: c.to_account,
  };
  const r = await fetch(`${simUrl}/DrawingTransfer.nh`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const j = (await r.json()) as { Header: { Rpcd: string } };
  if (j.Header.Rpcd !== '00000') throw new Error(`direct booking failed: ${j.Header.Rpcd}`);
}

t.test('chunks left "sending" by a dead attempt are resolved by inquiry: booked once, never twice', async (t) => {
  const { url, db } = await freshDb(t);
  const sim = await startSim(t);
  await seed(db, { date: D, accounts: 6, kinds: ['tax'] });
  await fundSimulator(db, sim.url);
  t.equal((await runStage(db, 'record', D, 'tax')).outcome, 'done');
  t.equal((await runStage(db, 'pay', D, 'tax')).outcome, 'done');
  const chunks = await db.any(sql.type(chunkRow)`select id::int as id, is_tuno, from_account, to_account, amount from settlement.chunks order by id`);
  const [booked, notBooked] = [chunks[0]!, chunks[1]!];
  const tsymd = await db.oneFirst(sql.type(z.object({ d: z.string() }))`select settlement.bank_ymd() as d`);
  // The state two crashed attempts leave: both claimed by a pool that is gone,
  // leases expired; the first reached the bank, the second did not.
  await db.query(sql.unsafe`
    update settlement.chunks set state = 'sending', tsymd = ${tsymd}, claimed_by = 'dead-pool', claimed_until = now() - interval '1 second'
    where id in (${booked.id}, ${notBooked.id})`);
  await bookDirectly(sim.url, booked, tsymd);

  await spawnWorker(t, workerEnv(url, sim.url));
  await waitAllWithdrawn(db, [D], 1);
  const transfers = (await (await fetch(`${sim.url}/_sim/transfers`)).json()) as Array<{ isTuno: string }>;
  t.equal(transfers.filter((x) => x.isTuno === booked.is_tuno).length, 1, 'the chunk booked before the crash is booked once');
  t.equal(transfers.filter((x) => x.isTuno === notBooked.is_tuno).length, 1, 'the chunk that never reached the bank is booked once');
  await checkInvariants(t, db, sim.url);
});

t.test('a chunk never booked on a date that is over is planned again under a new IsTuno', async (t) => {
  const { db } = await freshDb(t);
  await seed(db, { date: D, accounts: 1, kinds: ['tax'] });
  await runStage(db, 'record', D, 'tax');
  await runStage(db, 'pay', D, 'tax');
  const c = await db.one(sql.type(z.object({ id: z.number(), is_tuno: z.string() }))`select id::int as id, is_tuno from settlement.chunks order by id limit 1`);
  await db.query(sql.unsafe`update settlement.chunks set state = 'sending', tsymd = '20200101' where id = ${c.id}`);
  const r = await db.oneFirst(sql.type(z.object({ r: z.string() }))`
    select settlement.finish_chunk(${c.id}, ${c.is_tuno}, 'failed', null, 'expired_not_booked', 'not booked on 20200101') as r`);
  t.equal(r, 'replanned');
  const after = await db.one(sql.type(z.object({ state: z.string(), is_tuno: z.string(), tsymd: z.string().nullable(), attempt: z.number() }))`
    select state::text as state, is_tuno, tsymd, attempt from settlement.chunks where id = ${c.id}`);
  t.equal(after.state, 'pending');
  t.not(after.is_tuno, c.is_tuno, 'a new IsTuno');
  t.equal(after.tsymd, null, 'its date is fixed at the next first call');
  t.equal(after.attempt, 2);
  const stale = await db.oneFirst(sql.type(z.object({ r: z.string() }))`
    select settlement.finish_chunk(${c.id}, ${c.is_tuno}, 'succeeded', 'x', null, null) as r`);
  t.equal(stale, 'stale', 'a late answer for the old IsTuno changes nothing');
});
