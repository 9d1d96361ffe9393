/**
 * A simulator of NH Developers' API (`settle bank-sim`, the demo, the tests, the
 * benchmark) that is no more lenient than NH: it accepts exactly the published
 * layouts of src/nh/contract.ts and refuses anything else with one of ITS OWN
 * codes (sim-codes.ts; NH publishes only 00000). Accounts, fin-accounts,
 * contracts and statements live in sim-ledger.ts; what each API answers is
 * sim-api.ts; the admin API under /_sim/ is sim-admin.ts.
 *
 * Life of an API request (`POST /{ApiNm}.nh`):
 *   arrival  → count it; take its fault plan from the seeded stream; admit it if
 *              fewer than maxInFlight are in flight, else mark it busy
 *   body     → not JSON: HTTP 400; busy: answer S0001 at once
 *   latency  → wait latencyMs ± jitter (+ slowMs if slow)
 *   process  → decide and book (sim-api.ts), unless the fault says otherwise
 *   answer   → or drop / hold / garble it, per the fault
 * A request keeps processing even if its client hung up meanwhile, as a real bank
 * would: that is exactly the race the client's result checks must survive.
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import { handleAdmin, type AdminContext, type RecordedRequest } from './sim-admin.js';
import { MONEY_APIS, processApi, refuse, type SimApiContext } from './sim-api.js';
import { SIM } from './sim-codes.js';
import { planRequest, type FaultPlan } from './sim-faults.js';
import { isGone, parseJson, readBody, sendJson, sendText } from './sim-http.js';
import { SimLedger } from './sim-ledger.js';
import {
  parseSimOptions,
  patchRuntimeConfig,
  runtimeConfigOf,
  simRuntimePatchSchema,
  type SimOptions,
  type SimOptionsInput,
  type SimRuntimeConfig,
} from './sim-options.js';
import { mulberry32 } from './sim-rng.js';
import { newStats, statsJson, type SimStats } from './sim-stats.js';
import { isApiNm, type ApiNm } from '../nh/contract.js';

export { simOptionsSchema, parseSimOptions, type SimOptions, type SimOptionsInput } from './sim-options.js';
export { SIM, SIM_CODES } from './sim-codes.js';

export interface SimState {
  readonly options: SimOptions;
  readonly ledger: SimLedger;
  readonly stats: SimStats;
  readonly config: SimRuntimeConfig;
}

export interface BankSimulator {
  /** Base URL for `createNhBankClient({ baseUrl })`, e.g. http://127.0.0.1:41234 */
  url: string;
  port: number;
  state: SimState;
  /** The same JSON as `GET /_sim/stats`. */
  statsSnapshot(): Record<string, unknown>;
  /** The same as `POST /_sim/config`. */
  configure(patch: unknown): SimRuntimeConfig;
  /**
   * Resolves once no API request is waiting to be processed. A request whose
   * client gave up is still processed (and may book); tests that compare the books
   * with the client's view wait for this first.
   */
  whenIdle(): Promise<void>;
  /** Stops listening and destroys every open socket, held ones included. */
  close(): Promise<void>;
}

export interface SimHooks {
  /** The simulator's clock: booking and processing times, and "today" for the statement's one-year rule (default: real time). */
  now?: () => Date;
  /**
   * Every API request once it has ended (answered, refused, dropped):
   * when it arrived and when it ended, in this process's performance.now()
   * ms, and whether it counted against the in-flight cap. The benchmark
   * reads P1's timeline from it.
   */
  onCall?: (c: { api: ApiNm; admitted: boolean; arrivedAt: number; endedAt: number }) => void;
}

const API_PATH = /^\/([A-Za-z]+)\.nh$/;
/** Admin bodies can carry thousands of accounts at once. */
const MAX_ADMIN_BYTES = 64 * 1024 * 1024;
const LISTEN_BACKLOG = 4096;

