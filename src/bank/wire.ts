/**
 * One NH call: build the Header from the contract, POST `{baseUrl}/{ApiNm}.nh`
 * through the caller's gate with a timeout, and reduce what came back to a
 * `WireResult` that says what we know — never more. What a result means for a
 * transfer or a read is decided by transfer.ts / reads.ts. Also home of the
 * retry helper (p-retry, transient failures only) both of them use.
 */
import { randomInt } from 'node:crypto';
import type http from 'node:http';
import pRetry from 'p-retry';
import type { Logger } from 'pino';
import { APIS, apiPath, checkRequest, checkResponse, kstHms, kstYmd, type ApiNm, type ApiSvcCodes } from '../nh/contract.js';
import { BankInputError } from './errors.js';
import { postJson, type PostOptions, type PostOutcome } from './http-post.js';
import { GateClosedError, type CodeBook, type Gate } from './port.js';

/** What every call shares; built once by the client. */
export interface Wire {
  urls: Readonly<Record<ApiNm, URL>>;
  iscd: string;
  accessToken: string;
  svcCodes: ApiSvcCodes;
  timeoutMs: number;
  agent: http.Agent;
  /** The clock for Tsymd/Trtm (the worker's is synced to the database). */
  now: () => Date;
  codeBook: CodeBook;
  retry: RetryPolicy;
  logger: Logger | undefined;
  /** How a request travels (default: HTTP, postJson); the schedule explorer passes its in-process network. */
  post?: (url: URL, payload: string, opts: PostOptions) => Promise<PostOutcome>;
}

/** The answer's Header, as RESPONSE_HEADER publishes it. */
export interface AnswerHeader {
  ApiNm: string;
  Tsymd: string;
  Trtm: string;
  Iscd: string;
  FintechApsno: string;
  ApiSvcCd: string;
  IsTuno: string;
  Rpcd: string;
  Rsms: string;
}

export type WireResult =
  /** A readable NH answer (any Rpcd) about our request. `trtm` is the Trtm we sent. */
  | { kind: 'answer'; header: AnswerHeader; body: Record<string, unknown>; trtm: string }
  /** Never left this process (no connection, no gate slot): nothing can have been processed. `closed`: its send window is over (do not send it again). */
  | { kind: 'not_sent'; reason: string; closed?: true }
  /** Sent, then no answer (timeout, reset, cut off): the bank may have processed it. */
  | { kind: 'lost'; reason: string }
  /** An HTTP status other than 2xx (NH answers its own refusals with 200 and an Rpcd). */
  | { kind: 'http_status'; status: number; reason: string }
  /** 2xx, but not NH's published answer shape, or an answer about another request. */
  | { kind: 'malformed'; reason: string };

export interface NhCall {
  api: ApiNm;
  isTuno: string;
  fintechApsno: string;
  /** A transfer's Tsymd is its order's (fixed by the database); every other call uses today's (KST). */
  tsymd?: string;
  /** A money request: checked right before it is sent, by the clock (`now`); a reason not to send returns `not_sent` with `closed`. */
  sendWindow?: (at: Date) => string | null;
  fields: Record<string, string>;
  /** Extra log keys (is_tuno of the order, purpose, amount, masked accounts); never the token. */
  log: Record<string, unknown>;
}

export function apiUrls(baseUrl: string): Record<ApiNm, URL> {
  const base = baseUrl.replace(/\/+$/, '');
  return Object.fromEntries(APIS.map((api) => [api, new URL(base + apiPath(api))])) as Record<ApiNm, URL>;
}

/**
 * A fresh IsTuno for a call that moves no money (result checks, reads,
 * registration): 20 digits starting with 9. Transfer IsTunos from the database
 * are 18 digits starting with 1, so the two never collide.
 */
export function freshIsTuno(): string {
  let s = '9';
  for (let i = 0; i < 19; i++) s += String(randomInt(10));
  return s;
}

/** Keeps the last 4 characters: enough to tell accounts apart in a log, not to use them (src/mask.ts). */
export { maskAccount as mask } from '../mask.js';

