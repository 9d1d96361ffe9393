import { z } from 'zod';
import { intFlag, rateFlag } from './args.js';

/** The simulator's binding flags (SPEC 4.4), shared by `settle bank-sim` and `settle demo`. */
export const simFlagSpecs = {
  'latency-ms': { type: 'string' },
  'jitter-ms': { type: 'string' },
  'max-in-flight': { type: 'string' },
  'per-call-limit': { type: 'string' },
  'access-token': { type: 'string' },
  seed: { type: 'string' },
  'fail-before-rate': { type: 'string' },
  'timeout-after-rate': { type: 'string' },
  'drop-rate': { type: 'string' },
  'slow-rate': { type: 'string' },
  'malformed-rate': { type: 'string' },
} as const;

export const simFlagsShape = {
  latencyMs: intFlag(0, 600_000).optional(),
  jitterMs: intFlag(0, 600_000).optional(),
  maxInFlight: intFlag(1, 100_000).optional(),
  perCallLimit: z.string().regex(/^[1-9][0-9]{0,14}$/, 'must be a positive whole number of KRW').transform(BigInt).optional(),
  accessToken: z.string().min(1).optional(),
  seed: intFlag(0, 2_000_000_000).optional(),
  failBeforeRate: rateFlag.optional(),
  timeoutAfterRate: rateFlag.optional(),
  dropRate: rateFlag.optional(),
  slowRate: rateFlag.optional(),
  malformedRate: rateFlag.optional(),
};

/** Drops unset flags so the simulator's own defaults apply. */
export function definedOnly<T extends Record<string, unknown>>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
