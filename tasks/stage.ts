import type { Task } from 'graphile-worker';
import { z } from 'zod';
import { dateSchema, kindSchema, openDays, runStage, stageSchema } from '../src/db/queries.js';
import { cronMeta, parsePayload, type TaskContext } from '../src/jobs/context.js';

const payloadSchema = z
  .object({ stage: stageSchema, date: dateSchema.optional(), kind: kindSchema.optional(), _cron: cronMeta })
  .strict();

/**
 * Runs one stage. With a date and kind (chained from the previous stage or
 * enqueued by an operator) it runs that one day; without (the crontab) it
 * advances every open day that is ready, oldest first, so days missed while
 * the service was down are caught up in order.
 */
export function createStageTask(ctx: TaskContext): Task {
  return async (raw, helpers) => {
    const p = parsePayload(payloadSchema, 'stage', raw);
    const log = ctx.logger.child({ job_id: helpers.job.id, task: 'stage', stage: p.stage, attempt: helpers.job.attempts });
    const days = p.date && p.kind
      ? [{ business_date: p.date, kind: p.kind }]
      : (await openDays(ctx.db)).filter((d) => (!p.date || d.business_date === p.date) && (!p.kind || d.kind === p.kind));
    for (const d of days) {
      const r = await runStage(ctx.db, p.stage, d.business_date, d.kind);
      log[r.outcome === 'blocked' ? 'warn' : 'info'](
        { event: 'stage:outcome', date: d.business_date, kind: d.kind, outcome: r.outcome, detail: r.detail },
        `${p.stage} ${d.business_date} ${d.kind}: ${r.outcome}`,
      );
    }
  };
}
