import { sql } from 'slonik';
import { z } from 'zod';
import type { DatabasePool } from '../../src/db/pool.js';
import { reconciliationBreaks } from '../../src/db/reconcile.js';
import type { Kind } from '../../src/domain.js';
import { waitFor } from './procs.js';

type T = { same: Function };

/** Waits until the reconcile stage of (D, each kind) is in `state`. */
export async function waitReconcile(db: DatabasePool, D: string, kinds: readonly Kind[], state: 'done' | 'blocked', timeoutMs = 120_000) {
  const rows = () => db.any(sql.type(z.object({ kind: z.string(), state: z.string(), detail: z.string() }))`
    select kind::text as kind, state::text as state, detail from settlement.stage_runs where business_date = ${D}::date and stage = 'reconcile'`);
  try {
    return await waitFor(`reconcile ${state} for ${D} ${kinds.join(',')}`, async () => {
      const mine = (await rows()).filter((r) => (kinds as readonly string[]).includes(r.kind));
      return mine.length === kinds.length && mine.every((r) => r.state === state) ? mine : undefined;
    }, timeoutMs, 250);
  } catch (e) {
    const show = (v: unknown) => JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x));
    const jobs = await db.any(sql.type(z.object({ task_identifier: z.string(), key: z.string().nullable(), run_at: z.string(), attempts: z.number(), last_error: z.string().nullable() }))`
      select task_identifier, key, run_at::text as run_at, attempts, left(last_error, 300) as last_error from graphile_worker.jobs order by id limit 20`);
    throw new Error(`${(e as Error).message}\nreconcile: ${show(await rows())}\nbreaks: ${show(await reconciliationBreaks(db))}\njobs: ${show(jobs)}`);
  }
}

/** Per NH account we read: journal bank:<account> total = what the statement shows moved for lines of ours. */
export async function ledgerMirrorsStatements(t: T, db: DatabasePool) {
  const bad = await db.any(sql.type(z.object({ account_no: z.string(), journal: z.bigint(), statement: z.bigint() }))`
    select v.account_no, v.journal, v.statement from settlement.bank_vs_statement v
    where v.journal <> v.statement
      and exists (select 1 from settlement.statement_reads r where r.acno = v.account_no)`);
  t.same(bad, [], 'bank:<account> journal lines equal the statement lines of ours, for every account read');
}

