/** The simulator's counters, served as JSON by `GET /_sim/stats`. */
import { APIS } from '../nh/contract.js';

export interface SimStats {
  /** API requests received (admitted or not). */
  calls: number;
  callsByApi: Record<string, number>;
  /** Money movements booked. */
  booked: number;
  /** KRW, as a decimal string in JSON. */
  bookedAmount: bigint;
  /** Refusals by reason (the simulator code in brackets). */
  rejected: {
    busy: number; // S0001
    token: number; // S0002
    duplicate: number; // S0013
    failBefore: number; // S0090
    funds: number; // S0211
    account: number; // S0212
    contract: number; // S0213
    registration: number; // S0214
    limit: number; // S0220
    invalid: number; // S0230 and non-JSON bodies
    mismatch: number; // S0231
    notFound: number; // S0300
    bankCode: number; // S0310
  };
  faults: {
    failBefore: number;
    timeoutAfter: number;
    drop: number;
    dropBefore: number;
    dropAfter: number;
    slow: number;
    malformed: number;
  };
  /** Admitted requests now in flight. */
  inFlight: number;
  /** Highest `inFlight` seen: never above the configured cap. */
  maxInFlight: number;
  /** Requests now between arrival and end, admitted or not. */
  arrivals: number;
  /** Highest `arrivals` seen: shows whether CLIENTS kept to a global limit. */
  maxArrivals: number;
}

export type RejectReason = keyof SimStats['rejected'];

export function newStats(): SimStats {
  return {
    calls: 0,
    callsByApi: Object.fromEntries(APIS.map((a) => [a, 0])),
    booked: 0,
    bookedAmount: 0n,
    rejected: { busy: 0, token: 0, duplicate: 0, failBefore: 0, funds: 0, account: 0, contract: 0, registration: 0, limit: 0, invalid: 0, mismatch: 0, notFound: 0, bankCode: 0 },
    faults: { failBefore: 0, timeoutAfter: 0, drop: 0, dropBefore: 0, dropAfter: 0, slow: 0, malformed: 0 },
    inFlight: 0,
    maxInFlight: 0,
    arrivals: 0,
    maxArrivals: 0,
  };
}

/** Zeroes the counters in place; the live gauges stay, and the maxima restart from them. */
export function resetStats(s: SimStats): void {
  const fresh = newStats();
  fresh.inFlight = s.inFlight;
  fresh.arrivals = s.arrivals;
  fresh.maxInFlight = s.inFlight;
  fresh.maxArrivals = s.arrivals;
  Object.assign(s, fresh);
}

export function statsJson(s: SimStats): Record<string, unknown> {
  return { ...s, bookedAmount: s.bookedAmount.toString(), callsByApi: { ...s.callsByApi }, rejected: { ...s.rejected }, faults: { ...s.faults } };
}
