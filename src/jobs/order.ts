import type { TransferOrder, TransferResult } from '../bank/port.js';
import type { Claim, TransferOutcome } from '../domain.js';

/** A claimed transfer that cannot be made into a bank order (nothing is sent). */
export class OrderError extends Error {
  override name = 'OrderError';
}

/** The bank order for a claimed transfer: everything fixed by the database, nothing chosen here. */
export function orderOf(claim: Claim): TransferOrder {
  if (!claim.tsymd) throw new OrderError(`transfer ${claim.transfer_id} was claimed without a transaction date`);
  const base = {
    isTuno: claim.is_tuno,
    tsymd: claim.tsymd,
    fintechApsno: claim.fintech_apsno,
    amount: claim.amount,
    memo: claim.memo,
    sendable: claim.sendable,
    resume: claim.resume,
    ...(claim.lease_until_ms === null ? {} : { sendUntilMs: claim.lease_until_ms }),
  };
  if (claim.purpose === 'payout') {
    if (!claim.fin_acno) throw new OrderError(`payout ${claim.transfer_id} has no fin-account`);
    return { ...base, purpose: 'payout', finAcno: claim.fin_acno };
  }
  if (!claim.to_bncd) throw new OrderError(`withdrawal ${claim.transfer_id} has no bank code`);
  return { ...base, purpose: 'withdrawal', bncd: claim.to_bncd, acno: claim.to_account };
}

export function outcomeOf(r: TransferResult): TransferOutcome {
  switch (r.status) {
    case 'succeeded':
      return { outcome: 'succeeded', processedAt: r.processedAt };
    case 'failed':
      return { outcome: 'failed', code: r.code, message: r.message };
    case 'unresolved':
      return { outcome: 'unresolved', reason: r.reason };
  }
}
