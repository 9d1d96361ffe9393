import type { Gate } from '../../src/bank/port.js';

/** An in-process limit of `cap` concurrent calls, first come first served (the tests' stand-in for the bank desk's gate). */
export function createSemaphore(cap: number): Gate & { inside(): number } {
  let inside = 0;
  const waiting: Array<() => void> = [];
  return {
    inside: () => inside,
    async run<T>(fn: () => Promise<T>): Promise<T> {
      // A waiter is handed the place of the call that leaves, so `inside`
      // never drops and rises again in between.
      if (inside < cap) inside++;
      else await new Promise<void>((resolve) => waiting.push(resolve));
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
