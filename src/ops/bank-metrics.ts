import type { BankClient } from '../bank/port.js';

type Observe = (api: string, outcome: string, ms: number) => void;

/**
 * The bank port with every call timed and counted. A transfer's outcome is
 * its result's status (succeeded / failed / unresolved), so a payout the bank
 * refused is counted as failed even though its job succeeded; every other
 * call is ok or error. `api` names the port operation (transfer_payout,
 * transfer_withdrawal, balance, statement, open_fin_account, check_fin_account).
 */
export function instrumentBank(bank: BankClient, observe: Observe): BankClient {
  const timed = async <T>(api: string, call: () => Promise<T>, outcome: (r: T) => string = () => 'ok'): Promise<T> => {
    const t0 = performance.now();
    try {
      const r = await call();
      observe(api, outcome(r), performance.now() - t0);
      return r;
    } catch (e) {
      observe(api, 'error', performance.now() - t0);
      throw e;
    }
  };
  return {
    transfer: (order, gate) => timed(`transfer_${order.purpose}`, () => bank.transfer(order, gate), (r) => r.status),
    balance: (finAcno, gate) => timed('balance', () => bank.balance(finAcno, gate)),
    statement: (bncd, acno, from, to, gate) => timed('statement', () => bank.statement(bncd, acno, from, to, gate)),
    openFinAccount: (bncd, acno, gate) => timed('open_fin_account', () => bank.openFinAccount(bncd, acno, gate)),
    checkFinAccount: (rgno, gate) => timed('check_fin_account', () => bank.checkFinAccount(rgno, gate)),
  };
}
