import type { Logger } from '../log.js';

/**
 * Stops this process gracefully when its parent goes away. `npm start`,
 * `npx settle worker` and `sh -c` wrappers may be killed without passing the
 * signal on; the worker is then re-parented (its ppid changes) and would run
 * on unsupervised. Polled, because Node has no parent-death signal.
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
