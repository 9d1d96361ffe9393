/**
 * The simulator's admin API under /_sim/ — never part of NH's API. JSON in and
 * out; amounts are decimal strings (bigint). No latency, faults or in-flight
 * accounting. With the `adminToken` option every call needs
 * `authorization: Bearer <token>` (checked by the server, 401 otherwise).
 *
 *   POST /_sim/accounts                   {accounts:[{bncd?='011', acno, balance}]} opens, or SETS the balance → {opened}
 *   GET  /_sim/accounts/:bncd/:acno       {bncd, acno, balance, finAcno|null, open}
 *   POST /_sim/accounts/:bncd/:acno/close closes it (transfers to/from it, its fin-account: S0212)
 *   POST /_sim/contracts                  {contracts:[{iscd, fintechApsno, bncd, acno}]} → {registered}
 *   POST /_sim/fin-accounts               {accounts:[{bncd, acno, finAcno?}]} issues fin-accounts (DrtrRgyn Y) → {accounts:[{bncd, acno, finAcno}]}
 *   GET  /_sim/transfers                  every booked money movement, in booking order
 *   POST /_sim/cancel                     {tuno} books a cancellation (Ccyn 1 lines on both accounts) → {tuno, cancelTuno}
 *   GET  /_sim/stats, POST /_sim/reset-stats
 *   GET  /_sim/config, POST /_sim/config  runtime latency / cap / fault settings
 *   GET  /_sim/codes                      the simulator's own response codes (sim-codes.ts)
 *   GET  /_sim/requests                   every API request received (option recordRequests; else 404)
 */
import { z } from 'zod';
import { codesJson } from './sim-codes.js';
import type { SimLedger } from './sim-ledger.js';
import { patchRuntimeConfig, simRuntimePatchSchema, type SimRuntimeConfig } from './sim-options.js';
import { resetStats, statsJson, type SimStats } from './sim-stats.js';

export interface RecordedRequest {
  api: string;
  body: unknown;
  /** When it arrived, by the simulator's clock (ISO). */
  at: string;
}

export interface AdminContext {
  ledger: SimLedger;
  stats: SimStats;
  now: () => Date;
  /** null unless the recordRequests option is on. */
  requests: RecordedRequest[] | null;
  getConfig(): SimRuntimeConfig;
  setConfig(c: SimRuntimeConfig): void;
}

export interface AdminReply {
  status: number;
  body: unknown;
}

const bncd = z.string().regex(/^[0-9]{3}$/, 'must be 3 digits');
const acno = z.string().regex(/^[0-9]{1,20}$/, 'must be 1..20 digits');
const many = <T extends z.ZodTypeAny>(item: T) => z.array(item).max(100_000);

const accountsSchema = z
  .object({ accounts: many(z.object({ bncd: bncd.default('011'), acno, balance: z.string().regex(/^(0|[1-9][0-9]{0,17})$/, 'must be a decimal string') }).strict()) })
  .strict();
const contractsSchema = z
  .object({ contracts: many(z.object({ iscd: z.string().regex(/^[0-9]{1,6}$/), fintechApsno: z.string().regex(/^[0-9]{1,3}$/), bncd, acno }).strict()) })
  .strict();
const finAccountsSchema = z.object({ accounts: many(z.object({ bncd, acno, finAcno: z.string().regex(/^[0-9]{1,30}$/).optional() }).strict()) }).strict();
const cancelSchema = z.object({ tuno: z.string().min(1).max(50) }).strict();

const ok = (body: unknown): AdminReply => ({ status: 200, body });
const bad = (status: number, error: string): AdminReply => ({ status, body: { error } });

