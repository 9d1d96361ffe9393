/**
 * The explorer's world: one scratch database (the product's own SQL, its
 * clock moved through settlement_meta.now()) and the bank simulator's own
 * ledger and API handling (src/bank-sim: SimLedger, processApi) called
 * in-process, behind a network the scheduler controls: every request a
 * worker attempt makes waits until the scheduler lets the bank process it,
 * answers it, loses it or drops it.
 *
 * Nothing here decides a money question: claims and outcomes go through
 * settlement.claim_transfers / settlement.finish_transfers (the desk's own
 * encoder, src/db/transfers.ts), transfers through the product's bank client
 * (src/bank: transfer.ts' exactly-once state machine), statements through the
 * product's reader and settlement.record_statement.
 */
import pg from 'pg';
import { createNhBankClient, type NhBankClient } from '../../src/bank/client.js';
import type { PostOutcome } from '../../src/bank/http-post.js';
import { DEFAULT_RETRY_POLICY } from '../../src/bank/wire.js';
import type { CodeBook, CodeClass, TransferResult } from '../../src/bank/port.js';
import { processApi, type SimApiContext } from '../../src/bank-sim/sim-api.js';
import { SIM_CODES } from '../../src/bank-sim/sim-codes.js';
import { SimLedger, type SimAccount } from '../../src/bank-sim/sim-ledger.js';
import { newStats } from '../../src/bank-sim/sim-stats.js';
import { decodeClaimBatch, decodeFinishes, finishValues, CLAIM_TRANSFERS, FINISH_TRANSFERS } from '../../src/db/transfers.js';
import type { Claim, TransferOutcome } from '../../src/domain.js';
import { defaultApiSvcCodes, kstYmd, type ApiNm } from '../../src/nh/contract.js';
import { orderOf, outcomeOf } from '../../src/jobs/order.js';

export const ISCD = '000123';
export const TOKEN = 'explore-token';
export const KIND = 'tax';
export const APSNO = '001';
export const SETTLE = '3020000000100';
export const CORP = '3020000000200';
/** A second kind (`--kinds 2`): its own settlement and corporate accounts, the same loan accounts. */
export const KIND2 = 'platform_fee';
export const APSNO2 = '002';
export const SETTLE2 = '3020000000101';
export const CORP2 = '3020000000201';
export const LOANS = ['3010000000001', '3010000000002'] as const;
/** An account of another customer at NH: where money nobody sent comes from. */
export const STRANGER = '3990000000999';
export const LOAN_FUNDS = 10_000_000n;
export const PER_CALL_LIMIT = 100_000n;
/** The desk's default lease (TRANSFER_LEASE_MS). */
export const LEASE_MS = 310_000;
/** The bank client's per-call timeout: a call unanswered this long (business time) is lost to the worker. */
export const CALL_TIMEOUT_MS = 10_000;
/** A request still travelling this long after it was sent never reaches the bank. */
export const REQUEST_HORIZON_MS = 60_000;

/** The explorer's business clock: the database's (settlement_meta.now()) and the bank's. */
export class Clock {
  constructor(public ms: number) {}
  date(): Date {
    return new Date(this.ms);
  }
  iso(): string {
    return new Date(this.ms).toISOString();
  }
  ymd(): string {
    return kstYmd(this.date());
  }
}

/** One request on the explorer's network. */
export interface Call {
  id: string;
  attempt: Attempt;
  api: ApiNm;
  body: Record<string, unknown>;
  isTuno: string;
  tsymd: string;
  sentAt: number;
  /** At the bank: still travelling, processed (reply held), or never arriving. */
  bank: 'travelling' | 'processed' | 'gone';
  reply?: { status: number; body: Record<string, unknown> };
  answered: boolean;
  resolve: (o: PostOutcome) => void;
}

/** A call waiting for a bank-call slot (the desk's gate) before it is built and sent. */
export interface SlotWait {
  id: string;
  attempt: Attempt;
  since: number;
  done: boolean;
  grant: () => void;
  fail: () => void;
}

/** How long a call waits for a slot before the desk gives up on it (BankSlotTimeoutError: not sent). */
export const SLOT_WAIT_MS = 120_000;

