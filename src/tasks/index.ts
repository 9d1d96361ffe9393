/**
 * The graphile-worker task list: one task per file of this folder, each
 * guarded so that a job that can never succeed fails for good at once.
 */
import type { Task, TaskList } from 'graphile-worker';
import { SettlementError } from '../db/errors.js';
import { rejectJob } from '../db/workers.js';
import { PayloadError } from '../domain.js';
import { createAlertTask } from './alert.js';
import type { TaskContext } from './context.js';
import type { JobsInHand } from './in-hand.js';
import { createReconcileTask } from './reconcile.js';
import { createRegisterTask } from './register.js';
import { createStageTask } from './stage.js';
import { createSweepTask } from './sweep.js';
import { createTransferTask } from './transfer.js';
import { createWatchTask } from './watch.js';

/** `inHand`: counts every job while it runs (a stop waits for them). */
export function createTaskList(ctx: TaskContext, inHand?: JobsInHand): TaskList {
  // A job that can never succeed (a payload that will never parse, a transfer
  // or account that does not exist) fails for good at once: it is recorded in
  // settlement.rejected_jobs, logged as an error and taken off the queue,
  // instead of being retried 25 times.
  const guard = (t: Task): Task => (payload, helpers) => (inHand ? inHand.run(() => guarded(t, payload, helpers)) : guarded(t, payload, helpers));
  const guarded = async (t: Task, payload: unknown, helpers: Parameters<Task>[1]) => {
    try {
      return await t(payload, helpers);
    } catch (e) {
      const permanent = e instanceof PayloadError || (e instanceof SettlementError && (e.code === 'transfer_not_found' || e.code === 'unknown_account' || e.code === 'alert_not_found'));
      if (!permanent) throw e;
      const err = e as PayloadError | SettlementError;
      await rejectJob(ctx.db, helpers.job.id, helpers.job.task_identifier, payload, err.code, err.message);
      ctx.logger.error({ event: 'job:rejected', job_id: helpers.job.id, task: helpers.job.task_identifier, code: err.code, err: err.message }, err.message);
    }
  };
  return {
    stage: guard(createStageTask(ctx)),
    transfer: guard(createTransferTask(ctx)),
    register: guard(createRegisterTask(ctx)),
    sweep: guard(createSweepTask(ctx)),
    watch: guard(createWatchTask(ctx)),
    alert: guard(createAlertTask(ctx)),
    reconcile: guard(createReconcileTask(ctx)),
  };
}
