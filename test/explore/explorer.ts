/**
 * The seeded schedule explorer (issue 20). One integer seeds a scheduler that,
 * at every step, picks what happens next among everything that can: a worker
 * claims, its requests reach the bank or not, answers arrive, are lost,
 * dropped or garbled, a worker crashes, a second attempt starts, the business
 * clock moves (past leases, midnight KST, the statement's finality), stages
 * run, statements are read, unresolved transfers are decided, an operator
 * retries, resolves a break, pauses or resumes, the bank cancels a booking or
 * books money nobody sent, a loan account runs out of funds. After every step
 * the invariants are checked, each failing with its own name; at the end the
 * world is drained (every request answered, every transfer finished, the
 * statements read and the days reconciled) and the settled invariants are
 * checked. A failing schedule is shrunk to a short one and printed with its
 * seed; `npm run explore -- --seed N` replays it step by step.
 */
import pg from 'pg';
import { recordStatement, type StatementNeed } from '../../src/db/reconcile.js';
import { kstYmd } from '../../src/nh/contract.js';
import { KIND, KIND2, LEASE_MS, LOAN_FUNDS, LOANS, SETTLE, SETTLE2, CORP, CORP2, STRANGER, World, type Attempt, type Call } from './world.js';

/** A small, fast, seedable PRNG (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const D1 = '2030-03-04';
export const D2 = '2030-03-05';
const DAYS = [D1, D2];
const HOUR = 3_600_000;
/** 00:00 KST of a YYYY-MM-DD, in ms. */
const kstMidnight = (d: string) => Date.parse(`${d}T00:00:00+09:00`);

export interface Setup {
  startMs: number;
  reconcileAfter: string;
  reconcileAfterMs: number;
  /** The kinds settled: tax, and with `--kinds 2` platform_fee too (its own settlement and corporate accounts, the same loan accounts). */
  kinds: string[];
  accruals: { date: string; loan: number; kind: string; amount: bigint }[];
}

/** A step's kind suffix: none for tax (the schedules of one kind read as they always did). */
const ks = (k: string) => (k === KIND ? '' : ` ${k}`);

