/**
 * A wrong wall clock for a whole process: loaded with `node --import <this
 * file's URL>` (see `shiftClockEnv`), it shifts `Date.now()`, `new Date()` and
 * `Date()` by SHIFT_CLOCK_MS (default +1 day) before any of the program's
 * modules run. `new Date(x)` with arguments, `Date.UTC`, `Date.parse` and the
 * monotonic `performance.now()` are untouched, as on a host whose clock is
 * simply set wrong. `instanceof Date` keeps working: the replacement is a Proxy
 * of the real constructor, with the real prototype.
 */
import { pathToFileURL } from 'node:url';

const SHIFT_MS = Number(process.env['SHIFT_CLOCK_MS'] ?? 86_400_000);
const RealDate = globalThis.Date;
// This module is also imported by tests (for shiftClockEnv): shift only when preloaded.
if (process.env['SHIFT_CLOCK'] === '1' && !(RealDate as unknown as { shifted?: boolean }).shifted) {
  if (!Number.isSafeInteger(SHIFT_MS)) throw new Error(`SHIFT_CLOCK_MS must be an integer number of ms, not ${process.env['SHIFT_CLOCK_MS']}`);
  const shiftedNow = () => RealDate.now() + SHIFT_MS;
  globalThis.Date = new Proxy(RealDate, {
    construct(target, args, newTarget) {
      return Reflect.construct(target, args.length === 0 ? [shiftedNow()] : args, newTarget);
    },
    apply() {
      return new RealDate(shiftedNow()).toString();
    },
    get(target, prop, receiver) {
      if (prop === 'now') return shiftedNow;
      if (prop === 'shifted') return true;
      return Reflect.get(target, prop, receiver);
    },
  });
}

/** The environment that starts a Node process with its wall clock shifted by `ms`. */
export function shiftClockEnv(ms = 86_400_000): Record<string, string> {
  const hook = pathToFileURL(new URL(import.meta.url).pathname).href;
  const inherited = process.env['NODE_OPTIONS'] ?? '';
  return { SHIFT_CLOCK: '1', SHIFT_CLOCK_MS: String(ms), NODE_OPTIONS: `${inherited} --import=${hook}`.trim() };
}
