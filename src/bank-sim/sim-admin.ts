/**
 * The simulator's admin API under /_sim/ (JSON; no latency, faults or in-flight
 * accounting). Amounts are decimal strings because they are bigint.
 *
 *   POST /_sim/accounts            { accounts: [{ accountNo, balance }] } opens / re-opens, SETS balances
 *   POST /_sim/accounts/:no/close  closes an account (transfers to or from it get A0212)
 *   GET  /_sim/accounts/:no        { accountNo, balance, open }
 *   GET  /_sim/transfers           every booked transfer, in booking order
 *   GET  /_sim/stats               counters (see sim-stats.ts)
 *   POST /_sim/reset-stats         zeroes the counters (not the accounts or transfers)
 *   GET  /_sim/config              the runtime settings
 *   POST /_sim/config              changes runtime settings (latency, jitter, cap, fault rates)
 */
import { z } from 'zod';
import type { SimLedger } from './sim-ledger.js';
import { patchRuntimeConfig, simRuntimePatchSchema, type SimRuntimeConfig } from './sim-options.js';
import { resetStats, statsJson, type SimStats } from './sim-stats.js';

export interface AdminContext {
  ledger: SimLedger;
  stats: SimStats;
  getConfig(): SimRuntimeConfig;
  setConfig(c: SimRuntimeConfig): void;
}

export interface AdminReply {
  status: number;
  body: unknown;
}

const accountsSchema = z
  .object({
    accounts: z.array(
      z.object({
        accountNo: z.string().regex(/^[0-9A-Za-z-]{1,64}$/),
        balance: z.string().regex(/^[0-9]+$/, 'balance must be a decimal string'),
      }),
    ),
  })
  .strict();

const ok = (body: unknown): AdminReply => ({ status: 200, body });
const bad = (status: number, error: string): AdminReply => ({ status, body: { error } });

function zodMessage(e: z.ZodError): string {
  return e.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ');
}

export function handleAdmin(ctx: AdminContext, method: string, path: string, body: unknown): AdminReply {
  const { ledger } = ctx;
  const account = /^\/_sim\/accounts\/([^/]+)(\/close)?$/.exec(path);
  if (account) {
    const accountNo = decodeURIComponent(account[1] ?? '');
    if (account[2] && method === 'POST') {
      return ledger.closeAccount(accountNo) ? ok({ accountNo, open: false }) : bad(404, `no account ${accountNo}`);
    }
    if (!account[2] && method === 'GET') {
      const a = ledger.accounts.get(accountNo);
      return a ? ok({ accountNo, balance: a.balance.toString(), open: a.open }) : bad(404, `no account ${accountNo}`);
    }
    return bad(405, `${method} not allowed on ${path}`);
  }
  switch (`${method} ${path}`) {
    case 'POST /_sim/accounts': {
      const parsed = accountsSchema.safeParse(body);
      if (!parsed.success) return bad(400, zodMessage(parsed.error));
      for (const a of parsed.data.accounts) ledger.setAccount(a.accountNo, BigInt(a.balance));
      return ok({ opened: parsed.data.accounts.length });
    }
    case 'GET /_sim/transfers':
      return ok(
        ledger.transfers.map((t) => ({
          isTuno: t.isTuno,
          tsymd: t.tsymd,
          apiNm: t.apiNm,
          from: t.from,
          to: t.to,
          amount: t.amount.toString(),
          processedAt: t.processedAt.toISOString(),
        })),
      );
    case 'GET /_sim/stats':
      return ok(statsJson(ctx.stats));
    case 'POST /_sim/reset-stats':
      resetStats(ctx.stats);
      return ok(statsJson(ctx.stats));
    case 'GET /_sim/config':
      return ok(ctx.getConfig());
    case 'POST /_sim/config': {
      const parsed = simRuntimePatchSchema.safeParse(body);
      if (!parsed.success) return bad(400, zodMessage(parsed.error));
      try {
        ctx.setConfig(patchRuntimeConfig(ctx.getConfig(), parsed.data));
      } catch (e) {
        return bad(400, (e as Error).message);
      }
      return ok(ctx.getConfig());
    }
    default:
      return bad(404, `no admin route ${method} ${path}`);
  }
}
