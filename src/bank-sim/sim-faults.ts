/**
 * Seeded fault and latency planning. Every NH API request takes exactly ONE number
 * from the simulator's main stream, in arrival order, and derives all of its own
 * randomness (fault, drop phase, malformed kind, jitter) from a sub-stream seeded
 * by it. So the faults depend only on the seed and the order of arrivals, not on
 * which options are on, and a run is reproduced by its seed.
 *
 * Fault semantics (processing = the bank's decision: booking, or recording a
 * refusal after processing such as insufficient funds):
 *   failBefore   answer S0090 after the latency; nothing processed
 *   timeoutAfter process, then hold the socket unanswered for timeoutHoldMs
 *   dropBefore   destroy the socket after the latency; nothing processed
 *   dropAfter    process, then destroy the socket without answering
 *   slow         wait slowMs more, then process and answer normally
 *   malformed    process, then answer a non-JSON body or JSON without Header
 * Without a fault, processing happens after the latency, just before answering.
 */
import { mulberry32, type Rng } from './sim-rng.js';
import type { SimRuntimeConfig } from './sim-options.js';

export type Fault = 'none' | 'failBefore' | 'timeoutAfter' | 'dropBefore' | 'dropAfter' | 'slow' | 'malformed';

export interface FaultPlan {
  fault: Fault;
  /** Only meaningful for 'malformed'. */
  malformedKind: 'not_json' | 'no_header';
  /** Wait before processing and answering: latency ± jitter (+ slowMs when slow). */
  delayMs: number;
}

export function planRequest(main: Rng, cfg: SimRuntimeConfig, faultable: boolean): FaultPlan {
  const sub = mulberry32(Math.floor(main() * 4294967296));
  // Always draw the same four numbers, so the stream stays aligned whatever the config.
  const uFault = sub();
  const uPhase = sub();
  const uKind = sub();
  const uJitter = sub();

  let fault: Fault = 'none';
  if (faultable) {
    let edge = cfg.failBeforeRate;
    if (uFault < edge) fault = 'failBefore';
    else if (uFault < (edge += cfg.timeoutAfterRate)) fault = 'timeoutAfter';
    else if (uFault < (edge += cfg.dropRate)) fault = uPhase < 0.5 ? 'dropBefore' : 'dropAfter';
    else if (uFault < (edge += cfg.slowRate)) fault = 'slow';
    else if (uFault < (edge += cfg.malformedRate)) fault = 'malformed';
  }
  const jitter = cfg.jitterMs === 0 ? 0 : Math.round((uJitter * 2 - 1) * cfg.jitterMs);
  let delayMs = Math.max(0, cfg.latencyMs + jitter);
  if (fault === 'slow') delayMs += cfg.slowMs ?? 5 * cfg.latencyMs + 200;
  return { fault, malformedKind: uKind < 0.5 ? 'not_json' : 'no_header', delayMs };
}
