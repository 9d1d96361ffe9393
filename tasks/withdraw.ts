import type { Task } from 'graphile-worker';
import { z } from 'zod';
import { claimWithdrawal, dateSchema, finishWithdrawal, kindSchema } from '../src/db/queries.js';
import { parsePayload, RetryLaterError, type TaskContext } from '../src/jobs/context.js';
import { resolveTransfer, toOutcome } from '../src/jobs/transfer.js';

const payloadSchema = z.object({ date: dateSchema, kind: kindSchema }).strict();

/** Moves a confirmed day's total from the settlement account to the corporate account, once. */
export function createWithdrawTask(ctx: TaskContext): Task {
  return async (raw, helpers) => {
    const { date, kind } = parsePayload(payloadSchema, 'withdraw', raw);
    const log = ctx.logger.child({ job_id: helpers.job.id, task: 'withdraw', date, kind, attempt: helpers.job.attempts });
    const claim = await claimWithdrawal(ctx.db, date, kind, ctx.holder(), ctx.claimLeaseMs);
    if (claim.action === 'settled') return;
    if (claim.action === 'busy') throw new RetryLaterError(`withdrawal ${date} ${kind} is being sent by another attempt`);
    const result = await resolveTransfer(ctx.bank, 'withdrawal', claim);
    const recorded = await finishWithdrawal(ctx.db, date, kind, claim.is_tuno, toOutcome(result));
    log[result.status === 'succeeded' ? 'info' : 'warn'](
      { event: 'withdraw:result', is_tuno: claim.is_tuno, amount: claim.amount, status: result.status, recorded },
      `withdrawal ${date} ${kind}: ${result.status}`,
    );
    if (result.status === 'unknown') throw new RetryLaterError(`withdrawal ${date} ${kind}: outcome unknown (${result.reason})`);
    if (recorded === 'replanned') throw new RetryLaterError(`withdrawal ${date} ${kind}: never booked on ${claim.tsymd}; planned again under a new IsTuno`);
  };
}
