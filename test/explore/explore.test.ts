/**
 * The schedule explorer in `npm test` (issue 20): a sweep of random seeds,
 * and the fixed regression schedules the explorer found before issue 21's
 * fixes (A, B, C). Those fixes are merged: every regression schedule must
 * hold every invariant, and a random seed that breaks A's or C's invariant,
 * or B's done-complete, fails the suite.
 *
 * The class that stayed open after issue 21 — every day DONE, then the bank
 * cancels or books a line on a date no later day's reconcile reads
 * (invariants balances / bank-known) — is closed by the statement watch
 * (settlement.watch_scope / match_watch): seeds 9, 11, 21 and 39 of the
 * sweep and B's seed 9 hold every invariant and fail the suite if they stop.
 * A long run of new seeds (300001 on) then found three more, fixed and kept
 * here: an unreferenced cancellation left to a day sharing the statement
 * that had not reconciled (seed 300002), and days leaving the watch before
 * every date of it was read (300007: no reconcile task for twelve days;
 * 300208: transfers sent days after their business date).
 * Any violation of a random seed fails the suite; there is no list of
 * known, excused classes.
 */
import t from 'tap';
import { formatRun, runSeed } from './explorer.js';
import { sweep } from './sweep.js';
import { explorerDb } from './db.js';

// The first half of the sweep; explore-more.test.ts runs the second (each file within tap's 300 s on a loaded box).
const SEEDS = Number(process.env['EXPLORE_SEEDS'] ?? 20);
const STEPS = Number(process.env['EXPLORE_STEPS'] ?? 40);
const FROM = Number(process.env['EXPLORE_FROM'] ?? 1);

type Defect = 'A' | 'B' | 'C' | 'watch';

/**
 * Seeds the explorer found on the base without issue 21's fixes (b83cdf6),
 * each with its shrunk schedule (replayed exactly). Each must hold every invariant.
 */
