/**
 * The bank desk's slot accounting on its own (src/desk/slots.ts): no
 * database, no timers; every decision gets its `now`.
 */
import t from 'tap';
import { SlotBook } from '../../src/desk/slots.js';

const LINGER = 50;
const FLAG_LINGER = 50;
const book = () => new SlotBook<string>(LINGER, FLAG_LINGER);

t.test('a slot the claim brought goes to a waiting call first, the rest is kept for the claims it answered', async (t) => {
  const b = book();
  b.wait('call-1');
  const out = b.gained([7, 9], 1000);
  t.same(out[0], { to: 'waiter', waiter: 'call-1', token: { slot: 7, gen: 0 } }, 'the waiter gets the first');
  t.same(out[1], { to: 'kept' }, 'the second is kept');
  t.equal(b.size, 2, 'both held');
  t.equal(b.waiting, 0);
  t.same(b.takeKept(), { slot: 9, gen: 0 }, 'the kept one serves the next call at once');
  t.equal(b.takeKept(), undefined, 'and then there is none');
});

t.test('a freed slot: to a waiter here, else kept for lingerMs, then given back', async (t) => {
  const b = book();
  b.gained([3], 0);
  t.same(b.takeKept(), { slot: 3, gen: 0 });
  b.wait('w');
  t.same(b.release({ slot: 3, gen: 0 }, 10), { to: 'waiter', waiter: 'w', token: { slot: 3, gen: 0 } }, 'handed on without a round trip');
  t.same(b.release({ slot: 3, gen: 0 }, 20), { to: 'kept' }, 'nobody waits: kept');
  t.ok(b.expire(20 + LINGER - 1), 'still kept just before lingerMs');
  t.notOk(b.hasGiving());
  t.notOk(b.expire(20 + LINGER), 'none kept any more');
  t.same(b.takeGiving(), [3], 'given back after lingerMs');
  t.equal(b.size, 0);
  t.same(b.takeGiving(), [], 'once');
});

t.test('while another process waits: no more than this process\'s share, and nothing kept for nobody', async (t) => {
  const b = book();
  b.observe(true, 2, 4);
  t.equal(b.share, 2, 'share: ceil(max_in_flight / live workers)');
  b.coming = 1;
  t.same(b.gained([1, 2, 3], 0).map((f) => f.to), ['kept', 'kept', 'database'], 'kept for the claim coming, up to the share; the third goes back');
  t.same(b.takeGiving(), [3]);
  b.wait('w');
  const tok = b.takeKept()!;
  b.observe(true, 4, 4);
  t.same(b.release(tok, 5), { to: 'database' }, 'holding 2 > share 1: back to the database, not to the waiter here');
  t.equal(b.waiting, 1, 'the waiter here still waits');

  const within = book();
  within.observe(true, 2, 4);
  within.wait('w');
  t.same(within.gained([5], 7), [{ to: 'waiter', waiter: 'w', token: { slot: 5, gen: 0 } }], 'within the share a waiter here is served');

  const idle = book();
  idle.observe(true, 1, 4);
  t.same(idle.gained([1], 0), [{ to: 'database' }], 'others wait and nothing here is coming: given back at once');
  idle.observe(false, 1, 4);
  t.same(idle.gained([2], 0), [{ to: 'kept' }], 'nobody else waits: kept');

  const over = book();
  over.gained([1, 2, 3], 0);
  over.observe(true, 2, 4);
  t.ok(over.expire(1), 'young kept slots within the share stay');
  t.same(over.takeGiving(), [1], 'kept slots over the share go back at once, down to the share');
  t.equal(over.size, 2);
});

t.test('slots to ask for: one per claim and waiting call, less those kept', async (t) => {
  const b = book();
  t.equal(b.wantSlots(3), 3);
  b.wait('a');
  b.wait('b');
  t.equal(b.wantSlots(1), 3);
  b.gained([1, 2, 3], 0); // two to the waiters, one kept
  t.equal(b.wantSlots(1), 0, 'the kept one covers the claim');
  t.equal(b.wantSlots(0), 0, 'never negative');
  t.same(b.heldSlots().sort(), [1, 2, 3], 'held slots are named to the database (never taken twice)');
});

t.test('a lost connection loses every slot: its tokens are void, nothing is given back for them', async (t) => {
  const b = book();
  b.gained([4], 0);
  const tok = b.takeKept()!;
  b.flagged = true;
  b.gained([6], 0);
  b.expire(LINGER);
  t.ok(b.hasGiving());
  b.lose();
  t.equal(b.size, 0);
  t.notOk(b.hasGiving(), 'slots to give back died with the connection too');
  t.notOk(b.flagged, 'and the waiting lock');
  t.equal(b.release(tok, 1), undefined, 'a token of the old connection is ignored');
  b.gained([4], 2);
  t.same(b.takeKept(), { slot: 4, gen: 1 }, 'the same slot number on the new connection is a new token');
  t.equal(b.release(tok, 3), undefined, 'the old token still does not release it');
  t.equal(b.size, 1);
});

t.test('the "waiting" lock: taken while calls wait, let go flagLingerMs after the last', async (t) => {
  const b = book();
  t.equal(b.flagChange(0), 0, 'nobody waits, not held: nothing');
  b.wait('w');
  b.noteIdle(0);
  t.equal(b.flagChange(0), 1, 'a call waits: take it');
  b.flagDone(1);
  t.ok(b.flagged);
  t.equal(b.flagChange(1), 0, 'held while the call waits');
  b.gained([1], 2);
  b.noteIdle(10);
  t.notOk(b.unflagDue(10 + FLAG_LINGER), 'not after exactly flagLingerMs');
  t.equal(b.flagChange(10 + FLAG_LINGER + 1), -1, 'let go once nobody has waited for flagLingerMs');
  b.noteIdle(100);
  t.equal(b.flagChange(10 + FLAG_LINGER + 1), -1, 'the idle time counts from the first idle look');
  b.flagDone(-1);
  t.notOk(b.flagged);
  t.equal(b.flagChange(1000), 0);
  b.flagDone(0);
  t.notOk(b.flagged, 'a round trip without a change changes nothing');
});

t.test('a waiting call that gives up leaves the queue; closing drains the rest', async (t) => {
  const b = book();
  b.wait('a');
  b.wait('b');
  b.wait('c');
  b.cancel('b');
  t.same(b.gained([1], 0), [{ to: 'waiter', waiter: 'a', token: { slot: 1, gen: 0 } }]);
  t.same(b.drainWaiters(), ['c']);
  t.equal(b.waiting, 0);
});