export function setupOf(seed: number, kinds: 1 | 2 = 1): Setup {
  const r = rng(seed ^ 0x5eed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const start = pick(['23:50:00', '23:58:30', '10:00:00']);
  const grace = pick([['0', 0], ['10 minutes', 10 * 60_000], ['2 hours', 2 * HOUR]] as const);
  const accruals = [
    { date: D1, loan: 0, kind: KIND, amount: pick([250_000n, 100_000n, 150_000n]) },
    { date: D1, loan: 1, kind: KIND, amount: pick([100_000n, 50_000n]) },
    { date: D2, loan: 0, kind: KIND, amount: pick([100_000n, 70_000n]) },
    { date: D2, loan: 1, kind: KIND, amount: pick([30_000n, 100_000n]) },
  ];
  // Drawn after the first kind's, so a seed's first-kind setup is the same either way.
  if (kinds === 2) {
    accruals.push({ date: D1, loan: 1, kind: KIND2, amount: pick([60_000n, 100_000n, 130_000n]) });
    accruals.push({ date: D2, loan: 0, kind: KIND2, amount: pick([40_000n, 100_000n]) });
  }
  return {
    startMs: Date.parse(`${D2}T${start}+09:00`),
    reconcileAfter: grace[0],
    reconcileAfterMs: grace[1],
    kinds: kinds === 2 ? [KIND, KIND2] : [KIND],
    accruals,
  };
}

export interface Violation {
  invariant: string;
  detail: string;
}

export interface StepRecord {
  step: string;
  note: string;
}

export interface RunResult {
  seed: number;
  kinds: 1 | 2;
  steps: StepRecord[];
  /** The schedule that ran (what a replay needs). */
  schedule: string[];
  violation?: Violation & { at: number; during: 'schedule' | 'drain' };
}

interface TransferRow {
  id: number;
  state: string;
  is_tuno: string;
  attempt: number;
  tsymd: string | null;
  date: string;
  purpose: string;
  kind: string;
  claimed: boolean;
}

interface Snapshot {
  transfers: TransferRow[];
  attempts: { tid: number; is_tuno: string; outcome: string }[];
  /** The (day, kind)s reconciled DONE, as 'YYYY-MM-DD/kind'. */
  done: string[];
  stages: { date: string; kind: string; stage: string; state: string }[];
  breaks: number[];
  paused: boolean;
}

const TRUNCATE = [
  'settlement.accounts', 'settlement.contracts', 'settlement.kind_accounts', 'settlement.bank_codes', 'settlement.days', 'settlement.stage_runs',
  'settlement.accruals', 'settlement.entries', 'settlement.transfers', 'settlement.transfer_attempts', 'settlement.workers', 'settlement.rejected_jobs',
  'settlement.journal_entries', 'settlement.journal_lines', 'settlement.statement_reads', 'settlement.statement_lines', 'settlement.breaks',
  'settlement.line_matches', 'settlement.operator_actions', 'settlement.pauses', 'settlement.alerts', 'settlement.statement_requests',
  // No bank quiet hours: the explorer's schedules move the clock across midnight KST at will.
  'settlement.bank_windows',
  // No horizon: the watch counts from the beginning (match_watch moves it).
  'settlement.watch_state',
  'graphile_worker._private_jobs', 'graphile_worker._private_job_queues',
];

/** Empties the scratch database between seeds (triggers off for the reset only: this session is a superuser's). */
export async function resetDatabase(db: pg.Client): Promise<void> {
  await db.query(`begin; set local session_replication_role = replica;
    truncate ${TRUNCATE.join(', ')} restart identity cascade;
    alter sequence settlement.is_tuno_seq restart;
    commit;`);
}

export interface ExploreOptions {
  /** Scheduled steps before the drain. */
  steps: number;
  /** Print every step as it runs. */
  log?: (line: string) => void;
  /** 'money': the bank never cancels or books money nobody sent (a search for the payment defects, not the evidence ones). */
  focus?: 'all' | 'money';
  /** 2: a second kind settles beside tax, on the same loan accounts (default 1). */
  kinds?: 1 | 2;
}

class Stop extends Error {
  constructor(readonly v: Violation) {
    super(`${v.invariant}: ${v.detail}`);
  }
}

/** One run of one schedule: generated from the seed, or replayed (`schedule`; steps that cannot happen any more are skipped). */
export async function runSeed(db: pg.Client, seed: number, opts: ExploreOptions, schedule?: readonly string[]): Promise<RunResult> {
  const kinds = opts.kinds ?? 1;
  const setup = setupOf(seed, kinds);
  await resetDatabase(db);
  const w = new World(db, setup.startMs);
  const steps: StepRecord[] = [];
  const ran: string[] = [];
  const res: RunResult = { seed, kinds, steps, schedule: ran };
  const pick = rng(seed);
  let prev: Snapshot | undefined;
  /** Every number each transfer has had. */
  const history = new Map<number, Set<string>>();
  let during: 'schedule' | 'drain' = 'schedule';
  const log = (s: StepRecord) => {
    steps.push(s);
    opts.log?.(`${String(steps.length).padStart(4)}. ${s.step}${s.note ? `  -> ${s.note}` : ''}`);
  };

  try {
    await w.setClock(setup.startMs);
    await w.setup({ reconcileAfter: setup.reconcileAfter, kinds: setup.kinds });
    const watch = String((await w.q(`select greatest(statement_watch, interval '1 day')::text as w from settlement.config where id`)).rows[0].w);
    for (const [i, a] of setup.accruals.entries()) {
      await db.query(`select settlement.accrue($1, $2, $3, $4, $5)`, [`acc-${i}`, LOANS[a.loan], a.kind, a.amount.toString(), `${a.date}T12:00:00+09:00`]);
    }
    prev = await snapshot(w, history);

    const check = async (op: string) => {
      const cur = await snapshot(w, history);
      const v = await checkStep(w, prev!, cur, op, history);
      prev = cur;
      if (v) throw new Stop(v);
    };

    // The schedule.
    const total = schedule ? schedule.length : opts.steps;
    for (let i = 0; i < total; i++) {
      let text: string;
      if (schedule) text = schedule[i]!;
      else {
        const options = enabled(w, prev!, setup, `a${i + 1}`).filter((o) => opts.focus !== 'money' || !/^(cancel|orphan) /.test(o.text));
        text = choose(options, pick);
      }
      const note = text.startsWith('settle-day ')
        ? await settleDay(w, setup, text.split(' ')[1]!, text.split(' ')[2] ?? KIND, `a${i + 1}.`, async (sub, n) => {
            log({ step: `  [${text}] ${sub}`, note: n });
            await check(sub.split(' ')[0]!);
          })
        : await exec(w, text, setup);
      if (note === null) {
        if (schedule) continue;
        log({ step: text, note: 'skipped' });
      } else log({ step: text, note });
      ran.push(text);
      await check(text.split(' ')[0]!);
    }

    // The drain: everything finishes, every statement is read, every day reconciled.
    during = 'drain';
    await drain(w, setup, async (text, note) => {
      log({ step: `[drain] ${text}`, note });
      await check(text.split(' ')[0]!);
    }, { label: 'd', operator: true });
    // The books must agree with the bank (or a break say why) once every day was reconciled; a day
    // still waiting (a failure no retry fixed) has not looked at its statements yet.
    const waiting = await w.q(`select count(*)::int as n from settlement.stage_runs where stage = 'reconcile' and state not in ('done', 'blocked')`);
    if (waiting.rows[0].n === 0) {
      const v = await checkSettled(w, history, watch);
      if (v) throw new Stop(v);
    } else log({ step: '[drain] settled invariants not checked', note: `${waiting.rows[0].n} day(s) never reconciled (a failure no retry fixed)` });
  } catch (e) {
    if (!(e instanceof Stop)) throw e;
    res.violation = { ...e.v, at: steps.length, during };
  } finally {
    w.closeClients();
  }
  return res;
}

// -----------------------------------------------------------------------------
// What can happen next

interface Option {
  text: string;
  weight: number;
}

function choose(options: Option[], r: () => number): string {
  const total = options.reduce((s, o) => s + o.weight, 0);
  let x = r() * total;
  for (const o of options) {
    x -= o.weight;
    if (x < 0) return o.text;
  }
  return options[options.length - 1]!.text;
}

const STAGES = ['record', 'pay', 'confirm', 'withdraw', 'reconcile'] as const;

/** An instant as KST ISO text (what tick steps name). */
function kst(ms: number): string {
  return new Date(ms + 9 * HOUR).toISOString().replace('Z', '+09:00');
}

function nextMidnightAfter(ms: number): number {
  const ymd = kstYmd(new Date(ms));
  const d = `${ymd.slice(0, 4)}-${ymd.slice(4, 6)}-${ymd.slice(6, 8)}`;
  return kstMidnight(d) + 24 * HOUR;
}

function enabled(w: World, s: Snapshot, setup: Setup, label: string): Option[] {
  const o: Option[] = [];
  const live = [...w.attempts.values()].filter((a) => !a.dead && !a.finished);
  for (const t of s.transfers) {
    if (t.state === 'pending' || t.state === 'sending') {
      const held = live.some((a) => a.tid === t.id);
      o.push({ text: `start t${t.id} ${label}`, weight: held ? 0.4 : 3 });
    }
  }
  for (const c of w.calls) {
    if (c.bank === 'travelling') o.push({ text: `bank ${c.id}`, weight: 4 });
    if (!c.answered && !c.attempt.dead) {
      if (c.bank === 'processed') {
        o.push({ text: `reply ${c.id}`, weight: 4 });
        o.push({ text: `garble ${c.id}`, weight: 0.3 });
      }
      o.push({ text: `lose ${c.id}`, weight: 0.8 });
      if (c.bank === 'travelling') o.push({ text: `drop ${c.id}`, weight: 0.4 });
    }
  }
  for (const sw of w.slotWaits) if (!sw.done && !sw.attempt.dead) o.push({ text: `slot ${sw.id}`, weight: 5 });
  for (const a of live) {
    if (a.done) o.push({ text: `finish ${a.id}`, weight: 4 });
    o.push({ text: `crash ${a.id}`, weight: 0.3 });
  }
  // Time (to an absolute moment, so that a shrunk schedule still reaches it).
  const to = (ms: number) => `tick ${kst(ms)}`;
  o.push({ text: to(w.clock.ms + 5000), weight: 1.5 });
  o.push({ text: to(w.clock.ms + LEASE_MS + 1000), weight: 0.6 });
  o.push({ text: to(w.clock.ms + HOUR), weight: 0.3 });
  const midnight = nextMidnightAfter(w.clock.ms);
  if (midnight - w.clock.ms > 20_000) o.push({ text: to(midnight - 10_000), weight: 0.5 });
  o.push({ text: to(midnight + 3_000), weight: 0.5 });
  const lastMidnight = midnight - 24 * HOUR;
  const final = lastMidnight + setup.reconcileAfterMs + 2_000;
  o.push({ text: to(final > w.clock.ms ? final : midnight + setup.reconcileAfterMs + 2_000), weight: 0.5 });
  // Stages: the next one of each day is the likely one (its job chained), any other may run (the crontab).
  for (const k of setup.kinds) {
    for (const d of DAYS) {
      const st = (stage: string) => s.stages.find((x) => x.date === d && x.kind === k && x.stage === stage)?.state ?? 'pending';
      const next = STAGES.find((x) => st(x) !== 'done');
      for (const stage of STAGES) o.push({ text: `stage ${stage} ${d}${ks(k)}`, weight: stage === next ? 2 : 0.1 });
    }
  }
  o.push({ text: 'reconcile-task', weight: 1 });
  for (const k of setup.kinds) {
    for (const d of DAYS) {
      const rec = s.stages.find((x) => x.date === d && x.kind === k && x.stage === 'reconcile')?.state;
      if (rec !== 'done' && rec !== 'blocked') o.push({ text: `settle-day ${d}${ks(k)}`, weight: 0.25 });
    }
  }
  o.push({ text: 'decide', weight: 0.4 });
  const ymds = [...new Set([w.clock.ymd(), ...s.transfers.map((t) => t.tsymd).filter((x): x is string => x !== null)])];
  for (const acno of setup.kinds.length > 1 ? [SETTLE, CORP, SETTLE2, CORP2] : [SETTLE, CORP]) for (const y of ymds) o.push({ text: `read ${acno} ${y}`, weight: 0.15 });
  // Operators.
  for (const d of DAYS) {
    const failed = s.transfers.some((t) => t.date === d && t.state === 'failed');
    for (const k of setup.kinds) o.push({ text: `retry-failed ${d}${ks(k)}`, weight: s.transfers.some((t) => t.date === d && t.kind === k && t.state === 'failed') ? 1 : 0.05 });
    o.push({ text: `retry-day ${d}`, weight: failed ? 0.5 : 0.02 });
  }
  for (const b of s.breaks) o.push({ text: `resolve b${b}`, weight: 0.3 });
  o.push(s.paused ? { text: 'resume', weight: 0.6 } : { text: 'pause', weight: 0.15 });
  // The bank.
  const booked = new Set<number>();
  for (const bt of w.ledger.transfers) {
    const tid = w.numbers.get(bt.isTuno);
    if (tid !== undefined && bt.cancelTuno === null) booked.add(tid);
  }
  for (const tid of booked) o.push({ text: `cancel t${tid}`, weight: 0.15 });
  o.push({ text: 'orphan 100000', weight: 0.1 });
  for (const [i] of LOANS.entries()) {
    const a = w.ledger.account('011', LOANS[i]!)!;
    o.push(a.balance > 0n ? { text: `drain ${i}`, weight: 0.25 } : { text: `refill ${i}`, weight: 0.5 });
  }
  return o;
}

// -----------------------------------------------------------------------------
// Doing it

async function sqlStep(w: World, text: string, params: unknown[]): Promise<string> {
  try {
    const r = await w.q(text, params);
    return JSON.stringify(r.rows.map((x) => Object.values(x).map((v) => (v === null ? null : String(v))))).slice(0, 200);
  } catch (e) {
    const err = e as { code?: string; message: string };
    return `refused ${err.code ?? ''}: ${err.message.slice(0, 160)}`;
  }
}

/** The reconcile task: read the statements SQL asks for (the product's reader), decide the unresolved, run reconcile for every open day. */
async function reconcileTask(w: World): Promise<string> {
  const notes: string[] = [];
  notes.push(await readNeeded(w));
  notes.push(`decide ${await decide(w)}`);
  const watched = (await w.q(`select settlement.match_watch() as n`)).rows[0].n as number;
  if (watched > 0) notes.push(`watch matched ${watched}`);
  const days = await w.q(`select business_date::text as d, kind::text as k from settlement.open_days()`);
  for (const d of days.rows) notes.push(`reconcile ${d.d}: ${await sqlStep(w, `select outcome, detail from settlement.run_stage('reconcile', $1::date, $2)`, [d.d, d.k])}`);
  return notes.join('; ');
}

async function readNeeded(w: World): Promise<string> {
  const needs = await w.q(`select bncd, acno, ymd, to_ymd, to_char(asked_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as asked_at from settlement.statements_to_read()`);
  const out: string[] = [];
  for (const n of needs.rows as StatementNeed[]) out.push(await readOne(w, n));
  return `read ${out.length ? out.join(', ') : 'nothing'}`;
}

async function readOne(w: World, n: StatementNeed): Promise<string> {
  const bank = w.readerClient();
  try {
    const lines = await bank.statement(n.bncd, n.acno, n.ymd, n.to_ymd);
    const added = await recordStatement(slonikOf(w), n, lines).catch((e: { sqlstate?: string }) => {
      // Refused as not credible (its lines kept, alerted): the worker's reconcile job would fail and run again.
      if (e.sqlstate === 'ST120') return 'refused';
      throw e;
    });
    return `${n.acno}@${n.ymd}..${n.to_ymd} ${lines.length} lines (${added === 'refused' ? 'refused: ST120' : `${added} new`})`;
  } finally {
    bank.close();
  }
}

/** recordStatement takes slonik's query methods; the explorer's one connection answers its one query. */
function slonikOf(w: World) {
  return {
    oneFirst: async (q: { sql: string; values: readonly unknown[] }) => {
      const r = await w.q(q.sql.replace(/\$slonik_(\d+)/g, '$$$1'), [...q.values]);
      return Object.values(r.rows[0]!)[0];
    },
  } as unknown as Parameters<typeof recordStatement>[0];
}

async function decide(w: World): Promise<string> {
  const r = await w.q(`select transfer_id::text as t, is_tuno, decision from settlement.decide_unresolved()`);
  return r.rows.length ? r.rows.map((x) => `t${x.t} ${x.is_tuno} ${x.decision}`).join(', ') : 'nothing';
}

function findCall(w: World, id: string): Call | undefined {
  return w.calls.find((c) => c.id === id);
}

/** Runs one step; null when it cannot happen now (a replayed step whose subject is gone). */
async function exec(w: World, text: string, setup: Setup): Promise<string | null> {
  const [op, a1, a2, a3] = text.split(' ') as [string, string | undefined, string | undefined, string | undefined];
  switch (op) {
    case 'start': {
      const tid = Number(a1!.slice(1));
      if (w.attempts.has(a2!)) return null;
      return `${a2}: ${await w.start(a2!, tid)}`;
    }
    case 'bank': {
      const c = findCall(w, a1!);
      if (!c || c.bank !== 'travelling') return null;
      return w.bankProcesses(c);
    }
    case 'reply':
    case 'garble':
    case 'lose':
    case 'drop': {
      const c = findCall(w, a1!);
      if (!c || c.answered || c.attempt.dead) return null;
      if ((op === 'reply' || op === 'garble') && c.bank !== 'processed') return null;
      if (op === 'drop' && c.bank !== 'travelling') return null;
      await w[op](c);
      return after(c.attempt);
    }
    case 'slot': {
      const sw = w.slotWaits.find((x) => x.id === a1);
      if (!sw || sw.done || sw.attempt.dead) return null;
      await w.slot(sw);
      return after(sw.attempt);
    }
    case 'finish': {
      const a = w.attempts.get(a1!);
      if (!a || a.dead || a.finished || !a.done) return null;
      return w.finish(a);
    }
    case 'crash': {
      const a = w.attempts.get(a1!);
      if (!a || a.dead || a.finished) return null;
      a.dead = true;
      return 'the worker process died';
    }
    case 'tick': {
      // `tick 2030-03-05T23:59:50.000+09:00` (absolute; skipped once past) or `tick +5000ms`.
      const target = a1!.startsWith('+') ? w.clock.ms + Number(a1!.slice(1).replace(/ms$/, '')) : Date.parse(a1!);
      if (!(target > w.clock.ms)) return null;
      const notes = await w.advance(target);
      return `${new Date(w.clock.ms + 9 * HOUR).toISOString().slice(0, 19).replace('T', ' ')} KST${notes.length ? `; ${notes.join(', ')}` : ''}`;
    }
    case 'stage':
      return sqlStep(w, `select outcome, detail from settlement.run_stage($1, $2::date, $3)`, [a1, a2, a3 ?? KIND]);
    case 'reconcile-task':
      return reconcileTask(w);
    case 'decide':
      return decide(w);
    case 'read': {
      // A read at any time, as the database asks for it (a read request now; the product's reader answers it).
      const to = a2! < w.clock.ymd() ? nextYmd(a2!) : a2!;
      const asked = await w.q(`select to_char(settlement.ask_statement('011', $1, $2, $3) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as asked_at`, [a1, a2, to]);
      return readOne(w, { bncd: '011', acno: a1!, ymd: a2!, to_ymd: to, asked_at: asked.rows[0].asked_at } as StatementNeed);
    }
    case 'retry-failed':
      return sqlStep(w, `select settlement.retry_failed($1::date, $2)`, [a1, a2 ?? KIND]);
    case 'retry-day':
      return sqlStep(w, `select * from settlement.retry_day($1::date)`, [a1]);
    case 'resolve':
      return sqlStep(w, `select settlement.resolve_break($1, 'explained by the explorer''s operator')`, [Number(a1!.slice(1))]);
    case 'watch':
      // Only in hand-written schedules (never chosen at random): the statement watch's length, e.g. `watch 0` (off).
      return sqlStep(w, `select settlement.configure_statement_watch(make_interval(days => $1::int))`, [Number(a1)]);
    case 'pause':
      return sqlStep(w, `select settlement.pause(null, 'explorer: the bank announced maintenance')`, []);
    case 'resume':
      return sqlStep(w, `select settlement.resume(null)`, []);
    case 'cancel': {
      const tid = Number(a1!.slice(1));
      const bt = [...w.ledger.transfers].reverse().find((b) => w.numbers.get(b.isTuno) === tid && b.cancelTuno === null);
      if (!bt) return null;
      const r = w.ledger.cancel(bt.tuno, w.clock.date());
      return `the bank cancelled ${bt.isTuno} (Tuno ${bt.tuno}): ${typeof r === 'string' ? r : r.tuno}`;
    }
    case 'orphan': {
      const from = w.ledger.account('011', STRANGER)!;
      const to = w.ledger.account('011', SETTLE)!;
      const bt = w.ledger.book({ api: 'ReceivedTransferAccountNumber', isTuno: `8${String(w.ledger.transfers.length).padStart(17, '0')}`, tsymd: w.clock.ymd(),
        from, to, amount: BigInt(a1!), fromText: null, toText: null, now: w.clock.date() });
      return `the bank booked ${a1} KRW into the settlement account that nobody of ours sent (Tuno ${bt.tuno})`;
    }
    case 'drain':
    case 'refill': {
      const acno = LOANS[Number(a1)]!;
      const acc = w.ledger.account('011', acno)!;
      if ((op === 'drain') !== acc.balance > 0n) return null;
      w.ledger.setAccount('011', acno, op === 'drain' ? 0n : LOAN_FUNDS, w.clock.date());
      return `${acno} balance ${op === 'drain' ? 0 : LOAN_FUNDS}`;
    }
    default:
      throw new Error(`unknown step ${text}`);
  }
}

function nextYmd(ymd: string): string {
  const d = new Date(Date.UTC(Number(ymd.slice(0, 4)), Number(ymd.slice(4, 6)) - 1, Number(ymd.slice(6, 8)) + 1));
  return d.toISOString().slice(0, 10).replaceAll('-', '');
}

function after(a: Attempt): string {
  if (a.dead) return 'delivered to a dead worker';
  if (a.done) {
    const r = a.result;
    if (!r) return `attempt ${a.id} threw ${a.error?.message}`;
    return `attempt ${a.id} ended: ${r.status}${r.status === 'succeeded' ? ` ${r.processedAt} by ${r.by}` : r.status === 'failed' ? ` ${r.code}` : ` (${r.reason.slice(0, 80)})`}`;
  }
  const sw = a.slots.find((x) => !x.done);
  if (sw) return `attempt ${a.id} waits for a bank-call slot (${sw.id})`;
  const c = a.calls[a.calls.length - 1]!;
  return `attempt ${a.id} now calls ${c.id} ${c.api} ${c.api.startsWith('Check') ? `(asks about ${String(c.body['OrtrIsTuno'])})` : `${c.isTuno} Tsymd ${c.tsymd}`}`;
}

/** Everything finishes, deterministically: requests reach the bank and are answered, workers finish, time passes, stages and reconcile run. */
interface DrainOptions {
  /** Names the attempts the drain starts. */
  label: string;
  /** Stop as soon as this holds (checked at the start of each round). */
  until?: () => Promise<boolean>;
  /** Also act as the operator: fund what ran dry, retry what failed (twice per day at most). */
  operator: boolean;
}

async function drain(w: World, setup: Setup, step: (text: string, note: string) => Promise<void>, opts: DrainOptions): Promise<void> {
  let quiet = 0;
  const startedAt = new Map<number, number>();
  const retried = new Map<string, number>();
  for (let round = 0; round < 120 && quiet < 1; round++) {
    if (opts.until && (await opts.until())) return;
    let moved = false;
    for (const sw of [...w.slotWaits]) {
      if (!sw.done && !sw.attempt.dead) {
        await w.slot(sw);
        await step(`slot ${sw.id}`, after(sw.attempt));
        moved = true;
      }
    }
    for (const c of [...w.calls]) {
      if (c.bank === 'travelling') {
        await step(`bank ${c.id}`, w.bankProcesses(c));
        moved = true;
      }
      if (!c.answered && !c.attempt.dead && c.bank === 'processed') {
        await w.reply(c);
        await step(`reply ${c.id}`, after(c.attempt));
        moved = true;
      }
    }
    for (const a of [...w.attempts.values()]) {
      if (!a.dead && a.done && !a.finished) {
        await step(`finish ${a.id}`, await w.finish(a));
        moved = true;
      }
    }
    if (moved) continue;
    const paused = (await w.q(`select settlement.is_paused($1) as p`, [KIND])).rows[0].p as boolean;
    if (paused) {
      await step('resume', await sqlStep(w, `select settlement.resume(null)`, []));
      continue;
    }
    const open = await w.q(`select id from settlement.transfers where state in ('pending', 'sending') and (claimed_until is null or claimed_until < settlement_meta.now()) order by id`);
    let started = false;
    for (const r of open.rows) {
      const live = [...w.attempts.values()].some((a) => a.tid === Number(r.id) && !a.dead && !a.finished);
      // One attempt per transfer per moment: an unresolved one is asked again after time passes (the task's backoff).
      if (live || startedAt.get(Number(r.id)) === w.clock.ms) continue;
      startedAt.set(Number(r.id), w.clock.ms);
      const label = `${opts.label}${round}.${r.id}`;
      await step(`start t${r.id}`, `${label}: ${await w.start(label, Number(r.id))}`);
      started = true;
    }
    if (started) continue;
    const state = async () => JSON.stringify((await w.q(`select (select json_agg(r.state order by r.business_date, r.stage) from settlement.stage_runs r) as s,
      (select json_agg(json_build_object(t.state, t.is_tuno) order by t.id) from settlement.transfers t) as t`)).rows);
    const before = await state();
    // Each day's stages in order, from its first one not done, until one is not done now (what the chained jobs do).
    const runs = await w.q(`select business_date::text as d, kind::text as k, stage::text as stage from settlement.stage_runs where state <> 'done' and stage <> 'reconcile' order by business_date, kind, stage_runs.stage`);
    const todo = new Map<string, string[]>();
    for (const r of runs.rows) todo.set(`${r.d}/${r.k}`, [...(todo.get(`${r.d}/${r.k}`) ?? []), r.stage]);
    for (const d of DAYS) {
      for (const k of setup.kinds) {
        // (accrue created each day with its stage rows)
        for (const stage of todo.get(`${d}/${k}`) ?? []) {
          const note = await sqlStep(w, `select outcome, detail from settlement.run_stage($1, $2::date, $3)`, [stage, d, k]);
          await step(`stage ${stage} ${d}${ks(k)}`, note);
          if (!/^\[\["(done|already_done)"/.test(note)) break;
        }
      }
    }
    await step('reconcile-task', await reconcileTask(w));
    const afterState = await state();
    if (afterState !== before) {
      quiet = 0;
      continue;
    }
    // Nothing moves without time: jump to the next moment something can (a lease lapses, a statement becomes final).
    const next = await w.q(`select extract(epoch from min(x.at)) * 1000 as at from (
        select settlement.statement_final_at(y.ymd) as at
        from (select tsymd as ymd from settlement.transfers union select tsymd from settlement.transfer_attempts) y where y.ymd is not null
        union all select settlement.bookings_end(ymd) from settlement.watch_scope
        union all select claimed_until from settlement.transfers where state in ('pending', 'sending')) x
      where x.at > settlement_meta.now()`);
    const at = next.rows[0].at === null ? null : Number(next.rows[0].at);
    if (at === null) {
      // The operator's part: fund what ran dry, retry what failed (a few times), then stop.
      let acted = false;
      if (!opts.operator) break;
      for (const [i, acno] of LOANS.entries()) {
        const acc = w.ledger.account('011', acno)!;
        if (acc.balance === 0n) {
          await step(`refill ${i}`, (await exec(w, `refill ${i}`, setup)) ?? '');
          acted = true;
        }
      }
      const failed = await w.q(`select distinct business_date::text as d from settlement.transfers where state = 'failed' order by 1`);
      for (const r of failed.rows) {
        const n = retried.get(r.d) ?? 0;
        if (n >= 2) continue;
        retried.set(r.d, n + 1);
        await step(`retry-day ${r.d}`, (await exec(w, `retry-day ${r.d}`, setup)) ?? '');
        acted = true;
      }
      if (!acted) quiet++;
      continue;
    }
    const notes = await w.advance(Math.max(at + 1_000, w.clock.ms + 1_000));
    await step(`tick to ${new Date(w.clock.ms + 9 * HOUR).toISOString().slice(0, 19).replace('T', ' ')} KST`, notes.join(', '));
  }
}

/**
 * A scheduled step that is a lot of ordinary progress: every request reaches
 * the bank and is answered, workers finish, stages run and time passes, until
 * day `d` is reconciled (done or blocked), or nothing more can happen without
 * an operator. Each sub-step is checked like any other.
 */
async function settleDay(w: World, setup: Setup, d: string, kind: string, label: string, step: (text: string, note: string) => Promise<void>): Promise<string> {
  const state = async () => (await w.q(`select state::text as s from settlement.stage_runs where business_date = $1 and kind = $2 and stage = 'reconcile'`, [d, kind])).rows[0]?.s as string | undefined;
  await drain(w, setup, step, { label, operator: false, until: async () => ['done', 'blocked'].includes((await state()) ?? '') });
  return `reconcile of ${d}${ks(kind)}: ${(await state()) ?? 'no day'}`;
}

// -----------------------------------------------------------------------------
// The invariants

/**
 * What the invariants compare, in one query; it also moves the clock on by
 * 250 ms for the next step (every step takes a little business time: nothing
 * two steps do happens at the same instant). The query's own reads see the
 * clock before the move.
 */
async function snapshot(w: World, history: Map<number, Set<string>>): Promise<Snapshot> {
  w.clock.ms += 250;
  const r = await w.q(`with tick as (update settlement_meta.explore_clock set at = $1) select json_build_object(
    'transfers', (select coalesce(json_agg(json_build_object('id', t.id, 'state', t.state, 'is_tuno', t.is_tuno, 'attempt', t.attempt, 'tsymd', t.tsymd,
                   'date', t.business_date::text, 'purpose', t.purpose, 'kind', t.kind, 'claimed', coalesce(t.claimed_until >= settlement_meta.now(), false)) order by t.id), '[]') from settlement.transfers t),
    'attempts', (select coalesce(json_agg(json_build_object('tid', a.transfer_id, 'is_tuno', a.is_tuno, 'outcome', a.outcome)), '[]') from settlement.transfer_attempts a),
    'done', (select coalesce(json_agg(r.business_date::text || '/' || r.kind), '[]') from settlement.stage_runs r where r.stage = 'reconcile' and r.state = 'done'),
    'stages', (select coalesce(json_agg(json_build_object('date', r.business_date::text, 'kind', r.kind, 'stage', r.stage, 'state', r.state)), '[]') from settlement.stage_runs r),
    'breaks', (select coalesce(json_agg(b.id order by b.id), '[]') from settlement.breaks b where b.resolved_at is null),
    'paused', (select exists (select 1 from settlement.pauses p where p.resumed_at is null))) as s`, [w.clock.iso()]);
  const s = r.rows[0].s as Snapshot;
  for (const t of s.transfers) {
    if (!history.has(t.id)) history.set(t.id, new Set());
    history.get(t.id)!.add(t.is_tuno);
    w.numbers.set(t.is_tuno, t.id);
  }
  return s;
}

/** The bank's bookings (not cancelled) under numbers of ours, per transfer. */
function bookingsByTransfer(w: World): Map<number, string[]> {
  const m = new Map<number, string[]>();
  for (const bt of w.ledger.transfers) {
    const tid = w.numbers.get(bt.isTuno);
    if (tid === undefined || bt.cancelTuno !== null) continue;
    if (!m.has(tid)) m.set(tid, []);
    m.get(tid)!.push(bt.isTuno);
  }
  return m;
}

async function checkStep(w: World, prev: Snapshot, cur: Snapshot, op: string, history: Map<number, Set<string>>): Promise<Violation | undefined> {
  // 1. No transfer is booked at the bank under two of its numbers.
  for (const [tid, nums] of bookingsByTransfer(w)) {
    if (nums.length > 1) return { invariant: 'one-booking', detail: `transfer ${tid} is booked at the bank under ${nums.length} numbers: ${nums.join(', ')}` };
  }
  // 2. A transfer's state only moves forward, and every change has its evidence.
  const before = new Map(prev.transfers.map((t) => [t.id, t]));
  for (const t of cur.transfers) {
    const p = before.get(t.id);
    if (!p) continue;
    if (p.state === t.state && p.is_tuno === t.is_tuno && p.attempt === t.attempt) continue;
    const what = `transfer ${t.id}: ${p.state} ${p.is_tuno} #${p.attempt} -> ${t.state} ${t.is_tuno} #${t.attempt} (step ${op})`;
    if (p.state === 'succeeded') return { invariant: 'forward-evidence', detail: `${what}: a succeeded transfer changed` };
    if (p.is_tuno !== t.is_tuno) {
      const byOperator = (op === 'retry-failed' || op === 'retry-day') && p.state === 'failed';
      const byStatement = (op === 'decide' || op === 'reconcile-task') && p.state === 'sending';
      if (!(byOperator || byStatement) || t.state !== 'pending' || t.attempt !== p.attempt + 1) {
        return { invariant: 'forward-evidence', detail: `${what}: a new number without an operator's retry or a statement's proof` };
      }
      // 3. Retry never re-sends a number the bank may still book (nor re-plans one it booked).
      const bookedNow = w.ledger.transfers.filter((bt) => bt.cancelTuno === null && history.get(t.id)!.has(bt.isTuno) && bt.isTuno !== t.is_tuno);
      if (bookedNow.length > 0) {
        return { invariant: 'retry-safe', detail: `${what}: re-planned under a new number although the bank has booked ${bookedNow.map((b) => b.isTuno).join(', ')} (${byOperator ? 'operator retry' : 'statement decision'})` };
      }
      const inFlight = w.calls.filter((c) => c.bank === 'travelling' && !c.api.startsWith('Check') && !c.api.startsWith('Inquire') && history.get(t.id)!.has(c.isTuno) && c.isTuno !== t.is_tuno);
      if (inFlight.length > 0) {
        return { invariant: 'retry-safe', detail: `${what}: re-planned while request ${inFlight.map((c) => `${c.id} (${c.isTuno})`).join(', ')} is still on its way to the bank (${byOperator ? 'operator retry' : 'statement decision'})` };
      }
      continue;
    }
    if (t.state === 'succeeded' && !w.ledger.transfers.some((bt) => bt.isTuno === t.is_tuno)) {
      return { invariant: 'forward-evidence', detail: `${what}: recorded succeeded, but the bank never booked ${t.is_tuno}` };
    }
    if (t.state === 'failed') {
      const booked = w.ledger.transfers.some((bt) => bt.isTuno === t.is_tuno);
      const refused = t.tsymd !== null && w.ledger.processedAt('000123', t.tsymd, t.is_tuno) !== undefined;
      if (booked || !refused) return { invariant: 'forward-evidence', detail: `${what}: recorded failed, but the bank ${booked ? 'booked it' : 'never processed it'}` };
    }
    const forward = p.state === t.state ? p.state !== 'succeeded'
      : (p.state === 'pending' && t.state !== 'pending') || (p.state === 'sending' && (t.state === 'succeeded' || t.state === 'failed'));
    if (!forward) return { invariant: 'forward-evidence', detail: `${what}: not a forward move` };
  }
  // 4. A day is DONE only if every line of its statements is matched and every transfer settled.
  if (cur.done.length > 0) {
    for (const d of cur.done) {
      const open = cur.transfers.filter((t) => `${t.date}/${t.kind}` === d && t.state !== 'succeeded');
      if (open.length > 0) return { invariant: 'done-complete', detail: `${d} is DONE with transfer(s) ${open.map((t) => `${t.id} ${t.state}`).join(', ')}` };
    }
    // The bank's truth: a payout of a DONE day that the bank cancelled, once the product has read the cancellation, is a break.
    const cancelled = cur.transfers.filter((t) => cur.done.includes(`${t.date}/${t.kind}`) && t.state === 'succeeded')
      .map((t) => ({ t, bt: w.ledger.transfers.find((b) => b.isTuno === t.is_tuno && b.cancelTuno !== null) }))
      .filter((x) => x.bt !== undefined);
    for (const { t, bt } of cancelled) {
      // (once a reconcile has matched it: a line only stored by a read is not judged yet)
      const seen = await w.q(`select l.id, l.acno, l.trdd from settlement.statement_lines l where l.tuno = $1
        and exists (select 1 from settlement.line_matches m where m.line_id = l.id)
        and not exists (select 1 from settlement.breaks b where b.line_id = l.id or (b.transfer_id = $2 and b.problem = 'cancelled')) order by l.id limit 1`, [bt!.cancelTuno, t.id]);
      const x = seen.rows[0];
      if (x) {
        return { invariant: 'done-complete', detail: `${t.date} is DONE, but the bank cancelled its transfer ${t.id} (${t.is_tuno}) and line ${x.id} (${x.acno} ${x.trdd}, the cancellation, read and matched) is in no break` };
      }
    }
    const r = await w.q(`
      select l.id, l.acno, l.trdd, l.txtm, l.ccyn, l.tram::text as tram, m.rule, m.is_tuno, t.id as tid, t.is_tuno as cur, t.state::text as state, t.business_date::text || '/' || t.kind as d
      from settlement.line_matches m
      join settlement.statement_lines l on l.id = m.line_id
      left join settlement.line_matches om on om.line_id = m.cancels_line_id
      join settlement.transfers t on t.id = coalesce(m.transfer_id, om.transfer_id)
      where t.business_date::text || '/' || t.kind = any($1::text[])
        and not (m.rule in ('reference', 'fallback') and m.is_tuno = t.is_tuno and t.state = 'succeeded')
        and not exists (select 1 from settlement.breaks b where b.line_id = l.id or (b.problem = 'orphan' and b.line_id is null and b.is_tuno = m.is_tuno))
      order by l.id limit 1`, [cur.done]);
    const x = r.rows[0];
    if (x) {
      return { invariant: 'done-complete', detail: `${x.d} is DONE, but line ${x.id} (${x.acno} ${x.trdd} ${x.txtm}${x.ccyn === '1' ? ', a cancellation' : ''}, ${x.tram} KRW, matched ${x.rule} to transfer ${x.tid} via ${x.is_tuno}) is evidence no break of ${x.d} records` };
    }
  }
  return undefined;
}

/** After the drain: the bank and the books agree, or a break says why. */
async function checkSettled(w: World, history: Map<number, Set<string>>, watch: string): Promise<Violation | undefined> {
  // The bank never holds a booking of ours that the ledger does not know as succeeded or as a break.
  const r = await w.q(`select json_build_object(
      'transfers', (select json_agg(json_build_object('id', id, 'state', state, 'is_tuno', is_tuno, 'from', from_account, 'to', to_account)) from settlement.transfers),
      'breaks', (select coalesce(json_agg(json_build_object('is_tuno', b.is_tuno, 'ref', l.ref_is_tuno, 'account', b.account_no, 'tid', b.transfer_id, 'problem', b.problem, 'amount', b.amount::text)), '[]')
                 from settlement.breaks b left join settlement.statement_lines l on l.id = b.line_id),
      'journal', (select coalesce(json_object_agg(substr(ledger_account, 6), balance::text), '{}') from settlement.ledger_balances where ledger_account like 'bank:%')) as s`);
  const s = r.rows[0].s as { transfers: { id: number; state: string; is_tuno: string; from: string; to: string }[]; breaks: { is_tuno: string | null; ref: string | null; account: string | null; tid: number | null; problem: string; amount: string }[]; journal: Record<string, string> };
  const tById = new Map((s.transfers ?? []).map((t) => [t.id, t]));
  for (const bt of w.ledger.transfers) {
    const tid = w.numbers.get(bt.isTuno);
    if (tid === undefined || bt.cancelTuno !== null) continue;
    const t = tById.get(tid)!;
    if (t.state === 'succeeded' && t.is_tuno === bt.isTuno) continue;
    if (s.breaks.some((b) => b.is_tuno === bt.isTuno || b.ref === bt.isTuno)) continue;
    return { invariant: 'bank-known', detail: `the bank booked ${bt.amount} KRW under ${bt.isTuno} (transfer ${tid}, now ${t.state} under ${t.is_tuno}); no succeeded transfer and no break knows it` };
  }
  // Bank balances = ledger balances + suspense, to the won (a difference only where a break says why).
  // The dates the product answers for, per account: for each day and kind whose transfers touch the
  // account, every date from the first its transfers were sent on to today (the day's own dates, the day
  // after each, and the statement watch's dates after them), but not past the watch the product promises
  // (config.statement_watch as the seed's setup left it, 7 days; a hand-written `watch` step does not
  // shrink the promise). Money the bank moves on an account on a date no day of ours that touches it
  // covers (before its first send, or later than the watch after its last) is out of the product's sight
  // (README, the statement watch).
  const sent = await w.q(`with d as (
      select t.business_date, t.kind, min(x.ymd) as first, max(x.ymd) as last from settlement.transfers t
      cross join lateral (select t.tsymd as ymd union select a.tsymd from settlement.transfer_attempts a where a.transfer_id = t.id) x
      where x.ymd is not null group by 1, 2),
    acc as (select distinct t.business_date, t.kind, v.acno from settlement.transfers t cross join lateral (values (t.from_account), (t.to_account)) v(acno))
    select distinct acc.acno, to_char(g, 'YYYYMMDD') as ymd
    from d join acc on acc.business_date = d.business_date and acc.kind = d.kind
    cross join lateral generate_series(to_date(d.first, 'YYYYMMDD')::timestamp,
      least(to_date(settlement.bank_ymd(), 'YYYYMMDD')::timestamp, to_date(d.last, 'YYYYMMDD') + $1::interval), interval '1 day') g`, [watch]);
  const dates = new Map<string, Set<string>>();
  for (const r of sent.rows) dates.set(r.acno, (dates.get(r.acno) ?? new Set()).add(r.ymd));
  for (const acno of [SETTLE, CORP, SETTLE2, CORP2, ...LOANS]) {
    const bank = w.bankMovement(acno, dates.get(acno) ?? new Set());
    const ledger = BigInt(s.journal[acno] ?? '0');
    if (bank === ledger) continue;
    const touches = (tid: number | null) => tid !== null && (tById.get(tid)?.from === acno || tById.get(tid)?.to === acno);
    // A cancellation's paying side: the cancelled break names the settlement account's line (and the transfer it was paired with).
    const diff = bank > ledger ? bank - ledger : ledger - bank;
    // Cancellations paired with nothing (no reference) name only the settlement account's line: some of
    // them, together, explain another account's difference (each cancelled movement is on both sides).
    let sums = new Set<bigint>([0n]);
    for (const b of s.breaks) if (b.problem === 'cancelled') sums = new Set([...sums, ...[...sums].map((x) => x + BigInt(b.amount))]);
    const explained = s.breaks.some((b) => b.account === acno || touches(b.tid)) || (diff > 0n && sums.has(diff));
    if (!explained) return { invariant: 'balances', detail: `account ${acno}: the bank moved ${bank} KRW, the ledger (with suspense) ${ledger} KRW, and no break says why` };
  }
  void history;
  return undefined;
}

// -----------------------------------------------------------------------------
// Shrinking

/**
 * Shrinks a failing schedule: removes chunks of steps (halves, then quarters,
 * down to single steps) while the replay still breaks the same invariant.
 */
export async function shrink(db: pg.Client, seed: number, failing: RunResult, opts: { budget?: number } = {}): Promise<RunResult> {
  const want = failing.violation!.invariant;
  let best = failing;
  let steps = [...failing.schedule];
  let budget = opts.budget ?? 400;
  const fails = async (cand: string[]): Promise<RunResult | undefined> => {
    budget--;
    const r = await runSeed(db, seed, { steps: 0, kinds: failing.kinds }, cand);
    return r.violation?.invariant === want ? r : undefined;
  };
  for (let size = Math.max(1, Math.floor(steps.length / 2)); size >= 1 && budget > 0; ) {
    let progressed = false;
    for (let i = 0; i < steps.length && budget > 0; ) {
      const cand = [...steps.slice(0, i), ...steps.slice(i + size)];
      const r = await fails(cand);
      if (r) {
        steps = r.schedule.length < cand.length ? [...r.schedule] : cand;
        best = r;
        progressed = true;
      } else i += size;
    }
    if (!progressed) size = Math.floor(size / 2);
  }
  return best;
}

export function formatSetup(seed: number, kinds: 1 | 2 = 1): string {
  const s = setupOf(seed, kinds);
  return `days ${D1} and ${D2} (kind ${s.kinds.join(', ')}); clock starts ${new Date(s.startMs + 9 * HOUR).toISOString().slice(0, 19).replace('T', ' ')} KST; ` +
    `reconcile_after ${s.reconcileAfter}; accruals ${s.accruals.map((a) => `${a.date} loan${a.loan}${ks(a.kind)} ${a.amount}`).join(', ')}`;
}

export function formatRun(r: RunResult, title: string): string {
  const lines = [title, `  setup: ${formatSetup(r.seed, r.kinds)}`];
  r.steps.forEach((s, i) => lines.push(`  ${String(i + 1).padStart(3)}. ${s.step}${s.note ? `  -> ${s.note}` : ''}`));
  if (r.violation) lines.push(`  VIOLATED ${r.violation.invariant} (${r.violation.during}): ${r.violation.detail}`);
  return lines.join('\n');
}
