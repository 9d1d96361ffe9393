/**
 * One NH API call: build the Header, POST through the limiter with a timeout, and
 * reduce the answer to a `WireResult` that says what we know — never more. Deciding
 * what a result means for a transfer or an inquiry is nh-client's job.
 */
import { randomBytes } from 'node:crypto';
import type http from 'node:http';
import { z } from 'zod';
import { kstHms, kstYmd } from './kst.js';
import { ALL_APIS, API_SVC_CD, apiPath, type ApiNm, type RequestHeader, type ResponseHeader } from './protocol.js';
import { postJson } from './http-post.js';
import type { BankLimiter } from './types.js';

export interface NhConnection {
  /** `{baseUrl}/{ApiNm}.nh` for each API, built once. */
  urls: Readonly<Record<ApiNm, URL>>;
  iscd: string;
  fintechApsno: string;
  accessToken: string;
  timeoutMs: number;
  agent: http.Agent;
  limiter?: BankLimiter;
  now: () => Date;
}

export type WireResult =
  /** The bank answered with a readable NH response (any Rpcd). */
  | { kind: 'answer'; header: ResponseHeader; body: Record<string, unknown> }
  /** The request never left: nothing can have been processed. */
  | { kind: 'not_sent'; reason: string }
  /** Sent, then timed out or cut off: the bank may or may not have processed it. */
  | { kind: 'lost'; reason: string }
  /** An HTTP status other than 2xx (NH answers business errors with 200). */
  | { kind: 'http_status'; status: number }
  /** 2xx, but not an NH response we can read, or one about another request. */
  | { kind: 'malformed'; reason: string }
  /** Not sent: the Korean date at sending time is not the required Tsymd. */
  | { kind: 'wrong_date'; today: string };

const responseHeaderSchema = z
  .object({
    ApiNm: z.string().optional(),
    Tsymd: z.string().optional(),
    Trtm: z.string().optional(),
    Iscd: z.string().optional(),
    FintechApsno: z.string().optional(),
    ApiSvcCd: z.string().optional(),
    IsTuno: z.string(),
    Rpcd: z.string().regex(/^[0-9A-Z]{5}$/),
    Rsms: z.string().optional(),
  })
  .passthrough();

const responseSchema = z.object({ Header: responseHeaderSchema }).passthrough();

export function apiUrls(baseUrl: string): Record<ApiNm, URL> {
  const base = baseUrl.replace(/\/+$/, '');
  return Object.fromEntries(ALL_APIS.map((api) => [api, new URL(base + apiPath(api))])) as Record<ApiNm, URL>;
}

/** A fresh IsTuno for calls that do not move money (inquiries, balance, history). */
export function freshIsTuno(prefix: string): string {
  // 16 hex chars of randomness: unique per day for any realistic call volume.
  return prefix + randomBytes(8).toString('hex');
}

export async function callNh(
  conn: NhConnection,
  api: ApiNm,
  isTuno: string,
  fields: Record<string, string>,
  requireTsymd?: string,
): Promise<WireResult> {
  const send = async (): Promise<WireResult> => {
    // The Header is built inside the limiter, right before sending, so Tsymd is
    // the date the bank will see even when the limiter made us wait. A transfer
    // passes `requireTsymd` because the bank's duplicate check is per (Tsymd,
    // IsTuno): sending it under any other date could book it a second time.
    const at = conn.now();
    const today = kstYmd(at);
    if (requireTsymd !== undefined && today !== requireTsymd) return { kind: 'wrong_date', today };
    const header: RequestHeader = {
      ApiNm: api,
      Tsymd: today,
      Trtm: kstHms(at),
      Iscd: conn.iscd,
      FintechApsno: conn.fintechApsno,
      ApiSvcCd: API_SVC_CD[api],
      IsTuno: isTuno,
      AccessToken: conn.accessToken,
    };
    const outcome = await postJson(conn.urls[api], JSON.stringify({ Header: header, ...fields }), {
      agent: conn.agent,
      timeoutMs: conn.timeoutMs,
    });
    if (outcome.kind !== 'response') return outcome;
    if (outcome.status < 200 || outcome.status > 299) return { kind: 'http_status', status: outcome.status };
    return readAnswer(outcome.body, isTuno);
  };
  const limiter = conn.limiter;
  if (!limiter) return send();
  // The limiter is infrastructure (a semaphore in the database) and can fail on
  // its own. What matters is whether our request went out: if `send` never ran,
  // nothing was sent; if it ran but its answer was lost with the limiter's error,
  // the outcome is unknown; if the answer arrived, a failure to release the slot
  // does not change it.
  let started = false;
  let answer: WireResult | undefined;
  try {
    return await limiter.run(async () => {
      started = true;
      answer = await send();
      return answer;
    });
  } catch (err) {
    if (answer) return answer;
    const reason = `limiter: ${err instanceof Error ? err.message : String(err)}`;
    return started ? { kind: 'lost', reason } : { kind: 'not_sent', reason };
  }
}

function readAnswer(text: string, isTuno: string): WireResult {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { kind: 'malformed', reason: 'response is not JSON' };
  }
  const parsed = responseSchema.safeParse(json);
  if (!parsed.success) return { kind: 'malformed', reason: 'response has no valid Header' };
  const h = parsed.data.Header;
  // An answer about another IsTuno says nothing about ours.
  if (h.IsTuno !== isTuno) return { kind: 'malformed', reason: `response names IsTuno ${h.IsTuno}` };
  const header: ResponseHeader = {
    ApiNm: h.ApiNm ?? '',
    Tsymd: h.Tsymd ?? '',
    Trtm: h.Trtm ?? '',
    Iscd: h.Iscd ?? '',
    FintechApsno: h.FintechApsno ?? '',
    ApiSvcCd: h.ApiSvcCd ?? '',
    IsTuno: h.IsTuno,
    Rpcd: h.Rpcd,
    Rsms: h.Rsms ?? '',
  };
  return { kind: 'answer', header, body: parsed.data as Record<string, unknown> };
}
