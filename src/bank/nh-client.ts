/**
 * The NH Developers adapter of `BankClient`. The exactly-once rules live in
 * nh-transfer.ts; this file validates input (before any HTTP call) and wires the
 * pieces together.
 */
import http from 'node:http';
import https from 'node:https';
import type { Logger } from 'pino';
import { BankInputError } from './errors.js';
import { isValidYmd } from './kst.js';
import { inquireWithRetry } from './nh-inquiry.js';
import { readBalance, readHistory } from './nh-reads.js';
import { DEFAULT_RETRY_POLICY, type RetryPolicy } from './nh-retry.js';
import { runTransfer, type TransferPolicy } from './nh-transfer.js';
import { apiUrls, type NhConnection } from './nh-wire.js';
import { IS_TUNO_PATTERN } from './protocol.js';
import type { BankClient, BankLimiter, InquiryRequest, TransferRequest } from './types.js';

export interface NhBankClientOptions {
  baseUrl: string;
  iscd: string;
  fintechApsno: string;
  accessToken: string;
  /** The bank's per-call limit in KRW; larger amounts are refused before any call. */
  perCallLimit: bigint;
  /** Per HTTP call, from the moment the limiter lets it go until the body is read. */
  timeoutMs: number;
  /** Retries of one call on transient errors (default 8). */
  retries?: number;
  /** Upper bound on the time spent retrying one call (default 60,000 ms). */
  maxRetryTimeMs?: number;
  /** First backoff (default 50 ms); doubles with each retry, randomized ×1..2. */
  minBackoffMs?: number;
  /** Longest single backoff (default 2,000 ms). */
  maxBackoffMs?: number;
  /** Send→inquire→not-found→send cycles per transfer() before `unknown` (default 3). */
  maxRounds?: number;
  /** After the original date ends, how long until not-found becomes final (default 10 min). */
  expiryGraceMs?: number;
  limiter?: BankLimiter;
  logger?: Logger;
  now?: () => Date;
}

export interface NhBankClient extends BankClient {
  /** Closes idle keep-alive connections. */
  close(): void;
}

const DEFAULT_MAX_ROUNDS = 3;
const DEFAULT_EXPIRY_GRACE_MS = 10 * 60 * 1000;

/** Account numbers as NH uses them (FinAcno, Acno): plain alphanumerics and dashes. */
const ACCOUNT_PATTERN = /^[0-9A-Za-z-]{1,64}$/;

export function createNhBankClient(opts: NhBankClientOptions): NhBankClient {
  if (!(opts.perCallLimit > 0n)) throw new RangeError('perCallLimit must be > 0');
  if (!(opts.timeoutMs > 0)) throw new RangeError('timeoutMs must be > 0');
  const base = new URL(opts.baseUrl);
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new RangeError('baseUrl must be http(s)');
  const retry: RetryPolicy = {
    retries: opts.retries ?? DEFAULT_RETRY_POLICY.retries,
    maxRetryTimeMs: opts.maxRetryTimeMs ?? DEFAULT_RETRY_POLICY.maxRetryTimeMs,
    minBackoffMs: opts.minBackoffMs ?? DEFAULT_RETRY_POLICY.minBackoffMs,
    maxBackoffMs: opts.maxBackoffMs ?? DEFAULT_RETRY_POLICY.maxBackoffMs,
  };
  const policy: TransferPolicy = {
    retry,
    maxRounds: opts.maxRounds ?? DEFAULT_MAX_ROUNDS,
    expiryGraceMs: opts.expiryGraceMs ?? DEFAULT_EXPIRY_GRACE_MS,
  };
  const agentOptions = { keepAlive: true };
  const agent = base.protocol === 'https:' ? new https.Agent(agentOptions) : new http.Agent(agentOptions);
  const conn: NhConnection = {
    urls: apiUrls(opts.baseUrl),
    iscd: opts.iscd,
    fintechApsno: opts.fintechApsno,
    accessToken: opts.accessToken,
    timeoutMs: opts.timeoutMs,
    agent,
    now: opts.now ?? (() => new Date()),
    ...(opts.limiter ? { limiter: opts.limiter } : {}),
  };
  const log = opts.logger;

  return {
    transfer(req) {
      // Validation throws synchronously inside the async call: a rejected promise.
      return Promise.resolve().then(() => {
        validateTransfer(req, opts.perCallLimit);
        return runTransfer(conn, policy, log, req);
      });
    },
    inquire(req) {
      return Promise.resolve().then(() => {
        validateInquiry(req);
        return inquireWithRetry(conn, retry, log, req);
      });
    },
    balance(accountNo) {
      return Promise.resolve().then(() => {
        validateAccount(accountNo, 'accountNo');
        return readBalance(conn, retry, log, accountNo);
      });
    },
    history(accountNo, fromYmd, toYmd) {
      return Promise.resolve().then(() => {
        validateAccount(accountNo, 'accountNo');
        if (!isValidYmd(fromYmd) || !isValidYmd(toYmd) || fromYmd > toYmd) {
          throw new BankInputError('invalid_date_range', `invalid date range ${fromYmd}..${toYmd}`);
        }
        return readHistory(conn, retry, log, accountNo, fromYmd, toYmd);
      });
    },
    close() {
      agent.destroy();
    },
  };
}

function validateTransfer(req: TransferRequest, perCallLimit: bigint): void {
  if (typeof req.amount !== 'bigint' || req.amount <= 0n) {
    throw new BankInputError('invalid_amount', `amount must be a bigint > 0, got ${String(req.amount)}`);
  }
  // The per-call limit is NH's limit on DrawingTransfer (payout chunks); the
  // day's withdrawal is one ReceivedTransferAccountNumber of the whole total.
  if (req.kind === 'payout' && req.amount > perCallLimit) {
    throw new BankInputError('over_per_call_limit', `amount ${req.amount} is over the per-call limit ${perCallLimit}`);
  }
  validateInquiry(req);
  validateAccount(req.to, 'to');
  if (req.from === req.to) throw new BankInputError('invalid_account', 'from and to are the same account');
}

function validateInquiry(req: InquiryRequest): void {
  if (req.kind !== 'payout' && req.kind !== 'withdrawal') {
    throw new BankInputError('invalid_kind', `unknown transfer kind ${String(req.kind)}`);
  }
  if (typeof req.isTuno !== 'string' || !IS_TUNO_PATTERN.test(req.isTuno)) {
    throw new BankInputError('invalid_is_tuno', `IsTuno must be 1..20 characters [0-9A-Za-z], got ${JSON.stringify(req.isTuno)}`);
  }
  if (typeof req.tsymd !== 'string' || !isValidYmd(req.tsymd)) {
    throw new BankInputError('invalid_tsymd', `tsymd must be a YYYYMMDD date, got ${JSON.stringify(req.tsymd)}`);
  }
  validateAccount(req.from, 'from');
}

function validateAccount(accountNo: unknown, name: string): void {
  if (typeof accountNo !== 'string' || !ACCOUNT_PATTERN.test(accountNo)) {
    throw new BankInputError('invalid_account', `${name} is not an account number`);
  }
}
