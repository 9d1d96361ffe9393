/**
 * Read-only calls: InquireBalance and InquireTransactionHistory. They move no
 * money, so any unreadable answer is retried; a definite refusal by the bank is
 * thrown as a named error because a caller cannot do anything useful with a
 * half-answer about a balance.
 */
import { AbortError } from 'p-retry';
import type { Logger } from 'pino';
import { z } from 'zod';
import { BankRejectedError, BankResponseError, BankTransientError, BankUnavailableError } from './errors.js';
import { parseKrw } from './money.js';
import { isRetryableHttpStatus } from './nh-inquiry.js';
import { maskAccount } from './nh-log.js';
import { withRetry, type RetryPolicy } from './nh-retry.js';
import { callNh, freshIsTuno, type NhConnection } from './nh-wire.js';
import { API, type ApiNm } from './protocol.js';
import { RPCD, TRANSIENT_CODES } from './rpcd.js';
import type { StatementLine } from './types.js';

/** Lines per history page; NH's maximum Dmcnt. */
const PAGE_SIZE = 1000;
/** Bounds the paging loop: ten million lines is far beyond one account's range. */
const MAX_PAGES = 10_000;

/** A malformed answer to a read is retried, but remembered to name the error right. */
class MalformedReadError extends BankTransientError {}

async function readCall<T>(
  conn: NhConnection,
  policy: RetryPolicy,
  log: Logger | undefined,
  api: ApiNm,
  fields: Record<string, string>,
  parse: (body: Record<string, unknown>) => T | null,
): Promise<T> {
  try {
    return await withRetry(policy, log, { op: api, account: maskAccount(fields['FinAcno'] ?? '') }, async () => {
      const w = await callNh(conn, api, freshIsTuno('R'), fields);
      switch (w.kind) {
        case 'not_sent':
        case 'lost':
          throw new BankTransientError(w.reason);
        case 'malformed':
          throw new MalformedReadError(w.reason);
        case 'wrong_date':
          throw new AbortError('unreachable: reads carry no date requirement');
        case 'http_status':
          if (isRetryableHttpStatus(w.status)) throw new BankTransientError(`HTTP ${w.status}`);
          throw new AbortError(new BankUnavailableError(`${api} answered HTTP ${w.status}`));
        case 'answer':
          break;
      }
      const { Rpcd, Rsms } = w.header;
      if (TRANSIENT_CODES.has(Rpcd)) throw new BankTransientError(`${Rpcd} ${Rsms}`);
      if (Rpcd !== RPCD.OK) throw new AbortError(new BankRejectedError(Rpcd, Rsms, api));
      const value = parse(w.body);
      if (value === null) throw new MalformedReadError(`${api} answer has invalid fields`);
      return value;
    });
  } catch (err) {
    if (err instanceof MalformedReadError) throw new BankResponseError(err.message);
    if (err instanceof BankTransientError) throw new BankUnavailableError(`${api} unanswered: ${err.message}`);
    throw err;
  }
}

export function readBalance(conn: NhConnection, policy: RetryPolicy, log: Logger | undefined, accountNo: string): Promise<bigint> {
  return readCall(conn, policy, log, API.InquireBalance, { FinAcno: accountNo }, (body) => parseKrw(body['Ldbl']));
}

const recordSchema = z.object({
  Trdd: z.string().regex(/^\d{8}$/),
  MnrcDrotDsnc: z.enum(['1', '2']),
  Tram: z.string().regex(/^[0-9]+$/),
  IsTuno: z.string(),
  Counterparty: z.string().optional(),
});

const pageSchema = z.object({
  TotCnt: z.string().regex(/^[0-9]+$/),
  REC: z.array(recordSchema),
});

type Page = { total: number; lines: StatementLine[] };

function parsePage(body: Record<string, unknown>): Page | null {
  const parsed = pageSchema.safeParse(body);
  if (!parsed.success) return null;
  return {
    total: Number(parsed.data.TotCnt),
    lines: parsed.data.REC.map((r) => ({
      isTuno: r.IsTuno,
      date: r.Trdd,
      counterparty: r.Counterparty ?? '',
      amount: BigInt(r.Tram),
      direction: r.MnrcDrotDsnc === '1' ? 'in' : 'out',
    })),
  };
}

/**
 * The statement in booking order. Pages are read oldest first (`Lnsq: "ASC"`):
 * lines booked while we page are appended at the end instead of shifting the pages
 * we have not read yet.
 */
export async function readHistory(
  conn: NhConnection,
  policy: RetryPolicy,
  log: Logger | undefined,
  accountNo: string,
  fromYmd: string,
  toYmd: string,
): Promise<StatementLine[]> {
  const lines: StatementLine[] = [];
  for (let page = 1; page <= MAX_PAGES; page++) {
    const fields = {
      FinAcno: accountNo,
      Insymd: fromYmd,
      Ineymd: toYmd,
      TrnsDsnc: 'A',
      Lnsq: 'ASC',
      PageNo: String(page),
      Dmcnt: String(PAGE_SIZE),
    };
    const got = await readCall(conn, policy, log, API.InquireTransactionHistory, fields, parsePage);
    lines.push(...got.lines);
    if (got.lines.length === 0 || lines.length >= got.total) return lines;
  }
  throw new BankResponseError(`InquireTransactionHistory did not end within ${MAX_PAGES} pages`);
}
