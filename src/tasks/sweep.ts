import type { Task } from 'graphile-worker';
import { z } from 'zod';
import { requeueUnsettled } from '../db/transfers.js';
import { cronMeta, parsePayload, type TaskContext } from './context.js';

const payloadSchema = z.object({ _cron: cronMeta }).strict();

/** Crontab safety net: a chunk or withdrawal that lost its job (e.g. attempts exhausted) gets one again. */
export function createSweepTask(ctx: TaskContext): Task {
  return async (raw, helpers) => {
    parsePayload(payloadSchema, 'sweep', raw);
    const n = await requeueUnsettled(ctx.db);
    if (n > 0) ctx.logger.warn({ event: 'sweep:requeued', job_id: helpers.job.id, days: n }, `re-enqueued unsettled transfers of ${n} day(s)`);
  };
}
