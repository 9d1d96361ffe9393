import { readFileSync } from 'node:fs';
import type { Logger } from '../log.js';

/**
 * Stops this process gracefully when its parent goes away. `npm start` and
 * `npx settle worker` may be killed without passing the signal on; the worker
 * is then re-parented (its ppid changes) and would run on unsupervised.
 * Polled, because Node has no parent-death signal.
 *
 * Only for those wrappers (see `shouldWatchParent`): under `nohup`, systemd,
 * a container or any supervisor that double-forks, being re-parented is how a
 * service lives, and the worker runs until it is signalled.
 */
export function watchParent(logger: Logger, everyMs = 1000): () => void {
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    logger.warn({ event: 'process:parent_gone', parent_pid: parent, ppid: process.ppid }, `parent process ${parent} is gone; shutting down`);
    // The process's own SIGTERM handler does the graceful stop.
    process.kill(process.pid, 'SIGTERM');
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}

/** The parent's command line (Linux /proc), or undefined where it cannot be read. */
function parentCommand(): string | undefined {
  try {
    return readFileSync(`/proc/${process.ppid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return undefined;
  }
}

/**
 * Whether to watch the parent: `SETTLE_WATCH_PARENT=1` or `0` decides on
 * purpose; otherwise only when npm started this process (npm sets
 * `npm_lifecycle_event` for `npm start`/`npm run` and `npx`) and, where the
 * parent's command line can be read, the parent is npm itself (`npm start`
 * runs `exec node …`, so npm is the parent) — not a process that merely
 * inherited npm's variables (a worker started by a program that npm started,
 * or by `nohup` in a shell that npm started, is not npm's child).
 */
export function shouldWatchParent(env: NodeJS.ProcessEnv = process.env, parent: string | undefined = parentCommand()): boolean {
  const set = env['SETTLE_WATCH_PARENT'];
  if (set === '1') return true;
  if (set === '0') return false;
  if (!env['npm_lifecycle_event']) return false;
  if (parent === undefined) return true;
  return /(^|[/\s])(npm|npx)(\s|$)|npm-cli\.js|npx-cli\.js/.test(parent);
}
