/** Counters of the simulator, served as JSON by `GET /_sim/stats`. */
import { ALL_APIS } from '../bank/protocol.js';

export interface SimStats {
  calls: number;
  callsByApi: Record<string, number>;
  booked: number;
  /** KRW, as a decimal string in JSON. */
  bookedAmount: bigint;
  rejected: {
    busy: number;
    token: number;
    invalid: number;
    duplicate: number;
    limit: number;
    funds: number;
    account: number;
    failBefore: number;
    notFound: number;
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

export function newStats(): SimStats {
  return {
    calls: 0,
    callsByApi: Object.fromEntries(ALL_APIS.map((a) => [a, 0])),
    booked: 0,
    bookedAmount: 0n,
    rejected: { busy: 0, token: 0, invalid: 0, duplicate: 0, limit: 0, funds: 0, account: 0, failBefore: 0, notFound: 0 },
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
