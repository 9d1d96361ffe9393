/**
 * Typed calls of sql/logic/40_stages.sql. The decisions live in SQL; these
 * only pass arguments and check the shape of what comes back.
 */
import { sql } from 'slonik';
import { z } from 'zod';
import { kindSchema, type Kind, type Stage } from '../domain.js';
import { voidRow, wrap } from './call.js';
import { sqlstateOf, toSettlementError } from './errors.js';
import type { DatabasePool } from './pool.js';

const stageResult = z.object({ outcome: z.string(), detail: z.string() });

export type StageResult = z.infer<typeof stageResult>;

/** The record stage waits at most this long for a lock (an accrual's open transaction): then it is `busy` and comes back. */
export const RECORD_LOCK_TIMEOUT_MS = 500;

export async function runStage(db: DatabasePool, stage: Stage, date: string, kind: Kind): Promise<StageResult> {
  if (stage !== 'record') {
    return wrap(db.one(sql.type(stageResult)`select outcome, detail from settlement.run_stage(${stage}::settlement.stage, ${date}::date, ${kind}::settlement.kind)`));
  }
  // An ingest session that called accrue and left its transaction open
  // holds the day's record row (FOR SHARE) until it ends: the record stage
  // does not wait for it (its other days and kinds go on) and runs again later.
  try {
    return await db.transaction(async (tx) => {
      await tx.query(sql.type(voidRow)`select set_config('lock_timeout', ${String(RECORD_LOCK_TIMEOUT_MS)}, true)`);
      return tx.one(sql.type(stageResult)`select outcome, detail from settlement.run_stage('record'::settlement.stage, ${date}::date, ${kind}::settlement.kind)`);
    });
  } catch (e) {
    if (sqlstateOf(e) === '55P03') {
      return { outcome: 'busy', detail: `record ${date} ${kind}: another session holds the day (an accrual in an open transaction?); recorded when it ends` };
    }
    throw toSettlementError(e);
  }
}

/** Marks one (date, kind)'s stage blocked with the error it raised (the next tick tries again). */
export async function recordStageError(db: DatabasePool, stage: Stage, date: string, kind: Kind, error: string): Promise<void> {
  await wrap(db.query(sql.type(voidRow)`select settlement.record_stage_error(${stage}::settlement.stage, ${date}::date, ${kind}::settlement.kind, ${error})`));
}

const openDay = z.object({ business_date: z.string(), kind: kindSchema });

/** Days that are over and not fully settled, oldest first. */
export function openDays(db: DatabasePool): Promise<readonly z.infer<typeof openDay>[]> {
  return wrap(db.any(sql.type(openDay)`
    select business_date::text as business_date, kind::text as kind from settlement.open_days() order by 1, 2`));
}
