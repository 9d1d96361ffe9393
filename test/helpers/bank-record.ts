/** The tests' cross-check: the ledger's bank movements against the simulator's own record (GET /_sim/transfers). The product proves a day through the reconcile stage (the bank's statements). */
import { sql } from 'slonik';
import { z } from 'zod';
import type { DatabasePool } from '../../src/db/pool.js';

export interface BankTransfer {
  isTuno: string;
  from: string;
  to: string;
  amount: bigint;
}

export interface Reconciliation {
  bankCount: number;
  ledgerCount: number;
  bankTotal: bigint;
  ledgerTotal: bigint;
  missingInLedger: BankTransfer[];
  missingAtBank: BankTransfer[];
  mismatched: Array<{ isTuno: string; bank: BankTransfer; ledger: BankTransfer }>;
  ok: boolean;
}

const simTransfer = z.object({ isTuno: z.string(), from: z.string(), to: z.string(), amount: z.string().regex(/^[0-9]+$/) }).passthrough();

/** Every transfer the simulator booked (its own record, GET /_sim/transfers). */
export async function simulatorTransfers(bankUrl: string): Promise<BankTransfer[]> {
  const res = await fetch(`${bankUrl}/_sim/transfers`);
  if (!res.ok) throw new Error(`GET /_sim/transfers: HTTP ${res.status}`);
  const rows = z.array(simTransfer).parse(await res.json());
  return rows.map((r) => ({ isTuno: r.isTuno, from: r.from, to: r.to, amount: BigInt(r.amount) }));
}

const ledgerRow = z.object({ is_tuno: z.string(), from_account: z.string(), to_account: z.string(), amount: z.bigint() });

/** Every bank movement in our journal: one per payout chunk and withdrawal, by IsTuno. */
export async function ledgerTransfers(db: DatabasePool): Promise<BankTransfer[]> {
  const rows = await db.any(sql.type(ledgerRow)`
    select j.ref as is_tuno,
           max(substr(l.ledger_account, 6)) filter (where l.amount < 0) as from_account,
           max(substr(l.ledger_account, 6)) filter (where l.amount > 0) as to_account,
           sum(l.amount) filter (where l.amount > 0)::bigint as amount
    from settlement.journal_entries j
    join settlement.journal_lines l on l.journal_id = j.id and l.ledger_account like 'bank:%'
    where j.event in ('payout', 'withdrawal')
    group by j.ref`);
  return rows.map((r) => ({ isTuno: r.is_tuno, from: r.from_account, to: r.to_account, amount: r.amount }));
}

/** Holds the ledger against the bank's own record, to the won. */
export function reconcile(bank: BankTransfer[], ledger: BankTransfer[]): Reconciliation {
  const byTuno = new Map(ledger.map((t) => [t.isTuno, t]));
  const seen = new Set<string>();
  const r: Reconciliation = {
    bankCount: bank.length,
    ledgerCount: ledger.length,
    bankTotal: bank.reduce((s, t) => s + t.amount, 0n),
    ledgerTotal: ledger.reduce((s, t) => s + t.amount, 0n),
    missingInLedger: [],
    missingAtBank: [],
    mismatched: [],
    ok: false,
  };
  for (const b of bank) {
    const l = byTuno.get(b.isTuno);
    if (!l || seen.has(b.isTuno)) r.missingInLedger.push(b);
    else if (l.amount !== b.amount || l.from !== b.from || l.to !== b.to) r.mismatched.push({ isTuno: b.isTuno, bank: b, ledger: l });
    seen.add(b.isTuno);
  }
  for (const l of ledger) if (!seen.has(l.isTuno)) r.missingAtBank.push(l);
  r.ok = r.missingInLedger.length === 0 && r.missingAtBank.length === 0 && r.mismatched.length === 0 && r.bankTotal === r.ledgerTotal;
  return r;
}

const money = (v: bigint) => v.toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');

export function formatReconciliation(r: Reconciliation): string {
  const lines = [
    `bank booked ${r.bankCount} transfers, ${money(r.bankTotal)} KRW; ledger has ${r.ledgerCount}, ${money(r.ledgerTotal)} KRW`,
    r.ok ? 'reconciliation: no difference' : `reconciliation: DIFFERENCES — ${r.missingInLedger.length} only at the bank, ${r.missingAtBank.length} only in the ledger, ${r.mismatched.length} mismatched`,
  ];
  for (const t of r.missingInLedger.slice(0, 10)) lines.push(`  only at bank: ${t.isTuno} ${money(t.amount)}`);
  for (const t of r.missingAtBank.slice(0, 10)) lines.push(`  only in ledger: ${t.isTuno} ${money(t.amount)}`);
  for (const m of r.mismatched.slice(0, 10)) lines.push(`  mismatch: ${m.isTuno} bank ${money(m.bank.amount)} ledger ${money(m.ledger.amount)}`);
  return lines.join('\n');
}
