import t from 'tap';
import { simAdminClient } from '../../src/bank-sim/sim-admin-client.js';
import { enqueueStage } from '../../src/db/operations.js';
import { KINDS } from '../../src/domain.js';
import { APIS, checkRequest, isApiNm } from '../../src/nh/contract.js';
import { seed } from '../../src/seed.js';
import { checkInvariants, prepareSim, startSim, waitAllWithdrawn, workerEnv } from '../helpers/day.js';
import { freshDb } from '../helpers/db.js';
import { pastDate } from '../helpers/fixtures.js';
import { spawnWorker } from '../helpers/procs.js';

/**
 * Every request the service sends during a whole day — registration, payouts,
 * withdrawals to NH and to another bank, result checks after timeouts and
 * dropped answers — is held against the executable copy of NH-API.md's
 * tables (src/nh/contract.ts): required fields, lengths, formats, and no
 * other field. A change that drifts from NH's published layouts fails here.
 */
t.test('during a full day with faults, every request is within NH\'s published layouts', async (t) => {
  const { url, db } = await freshDb(t);
  const sim = await startSim(t, { latencyMs: 10, jitterMs: 5, seed: 11, timeoutAfterRate: 0.06, dropRate: 0.06, recordRequests: true });
  const D = pastDate(1);
  await seed(db, { date: D, accounts: 12 });
  await prepareSim(db, sim);
  await spawnWorker(t, workerEnv(url, sim.url, { BANK_TIMEOUT_MS: '400' }));
  await enqueueStage(db, 'record', D, null);
  await waitAllWithdrawn(db, [D], KINDS.length, 240_000);
  await checkInvariants(t, db, sim.url);

  const requests = await simAdminClient(sim.url).requests();
  const byApi = new Map<string, number>();
  let bad = 0;
  for (const r of requests) {
    byApi.set(r.api, (byApi.get(r.api) ?? 0) + 1);
    const problems = isApiNm(r.api) ? checkRequest(r.api, { ...(r.body as object), Header: { ...(r.body as { Header: object }).Header, AccessToken: 'x' } }) : [`unknown API ${r.api}`];
    if (problems.length > 0 && bad++ < 5) t.fail(`${r.api}: ${problems.join('; ')}`);
  }
  t.comment(`requests by API: ${JSON.stringify(Object.fromEntries(byApi))}`);
  t.equal(bad, 0, `all ${requests.length} requests conform`);
  for (const api of ['OpenFinAccountDirect', 'CheckOpenFinAccountDirect', 'DrawingTransfer', 'ReceivedTransferAccountNumber', 'ReceivedTransferOtherBank', 'CheckOnDrawingTransfer'] as const) {
    t.ok((byApi.get(api) ?? 0) > 0, `${api} was used`);
  }
  t.ok([...byApi.keys()].every((a) => (APIS as readonly string[]).includes(a)), 'no API outside the published ones');
  const faults = sim.statsSnapshot() as { faults: Record<string, number> };
  t.ok(Object.values(faults.faults).reduce((a, b) => a + b, 0) > 0, `faults were injected: ${JSON.stringify(faults.faults)}`);
});
