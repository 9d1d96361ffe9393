import type { Job, Task } from 'graphile-worker';
import { z } from 'zod';
import { GateClosedError, type TransferResult } from '../bank/port.js';
import type { Claim } from '../domain.js';
import type { Attempt } from '../desk/index.js';
import { RetryLaterError } from '../domain.js';
import { parsePayload, type TaskContext } from './context.js';
import { orderOf, outcomeOf } from '../jobs/order.js';
import { BankInputError } from '../bank/errors.js';

/** Thrown before any request of the attempt could leave: the order could not be built, or the client refused it (not a request found nonconforming inside a call). */
const neverSent = (e: unknown) =>
  (e instanceof BankInputError && e.code !== 'nonconforming_request') || (e instanceof Error && e.name === 'OrderError');

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
    // The process's bank desk batches the claim with others waiting (and
    // takes the slot the first bank call will need), hands the slot on when
    // the bank has answered, and batches the outcome.
    await ctx.desk.withAttempt(id, async (a) => {
      const claim = await a.claim();
      await attemptTransfer(ctx, a, helpers.job, id, claim);
    });
  };
}

async function attemptTransfer(ctx: TaskContext, a: Attempt, job: Job, id: number, claim: Claim): Promise<void> {
  const keys = () => ({ job_id: job.id, task: 'transfer', transfer_id: id, purpose: claim.purpose, is_tuno: claim.is_tuno,
    business_date: claim.business_date, kind: claim.kind, amount: claim.amount.toString(), attempt: job.attempts });
  if (claim.action === 'settled') {
    if (ctx.logger.isLevelEnabled('debug')) ctx.logger.debug({ ...keys(), event: 'transfer:noop' }, 'transfer already settled');
    return;
  }
  if (claim.action === 'busy') throw new RetryLaterError(`transfer ${id} is being sent by another attempt`);
  // settlement.pause: no new bank call for this kind until resume (which runs the job again at once).
  if (claim.action === 'paused') throw new RetryLaterError(`transfer ${id}: bank calls for ${claim.kind} are paused`);
  // The bank's quiet hours (settlement.bank_windows): nothing was claimed; the
  // database gave the transfer a job that runs when the window ends.
  if (claim.action === 'quiet') {
    if (ctx.logger.isLevelEnabled('debug')) {
      ctx.logger.debug({ ...keys(), event: 'transfer:quiet', until: new Date(claim.quiet_until_ms!).toISOString() }, `transfer ${id}: the bank is quiet; runs again when the window ends`);
    }
    return;
  }

  let result: TransferResult;
  try {
    result = await ctx.bank.transfer(orderOf(claim), a.gate);
  } catch (e) {
    // The worker is stopping: this attempt starts no new bank call. Its claim
    // is released with the worker's pool (settlement.release_pool) and the
    // next attempt asks the bank first; nothing is recorded here.
    if (e instanceof GateClosedError) throw e;
    // Refused by our own checks before any request of this attempt left
    // (the order, or the client's validation of it): nothing was sent. With
    // no earlier attempt that may have reached the bank, the chunk fails for
    // good with the reason (the day blocks once, with the cause) instead of
    // being unknown; otherwise the bank or the statement decides as usual.
    if (neverSent(e) && !claim.resume) {
      const recorded = await a.finish(claim.is_tuno, { outcome: 'failed', code: 'not_sent', message: `not sent: ${(e as Error).message}` });
      ctx.logger.warn({ ...keys(), event: 'transfer:not_sent', recorded, err: (e as Error).message }, `transfer ${id}: refused before it was sent`);
      return;
    }
    await a.finish(claim.is_tuno, { outcome: 'unresolved', reason: (e as Error).message }).catch(() => undefined);
    throw e;
  }
  const recorded = await a.finish(claim.is_tuno, outcomeOf(result));
  const ok = result.status === 'succeeded' && recorded === 'succeeded';
  // One info line per paid transfer; anything else is a warning.
  if (ok && !ctx.logger.isLevelEnabled('info')) return;
  const detail = result.status === 'failed' ? { code: result.code, bank_message: result.message }
    : result.status === 'unresolved' ? { reason: result.reason } : { by: result.by };
  ctx.logger[ok ? 'info' : 'warn']({ ...keys(), event: 'transfer:result', status: result.status, recorded, ...detail }, `transfer ${id}: ${result.status}`);
  if (result.status === 'unresolved') throw new RetryLaterError(`transfer ${id}: outcome unresolved (${result.reason}); will ask the bank again`);
}