function parse<T extends z.ZodTypeAny>(schema: T, body: unknown): { data: z.output<T> } | AdminReply {
  const r = schema.safeParse(body ?? {});
  if (r.success) return { data: r.data };
  return bad(400, r.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '));
}

export function handleAdmin(ctx: AdminContext, method: string, rawPath: string, body: unknown): AdminReply {
  const { ledger } = ctx;
  let segments: string[];
  try {
    segments = rawPath.split('/').map((x) => decodeURIComponent(x));
  } catch {
    return bad(400, 'malformed percent-encoding in the path');
  }
  const path = segments.join('/');
  // ['', '_sim', 'accounts', bncd, acno, ('close')]
  if (segments[2] === 'accounts' && (segments.length === 5 || (segments.length === 6 && segments[5] === 'close'))) {
    const [, , , b = '', a = '', close] = segments;
    const acct = ledger.account(b, a);
    if (!acct) return bad(404, `no account ${b}-${a}`);
    if (close && method === 'POST') {
      ledger.closeAccount(b, a);
      return ok({ bncd: b, acno: a, open: false });
    }
    if (!close && method === 'GET') return ok({ bncd: b, acno: a, balance: acct.balance.toString(), finAcno: acct.finAcno, open: acct.open });
    return bad(405, `${method} not allowed on ${path}`);
  }
  switch (`${method} ${path}`) {
    case 'POST /_sim/accounts': {
      const p = parse(accountsSchema, body);
      if ('status' in p) return p;
      const now = ctx.now();
      for (const x of p.data.accounts) ledger.setAccount(x.bncd, x.acno, BigInt(x.balance), now);
      return ok({ opened: p.data.accounts.length });
    }
    case 'POST /_sim/contracts': {
      const p = parse(contractsSchema, body);
      if ('status' in p) return p;
      for (const c of p.data.contracts) ledger.setContract(c.iscd, c.fintechApsno, c.bncd, c.acno);
      return ok({ registered: p.data.contracts.length });
    }
    case 'POST /_sim/fin-accounts': {
      const p = parse(finAccountsSchema, body);
      if ('status' in p) return p;
      const missing = p.data.accounts.filter((x) => !ledger.account(x.bncd, x.acno));
      if (missing.length > 0) return bad(404, `no account ${missing.slice(0, 5).map((x) => `${x.bncd}-${x.acno}`).join(', ')}`);
      const now = ctx.now();
      return ok({
        accounts: p.data.accounts.map((x) => ({ bncd: x.bncd, acno: x.acno, finAcno: ledger.issueFinAcno(ledger.account(x.bncd, x.acno)!, now, true, x.finAcno) })),
      });
    }
    case 'GET /_sim/transfers':
      return ok(
        ledger.transfers.map((t) => ({
          isTuno: t.isTuno,
          tsymd: t.tsymd,
          api: t.api,
          from: t.from.acno,
          to: t.to.acno,
          fromBncd: t.from.bncd,
          toBncd: t.to.bncd,
          amount: t.amount.toString(),
          processedAt: t.at.toISOString(),
          tuno: t.tuno,
          cancelTuno: t.cancelTuno,
        })),
      );
    case 'POST /_sim/cancel': {
      const p = parse(cancelSchema, body);
      if ('status' in p) return p;
      const r = ledger.cancel(p.data.tuno, ctx.now());
      if (r === 'not_found') return bad(404, `no booked transfer with Tuno ${p.data.tuno}`);
      if (r === 'already_cancelled') return bad(409, `Tuno ${p.data.tuno} is already cancelled`);
      return ok({ tuno: p.data.tuno, cancelTuno: r.tuno });
    }
    case 'GET /_sim/stats':
      return ok(statsJson(ctx.stats));
    case 'POST /_sim/reset-stats':
      resetStats(ctx.stats);
      return ok(statsJson(ctx.stats));
    case 'GET /_sim/codes':
      return ok(codesJson());
    case 'GET /_sim/requests':
      return ctx.requests ? ok(ctx.requests) : bad(404, 'requests are not recorded (start the simulator with recordRequests / --record-requests)');
    case 'GET /_sim/config':
      return ok(ctx.getConfig());
    case 'POST /_sim/config': {
      const p = parse(simRuntimePatchSchema, body);
      if ('status' in p) return p;
      try {
        ctx.setConfig(patchRuntimeConfig(ctx.getConfig(), p.data));
      } catch (e) {
        return bad(400, (e as Error).message);
      }
      return ok(ctx.getConfig());
    }
    default:
      return bad(404, `no admin route ${method} ${path}`);
  }
}
