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
    // Fetch jobs in batches (one get_job round trip serves many payouts) and
    // complete them in batches. A crash can then re-run a job that had
    // finished; every task is idempotent, so that costs a no-op. A batch is a
    // quarter of the concurrency: jobs fetched are this process's until it
    // runs them, and at the end of a day the other processes should not sit
    // idle beside a long local queue.
    preset: { worker: { localQueue: { size: Math.max(1, Math.ceil(concurrency / 4)) }, completeJobBatchDelay: 0 } },
  };
}

/** One line for people: what the engine runs with. */
export function describeEngine(s: EngineSettings): string {
  return `concurrency ${s.concurrency}, pool ${s.maxPoolSize}, poll ${s.pollInterval} ms, local queue ${s.preset.worker.localQueue.size}, completeJobBatchDelay ${s.preset.worker.completeJobBatchDelay} ms`;
}