export async function callNh(w: Wire, gate: Gate, call: NhCall): Promise<WireResult> {
  const t0 = performance.now();
  const send = async (): Promise<WireResult> => {
    // Built inside the gate, right before sending: a wait for a slot does not
    // make Trtm (or a read's Tsymd) stale.
    const at = w.now();
    const closed = call.sendWindow?.(at);
    if (closed) return { kind: 'not_sent', reason: closed, closed: true };
    const trtm = kstHms(at);
    const body = {
      Header: {
        ApiNm: call.api,
        Tsymd: call.tsymd ?? kstYmd(at),
        Trtm: trtm,
        Iscd: w.iscd,
        FintechApsno: call.fintechApsno,
        ApiSvcCd: w.svcCodes[call.api],
        IsTuno: call.isTuno,
        AccessToken: w.accessToken,
      },
      ...call.fields,
    };
    // Our own request outside the published layout is a bug on our side: it
    // is never sent (the simulator would refuse it; NH might do anything).
    const problems = checkRequest(call.api, body, w.svcCodes);
    if (problems.length > 0) throw new BankInputError('nonconforming_request', `${call.api} request does not conform: ${problems.join('; ')}`);
    const out = await (w.post ?? postJson)(w.urls[call.api], JSON.stringify(body), { agent: w.agent, timeoutMs: w.timeoutMs });
    if (out.kind !== 'response') return out;
    if (out.status < 200 || out.status > 299) return { kind: 'http_status', status: out.status, reason: `HTTP ${out.status}` };
    return readAnswer(call, out.body, trtm);
  };
  const result = await throughGate(gate, send);
  if (w.logger?.isLevelEnabled('debug')) {
    const detail = result.kind === 'answer' ? { rpcd: result.header.Rpcd } : { reason: result.reason };
    w.logger.debug(
      { event: 'bank:call', api: call.api, call_is_tuno: call.isTuno, outcome: result.kind, ...detail, ms: Math.round(performance.now() - t0), ...call.log },
      `${call.api}: ${result.kind === 'answer' ? result.header.Rpcd : result.kind}`,
    );
  }
  return result;
}

/**
 * The gate (the database-wide in-flight limit) can fail on its own. What
 * matters is whether our request went out: if `send` never ran, nothing was
 * sent; if it ran but its answer was lost with the gate's error, the outcome
 * is unknown; if the answer arrived, failing to give the slot back does not
 * change it. Our own BankInputError passes through, and so does a gate
 * closed for a stop (the call never started).
 */
async function throughGate(gate: Gate, send: () => Promise<WireResult>): Promise<WireResult> {
  let started = false;
  let answer: WireResult | undefined;
  try {
    return await gate.run(async () => {
      started = true;
      answer = await send();
      return answer;
    });
  } catch (err) {
    if (err instanceof BankInputError || err instanceof GateClosedError) throw err;
    if (answer) return answer;
    const reason = `gate: ${err instanceof Error ? err.message : String(err)}`;
    return started ? { kind: 'lost', reason } : { kind: 'not_sent', reason };
  }
}

function readAnswer(call: NhCall, text: string, trtm: string): WireResult {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { kind: 'malformed', reason: 'answer is not JSON' };
  }
  const problems = checkResponse(call.api, json);
  if (problems.length > 0) return { kind: 'malformed', reason: `answer outside the published layout: ${problems.slice(0, 3).join('; ')}` };
  const { Header, ...body } = json as { Header: Record<string, string> } & Record<string, unknown>;
  // An answer about another call says nothing about ours.
  if (Header['IsTuno'] !== call.isTuno) return { kind: 'malformed', reason: `answer names IsTuno ${Header['IsTuno']}` };
  if (Header['ApiNm'] !== call.api) return { kind: 'malformed', reason: `answer names ApiNm ${Header['ApiNm']}` };
  const header: AnswerHeader = {
    ApiNm: call.api,
    Tsymd: Header['Tsymd']!,
    Trtm: Header['Trtm']!,
    Iscd: Header['Iscd']!,
    FintechApsno: Header['FintechApsno']!,
    ApiSvcCd: Header['ApiSvcCd']!,
    IsTuno: call.isTuno,
    Rpcd: Header['Rpcd']!,
    Rsms: Header['Rsms'] ?? '',
  };
  return { kind: 'answer', header, body, trtm };
}

// ---------------------------------------------------------------------------
// Retrying transient failures.

export interface RetryPolicy {
  /** Retries after the first attempt. */
  retries: number;
  minBackoffMs: number;
  maxBackoffMs: number;
  /** No retry starts after this long. */
  maxRetryTimeMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { retries: 6, minBackoffMs: 100, maxBackoffMs: 2_000, maxRetryTimeMs: 30_000 };

/** Thrown inside `withRetry` for a failure worth another attempt (the same request again is harmless). */
export class Transient extends Error {
  constructor(
    readonly reason: string,
    readonly wasMalformed = false,
  ) {
    super(reason);
  }
}

/**
 * Runs `attempt` until it returns or throws something other than `Transient`,
 * with jittered exponential backoff; when the budget is spent the last
 * `Transient` is thrown.
 */
export function withRetry<T>(policy: RetryPolicy, attempt: (n: number) => Promise<T>): Promise<T> {
  return pRetry(attempt, {
    retries: policy.retries,
    minTimeout: policy.minBackoffMs,
    maxTimeout: policy.maxBackoffMs,
    maxRetryTime: policy.maxRetryTimeMs,
    factor: 2,
    randomize: true,
    shouldRetry: ({ error }) => error instanceof Transient,
  });
}

/** An HTTP status after which the same request may be sent again. */
export function isRetryableStatus(status: number): boolean {
  return status >= 500 || status === 429;
}
