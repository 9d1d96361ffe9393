import type { Task } from 'graphile-worker';
import { z } from 'zod';
import { isTransientDbError } from '../db/errors.js';
import { openDays, recordStageError, runStage } from '../db/stages.js';
import { dateSchema, kindSchema, stageSchema } from '../domain.js';
import { RetryLaterError } from '../domain.js';
import { cronMeta, parsePayload, type TaskContext } from './context.js';

const payloadSchema = z
  .object({ stage: stageSchema, date: dateSchema.optional(), kind: kindSchema.optional(), _cron: cronMeta })
  .strict();

/**
 * Runs one stage. With a date and kind (chained from the previous stage or
 * enqueued by an operator) it runs that one day; without (the crontab) it
 * advances every open day that is ready, oldest first, so days missed while
 * the service was down are caught up in order. A day whose stage raises is
 * marked blocked with the error and the walk goes on with the other days and
 * kinds: one bad day never stops the rest.
 */
export function createStageTask(ctx: TaskContext): Task {
  return async (raw, helpers) => {
    const p = parsePayload(payloadSchema, 'stage', raw);
    const log = ctx.logger.child({ job_id: helpers.job.id, task: 'stage', stage: p.stage, attempt: helpers.job.attempts });
    const one = Boolean(p.date && p.kind);
    const days = one
      ? [{ business_date: p.date!, kind: p.kind! }]
      : (await openDays(ctx.db)).filter((d) => (!p.date || d.business_date === p.date) && (!p.kind || d.kind === p.kind));
    for (const d of days) {
      try {
        const r = await runStage(ctx.db, p.stage, d.business_date, d.kind);
        log[r.outcome === 'blocked' ? 'error' : 'info'](
          { event: 'stage:outcome', business_date: d.business_date, kind: d.kind, outcome: r.outcome, detail: r.detail },
          `${p.stage} ${d.business_date} ${d.kind}: ${r.outcome}`,
        );
        // A job for one day was enqueued because something changed (a
        // registration finished, a chunk settled) while another run of the
        // stage was in progress, whose snapshot may predate the change: run
        // again after it, rather than lose the wake-up.
        if (one && r.outcome === 'busy') throw new RetryLaterError(`${p.stage} ${d.business_date} ${d.kind} is running elsewhere; will run again after it`);
      } catch (e) {
        if (isTransientDbError(e) || e instanceof RetryLaterError) throw e; // the whole job retries
        const msg = (e as Error).message;
        log.error({ event: 'stage:error', business_date: d.business_date, kind: d.kind, err: msg }, `${p.stage} ${d.business_date} ${d.kind} failed: ${msg}`);
        await recordStageError(ctx.db, p.stage, d.business_date, d.kind, msg);
        if (one) throw e;
      }
    }
  };
}
