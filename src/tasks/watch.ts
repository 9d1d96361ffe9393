import type { Task } from 'graphile-worker';
import { z } from 'zod';
import { detectAlerts } from '../db/operations.js';
import { cronMeta, parsePayload, type TaskContext } from './context.js';

const payloadSchema = z.object({ _cron: cronMeta }).strict();

/** Crontab: opens an alert (sent by its own job) for each new condition that needs a person, clears the gone ones. */
export function createWatchTask(ctx: TaskContext): Task {
  return async (raw, helpers) => {
    parsePayload(payloadSchema, 'watch', raw);
    const r = await detectAlerts(ctx.db);
    if (r.opened + r.cleared > 0) ctx.logger.info({ event: 'watch:alerts', job_id: helpers.job.id, opened: r.opened, cleared: r.cleared }, `alerts: ${r.opened} opened, ${r.cleared} cleared`);
  };
}