/** One worker attempt at one transfer: a claim, the product's bank client under it, then a finish. */
export interface Attempt {
  id: string;
  tid: number;
  holder: string;
  claim: Claim;
  calls: Call[];
  slots: SlotWait[];
  dead: boolean;
  done: boolean;
  finished: boolean;
  result?: TransferResult;
  error?: Error;
  client: NhBankClient;
  wake?: () => void;
}

const MONEY_APIS = new Set<ApiNm>(['DrawingTransfer', 'ReceivedTransferAccountNumber', 'ReceivedTransferOtherBank']);

export function simCodeRows(): { rpcd: string; api: string; class: CodeClass; meaning: string }[] {
  return SIM_CODES.filter((c) => c.class !== null).flatMap((c) =>
    (c.apis.length ? c.apis : ['*']).map((api) => ({ rpcd: c.rpcd, api, class: c.class as CodeClass, meaning: c.meaning })));
}

/**
 * Once per scratch database, as its owner: settlement_meta.now() is replaced
 * by one that reads the explorer's clock row, so moving the clock is an
 * UPDATE (replacing the function at every step would invalidate every cached
 * plan of the logic). No application role can do this (test/clock-guard.test.ts);
 * a real database keeps pg_catalog.now().
 */
export async function installClock(db: pg.Client): Promise<void> {
  // A scratch database: a commit need not wait for its WAL flush.
  await db.query(`set synchronous_commit = off`);
  await db.query(`
    create table if not exists settlement_meta.explore_clock (at timestamptz not null);
    insert into settlement_meta.explore_clock select now() where not exists (select 1 from settlement_meta.explore_clock);
    create or replace function settlement_meta.now() returns timestamptz language sql stable parallel safe as $$ select at from settlement_meta.explore_clock $$;`);
}

/**
 * Every query text the explorer sends runs as a prepared statement of its
 * connection (one name per text): the invariants' queries are planned once,
 * not at every step (planning was most of their time). A text of several
 * statements cannot be prepared and is sent as it is.
 */
const statementNames = new Map<string, string>();
function statementName(text: string): string | undefined {
  if (/;\s*\S/.test(text)) return undefined;
  let name = statementNames.get(text);
  if (name === undefined) {
    name = `explore_${statementNames.size + 1}`;
    statementNames.set(text, name);
  }
  return name;
}

/** EXPLORE_PROFILE=1: time per query text (printed by main). */
export const PROFILE: Map<string, { n: number; ms: number }> | undefined = process.env['EXPLORE_PROFILE'] ? new Map() : undefined;

export class World {
  readonly clock: Clock;
  ledger = new SimLedger();
  sim: SimApiContext;
  codeBook: CodeBook;
  calls: Call[] = [];
  slotWaits: SlotWait[] = [];
  attempts = new Map<string, Attempt>();
  /** Every number a claim handed out, and its transfer. */
  numbers = new Map<string, number>();
  private initial = new Map<string, bigint>();

  constructor(readonly db: pg.Client, startMs: number) {
    this.clock = new Clock(startMs);
    this.sim = this.newSim();
    const byKey = new Map(simCodeRows().map((r) => [`${r.api} ${r.rpcd}`, r.class]));
    this.codeBook = (api, rpcd) => byKey.get(`${api} ${rpcd}`) ?? byKey.get(`* ${rpcd}`);
  }

  private newSim(): SimApiContext {
    return {
      ledger: this.ledger, stats: newStats(), perCallLimit: PER_CALL_LIMIT, accessToken: TOKEN, iscd: ISCD,
      svcCodes: defaultApiSvcCodes(), now: () => this.clock.date(),
    };
  }

  async q<R extends pg.QueryResultRow = any>(text: string, params: unknown[] = []): Promise<pg.QueryResult<R>> {
    const query = { name: statementName(text), text, values: params };
    if (!PROFILE) return this.db.query<R>(query);
    const t0 = performance.now();
    try {
      return await this.db.query<R>(query);
    } finally {
      const k = text.replace(/\s+/g, ' ').slice(0, 70);
      const p = PROFILE.get(k) ?? { n: 0, ms: 0 };
      p.n++;
      p.ms += performance.now() - t0;
      PROFILE.set(k, p);
    }
  }

  /** Moves the database's clock (see installClock). */
  async setClock(ms: number): Promise<void> {
    this.clock.ms = ms;
    await this.q(`update settlement_meta.explore_clock set at = $1`, [this.clock.iso()]);
  }

