/**
 * graphile-worker's settings for one worker process — the one definition that
 * `settle worker` (runner.ts) and the benchmark's no-op yardstick
 * (bench/noop-worker.ts) both run with, so P3 compares the payout path with
 * the same engine run the same way, and the two cannot drift apart.
 */
export interface EngineSettings {
  concurrency: number;
  /** graphile-worker's pool: a connection per job in flight plus its own few. */
  maxPoolSize: number;
  pollInterval: number;
  preset: { worker: { localQueue: { size: number }; completeJobBatchDelay: number } };
}

export function engineSettings(concurrency: number, pollIntervalMs: number): EngineSettings {
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new RangeError(`concurrency must be a whole number ≥ 1 (got ${concurrency})`);
  if (!Number.isInteger(pollIntervalMs) || pollIntervalMs < 1) throw new RangeError(`poll interval must be a whole number of ms ≥ 1 (got ${pollIntervalMs})`);
  return {
    concurrency,
    maxPoolSize: concurrency + 4,
    pollInterval: pollIntervalMs,
    // Jobs are fetched in batches into a local queue as large as the
    // concurrency (one get_jobs round trip for many), and completions go in
    // batches. 0.17.3's LocalQueue throws when it is released while it holds
    // jobs; our stop does not rest on graphile's shutdown (runner.ts,
    // SHUTDOWN_ERRORS). A crash can re-run a job that had finished; every
    // task is idempotent, so that costs a no-op.
    preset: { worker: { localQueue: { size: concurrency }, completeJobBatchDelay: 0 } },
  };
}

/** One line for people: what the engine runs with. */
export function describeEngine(s: EngineSettings): string {
  return `concurrency ${s.concurrency}, pool ${s.maxPoolSize}, poll ${s.pollInterval} ms, local queue ${s.preset.worker.localQueue.size < 0 ? 'off' : s.preset.worker.localQueue.size}, completeJobBatchDelay ${s.preset.worker.completeJobBatchDelay} ms`;
}
