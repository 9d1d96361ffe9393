import type { BankClient, TransferKind, TransferResult } from '../bank/types.js';
import type { Claim, TransferOutcome } from '../db/queries.js';

/**
 * One transfer under its fixed IsTuno and date. A claim that says `resume`
 * (an earlier attempt may have reached the bank) makes the client ask the bank
 * first; only a "not found" leads to sending, still under the same number.
 */
export async function resolveTransfer(bank: BankClient, kind: TransferKind, claim: Claim): Promise<TransferResult> {
  const tsymd = claim.tsymd;
  if (!tsymd) throw new Error(`claim for ${claim.is_tuno} has no transaction date`);
  return bank.transfer({ kind, isTuno: claim.is_tuno, tsymd, from: claim.from_account, to: claim.to_account, amount: claim.amount, resume: claim.resume });
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
