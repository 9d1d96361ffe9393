/**
 * The jobs this process is running right now, whatever the job runner
 * believes: a stop waits for them before it releases what the process holds
 * and closes its connections (graphile-worker 0.17.3 can end its own
 * shutdown while jobs still run; see src/worker/runner.ts).
 */
export class JobsInHand {
  private running = 0;
  private waiters: Array<() => void> = [];

  get size(): number {
    return this.running;
  }

  async run<T>(job: () => Promise<T>): Promise<T> {
    this.running++;
    try {
      return await job();
    } finally {
      if (--this.running === 0) for (const w of this.waiters.splice(0)) w();
    }
  }

  /** Resolves true once no job runs, false if `ms` pass first. */
  idle(ms: number): Promise<boolean> {
    if (this.running === 0) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== done);
        resolve(false);
      }, ms);
      this.waiters.push(done);
    });
  }
}
