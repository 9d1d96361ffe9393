import type { Task } from 'graphile-worker';
import { z } from 'zod';
import type { TransferResult } from '../src/bank/types.js';
import { claimChunk, finishChunk } from '../src/db/queries.js';
import { parsePayload, RetryLaterError, type TaskContext } from '../src/jobs/context.js';
import { resolveTransfer, toOutcome } from '../src/jobs/transfer.js';

const payloadSchema = z.object({ chunk_id: z.number().int().positive() }).strict();

/**
 * Pays one chunk: claim it, call the bank under the chunk's fixed IsTuno
 * (asking first when an earlier attempt may have reached the bank), record
 * the answer with its journal entry. A settled chunk is a no-op.
 */
export function createPayoutTask(ctx: TaskContext): Task {
  return async (raw, helpers) => {
    const { chunk_id: chunkId } = parsePayload(payloadSchema, 'payout', raw);
    const log = ctx.logger.child({ job_id: helpers.job.id, task: 'payout', chunk_id: chunkId, attempt: helpers.job.attempts });
    // One round trip claims the chunk and takes the first bank-call slot; one
    // more records the answer, gives the slot back and, for the day's last
    // chunk, enqueues confirm.
    const token = ctx.limiter.token();
    const claim = await claimChunk(ctx.db, chunkId, ctx.holder(), ctx.claimLeaseMs, { token, leaseMs: ctx.slotLeaseMs });
    const slot = claim.slot === null ? null : { slot: claim.slot, token };
    if (claim.action === 'settled') {
      log.debug({ event: 'payout:noop' }, 'chunk already settled');
      return;
    }
    if (claim.action === 'busy') throw new RetryLaterError(`chunk ${chunkId} is being paid by another attempt`);

    let result: TransferResult;
    try {
      result = await ctx.limiter.withSlot(slot, () => resolveTransfer(ctx.bank, 'payout', claim));
    } catch (e) {
      await finishChunk(ctx.db, chunkId, claim.is_tuno, { outcome: 'unknown' }, slot).catch(() => undefined);
      throw e;
    }
    const recorded = await finishChunk(ctx.db, chunkId, claim.is_tuno, toOutcome(result), slot);
    log[result.status === 'succeeded' ? 'info' : 'warn'](
      { event: 'payout:result', is_tuno: claim.is_tuno, amount: claim.amount, status: result.status, recorded, date: claim.business_date, kind: claim.kind,
        ...(result.status === 'failed' ? { code: result.code, bank_message: result.message } : {}),
        ...(result.status === 'unknown' ? { reason: result.reason } : {}) },
      `chunk ${chunkId}: ${result.status}`,
    );
    if (result.status === 'unknown') throw new RetryLaterError(`chunk ${chunkId}: outcome unknown (${result.reason}); will ask the bank again`);
    if (recorded === 'replanned') throw new RetryLaterError(`chunk ${chunkId}: never booked on ${claim.tsymd}; planned again under a new IsTuno`);
  };
}
