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
    // No local queue: graphile-worker 0.17.3's LocalQueue, released while it
    // holds jobs no worker has taken, throws ("Cannot background something
    // when the queue is already released"); the pool's graceful shutdown then
    // fails the jobs still running and leaves the held ones locked. Each job is
    // fetched on its own (one get_job round trip); completions still go in
    // batches. A crash can re-run a job that had finished; every task is
    // idempotent, so that costs a no-op.
    preset: { worker: { localQueue: { size: concurrency }, completeJobBatchDelay: 0 } },
  };
}

/** One line for people: what the engine runs with. */
export function describeEngine(s: EngineSettings): string {
  return `concurrency ${s.concurrency}, pool ${s.maxPoolSize}, poll ${s.pollInterval} ms, local queue ${s.preset.worker.localQueue.size < 0 ? 'off' : s.preset.worker.localQueue.size}, completeJobBatchDelay ${s.preset.worker.completeJobBatchDelay} ms`;
}
