/**
 * Ctrl-C in a terminal sends SIGINT to the whole foreground process group. In
 * embedded mode (no DATABASE_URL) the worker must stop first and the embedded
 * Postgres after it: the server runs in its own process group, so the group's
 * SIGINT reaches only the worker, whose graceful stop then stops the server.
 * Run as users run it: `node dist/src/cli/main.js worker` in a fresh folder,
 * in its own process group, and SIGINT sent to that group.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { alive, CLI } from '../helpers/procs.js';


/** A process's group, from /proc/<pid>/stat (the field after the state). */
const pgidOf = (pid: number) => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
};

t.test('embedded mode: SIGINT to the process group stops the worker, then Postgres, cleanly', async (t) => {
  const cwd = mkdtempSync(path.join(os.tmpdir(), 'settle-ctrl-c-'));
  const env: Record<string, string | undefined> = { ...process.env, LOG_LEVEL: 'info', HTTP_PORT: '0', BANK_SIMULATOR: 'in-process' };
  delete env['DATABASE_URL'];
  delete env['BANK_URL'];
  const child = spawn(process.execPath, [CLI, 'worker'], { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let pgPid: number | undefined;
  t.teardown(() => {
    for (const pid of [child.pid, pgPid]) {
      try {
        if (pid) process.kill(-pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    rmSync(cwd, { recursive: true, force: true });
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const lines: string[] = [];
  let out = '';
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const started = new Promise<void>((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`no worker:start in 120 s:\n${lines.slice(-20).join('\n')}\n${err}`)), 120_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d;
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        lines.push(line);
        if (line.includes('"event":"db:embedded_start"')) pgPid = JSON.parse(line).pid as number;
        if (line.includes('"event":"worker:start"')) {
          clearTimeout(timer);
          resolve();
        }
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`worker exited (${code}) before starting:\n${lines.slice(-20).join('\n')}\n${err}`));
    });
  });
  await started;
  t.ok(pgPid && alive(pgPid), `the embedded Postgres runs (pid ${pgPid})`);
  t.not(pgidOf(pgPid!), child.pid, 'in a process group other than the worker\'s');

  process.kill(-child.pid!, 'SIGINT'); // what a terminal's Ctrl-C does
  const code = await Promise.race([exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 60_000))]);
  t.equal(code, 0, 'the worker exits 0', { logs: lines.slice(-15), stderr: err });

  const bad = lines.filter((l) => {
    try {
      return (JSON.parse(l) as { level?: number }).level! >= 50;
    } catch {
      return false;
    }
  });
  t.same(bad, [], 'no log line at error level or above');
  t.notMatch(out + err, /57P01|terminating connection/, 'no connection was cut by the server shutting down');
  t.match(out, /"event":"process:signal"/, 'the worker took the signal');
  t.notOk(alive(pgPid!), 'the embedded Postgres is gone');
  t.notOk(existsSync(path.join(cwd, '.data', 'pg', 'postmaster.pid')), 'and left no postmaster.pid');
});
