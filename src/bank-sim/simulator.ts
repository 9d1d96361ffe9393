/**
 * A faithful, in-process simulator of the NH Developers API (`settle bank-sim`, the
 * demo, the tests, the benchmark): per-account balances, the per-call limit,
 * duplicate-IsTuno rejection, access-token check, latency with jitter, a global
 * in-flight cap answered with A0001, and seeded fault injection (sim-faults.ts).
 *
 * Life of an API request:
 *   arrival  → count it; take its fault plan from the seeded stream; admit it if
 *              fewer than maxInFlight are in flight, else mark it busy
 *   body     → busy: answer A0001 at once
 *   latency  → wait latencyMs ± jitter (+ slowMs if slow)
 *   process  → decide and book (sim-api.ts), unless the fault says otherwise
 *   answer   → or drop / hold / garble it, per the fault
 * A request keeps processing even if its client hung up meanwhile, as a real bank
 * would: that is exactly the race the client's inquiries must survive.
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import { handleAdmin } from './sim-admin.js';
import { codeReply, processApi, type SimApiContext } from './sim-api.js';
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
import { isApiNm, isTransferApi, type ApiNm } from '../bank/protocol.js';
import { RPCD } from '../bank/rpcd.js';

export { simOptionsSchema, parseSimOptions, type SimOptions, type SimOptionsInput } from './sim-options.js';

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
  /** The simulator's clock for processing times (default: real time). */
  now?: () => Date;
}

const API_PATH = /^\/([A-Za-z]+)\.nh$/;
const LISTEN_BACKLOG = 4096;

export async function startBankSimulator(input: SimOptionsInput = {}, hooks: SimHooks = {}): Promise<BankSimulator> {
  const options = parseSimOptions(input);
  let config = runtimeConfigOf(options);
  const ledger = new SimLedger();
  const stats = newStats();
  const rng = mulberry32(options.seed);
  const apiCtx: SimApiContext = {
    ledger,
    stats,
    perCallLimit: options.perCallLimit,
    accessToken: options.accessToken,
    iscd: options.iscd,
    now: hooks.now ?? (() => new Date()),
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

  const adminCtx = {
    ledger,
    stats,
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
    const plan = planRequest(rng, config, isTransferApi(api) || config.faultsOnInquiry);
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
    res.once('close', () => {
      stats.arrivals--;
      if (admitted) stats.inFlight--;
    });

    const raw = await readBody(req);
    if (raw === 'gone') return;
    if (raw === 'too_large') return sendJson(res, 413, codeReply(null, api, RPCD.INVALID_FIELD, 'body too large').body);
    let body: unknown;
    try {
      body = parseJson(raw);
    } catch {
      stats.rejected.invalid++;
      return sendJson(res, 400, codeReply(null, api, RPCD.INVALID_FIELD, 'invalid field: body is not JSON').body);
    }
    if (!admitted) {
      stats.rejected.busy++;
      return sendJson(res, 200, codeReply(asRecord(body), api, RPCD.BUSY).body);
    }
    if (plan.delayMs > 0) await new Promise<void>((resolve) => later(plan.delayMs, resolve));
    if (closed) return;
    execute(req, res, api, body, plan);
  }

  function execute(req: http.IncomingMessage, res: http.ServerResponse, api: ApiNm, body: unknown, plan: FaultPlan): void {
    const decide = (): { status: number; body: Record<string, unknown> } => processApi(apiCtx, api, body);
    switch (plan.fault) {
      case 'failBefore':
        stats.faults.failBefore++;
        stats.rejected.failBefore++;
        return sendJson(res, 200, codeReply(asRecord(body), api, RPCD.SYSTEM_ERROR_BEFORE).body);
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
    const raw = await readBody(req);
    if (raw === 'gone') return;
    if (raw === 'too_large') return sendJson(res, 413, { error: 'body too large' });
    let body: unknown;
    try {
      body = parseJson(raw);
    } catch {
      return sendJson(res, 400, { error: 'body is not JSON' });
    }
    const reply = handleAdmin(adminCtx, req.method ?? 'GET', path, body);
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

function asRecord(v: unknown): Record<string, unknown> | null {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
}