export const KNOWN_DEFECT_SEEDS: { defect: Defect; seed: number; focus?: 'money'; kinds?: 1 | 2; what: string; schedule: string[] }[] = [
  {
    // Not found by a random seed yet: seed 3's C schedule (below) with six of the explorer's own steps
    // appended by hand (the late send is answered, then the loan account runs dry); the drain's operator
    // then retries the failed day.
    defect: 'A', seed: 3, focus: 'money',
    schedule: ['stage record 2030-03-04', 'stage pay 2030-03-04', 'start t4 a7', 'tick 2030-03-05T11:10:57.000+09:00', 'finish a7',
      'tick 2030-03-05T23:59:50.000+09:00', 'start t4 a54', 'tick 2030-03-06T00:10:02.000+09:00', 'reconcile-task',
      'slot a54.s6', 'bank a54.1', 'reply a54.1', 'slot a54.s7', 'bank a54.2', 'drain 1'],
    what: 'C\'s order, then the old number is booked late (recorded only as an orphan), the new number fails for want of funds, and the operator\'s retry_day re-plans the transfer under a third number although the bank booked the first (retry-safe, operator retry)',
  },
  {
    defect: 'C', seed: 3, focus: 'money',
    schedule: ['stage record 2030-03-04', 'stage pay 2030-03-04', 'start t4 a7', 'tick 2030-03-05T11:10:57.000+09:00', 'finish a7',
      'tick 2030-03-05T23:59:50.000+09:00', 'start t4 a54', 'tick 2030-03-06T00:10:02.000+09:00', 'reconcile-task'],
    what: 'an attempt claimed at 23:59:50 (sendable) waits for bank-call slots past midnight and past its lease; the statement read after the grace decides the transfer not booked and re-plans it; the attempt then sends the old number under yesterday\'s Tsymd, booked; the new number is booked too (one-booking)',
  },
  {
    defect: 'C', seed: 20135, focus: 'money',
    schedule: ['stage record 2030-03-04', 'stage pay 2030-03-04', 'tick 2030-03-07T00:10:02.000+09:00', 'start t1 a23', 'tick 2030-03-07T23:59:50.000+09:00',
      'finish a23', 'start t1 a32', 'tick 2030-03-08T00:10:02.000+09:00', 'reconcile-task'],
    what: 'the same order on another day: a sendable attempt outlives its lease in slot waits across midnight, the transfer is decided not booked and re-planned, the old number is then sent and booked (one-booking)',
  },
  {
    defect: 'C', seed: 60167, focus: 'money',
    schedule: [
      'tick 2030-03-06T00:00:02.000+09:00',
      'stage record 2030-03-04',
      'stage pay 2030-03-04',
      'stage record 2030-03-05',
      'stage pay 2030-03-05',
      'start t2 a15',
      'tick 2030-03-06T23:59:50.000+09:00',
      'finish a15',
      'start t4 a22',
      'slot a22.s1',
      'tick 2030-03-07T00:00:02.000+09:00',
      'reconcile-task',
      'bank a22.1',
      'tick 2030-03-08T00:00:03.000+09:00',
      'finish a22',
      'decide',
    ],
    what: 'reconcile_after 0: a payout sent at 23:59:50 reaches the bank after midnight, after a statement read made for another transfer; that read is later taken as proof that it was not booked: re-planned although the bank booked it (retry-safe, statement decision)',
  },
  {
    defect: 'B', seed: 25, schedule: ['settle-day 2030-03-04', 'cancel t3'],
    what: '2030-03-04 DONE; the bank cancels its withdrawal; 2030-03-05\'s reconcile reads and matches the cancellation; no break, 2030-03-04 stays DONE (done-complete)',
  },
  {
    defect: 'B', seed: 9, schedule: ['settle-day 2030-03-05', 'cancel t1'],
    what: 'both days DONE; the bank cancels a payout of 2030-03-04 on a date no day\'s transfers were sent on: only the statement watch reads it (balances)',
  },
  // Found by `npm run explore -- --seeds 100000 --from 300001` (60 steps) on 78067a5, after the fixes above.
  {
    defect: 'B', seed: 300002,
    schedule: ['stage record 2030-03-04', 'tick 2030-03-06T00:00:03.000+09:00', 'stage pay 2030-03-04', 'stage record 2030-03-05', 'stage pay 2030-03-05',
      'start t6 a22', 'slot a22.s1', 'bank a22.1', 'drain 1', 'cancel t6'],
    what: 'both days pay on 20300306; the bank cancels a payout of 2030-03-05 (the cancellation names no original); 2030-03-04 is blocked by a failed chunk and never reconciles, and the line was left for it: 2030-03-05 reconciles DONE with the cancellation in no break (done-complete)',
  },
  {
    defect: 'watch', seed: 300007,
    schedule: ['tick 2030-03-07T00:00:03.000+09:00', 'settle-day 2030-03-04', 'cancel t5', 'tick 2030-03-19T00:00:03.000+09:00'],
    what: 'the bank cancels the withdrawal of a reconciled day inside its watch, and no reconcile task runs for twelve days: the day had left the watch (counted from now) before that date was read (balances)',
  },
  {
    defect: 'watch', seed: 300208,
    schedule: ['tick 2030-03-08T00:00:03.000+09:00', 'settle-day 2030-03-05', 'tick 2030-03-15T00:00:02.000+09:00', 'cancel t5'],
    what: 'both days pay three days late (20300308); the bank cancels a payout on 20300315, inside the watch of their last date: the watch counted by business date had dropped them (balances)',
  },
  // With two kinds (`--kinds 2`), found on the first commit of that option: not a defect of the product
  // but of the explorer's promise, which counted one set of dates for every account.
  {
    defect: 'watch', seed: 600200, kinds: 2,
    schedule: ['orphan 100000', 'stage record 2030-03-04 platform_fee', 'stage pay 2030-03-04 platform_fee', 'tick 2030-03-05T23:59:57.500+09:00'],
    what: 'money nobody sent lands on tax\'s settlement account on a date only platform_fee sent on (20300305); no tax day covers that date: out of sight, as documented, and the promise is per account (balances)',
  },
];



sweep(t, { from: FROM, seeds: SEEDS, steps: STEPS });

for (const k of KNOWN_DEFECT_SEEDS) {
  // Issue 21 is merged and the statement watch landed: each must hold every invariant.
  t.test(`${k.defect === 'watch' ? 'the statement watch' : `issue 21 defect ${k.defect}`}: seed ${k.seed}'s shrunk schedule (${k.what}) holds every invariant`, async (t) => {
    const { db } = await explorerDb(t);
    const r = await runSeed(db, k.seed, { steps: 0, kinds: k.kinds }, k.schedule);
    t.equal(r.violation?.invariant, undefined, `${r.violation ? `${r.violation.invariant}: ${r.violation.detail}` : 'every invariant held'}\n${formatRun(r, `seed ${k.seed} (defect ${k.defect})`)}`);
  });
}

t.test('a schedule replays exactly: the same seed gives the same steps and the same end', async (t) => {
  const { db } = await explorerDb(t);
  const a = await runSeed(db, 7, { steps: STEPS });
  const b = await runSeed(db, 7, { steps: STEPS });
  t.same(b.steps, a.steps, 'the same steps, notes included');
  const c = await runSeed(db, 7, { steps: 0 }, a.schedule);
  t.same(c.steps.map((s) => s.step), a.steps.filter((s) => s.note !== 'skipped').map((s) => s.step), 'replaying the printed schedule runs the same steps');
});