export async function startBankSimulator(input: SimOptionsInput = {}, hooks: SimHooks = {}): Promise<BankSimulator> {
  const options = parseSimOptions(input);
  let config = runtimeConfigOf(options);
  const ledger = new SimLedger();
  const stats = newStats();
  const rng = mulberry32(options.seed);
  const now = hooks.now ?? (() => new Date());
  const requests: RecordedRequest[] | null = options.recordRequests ? [] : null;
  const apiCtx: SimApiContext = {
    ledger,
    stats,
    perCallLimit: options.perCallLimit,
    accessToken: options.accessToken,
    iscd: options.iscd,
    svcCodes: options.apiSvcCodes,
    now,
  };
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let closed = false;
  let closing: Promise<void> | undefined;
  /** API requests that arrived and are not yet decided (answered, dropped or held). */
  let pending = 0;
  let idleWaiters: Array<() => void> = [];
  const wakeIdleWaiters = (): void => {
    const waiters = idleWaiters;
    idleWaiters = [];
    for (const w of waiters) w();
  };
  const settled = (): void => {
    if (--pending === 0 && !closed) wakeIdleWaiters();
  };

  const later = (ms: number, fn: () => void): NodeJS.Timeout => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
    return t;
  };

  const configure = (patch: unknown): SimRuntimeConfig => {
    config = patchRuntimeConfig(config, simRuntimePatchSchema.parse(patch));
    return config;
  };

  const adminCtx: AdminContext = {
    ledger,
    stats,
    now,
    requests,
    getConfig: () => config,
    setConfig: (c: SimRuntimeConfig) => (config = c),
  };

  async function handleApi(req: http.IncomingMessage, res: http.ServerResponse, api: ApiNm): Promise<void> {
    pending++;
    try {
      await admitAndRun(req, res, api);
    } finally {
      settled();
    }
  }

  async function admitAndRun(req: http.IncomingMessage, res: http.ServerResponse, api: ApiNm): Promise<void> {
    const plan = planRequest(rng, config, MONEY_APIS.includes(api) || config.faultsOnInquiry);
    stats.calls++;
    stats.callsByApi[api] = (stats.callsByApi[api] ?? 0) + 1;
    stats.arrivals++;
    if (stats.arrivals > stats.maxArrivals) stats.maxArrivals = stats.arrivals;
    const admitted = stats.inFlight < config.maxInFlight;
    if (admitted) {
      stats.inFlight++;
      if (stats.inFlight > stats.maxInFlight) stats.maxInFlight = stats.inFlight;
    }
    // 'close' fires once the response is finished or the connection is gone.
    const arrivedAt = hooks.onCall ? performance.now() : 0;
    res.once('close', () => {
      hooks.onCall?.({ api, admitted, arrivedAt, endedAt: performance.now() });
      stats.arrivals--;
      if (admitted) stats.inFlight--;
    });

    const raw = await readBody(req);
    if (raw === 'gone') return;
    if (raw === 'too_large') return sendJson(res, 413, refuse(stats, null, api, SIM.LAYOUT, 'body too large').body);
    let body: unknown;
    try {
      body = parseJson(raw);
    } catch {
      return sendJson(res, 400, refuse(stats, null, api, SIM.LAYOUT, 'the body is not JSON').body);
    }
    if (body === undefined) return sendJson(res, 400, refuse(stats, null, api, SIM.LAYOUT, 'the body is empty').body);
    requests?.push({ api, body: masked(body), at: now().toISOString() });
    if (!admitted) return sendJson(res, 200, refuse(stats, body, api, SIM.BUSY).body);
    if (plan.delayMs > 0) await new Promise<void>((resolve) => later(plan.delayMs, resolve));
    if (closed) return;
    execute(req, res, api, body, plan);
  }

  function execute(req: http.IncomingMessage, res: http.ServerResponse, api: ApiNm, body: unknown, plan: FaultPlan): void {
    const decide = (): { status: number; body: Record<string, unknown> } => processApi(apiCtx, api, body);
    switch (plan.fault) {
      case 'failBefore':
        stats.faults.failBefore++;
        return sendJson(res, 200, refuse(stats, body, api, SIM.SYSTEM_ERROR).body);
      case 'dropBefore':
        stats.faults.drop++;
        stats.faults.dropBefore++;
        req.socket.destroy();
        return;
      case 'dropAfter':
        decide();
        stats.faults.drop++;
        stats.faults.dropAfter++;
        req.socket.destroy();
        return;
      case 'timeoutAfter': {
        decide();
        stats.faults.timeoutAfter++;
        if (isGone(res)) return;
        const hold = later(config.timeoutHoldMs, () => req.socket.destroy());
        res.once('close', () => {
          clearTimeout(hold);
          timers.delete(hold);
        });
        return;
      }
      case 'malformed':
        decide();
        stats.faults.malformed++;
        return plan.malformedKind === 'not_json'
          ? sendText(res, 200, '<html><body>502 Bad Gateway</body></html>', 'text/html')
          : sendJson(res, 200, { Result: 'ok' });
      case 'slow':
        stats.faults.slow++;
        break;
      case 'none':
        break;
    }
    const reply = decide();
    sendJson(res, reply.status, reply.body);
  }

  async function handleAdminRequest(req: http.IncomingMessage, res: http.ServerResponse, path: string): Promise<void> {
    if (options.adminToken !== undefined && req.headers.authorization !== `Bearer ${options.adminToken}`) {
      req.resume();
      return sendJson(res, 401, { error: 'admin token required (authorization: Bearer <token>)' });
    }
    const raw = await readBody(req, MAX_ADMIN_BYTES);
    if (raw === 'gone') return;
    if (raw === 'too_large') return sendJson(res, 413, { error: 'body too large' });
    let body: unknown;
    try {
      body = parseJson(raw);
    } catch {
      return sendJson(res, 400, { error: 'body is not JSON' });
    }
    let reply;
    try {
      reply = handleAdmin(adminCtx, req.method ?? 'GET', path, body);
    } catch (e) {
      reply = { status: 500, body: { error: (e as Error).message } };
    }
    sendJson(res, reply.status, reply.body);
  }

  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (path.startsWith('/_sim/')) {
      void handleAdminRequest(req, res, path);
      return;
    }
    const api = API_PATH.exec(path)?.[1];
    if (req.method === 'POST' && api !== undefined && isApiNm(api)) {
      void handleApi(req, res, api);
      return;
    }
    req.resume();
    sendJson(res, 404, { error: `no API at ${req.method ?? ''} ${path}` });
  });
  // A client speaking broken HTTP gets a 400 and the server keeps running.
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
    else socket.destroy();
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // A deep accept queue: a burst of a thousand new connections must not have
    // SYNs dropped, whose kernel retransmits (1 s, 3 s, ...) would look like
    // bank latency.
    server.listen({ port: options.port, host: options.host, backlog: LISTEN_BACKLOG }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('bank simulator: no TCP address');
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;

  return {
    url: `http://${host}:${address.port}`,
    port: address.port,
    state: {
      options,
      ledger,
      stats,
      get config() {
        return config;
      },
    },
    statsSnapshot: () => statsJson(stats),
    configure,
    whenIdle: () => (pending === 0 || closed ? Promise.resolve() : new Promise<void>((resolve) => idleWaiters.push(resolve))),
    close: () => {
      if (closing) return closing;
      closed = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      // Requests cut off by close() are never decided; release anyone waiting.
      wakeIdleWaiters();
      closing = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      return closing;
    },
  };
}

/** The request as received, with the AccessToken replaced by '***'. */
function masked(body: unknown): unknown {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return body;
  const b = body as Record<string, unknown>;
  const h = b['Header'];
  if (typeof h !== 'object' || h === null || Array.isArray(h) || !('AccessToken' in h)) return b;
  return { ...b, Header: { ...h, AccessToken: '***' } };
}
