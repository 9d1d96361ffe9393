/**
 * Options of the bank simulator, validated with zod. Names are the camelCase of
 * the binding `settle bank-sim` flags (`--latency-ms` → `latencyMs`). Numbers and
 * booleans are coerced, so CLI strings can be passed as they are.
 */
import { z } from 'zod';
import { APIS, defaultApiSvcCodes, type ApiSvcCodes } from '../nh/contract.js';

const rate = z.coerce.number().min(0).max(1).default(0);
const ms = z.coerce.number().int().min(0);
const flag = z
  .union([z.boolean(), z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1')])
  .default(false);

/** Settings that may also be changed while running (`POST /_sim/config`). */
const runtimeShape = {
  latencyMs: ms.default(0),
  /** Each call waits latencyMs ± a uniform (seeded) jitter of up to jitterMs. */
  jitterMs: ms.default(0),
  /** Admitted requests in flight; an arrival beyond it is answered S0001 at once. */
  maxInFlight: z.coerce.number().int().min(1).default(1000),
  /** Answer S0090 without processing. */
  failBeforeRate: rate,
  /** Process (book), then hold the socket without answering for timeoutHoldMs. */
  timeoutAfterRate: rate,
  /** Destroy the socket without answering; the seeded RNG picks before or after processing, half each. */
  dropRate: rate,
  /** Answer correctly after an extra delay of slowMs (default 5 × latencyMs + 200). */
  slowRate: rate,
  /** Process (book), then answer a body that is not JSON or has no Header (half each). */
  malformedRate: rate,
  /** Apply the fault rates to result checks, reads and registration too, not only to the money-moving APIs. */
  faultsOnInquiry: flag,
  slowMs: ms.optional(),
  timeoutHoldMs: ms.default(30_000),
};

const amount = z
  .union([z.bigint(), z.number().int(), z.string().regex(/^[0-9]+$/, 'must be a decimal integer')])
  .transform((v) => BigInt(v))
  .refine((v) => v > 0n, 'must be > 0');

const FAULT_RATES = ['failBeforeRate', 'timeoutAfterRate', 'dropRate', 'slowRate', 'malformedRate'] as const;

function ratesAtMostOne(v: Partial<Record<(typeof FAULT_RATES)[number], number>>, ctx: z.RefinementCtx): void {
  const sum = FAULT_RATES.reduce((s, k) => s + (v[k] ?? 0), 0);
  if (sum > 1 + 1e-9) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: `fault rates add up to ${sum}, more than 1` });
  }
}

export const simOptionsSchema = z
  .object({
    /** 0 = a random free port. */
    port: z.coerce.number().int().min(0).max(65535).default(0),
    host: z.string().min(1).default('127.0.0.1'),
    perCallLimit: amount.default(100_000n),
    /** When set, requests with another AccessToken get S0002 (unset: any token is accepted, but one is required). */
    accessToken: z.string().min(1).optional(),
    /** When set, requests with another Iscd get S0002. */
    iscd: z.string().regex(/^[0-9]{1,6}$/).optional(),
    /** ApiSvcCd accepted per API (the others keep contract.ts' defaults); any other value is a layout violation. */
    apiSvcCodes: z.record(z.enum(APIS), z.string().regex(/^[0-9A-Za-z_]{1,20}$/)).optional().transform((v): ApiSvcCodes => ({ ...defaultApiSvcCodes(), ...v })),
    /** When set, every /_sim/ call needs `authorization: Bearer <adminToken>`. */
    adminToken: z.string().min(1).optional(),
    /** Keep every API request received (AccessToken masked) for `GET /_sim/requests`. */
    recordRequests: flag,
    /** Same seed + same sequence of requests ⇒ same faults and jitter. */
    seed: z.coerce.number().int().default(1),
    ...runtimeShape,
  })
  .strict()
  .superRefine(ratesAtMostOne);

/** Body of `POST /_sim/config`: any subset of the runtime settings. */
export const simRuntimePatchSchema = z
  .object({
    latencyMs: ms,
    jitterMs: ms,
    maxInFlight: z.coerce.number().int().min(1),
    failBeforeRate: z.coerce.number().min(0).max(1),
    timeoutAfterRate: z.coerce.number().min(0).max(1),
    dropRate: z.coerce.number().min(0).max(1),
    slowRate: z.coerce.number().min(0).max(1),
    malformedRate: z.coerce.number().min(0).max(1),
    faultsOnInquiry: z.boolean(),
    slowMs: ms.nullable(),
    timeoutHoldMs: ms,
  })
  .partial()
  .strict();

export type SimOptionsInput = z.input<typeof simOptionsSchema>;
export type SimOptions = z.output<typeof simOptionsSchema>;
export type SimRuntimePatch = z.output<typeof simRuntimePatchSchema>;

/** The settings the request path reads; mutable through `POST /_sim/config`. */
export interface SimRuntimeConfig {
  latencyMs: number;
  jitterMs: number;
  maxInFlight: number;
  failBeforeRate: number;
  timeoutAfterRate: number;
  dropRate: number;
  slowRate: number;
  malformedRate: number;
  faultsOnInquiry: boolean;
  slowMs: number | null;
  timeoutHoldMs: number;
}

export function parseSimOptions(input: unknown): SimOptions {
  return simOptionsSchema.parse(input ?? {});
}

export function runtimeConfigOf(o: SimOptions): SimRuntimeConfig {
  return {
    latencyMs: o.latencyMs,
    jitterMs: o.jitterMs,
    maxInFlight: o.maxInFlight,
    failBeforeRate: o.failBeforeRate,
    timeoutAfterRate: o.timeoutAfterRate,
    dropRate: o.dropRate,
    slowRate: o.slowRate,
    malformedRate: o.malformedRate,
    faultsOnInquiry: o.faultsOnInquiry,
    slowMs: o.slowMs ?? null,
    timeoutHoldMs: o.timeoutHoldMs,
  };
}

/** Applies a patch, refusing one that would push the fault rates above 1 in total. */
export function patchRuntimeConfig(current: SimRuntimeConfig, patch: SimRuntimePatch): SimRuntimeConfig {
  const next: SimRuntimeConfig = { ...current };
  for (const [k, v] of Object.entries(patch)) {
    if (v !== undefined) (next as unknown as Record<string, unknown>)[k] = v;
  }
  const sum = FAULT_RATES.reduce((s, k) => s + next[k], 0);
  if (sum > 1 + 1e-9) throw new RangeError(`fault rates add up to ${sum}, more than 1`);
  return next;
}
