import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { sql } from 'slonik';
import { z } from 'zod';
import { startSim, workerEnv } from '../helpers/day.js';
import { freshDb } from '../helpers/db.js';
import { waitFor } from '../helpers/procs.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/**
 * `npm start` as a user starts it: in its own process group, with
 * DATABASE_URL and BANK_URL. Returns npm's process and the worker's pid
 * (from its worker:start log line).
 */
async function npmStart(t: { teardown(fn: () => unknown): void }, env: Record<string, string>) {
  const npm = spawn('npm', ['start', '--silent'], {
    cwd: root,
    detached: true,
    env: { ...process.env, LOG_LEVEL: 'info', HTTP_PORT: '0', WORKER_HEARTBEAT_MS: '500', WORKER_DEAD_AFTER_MS: '3000', WORKER_POLL_INTERVAL_MS: '500', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  npm.stdout!.on('data', (d: Buffer) => logs.push(...d.toString().split('\n').filter(Boolean)));
  npm.stderr!.on('data', (d: Buffer) => logs.push(d.toString()));
  const exited = new Promise<number | null>((r) => npm.on('exit', (code) => r(code)));
  const start = await waitFor('worker:start from npm start', async () => {
    const l = logs.find((x) => x.includes('"event":"worker:start"'));
    return l ? (JSON.parse(l) as { pid: number; pool_id: string }) : undefined;
  }, 60_000, 100).catch((e: Error) => {
    throw new Error(`${e.message}\n${logs.slice(-20).join('\n')}`);
  });
  // Whatever happens, leave nothing behind.
  t.teardown(() => {
    for (const pid of [start.pid, npm.pid!]) if (alive(pid)) process.kill(pid, 'SIGKILL');
  });
  return { npm, workerPid: start.pid, poolId: start.pool_id, exited, logs };
}

async function nothingLeft(t: { notOk: Function; equal: Function }, db: Awaited<ReturnType<typeof freshDb>>['db'], workerPid: number, poolId: string) {
  await waitFor(`worker pid ${workerPid} to exit`, async () => !alive(workerPid), 20_000, 100);
  t.notOk(alive(workerPid), 'no worker process is left');
  t.equal(await db.oneFirst(sql.type(z.object({ n: z.bigint() }))`select count(*) as n from graphile_worker.jobs where locked_by is not null`), 0n, 'no job stays locked');
  t.equal(await db.oneFirst(sql.type(z.object({ n: z.bigint() }))`select count(*) as n from settlement.workers where pool_id = ${poolId}`), 0n, 'the worker deregistered (a clean stop, not a crash)');
}

t.test('SIGTERM to npm start stops the worker cleanly', async (t) => {
  const { url, db } = await freshDb(t);
  const sim = await startSim(t);
  const s = await npmStart(t, workerEnv(url, sim.url));
  t.equal(await db.oneFirst(sql.type(z.object({ n: z.bigint() }))`select count(*) as n from settlement.workers where pool_id = ${s.poolId}`), 1n, 'the worker is registered');
  process.kill(s.npm.pid!, 'SIGTERM');
  await s.exited;
  await nothingLeft(t, db, s.workerPid, s.poolId);
  t.ok(s.logs.some((l) => l.includes('"event":"worker:stop"')), 'the worker logged its stop');
});

t.test('SIGKILL to npm (the signal is not passed on): the worker notices its parent is gone and stops cleanly', async (t) => {
  const { url, db } = await freshDb(t);
  const sim = await startSim(t);
  const s = await npmStart(t, workerEnv(url, sim.url));
  process.kill(s.npm.pid!, 'SIGKILL');
  await s.exited;
  await nothingLeft(t, db, s.workerPid, s.poolId);
});

t.test('SIGTERM to the process group of npm start', async (t) => {
  const { url, db } = await freshDb(t);
  const sim = await startSim(t);
  const s = await npmStart(t, workerEnv(url, sim.url));
  process.kill(-s.npm.pid!, 'SIGTERM');
  await s.exited;
  await nothingLeft(t, db, s.workerPid, s.poolId);
});