  /** The bank's accounts and our books' reference data, as a real institution has them. */
  async setup(opts: { reconcileAfter: string; kinds: readonly string[] }): Promise<void> {
    const now = this.clock.date();
    const open = (bncd: string, acno: string, balance: bigint): SimAccount => {
      const a = this.ledger.setAccount(bncd, acno, balance, now);
      this.initial.set(acno, balance);
      return a;
    };
    open('011', SETTLE, 0n);
    open('011', CORP, 0n);
    open('011', STRANGER, 1_000_000_000n);
    const fins: string[] = [];
    for (const l of LOANS) fins.push(this.ledger.issueFinAcno(open('011', l, LOAN_FUNDS), now, true));
    this.ledger.setContract(ISCD, APSNO, '011', SETTLE);
    await this.q(`insert into settlement.accounts (account_no, role, bank_code) values ($1, 'settlement', '011'), ($2, 'corporate', '011')`, [SETTLE, CORP]);
    for (let i = 0; i < LOANS.length; i++) {
      await this.q(`insert into settlement.accounts (account_no, role, bank_code, fin_acno, fin_registered_on) values ($1, 'loan', '011', $2, $3)`,
        [LOANS[i], fins[i], this.clock.ymd()]);
    }
    await this.q(`insert into settlement.contracts (fintech_apsno, settlement_account) values ($1, $2)`, [APSNO, SETTLE]);
    await this.q(`insert into settlement.kind_accounts (kind, settlement_account, corporate_account, fintech_apsno) values ($1, $2, $3, $4)`,
      [KIND, SETTLE, CORP, APSNO]);
    if (opts.kinds.includes(KIND2)) {
      open('011', SETTLE2, 0n);
      open('011', CORP2, 0n);
      this.ledger.setContract(ISCD, APSNO2, '011', SETTLE2);
      await this.q(`insert into settlement.accounts (account_no, role, bank_code) values ($1, 'settlement', '011'), ($2, 'corporate', '011')`, [SETTLE2, CORP2]);
      await this.q(`insert into settlement.contracts (fintech_apsno, settlement_account) values ($1, $2)`, [APSNO2, SETTLE2]);
      await this.q(`insert into settlement.kind_accounts (kind, settlement_account, corporate_account, fintech_apsno) values ($1, $2, $3, $4)`,
        [KIND2, SETTLE2, CORP2, APSNO2]);
    }
    const codes = simCodeRows();
    await this.q(`insert into settlement.bank_codes (rpcd, api, class, note) select * from unnest($1::text[], $2::text[], $3::text[], $4::text[])`,
      [codes.map((c) => c.rpcd), codes.map((c) => c.api), codes.map((c) => c.class), codes.map((c) => c.meaning)]);
    await this.q(`update settlement.config set time_zone = 'Asia/Seoul', per_call_limit = $1, max_in_flight = 50, reconcile_after = $2::interval, configured = true`,
      [PER_CALL_LIMIT.toString(), opts.reconcileAfter]);
  }

  /** What moved on `acno` at the bank on `dates`, without the bank's own adjustments (opening, balance set). */
  bankMovement(acno: string, dates: ReadonlySet<string>): bigint {
    const a = this.ledger.account('011', acno);
    if (!a) return 0n;
    let sum = 0n;
    for (const l of a.lines) {
      if (l.smr === '신규' || l.smr === '잔액조정' || !dates.has(l.trdd)) continue;
      sum += l.dsnc === '1' || l.dsnc === '2' ? l.tram : -l.tram;
    }
    return sum;
  }

  // ---------------------------------------------------------------------------
  // The network

