import type { CodeBook, CodeClass } from '../bank/port.js';
import type { DatabasePool } from '../db/pool.js';
import { bankCodes } from '../db/support.js';

/**
 * settlement.bank_codes held in memory for the bank client, reloaded with each
 * heartbeat so an operator's edit reaches every worker within seconds. A code
 * listed for an API wins over the same code listed for every API ('*').
 */
export interface LiveCodeBook {
  lookup: CodeBook;
  reload(): Promise<void>;
}

export async function createLiveCodeBook(db: DatabasePool): Promise<LiveCodeBook> {
  let byKey = new Map<string, CodeClass>();
  const reload = async () => {
    const next = new Map<string, CodeClass>();
    for (const r of await bankCodes(db)) next.set(`${r.api} ${r.rpcd}`, r.class);
    byKey = next;
  };
  await reload();
  return { lookup: (api, rpcd) => byKey.get(`${api} ${rpcd}`) ?? byKey.get(`* ${rpcd}`), reload };
}
