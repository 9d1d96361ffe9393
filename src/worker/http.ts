import http from 'node:http';
import { loadConfig } from '../config.js';
import { consoleOff, mountConsole, shownHost, type MountedConsole } from '../console/mount.js';
import { appliedLogic, appliedMigrations, workerRegistered } from '../db/workers.js';
import { loadLogic, loadMigrations, logicDiff } from '../db/migrate.js';
import type { Logger } from '../log.js';
import type { WorkerHandle } from './runner.js';

/** The HTTP port, bound and listening, answering 503 "starting" until `serve` gives it its handler. */
export interface BoundHttp {
  port: number;
  serve(handle: http.RequestListener): http.Server;
}

/** A port that cannot be bound (in use, not allowed): the process exits 2 before it registers or takes a job. */
export class HttpPortError extends Error {
  override name = 'HttpPortError';
}

/**
 * Binds HTTP_HOST:HTTP_PORT before anything else starts, so a busy port stops
 * a worker before it registers or takes a job. Port 0 picks a free one.
 */
export async function bindHttp(listen: { host: string; port: number }): Promise<BoundHttp> {
  let handle: http.RequestListener | undefined;
  const server = http.createServer((req, res) => {
    if (handle) return void handle(req, res);
    res.writeHead(503, { 'content-type': 'text/plain', 'retry-after': '1' }).end('starting');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(new HttpPortError(e.code === 'EADDRINUSE'
        ? `HTTP_PORT ${listen.port} on ${listen.host} is in use (another worker on this host?): set another HTTP_PORT, or 0 for a free one`
        : `cannot listen on ${listen.host}:${listen.port} (HTTP_HOST, HTTP_PORT): ${e.code ?? e.message}`)));
    server.listen(listen.port, listen.host, () => resolve());
  });
  const addr = server.address();
  return {
    port: typeof addr === 'object' && addr ? addr.port : listen.port,
    serve: (h) => ((handle = h), server),
  };
}

/**
 * Health and metrics for a worker process, on HTTP_HOST:HTTP_PORT:
 * - GET /healthz: liveness, 200 while the worker runs (no database call);
 * - GET /readyz: 200 when the database answers, every migration of this
 *   version is applied unchanged, and this worker pool is registered with a
 *   fresh heartbeat; 503 with the reasons otherwise;
 * - GET /metrics: Prometheus text (src/ops/metrics.ts);
 * - everything else under / : the web console (src/console), unless
 *   `webConsole` is null. Undefined: mounted from the environment
 *   (CONSOLE_TOKEN, CONSOLE_VIEWER_TOKEN, CONSOLE_USERS, CONSOLE_DATABASE_URL;
 *   see src/console/mount.ts), or off when no user is configured.
 * /healthz, /readyz and /metrics need no sign-in and answer any Host
 * (probes and scrapers use the pod's address); they say nothing about accounts.
 */
export async function startHealthServer(
  listen: { host: string; port: number },
  worker: Pick<WorkerHandle, 'db' | 'poolId' | 'promise' | 'metrics'> & Partial<Pick<WorkerHandle, 'bank'>>,
  logger: Logger,
  webConsole?: MountedConsole | null,
  /** The port bound before the worker started (bindHttp); else bound here. */
  bound?: BoundHttp,
): Promise<{ port: number; close(): Promise<void> }> {
  // A console that cannot start (its database login) must not stop the worker: it is logged.
  const config = webConsole === undefined ? loadConfig() : undefined;
  const off = config ? consoleOff(config) : undefined;
  if (off) logger.info({ event: 'console:off' }, off);
  const web = webConsole !== undefined
    ? webConsole
    : off
      ? null
      : await mountConsole({ config: config!, logger, bank: worker.bank }).catch((e: Error) => {
          logger.error({ event: 'console:unavailable', err: e.message.split('\n')[0] }, 'the web console could not start');
          return null;
        });
  const expected = loadMigrations().map((m) => ({ id: m.id, checksum: m.checksum, name: m.name }));
  const expectedLogic = loadLogic();
  let running = true;
  worker.promise.then(() => (running = false), () => (running = false));

  const readiness = async (): Promise<string[]> => {
    const problems: string[] = [];
    if (!running) return ['the worker stopped'];
    try {
      const applied = new Map((await appliedMigrations(worker.db)).map((m) => [m.id, m.checksum]));
      const behind = expected.filter((m) => applied.get(m.id) !== m.checksum).map((m) => m.name);
      if (behind.length > 0) problems.push(`migrations not current: ${behind.join(', ')}`);
      const logic = logicDiff(expectedLogic, await appliedLogic(worker.db));
      if (logic.length > 0) problems.push(`sql/logic not current: ${logic.join(', ')}`);
      if (!(await workerRegistered(worker.db, worker.poolId()))) problems.push(`worker pool ${worker.poolId()} is not registered with a fresh heartbeat`);
    } catch (e) {
      problems.push(`database unreachable: ${(e as Error).message.split('\n')[0]}`);
    }
    return problems;
  };

  const json = (res: http.ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const handle: http.RequestListener = (req, res) => {
    const path = (req.url ?? '').split('?')[0];
    const health = path === '/healthz' || path === '/readyz' || path === '/metrics';
    if (!health && web?.console.handle(req, res)) return;
    if (req.method !== 'GET' && req.method !== 'HEAD') return void res.writeHead(405).end();
    if (path === '/healthz') {
      json(res, running ? 200 : 503, { status: running ? 'ok' : 'stopped', pool: worker.poolId(), pool_id: worker.poolId(), pid: process.pid });
    } else if (path === '/readyz') {
      readiness().then(
        (p) => json(res, p.length === 0 ? 200 : 503, { status: p.length === 0 ? 'ready' : 'not_ready', problems: p, pool_id: worker.poolId() }),
        (e: Error) => json(res, 503, { status: 'not_ready', problems: [e.message] }),
      );
    } else if (path === '/metrics') {
      worker.metrics.render().then(
        (m) => {
          res.writeHead(200, { 'content-type': m.contentType });
          res.end(m.body);
        },
        (e: Error) => {
          logger.error({ event: 'metrics:failed', err: e.message }, 'metrics failed');
          res.writeHead(500).end();
        },
      );
    } else {
      res.writeHead(404).end();
    }
  };
  const server = bound ? bound.serve(handle) : (await bindHttp(listen)).serve(handle);
  const addr = server.address();
  const actual = typeof addr === 'object' && addr ? addr.port : listen.port;
  logger.info({ event: 'http:listen', host: listen.host, port: actual }, `health on http://${listen.host}:${actual}/healthz (also /readyz, /metrics)`);
  if (web) {
    const shown = shownHost(listen.host);
    logger.info({ event: 'console:listen', host: listen.host, port: actual, url: `http://${shown}:${actual}/` }, `console on http://${shown}:${actual}/ (every page needs a sign-in)`);
  }
  return {
    port: actual,
    close: async () => {
      // Browsers keep connections open (and the console polls): close them too.
      server.closeIdleConnections();
      await new Promise<void>((r) => {
        server.close(() => r());
        setTimeout(() => server.closeAllConnections(), 2000).unref();
      });
      await web?.close();
    },
  };
}
