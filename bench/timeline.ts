import type { SimHooks } from '../src/bank-sim/simulator.js';
import { MONEY_APIS } from '../src/bank-sim/sim-api.js';

/**
 * P1's wall, taken apart from the bank's side. The simulator runs in the
 * benchmark's process and reports every call it ended (SimHooks.onCall); for
 * one timed day, with the cap M binding all the time, the wall is exactly
 *
 *   first call + N·L/M + (Σ lateness)/M + (idle slot time)/M + after the last answer
 *
 * where a call's lateness is how much longer than L the simulator took, and
 * idle slot time is the time between the first call and the last answer that
 * some of the M slots stood without a call (M × span − Σ call times).
 */
export interface Timeline {
  calls: number;
  /** From run_stage('pay') to the first money call reaching the bank. */
  firstCallMs: number;
  /** N·L/M: the wall the calls themselves need at the cap. */
  callsMs: number;
  /** Σ(call time − L)/M: what the simulator's own processing added. */
  bankLateMs: number;
  /** Idle slot time / M: what the cap standing unused added. */
  idleMs: number;
  /** The mean time from an answer to the next call taking its place (the M-th next arrival), over the calls after the first M. */
  handoverMeanMs: number;
  /** From the last answer to confirm seen done (the finish, the confirm job, the benchmark's 10 ms poll). */
  afterLastMs: number;
}

export interface TimelineRecorder {
  hooks: SimHooks;
  /** Starts a day's record now (call right before run_stage('pay')). */
  arm(): void;
  /** The day's timeline, given its wall (ms from arming), N, L and M; undefined when no money call was seen. */
  take(wallMs: number, n: number, latencyMs: number, maxInFlight: number): Timeline | undefined;
}

export function timelineRecorder(): TimelineRecorder {
  let t0 = 0;
  let armed = false;
  let calls: Array<[number, number]> = [];
  return {
    hooks: {
      onCall: (c) => {
        if (armed && c.admitted && MONEY_APIS.includes(c.api)) calls.push([c.arrivedAt - t0, c.endedAt - t0]);
      },
    },
    arm() {
      calls = [];
      t0 = performance.now();
      armed = true;
    },
    take(wallMs, n, latencyMs, maxInFlight) {
      armed = false;
      const got = calls;
      calls = [];
      if (got.length === 0) return undefined;
      const arrivals = got.map((c) => c[0]).sort((a, b) => a - b);
      const ends = got.map((c) => c[1]).sort((a, b) => a - b);
      const first = arrivals[0]!;
      const last = ends[ends.length - 1]!;
      const busy = got.reduce((a, c) => a + (c[1] - c[0]), 0);
      let handover = 0;
      for (let i = maxInFlight; i < arrivals.length; i++) handover += arrivals[i]! - ends[i - maxInFlight]!;
      return {
        calls: got.length,
        firstCallMs: first,
        callsMs: (n * latencyMs) / maxInFlight,
        bankLateMs: (busy - got.length * latencyMs) / maxInFlight,
        idleMs: (maxInFlight * (last - first) - busy) / maxInFlight,
        handoverMeanMs: arrivals.length > maxInFlight ? handover / (arrivals.length - maxInFlight) : 0,
        afterLastMs: wallMs - last,
      };
    },
  };
}
