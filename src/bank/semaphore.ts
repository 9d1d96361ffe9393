import type { BankLimiter } from './types.js';

export interface Semaphore extends BankLimiter {
  /** Calls inside right now. */
  inside(): number;
  /** The most calls that were ever inside at once. */
  most(): number;
}

/** An in-process limit of `cap` concurrent calls, first come first served. */
export function createSemaphore(cap: number): Semaphore {
  let inside = 0;
  let most = 0;
  const waiting: Array<() => void> = [];
  return {
    inside: () => inside,
    most: () => most,
    async run<T>(fn: () => Promise<T>): Promise<T> {
      // A waiter is handed the place of the call that leaves, so `inside`
      // never drops and rises again in between.
      if (inside < cap) inside++;
      else await new Promise<void>((resolve) => waiting.push(resolve));
      most = Math.max(most, inside);
      try {
        return await fn();
      } finally {
        const next = waiting.shift();
        if (next) next();
        else inside--;
      }
    },
  };
}
