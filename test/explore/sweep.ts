/**
 * The explorer's random sweep in `npm test` (explore.test.ts and
 * explore-more.test.ts each run one half). A violation fails the suite with
 * its shrunk schedule and the command that replays it (every class found so
 * far is fixed; a new one is fixed, not excused).
 */
import type { Test } from 'tap';
import { explorerDb } from './db.js';
import { formatRun, runSeed, shrink } from './explorer.js';

export function sweep(tap: Test, o: { from: number; seeds: number; steps: number; kinds?: 1 | 2 }): void {
  const kinds = o.kinds ?? 1;
  const also = kinds === 2 ? ' --kinds 2' : '';
  tap.test(`${o.seeds} random schedules (seeds ${o.from}..${o.from + o.seeds - 1}, ${o.steps} steps each, ${kinds === 2 ? 'two kinds on the same loan accounts, ' : ''}then the drain) hold every invariant`, async (t) => {
    const { db } = await explorerDb(t);
    const t0 = Date.now();
    let clean = 0;
    for (let s = o.from; s < o.from + o.seeds; s++) {
      // Every other seed without cancellations and strays (focus money): the evidence defects would
      // otherwise end most schedules before the payment ones can show.
      const focus = s % 2 === 0 ? 'money' : 'all';
      const r = await runSeed(db, s, { steps: o.steps, focus, kinds });
      if (!r.violation) {
        clean++;
        continue;
      }
      const small = await shrink(db, s, r, { budget: 150 });
      t.fail(formatRun(small, `seed ${s}: ${r.violation.invariant} (shrunk from ${r.schedule.length} to ${small.schedule.length} steps)`) +
        `\n  replay: npm run explore -- --seed ${s} --steps ${o.steps} --focus ${focus}${also} --schedule "${small.schedule.join('; ')}"`);
    }
    t.ok(clean > 0, `${clean} of ${o.seeds} seeds clean, ${(o.seeds / ((Date.now() - t0) / 1000)).toFixed(1)} seeds/s`);
  });
}
