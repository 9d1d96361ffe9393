/** Typed calls of sql/logic/75_workers.sql and what a worker checks about its database (settings, migrations, its heartbeat). */
import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import { voidRow, wrap } from './call.js';
import type { DatabasePool } from './pool.js';

const settingDiff = z.object({ setting: z.string(), in_database: z.string(), in_environment: z.string() });

export type SettingDiff = z.infer<typeof settingDiff>;

/** Writes the shared settings if never set; else returns where `env` differs from the database. */
export function adoptSettings(db: DatabasePool, timeZone: string, perCallLimit: bigint, maxInFlight: number): Promise<readonly SettingDiff[]> {
  return wrap(db.any(sql.type(settingDiff)`select * from settlement.adopt_settings(${timeZone}, ${perCallLimit}, ${maxInFlight})`));
}

/** Records a job that can never succeed (settlement.rejected_jobs). */
export async function rejectJob(db: DatabasePool, jobId: string | number, task: string, payload: unknown, code: string, error: string): Promise<void> {
  await wrap(db.query(sql.type(voidRow)`select settlement.reject_job(${String(jobId)}::bigint, ${task}, ${JSON.stringify(payload ?? null)}::jsonb, ${code}, ${error})`));
}

const migrationRow = z.object({ id: z.number(), checksum: z.string() });

/** settlement_meta.migrations (what /readyz compares with this version's sql/). */
export function appliedMigrations(db: CommonQueryMethods): Promise<readonly z.infer<typeof migrationRow>[]> {
  return wrap(db.any(sql.type(migrationRow)`select id, checksum from settlement_meta.migrations order by id`));
}

const logicRow = z.object({ name: z.string(), checksum: z.string() });

/** settlement_meta.logic (what /readyz compares with this version's sql/logic/). */
export function appliedLogic(db: CommonQueryMethods): Promise<readonly z.infer<typeof logicRow>[]> {
  return wrap(db.any(sql.type(logicRow)`select name, checksum from settlement_meta.logic order by name`));
}

/** Is this worker pool registered with a fresh heartbeat? */
export function workerRegistered(db: CommonQueryMethods, poolId: string): Promise<boolean> {
  return wrap(db.oneFirst(sql.type(z.object({ r: z.boolean() }))`
    select exists (select 1 from settlement.worker_heartbeats() h cross join settlement.worker_status() s
                   where h.pool_id = ${poolId} and h.age_seconds < extract(epoch from s.silent_after)) as r`));
}
