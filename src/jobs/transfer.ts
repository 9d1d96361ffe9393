import type { BankClient, TransferKind, TransferResult } from '../bank/types.js';
import type { Claim, TransferOutcome } from '../db/queries.js';

/**
 * One transfer under its fixed IsTuno. When an earlier attempt may have
 * reached the bank (the claim says resume), the bank is asked about that
 * IsTuno first; only a "not found" leads to sending, still under the same number.
 */
export async function resolveTransfer(bank: BankClient, kind: TransferKind, claim: Claim): Promise<TransferResult> {
  const tsymd = claim.tsymd;
  if (!tsymd) throw new Error(`claim for ${claim.is_tuno} has no transaction date`);
  if (claim.resume) {
    const q = await bank.inquire({ kind, isTuno: claim.is_tuno, tsymd, from: claim.from_account });
    if (q.status === 'succeeded') return { status: 'succeeded', bankRef: q.bankRef, processedAt: q.processedAt, resolvedBy: 'inquiry' };
    if (q.status === 'failed') return q;
    if (q.status === 'unknown') return q;
  }
  return bank.transfer({ kind, isTuno: claim.is_tuno, tsymd, from: claim.from_account, to: claim.to_account, amount: claim.amount });
}

export function toOutcome(r: TransferResult): TransferOutcome {
  switch (r.status) {
    case 'succeeded':
      return { outcome: 'succeeded', bankRef: r.bankRef };
    case 'failed':
      return { outcome: 'failed', code: r.code, message: r.message };
    case 'unknown':
      return { outcome: 'unknown', message: r.reason };
  }
}
