import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const CLI = path.resolve(here, '../../src/cli/main.js');

type T = { teardown(fn: () => unknown): void };

export interface WorkerProc {
  child: ChildProcess;
  poolId: string;
  pid: number;
  exited: Promise<number | null>;
  logs: string[];
}

/**
 * The project's processes this test file started and that still run. A
 * teardown kills each, but tap ends a file that runs past its time limit
 * with a signal (SIGALRM), and no teardown runs then: a worker it had started
 * went on, orphaned, for the rest of the session (seen once, after a
 * libfaketime run). So the file's exit, and each such signal, kill them
 * first; the signal is then raised again, so the file ends as tap meant.
 */
const live = new Set<ChildProcess>();
let reaping = false;
export function reapOnExit<C extends ChildProcess>(child: C): C {
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (!reaping) {
    reaping = true;
    const killAll = () => {
      for (const c of live) {
        try {
          c.kill('SIGKILL');
        } catch {
          // already gone
        }
      }
    };
    process.once('exit', killAll);
    for (const signal of ['SIGALRM', 'SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
      process.once(signal, () => {
        killAll();
        process.kill(process.pid, signal);
      });
    }
  }
  return child;
}

/** Whether a process with this pid exists (signal 0). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Runs the real CLI and returns its exit code and output. */
export function runCli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = reapOnExit(spawn(process.execPath, [CLI, ...args], { env: { ...process.env, LOG_LEVEL: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] }));
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * Starts a real `settle worker` process and waits until it reports its pool id.
 * Killed (SIGKILL) at teardown if still running.
 */
export async function spawnWorker(t: T, env: Record<string, string>, opts: { cli?: string } = {}): Promise<WorkerProc> {
  const child = reapOnExit(spawn(process.execPath, [opts.cli ?? CLI, 'worker'], {
    env: { ...process.env, LOG_LEVEL: 'info', HTTP_PORT: '0', WORKER_HEARTBEAT_MS: '500', WORKER_DEAD_AFTER_MS: '3000', WORKER_POLL_INTERVAL_MS: '500', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  }));
  const logs: string[] = [];
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  const poolId = await new Promise<string>((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`worker did not start in 30 s:\n${logs.slice(-20).join('\n')}`)), 30_000);
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        logs.push(line);
        if (logs.length > 2000) logs.shift();
        if (line.includes('"event":"worker:start"')) {
          clearTimeout(timer);
          resolve(JSON.parse(line).pool_id as string);
        }
      }
    });
    child.stderr!.on('data', (d: Buffer) => logs.push(d.toString()));
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`worker exited (${code}) before starting:\n${logs.slice(-20).join('\n')}`));
    });
  });
  return { child, poolId, pid: child.pid!, exited, logs };
}

/** Polls `check` until it returns a truthy value (or throws after `timeoutMs`). */
export async function waitFor<V>(what: string, check: () => Promise<V | undefined | null | false>, timeoutMs = 120_000, everyMs = 200): Promise<V> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
