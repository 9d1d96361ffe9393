import http from 'node:http';
import type { Logger } from '../log.js';
import type { WorkerHandle } from './runner.js';

/**
 * Health and metrics for a worker process: GET /healthz (200 while the
 * worker runs), GET /metrics (Prometheus text: jobs by task and result).
 */
export async function startHealthServer(port: number, worker: WorkerHandle, logger: Logger): Promise<{ port: number; close(): Promise<void> }> {
  const counts = new Map<string, number>();
  const bump = (k: string) => counts.set(k, (counts.get(k) ?? 0) + 1);
  worker.events.on('job:success', ({ job }) => bump(`settle_jobs_total{task="${job.task_identifier}",result="success"}`));
  worker.events.on('job:error', ({ job }) => bump(`settle_jobs_total{task="${job.task_identifier}",result="error"}`));
  let running = true;
  worker.promise.then(() => (running = false), () => (running = false));
  const server = http.createServer((req, res) => {
    if (req.url === '/healthz') {
      res.writeHead(running ? 200 : 503, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: running ? 'ok' : 'stopped', pool: worker.poolId(), pid: process.pid }));
    } else if (req.url === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      res.end(['# TYPE settle_jobs_total counter', ...[...counts].map(([k, v]) => `${k} ${v}`), ''].join('\n'));
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const addr = server.address();
  const actual = typeof addr === 'object' && addr ? addr.port : port;
  logger.info({ event: 'http:listen', port: actual }, `health on http://127.0.0.1:${actual}/healthz`);
  return { port: actual, close: () => new Promise((r) => server.close(() => r())) };
}
