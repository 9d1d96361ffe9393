import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { sql } from 'slonik';
import { z } from 'zod';
import { startSim, workerEnv } from '../helpers/day.js';
import { freshDb } from '../helpers/db.js';
import { alive, runCli, waitFor } from '../helpers/procs.js';
import { shouldWatchParent } from '../../src/ops/parent-watch.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');


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

/** The environment of a login shell: none of npm's variables (the test itself runs under `npm test`). */
const shellEnv = () => Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('npm_'))) as Record<string, string>;

t.test('a worker started with nohup in a shell outlives that shell, and stops on SIGTERM', async (t) => {
  const { url, db } = await freshDb(t);
  const sim = await startSim(t);
  const log = path.join(os.tmpdir(), `settle-nohup-${process.pid}-${Date.now()}.log`);
  t.teardown(() => rmSync(log, { force: true }));
  const env = { ...shellEnv(), LOG_LEVEL: 'info', HTTP_PORT: '0', WORKER_HEARTBEAT_MS: '500', WORKER_DEAD_AFTER_MS: '3000', WORKER_POLL_INTERVAL_MS: '500', ...workerEnv(url, sim.url) };
  // As a person types it: the shell starts the worker in the background and exits.
  const shell = spawn('sh', ['-c', `nohup node ${JSON.stringify(path.join(root, 'dist/src/cli/main.js'))} worker > ${JSON.stringify(log)} 2>&1 & echo $!`], {
    cwd: root, detached: true, env, stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  shell.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  await new Promise((r) => shell.on('exit', r));
  const workerPid = Number(out.trim());
  t.ok(workerPid > 0, `the shell printed the worker's pid (${workerPid}) and exited`);
  t.teardown(() => {
    if (alive(workerPid)) process.kill(workerPid, 'SIGKILL');
  });
  const lines = () => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : []);
  const start = await waitFor('worker:start under nohup', async () => {
    const l = lines().find((x) => x.includes('"event":"worker:start"'));
    return l ? (JSON.parse(l) as { pool_id: string }) : undefined;
  }, 60_000, 100);
  // The parent watch polls every second: let the worker beat six more times
  // (500 ms apart) after its shell is gone, however slow the machine is.
  const beat = async () => db.maybeOneFirst(sql.type(z.object({ b: z.string() }))`select last_beat::text as b from settlement.workers where pool_id = ${start.pool_id}`);
  let seen = await beat();
  for (let beats = 0; beats < 6; ) {
    await new Promise((r) => setTimeout(r, 250));
    if (!alive(workerPid)) break;
    const b = await beat();
    if (b !== seen) {
      beats++;
      seen = b;
    }
  }
  t.ok(alive(workerPid), 'the worker is still running after its shell exited');
  t.notOk(lines().some((l) => l.includes('process:parent_gone')), 'it did not take the shell\'s exit for a lost wrapper');
  process.kill(workerPid, 'SIGTERM');
  await nothingLeft(t, db, workerPid, start.pool_id);
});

t.test('the parent watch is for npm and npx only, or set on purpose', async (t) => {
  t.ok(shouldWatchParent({ npm_lifecycle_event: 'start' }, 'npm start --silent'), 'npm start');
  t.ok(shouldWatchParent({ npm_lifecycle_event: 'npx' }, 'npm exec settle worker'), 'npx');
  t.ok(shouldWatchParent({ npm_lifecycle_event: 'start' }, '/usr/bin/node /usr/lib/node_modules/npm/bin/npm-cli.js start'), 'npm by its script path');
  t.notOk(shouldWatchParent({ npm_lifecycle_event: 'test' }, 'node dist/test/harness/run.js'), 'inherited npm variables, another parent');
  t.notOk(shouldWatchParent({ npm_lifecycle_event: 'start' }, 'sh -c nohup node main.js worker &'), 'nohup in a shell that npm started');
  t.notOk(shouldWatchParent({}, 'npm start'), 'no npm variables: a shell, systemd, a container');
  t.notOk(shouldWatchParent({}, '/sbin/init'), 'systemd');
  t.ok(shouldWatchParent({ SETTLE_WATCH_PARENT: '1' }, '/sbin/init'), 'on purpose');
  t.notOk(shouldWatchParent({ SETTLE_WATCH_PARENT: '0', npm_lifecycle_event: 'start' }, 'npm start'), 'off on purpose');
});

t.test('a worker whose HTTP port is busy exits 2 before it registers or takes a job', async (t) => {
  const { url, db } = await freshDb(t);
  const sim = await startSim(t);
  // Another process holds the port (a second worker on the same host, say).
  const holder = net.createServer();
  await new Promise<void>((r) => holder.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => holder.close(() => r())));
  const port = (holder.address() as net.AddressInfo).port;
  await db.query(sql.unsafe`select graphile_worker.add_job('watch', '{}'::json)`);
  const r = await runCli(['worker'], { ...workerEnv(url, sim.url), HTTP_HOST: '127.0.0.1', HTTP_PORT: String(port), LOG_LEVEL: 'info' });
  t.equal(r.code, 2, `exit 2: ${r.stderr.trim()}`);
  t.match(r.stderr, new RegExp(`HTTP_PORT ${port} on 127.0.0.1 is in use`), 'says which port and what to do');
  t.notMatch(r.stdout, /"event":"worker:start"/, 'it never started');
  t.equal(await db.oneFirst(sql.type(z.object({ n: z.bigint() }))`select count(*) as n from settlement.workers`), 0n, 'it never registered');
  t.equal(await db.oneFirst(sql.type(z.object({ n: z.bigint() }))`select count(*) as n from graphile_worker.jobs where attempts > 0 or locked_at is not null`), 0n, 'and took no job');
});
