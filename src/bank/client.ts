/**
 * The NH Developers adapter of the bank port. This file checks every order
 * and argument before any HTTP call (BankInputError) and wires the rooms
 * together: wire.ts (one call), transfer.ts (the exactly-once state machine),
 * reads.ts (balance, statement, registration).
 */
import http from 'node:http';
import https from 'node:https';
import type { Logger } from 'pino';
import { checkFields, defaultApiSvcCodes, isValidYmd, PRINTED_MAX, REQUEST_HEADER, type ApiSvcCodes } from '../nh/contract.js';
import { BankInputError } from './errors.js';
import { emptyCodeBook, openGate, type BankClient, type CodeBook, type TransferOrder } from './port.js';
import { checkFinAccount, openFinAccount, readBalance, readStatement } from './reads.js';
import { runTransfer } from './transfer.js';
import { apiUrls, DEFAULT_RETRY_POLICY, type Wire } from './wire.js';

export interface NhBankClientOptions {
  baseUrl: string;
  /** Institution code (Iscd), digits ≤ 6. */
  iscd: string;
  /** The app used for reads and registration (a transfer names its own, order.fintechApsno). */
  fintechApsno: string;
  accessToken: string;
  /** BrdtBrno for fin-account registration (digits ≤ 10); only openFinAccount/checkFinAccount need it. */
  brdtBrno?: string;
  /** ApiSvcCd per API (default: contract.ts' defaults). */
  svcCodes?: ApiSvcCodes;
  /** KRW; a payout above it is refused before any call. */
  perCallLimit: bigint;
  /** Per HTTP call, from leaving the gate until the answer is read. */
  timeoutMs: number;
  /** Operator classes of non-00000 codes; consulted on every answer, so its contents may change at runtime. Default: empty. */
  codeBook?: CodeBook;
  /** The clock for Tsymd/Trtm of calls (default: the system clock). */
  now?: () => Date;
  logger?: Logger;
  /** Retries of one send / one result check / one read on transient failures (default 6). */
  retries?: number;
  /** First backoff (default 100 ms), doubling, randomized ×1..2. */
  minBackoffMs?: number;
  /** Longest single backoff (default 2,000 ms). */
  maxBackoffMs?: number;
  /** No retry starts after this long (default 30,000 ms). */
  maxRetryTimeMs?: number;
  /** Send → check → not found → send cycles per transfer() before `unresolved` (default 3). */
  maxRounds?: number;
  /** How a request travels (default: HTTP); the schedule explorer (test/explore/) passes its in-process network. */
  post?: Wire['post'];
}

export interface NhBankClient extends BankClient {
  /** Closes idle keep-alive connections. */
  close(): void;
}

const DEFAULT_MAX_ROUNDS = 3;

const ISTUNO = /^[0-9]{1,20}$/;
const FIN_ACNO = /^[0-9]{1,30}$/;
const BNCD = /^[0-9]{3}$/;
const ACNO = /^[0-9]{1,20}$/;
const APSNO = /^[0-9]{3}$/;
const RGNO = /^[0-9]{1,20}$/;
const BRDT_BRNO = /^[0-9]{1,10}$/;
/** Tram is at most 15 digits. */
const MAX_TRAM = 10n ** 15n - 1n;
/** Control, format (zero-width), unassigned and private-use characters. */
const UNPRINTABLE = /\p{C}/u;

