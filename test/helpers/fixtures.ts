import { sql } from 'slonik';
import type { DatabasePool } from '../../src/db/pool.js';
import { KINDS } from '../../src/domain.js';
import { corporateAccountNo, fintechApsnoOf, settlementAccountNo } from '../../src/seed.js';

/** A business date that is over in Asia/Seoul: `daysAgo` days before today there. */
export function pastDate(daysAgo: number): string {
  const seoulToday = new Date(Date.now() + 9 * 3600_000);
  seoulToday.setUTCDate(seoulToday.getUTCDate() - daysAgo);
  return seoulToday.toISOString().slice(0, 10);
}

/** Today's business date in Asia/Seoul (still open). */
export const seoulToday = () => pastDate(0);

/** Accounts: loan accounts 1..n, and per kind its settlement and corporate accounts. */
export async function makeAccounts(db: DatabasePool, loans: number): Promise<string[]> {
  const nos = Array.from({ length: loans }, (_, i) => `1${String(i + 1).padStart(9, '0')}`);
  await db.query(sql.unsafe`insert into settlement.accounts (account_no, role) select unnest(${sql.array(nos, 'text')}), 'loan' on conflict do nothing`);
  for (const k of KINDS) {
    await db.query(sql.unsafe`insert into settlement.accounts (account_no, role) values (${settlementAccountNo(k)}, 'settlement'), (${corporateAccountNo(k)}, 'corporate') on conflict do nothing`);
    await db.query(sql.unsafe`insert into settlement.contracts (fintech_apsno, settlement_account) values (${fintechApsnoOf(k)}, ${settlementAccountNo(k)}) on conflict do nothing`);
    await db.query(sql.unsafe`insert into settlement.kind_accounts (kind, settlement_account, corporate_account, fintech_apsno) values (${k}::settlement.kind, ${settlementAccountNo(k)}, ${corporateAccountNo(k)}, ${fintechApsnoOf(k)}) on conflict do nothing`);
  }
  return nos;
}

/** Noon on `date` in Seoul, as an ISO instant. */
export const noonSeoul = (date: string) => `${date}T12:00:00+09:00`;
