import type { Task } from 'graphile-worker';
import { z } from 'zod';
import type { TransferResult } from '../src/bank/port.js';
import { claimTransfer, finishTransfer } from '../src/db/queries.js';
import { parsePayload, RetryLaterError, type TaskContext } from '../src/jobs/context.js';
import { orderOf, outcomeOf } from '../src/jobs/order.js';

const payloadSchema = z.object({ transfer_id: z.number().int().positive().max(Number.MAX_SAFE_INTEGER) }).strict();

/**
 * Moves one transfer (a payout chunk or a withdrawal) at the bank: claim it,
 * call the bank under its fixed IsTuno (asking first when an earlier attempt
 * may have reached the bank), record the answer with its journal entry. A
 * settled transfer is a no-op; an unresolved one is asked about again later.
 */
export function createTransferTask(ctx: TaskContext): Task {
  return async (raw, helpers) => {
    const { transfer_id: id } = parsePayload(payloadSchema, 'transfer', raw);
    // One round trip claims the transfer and takes the first bank-call slot;
    // one more records the answer and gives the slot back.
    const token = ctx.limiter.token();
    const claim = await claimTransfer(ctx.db, id, ctx.holder(), ctx.claimLeaseMs, { token, leaseMs: ctx.slotLeaseMs });
    const taken = claim.slot === null ? null : { slot: claim.slot, token };
    const log = ctx.logger.child({ job_id: helpers.job.id, task: 'transfer', transfer_id: id, purpose: claim.purpose, is_tuno: claim.is_tuno,
      business_date: claim.business_date, kind: claim.kind, amount: claim.amount.toString(), attempt: helpers.job.attempts });
    if (claim.action === 'settled') {
      log.debug({ event: 'transfer:noop' }, 'transfer already settled');
      return;
    }
    if (claim.action === 'busy') throw new RetryLaterError(`transfer ${id} is being sent by another attempt`);
    // settlement.pause: no new bank call for this kind until resume (which runs the job again at once).
    if (claim.action === 'paused') throw new RetryLaterError(`transfer ${id}: bank calls for ${claim.kind} are paused`);

    let result: TransferResult;
    try {
      result = await ctx.bank.transfer(orderOf(claim), ctx.limiter.gate(taken));
    } catch (e) {
      await finishTransfer(ctx.db, id, claim.is_tuno, { outcome: 'unresolved', reason: (e as Error).message }, taken).catch(() => undefined);
      throw e;
    }
    const recorded = await finishTransfer(ctx.db, id, claim.is_tuno, outcomeOf(result), taken);
    const detail = result.status === 'failed' ? { code: result.code, bank_message: result.message }
      : result.status === 'unresolved' ? { reason: result.reason } : { by: result.by };
    log[result.status === 'succeeded' && recorded === 'succeeded' ? 'info' : 'warn'](
      { event: 'transfer:result', status: result.status, recorded, ...detail }, `transfer ${id}: ${result.status}`);
    if (result.status === 'unresolved') throw new RetryLaterError(`transfer ${id}: outcome unresolved (${result.reason}); will ask the bank again`);
  };
}