export function createNhBankClient(opts: NhBankClientOptions): NhBankClient {
  const base = new URL(opts.baseUrl);
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new RangeError('baseUrl must be http(s)');
  if (!(opts.perCallLimit > 0n)) throw new RangeError('perCallLimit must be > 0');
  if (!(opts.timeoutMs > 0)) throw new RangeError('timeoutMs must be > 0');
  const headerProblems = checkFields('settings', { Iscd: opts.iscd, FintechApsno: opts.fintechApsno, AccessToken: opts.accessToken }, {
    Iscd: REQUEST_HEADER['Iscd']!,
    FintechApsno: REQUEST_HEADER['FintechApsno']!,
    AccessToken: REQUEST_HEADER['AccessToken']!,
  });
  // The message names the field, never the token's value.
  if (headerProblems.length > 0) throw new RangeError(`bank client settings: ${headerProblems.join('; ')}`);
  if (opts.brdtBrno !== undefined && !BRDT_BRNO.test(opts.brdtBrno)) throw new RangeError('brdtBrno must be 1..10 digits');

  const agent = base.protocol === 'https:' ? new https.Agent({ keepAlive: true }) : new http.Agent({ keepAlive: true });
  const codeBook = opts.codeBook ?? emptyCodeBook;
  const w: Wire = {
    urls: apiUrls(opts.baseUrl),
    iscd: opts.iscd,
    accessToken: opts.accessToken,
    svcCodes: opts.svcCodes ?? defaultApiSvcCodes(),
    timeoutMs: opts.timeoutMs,
    agent,
    now: opts.now ?? (() => new Date()),
    // Late-bound: the worker swaps the code book's contents while running.
    codeBook: (api, rpcd) => codeBook(api, rpcd),
    retry: {
      retries: opts.retries ?? DEFAULT_RETRY_POLICY.retries,
      minBackoffMs: opts.minBackoffMs ?? DEFAULT_RETRY_POLICY.minBackoffMs,
      maxBackoffMs: opts.maxBackoffMs ?? DEFAULT_RETRY_POLICY.maxBackoffMs,
      maxRetryTimeMs: opts.maxRetryTimeMs ?? DEFAULT_RETRY_POLICY.maxRetryTimeMs,
    },
    logger: opts.logger,
    post: opts.post,
  };
  const policy = { maxRounds: opts.maxRounds ?? DEFAULT_MAX_ROUNDS };
  const app = opts.fintechApsno;
  const brdtBrno = (): string => {
    if (opts.brdtBrno === undefined) throw new BankInputError('invalid_brdt_brno', 'fin-account registration needs the brdtBrno option');
    return opts.brdtBrno;
  };

  // `async` so that a validation error is a rejected promise, never a synchronous throw.
  return {
    async transfer(order, gate = openGate) {
      validateOrder(order, opts.perCallLimit);
      return runTransfer(w, policy, order, gate);
    },
    async balance(finAcno, gate = openGate) {
      need(FIN_ACNO, finAcno, 'invalid_account', 'finAcno must be 1..30 digits');
      return readBalance(w, gate, app, finAcno);
    },
    async statement(bncd, acno, fromYmd, toYmd, gate = openGate) {
      need(BNCD, bncd, 'invalid_account', 'bncd must be 3 digits');
      need(ACNO, acno, 'invalid_account', 'acno must be 1..20 digits');
      if (!isYmd(fromYmd) || !isYmd(toYmd) || fromYmd > toYmd) {
        throw new BankInputError('invalid_date_range', `invalid date range ${String(fromYmd)}..${String(toYmd)}`);
      }
      return readStatement(w, gate, app, bncd, acno, fromYmd, toYmd);
    },
    async openFinAccount(bncd, acno, gate = openGate) {
      need(BNCD, bncd, 'invalid_account', 'bncd must be 3 digits');
      need(ACNO, acno, 'invalid_account', 'acno must be 1..20 digits');
      return openFinAccount(w, gate, app, brdtBrno(), bncd, acno);
    },
    async checkFinAccount(rgno, gate = openGate) {
      need(RGNO, rgno, 'invalid_rgno', 'rgno must be 1..20 digits');
      return checkFinAccount(w, gate, app, brdtBrno(), rgno);
    },
    close() {
      agent.destroy();
    },
  };
}

function need(pattern: RegExp, value: unknown, code: ConstructorParameters<typeof BankInputError>[0], message: string): void {
  if (typeof value !== 'string' || !pattern.test(value)) throw new BankInputError(code, message);
}

function isYmd(v: unknown): v is string {
  return typeof v === 'string' && isValidYmd(v);
}

/** Everything NH's layout and our own rules need of an order, checked before any call. */
export function validateOrder(order: TransferOrder, perCallLimit: bigint): void {
  const o = order as unknown as Record<string, unknown>;
  if (o['purpose'] !== 'payout' && o['purpose'] !== 'withdrawal') throw new BankInputError('invalid_purpose', `unknown purpose ${String(o['purpose'])}`);
  need(ISTUNO, order.isTuno, 'invalid_is_tuno', `IsTuno must be 1..20 digits, got ${JSON.stringify(order.isTuno)}`);
  if (!isYmd(order.tsymd)) throw new BankInputError('invalid_tsymd', `tsymd must be a real date YYYYMMDD, got ${JSON.stringify(order.tsymd)}`);
  need(APSNO, order.fintechApsno, 'invalid_fintech_apsno', 'fintechApsno must be 3 digits');
  if (typeof order.amount !== 'bigint' || order.amount <= 0n || order.amount > MAX_TRAM) {
    throw new BankInputError('invalid_amount', `amount must be a bigint in 1..${MAX_TRAM}, got ${String(order.amount)}`);
  }
  if (order.purpose === 'payout' && order.amount > perCallLimit) {
    throw new BankInputError('over_per_call_limit', `amount ${order.amount} is over the per-call limit ${perCallLimit}`);
  }
  if (typeof order.memo !== 'string' || [...order.memo].length > PRINTED_MAX || UNPRINTABLE.test(order.memo)) {
    throw new BankInputError('invalid_memo', `memo must be printable text of at most ${PRINTED_MAX} characters`);
  }
  if (typeof order.sendable !== 'boolean' || typeof order.resume !== 'boolean') {
    throw new BankInputError('invalid_order', 'sendable and resume must be booleans');
  }
  if (order.purpose === 'payout') need(FIN_ACNO, order.finAcno, 'invalid_account', 'finAcno must be 1..30 digits');
  else {
    need(BNCD, order.bncd, 'invalid_account', 'bncd must be 3 digits');
    need(ACNO, order.acno, 'invalid_account', 'acno must be 1..20 digits');
  }
}