  private transportFor(a: Attempt) {
    return (url: URL, payload: string): Promise<PostOutcome> =>
      new Promise<PostOutcome>((resolve) => {
        const api = url.pathname.replace(/^.*\//, '').replace(/\.nh$/, '') as ApiNm;
        const body = JSON.parse(payload) as Record<string, unknown>;
        const h = body['Header'] as Record<string, string>;
        const c: Call = {
          id: `${a.id}.${a.calls.length + 1}`, attempt: a, api, body, isTuno: h['IsTuno']!, tsymd: h['Tsymd']!,
          sentAt: this.clock.ms, bank: 'travelling', answered: false, resolve,
        };
        a.calls.push(c);
        this.calls.push(c);
        a.wake?.();
      });
  }

  /** A bank client whose every call the bank answers at once (the reconcile task's reads). */
  readerClient(): NhBankClient {
    return createNhBankClient({
      baseUrl: 'http://bank.explore.invalid', iscd: ISCD, fintechApsno: APSNO, accessToken: TOKEN, perCallLimit: PER_CALL_LIMIT,
      timeoutMs: CALL_TIMEOUT_MS, codeBook: this.codeBook, now: () => this.clock.date(), retries: 0, minBackoffMs: 0, maxBackoffMs: 0,
      maxRetryTimeMs: 1e12,
      post: async (url, payload) => {
        const api = url.pathname.replace(/^.*\//, '').replace(/\.nh$/, '') as ApiNm;
        const r = processApi(this.sim, api, JSON.parse(payload));
        return { kind: 'response', status: r.status, body: JSON.stringify(r.body) };
      },
    });
  }

  /** Resolves once the attempt waits for an unanswered call, or is done. */
  async settle(a: Attempt): Promise<void> {
    for (;;) {
      if (a.done || a.calls.some((c) => !c.answered) || a.slots.some((w) => !w.done)) return;
      await new Promise<void>((r) => (a.wake = r));
      a.wake = undefined;
    }
  }

  /** A worker claims transfer `tid` (a batch of one, as the desk sends it) and, if told to send, starts the product's transfer(). */
  async start(id: string, tid: number): Promise<string> {
    const r = await this.q(CLAIM_TRANSFERS, [[tid], [`w-${id}`], LEASE_MS, 0, [], 0]);
    const b = decodeClaimBatch(r.rows[0].r, [tid]);
    const claim = b.claims[0]!;
    if (claim instanceof Error) return `claim error: ${claim.message}`;
    if (claim.action !== 'send') return claim.action;
    this.numbers.set(claim.is_tuno, tid);
    const a: Attempt = { id, tid, holder: `w-${id}`, claim, calls: [], slots: [], dead: false, done: false, finished: false } as unknown as Attempt;
    // The desk's gate: every call waits for a bank-call slot, which the scheduler grants (or the wait times out).
    const gate = {
      run: <T>(fn: () => Promise<T>): Promise<T> =>
        new Promise<T>((resolve, reject) => {
          const w: SlotWait = {
            id: `${a.id}.s${a.slots.length + 1}`, attempt: a, since: this.clock.ms, done: false,
            grant: () => {
              w.done = true;
              fn().then(resolve, reject);
            },
            fail: () => {
              w.done = true;
              reject(new Error(`no bank-call slot within ${SLOT_WAIT_MS} ms`));
            },
          };
          a.slots.push(w);
          this.slotWaits.push(w);
          a.wake?.();
        }),
    };
    a.client = createNhBankClient({
      baseUrl: 'http://bank.explore.invalid', iscd: ISCD, fintechApsno: APSNO, accessToken: TOKEN, perCallLimit: PER_CALL_LIMIT,
      // The product's defaults (6 retries of a transient failure, 3 rounds); backoff sleeps and the
      // retry-time budget are wall-clock in p-retry, so they are 0 / unbounded here: every retry is a
      // step the scheduler chooses (and each unanswered one times out after CALL_TIMEOUT_MS business time).
      timeoutMs: CALL_TIMEOUT_MS, codeBook: this.codeBook, now: () => this.clock.date(), retries: DEFAULT_RETRY_POLICY.retries, minBackoffMs: 0, maxBackoffMs: 0,
      maxRetryTimeMs: 1e12, maxRounds: 3, post: this.transportFor(a),
    });
    this.attempts.set(id, a);
    void Promise.resolve()
      .then(() => a.client.transfer(orderOf(claim), gate))
      .then((res) => (a.result = res), (e: Error) => (a.error = e))
      .finally(() => {
        a.done = true;
        a.wake?.();
      });
    await this.settle(a);
    return `send ${claim.is_tuno} tsymd ${claim.tsymd}${claim.resume ? ' resume' : ''}${claim.sendable ? '' : ' ask-only'}`;
  }

  /** The bank processes a travelling request now (books it, or refuses it). */
  bankProcesses(c: Call): string {
    const r = processApi(this.sim, c.api, c.body);
    c.bank = 'processed';
    c.reply = r;
    const h = r.body['Header'] as Record<string, string>;
    const extra = r.body['Pcrs'] ? ` Pcrs ${String(r.body['Pcrs'])}` : '';
    const what = MONEY_APIS.has(c.api) ? `${c.isTuno} (Tsymd ${c.tsymd})` : `about ${String(c.body['OrtrIsTuno'] ?? '')}`;
    return `${c.api} ${what}: ${h['Rpcd']}${extra}`;
  }

  private async answer(c: Call, o: PostOutcome): Promise<void> {
    c.answered = true;
    c.resolve(o);
    if (!c.attempt.dead) await this.settle(c.attempt);
  }

  /** The attempt gets its bank-call slot: its call is built (Trtm now) and sent. */
  async slot(w: SlotWait): Promise<void> {
    w.grant();
    if (!w.attempt.dead) await this.settle(w.attempt);
  }

  async reply(c: Call): Promise<void> {
    await this.answer(c, { kind: 'response', status: c.reply!.status, body: JSON.stringify(c.reply!.body) });
  }

  async garble(c: Call): Promise<void> {
    await this.answer(c, { kind: 'response', status: 200, body: '{"Header": {"Rpcd": ' });
  }

  async lose(c: Call): Promise<void> {
    await this.answer(c, { kind: 'lost', reason: `timeout after ${CALL_TIMEOUT_MS} ms` });
  }

  async drop(c: Call): Promise<void> {
    c.bank = 'gone';
    await this.answer(c, { kind: 'not_sent', reason: 'ECONNREFUSED' });
  }

  /** The worker records what the bank told it (a batch of one, through the desk's encoder). */
  async finish(a: Attempt): Promise<string> {
    a.finished = true;
    const o: TransferOutcome = a.result ? outcomeOf(a.result) : { outcome: 'unresolved', reason: a.error?.message ?? 'no result' };
    // As the desk does: the attempt records its outcome with its own claim's fencing token.
    const item = { id: a.tid, isTuno: a.claim.is_tuno, o, token: a.claim.claim_token };
    const r = await this.q(FINISH_TRANSFERS, finishValues([item], []));
    const res = decodeFinishes(r.rows[0].r, [item])[0]!;
    const what = o.outcome === 'succeeded' ? `succeeded ${o.processedAt}` : o.outcome === 'failed' ? `failed ${o.code}` : `unresolved (${o.reason.slice(0, 60)})`;
    return `${what} -> ${res instanceof Error ? res.message : res}`;
  }

  /**
   * Moves the clock to `to`, in order of what falls due on the way: a call
   * unanswered for the client's timeout is lost to its worker at that moment
   * (which then makes its next call, itself timing out 10 s later, and so on:
   * an attempt left alone ends within its rounds, as a real one does); a
   * request still travelling after REQUEST_HORIZON_MS never arrives.
   */
  async advance(to: number): Promise<string[]> {
    const notes: string[] = [];
    for (;;) {
      let next: { due: number; c?: Call; w?: SlotWait } | undefined;
      for (const c of this.calls) {
        if (c.answered || c.attempt.dead) continue;
        if (!next || c.sentAt + CALL_TIMEOUT_MS < next.due) next = { due: c.sentAt + CALL_TIMEOUT_MS, c };
      }
      for (const w of this.slotWaits) {
        if (w.done || w.attempt.dead) continue;
        if (!next || w.since + SLOT_WAIT_MS < next.due) next = { due: w.since + SLOT_WAIT_MS, w };
      }
      if (!next || next.due > to) break;
      await this.setClock(Math.max(this.clock.ms, next.due));
      this.expire();
      if (next.c) {
        notes.push(`${next.c.id} timed out`);
        await this.lose(next.c);
      } else {
        notes.push(`${next.w!.id} got no slot`);
        next.w!.fail();
        await this.settle(next.w!.attempt);
      }
    }
    await this.setClock(to);
    this.expire();
    return notes;
  }

  private expire(): void {
    for (const c of this.calls) {
      if (c.bank === 'travelling' && this.clock.ms - c.sentAt > REQUEST_HORIZON_MS) c.bank = 'gone';
    }
  }

  closeClients(): void {
    for (const a of this.attempts.values()) a.client.close();
  }
}
