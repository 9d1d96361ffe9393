import { isIP } from 'node:net';
import { z } from 'zod';
import { APIS, apiSvcEnvName, DEFAULT_API_SVC_CD, type ApiNm, type ApiSvcCodes } from './nh/contract.js';

/**
 * The one place that reads the environment. Every variable of SPEC 4.2 is
 * parsed here with zod; all problems are reported at once, and the rest of the
 * code receives typed values (money limits as bigint, durations in ms).
 */
const positiveIntFromEnv = (name: string, fallback: number, max = 1_000_000_000) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return fallback;
      if (!/^[0-9]+$/.test(v.trim())) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: `${name} must be a positive integer, got "${v}"` });
        return z.NEVER;
      }
      const n = Number(v.trim());
      if (n < 1 || n > max) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: `${name} must be between 1 and ${max}, got ${v}` });
        return z.NEVER;
      }
      return n;
    });

const moneyFromEnv = (name: string, fallback: bigint) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return fallback;
      if (!/^[0-9]{1,15}$/.test(v.trim()) || BigInt(v.trim()) <= 0n) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: `${name} must be a positive integer amount of KRW, got "${v}"` });
        return z.NEVER;
      }
      return BigInt(v.trim());
    });

const optionalUrl = (name: string, protocols: string[]) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v.trim() === '') return undefined;
      try {
        const u = new URL(v);
        if (!protocols.includes(u.protocol)) throw new Error('protocol');
        return v.trim().replace(/\/+$/, '');
      } catch {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: `${name} must be a ${protocols.join(' or ')} URL` });
        return z.NEVER;
      }
    });

const timeZone = z
  .string()
  .optional()
  .transform((v, ctx) => {
    const tz = v === undefined || v === '' ? 'Asia/Seoul' : v;
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: tz });
      return tz;
    } catch {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: `SETTLEMENT_TIMEZONE is not a known IANA time zone: "${tz}"` });
      return z.NEVER;
    }
  });

const digits = (name: string, fallback: string, len: number) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      const s = v === undefined || v === '' ? fallback : v.trim();
      if (!new RegExp(`^[0-9]{1,${len}}$`).test(s)) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: `${name} must be 1-${len} digits` });
        return z.NEVER;
      }
      return s;
    });

const svcCode = (api: ApiNm) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      const s = v === undefined || v.trim() === '' ? DEFAULT_API_SVC_CD[api].code : v.trim();
      if (!/^[0-9A-Za-z_]{1,20}$/.test(s)) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: `${apiSvcEnvName(api)} must be 1-20 letters, digits or _ (NH's ApiSvcCd), got "${v}"` });
        return z.NEVER;
      }
      return s;
    });

/** One setting per NH API's ApiSvcCd: BANK_SVC_DRAWING_TRANSFER, ... (defaults in src/nh/contract.ts). */
const svcShape = Object.fromEntries(APIS.map((api) => [apiSvcEnvName(api), svcCode(api)])) as Record<string, ReturnType<typeof svcCode>>;

/** Health and metrics listen here unless HTTP_PORT says otherwise. */
export const DEFAULT_HTTP_PORT = 9464;

export const envSchema = z.object({
  ...svcShape,
  BANK_BRDT_BRNO: digits('BANK_BRDT_BRNO', '1234567890', 10),
  DATABASE_URL: optionalUrl('DATABASE_URL', ['postgres:', 'postgresql:']),
  BANK_URL: optionalUrl('BANK_URL', ['http:', 'https:']),
  BANK_ISCD: digits('BANK_ISCD', '000001', 6),
  BANK_FINTECH_APSNO: digits('BANK_FINTECH_APSNO', '001', 3),
  BANK_ACCESS_TOKEN: z.string().optional().transform((v) => (v === undefined || v === '' ? 'local-dev-token' : v)),
  BANK_PER_CALL_LIMIT: moneyFromEnv('BANK_PER_CALL_LIMIT', 100_000n),
  BANK_MAX_IN_FLIGHT: positiveIntFromEnv('BANK_MAX_IN_FLIGHT', 50, 10_000),
  BANK_TIMEOUT_MS: positiveIntFromEnv('BANK_TIMEOUT_MS', 10_000, 600_000),
  // Unset: from the sizing rule (see workerConcurrency below).
  WORKER_CONCURRENCY: positiveIntFromEnv('WORKER_CONCURRENCY', 0, 1_000),
  WORKER_HEARTBEAT_MS: positiveIntFromEnv('WORKER_HEARTBEAT_MS', 5_000, 600_000),
  WORKER_DEAD_AFTER_MS: positiveIntFromEnv('WORKER_DEAD_AFTER_MS', 20_000, 3_600_000),
  WORKER_STOP_TIMEOUT_MS: positiveIntFromEnv('WORKER_STOP_TIMEOUT_MS', 25_000, 600_000),
  WORKER_POLL_INTERVAL_MS: positiveIntFromEnv('WORKER_POLL_INTERVAL_MS', 1_000, 600_000),
  SETTLEMENT_TIMEZONE: timeZone,
  LOG_LEVEL: z
    .string()
    .optional()
    .transform((v) => (v === undefined || v === '' ? 'info' : v.toLowerCase()))
    .pipe(z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
      errorMap: () => ({ message: 'LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent' }),
    })),
  BANK_SIMULATOR: z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return false;
      if (v === 'in-process') return true;
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: `BANK_SIMULATOR must be "in-process" or unset, got "${v}"` });
      return z.NEVER;
    }),
  HTTP_HOST: z
    .string()
    .optional()
    .transform((v, ctx) => {
      const h = v === undefined || v.trim() === '' ? '127.0.0.1' : v.trim();
      if (!/^[0-9A-Za-z.:_-]{1,253}$/.test(h)) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: `HTTP_HOST must be an address or host name to listen on (e.g. 0.0.0.0), got "${v}"` });
        return z.NEVER;
      }
      return h;
    }),
  ALERT_WEBHOOK_URL: optionalUrl('ALERT_WEBHOOK_URL', ['http:', 'https:']),
  CONSOLE_TOKEN: z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return undefined;
      if (!/^[\x21-\x7e]{16,200}$/.test(v)) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'CONSOLE_TOKEN must be 16-200 printable characters without spaces (the operator\'s sign-in to the console)' });
        return z.NEVER;
      }
      return v;
    }),
  CONSOLE_VIEWER_TOKEN: z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return undefined;
      if (!/^[\x21-\x7e]{16,200}$/.test(v)) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'CONSOLE_VIEWER_TOKEN must be 16-200 printable characters without spaces (it lets a person read the console)' });
        return z.NEVER;
      }
      return v;
    }),
  CONSOLE_USERS: z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v.trim() === '') return [];
      const users: ConsoleUser[] = [];
      for (const entry of v.split(',').map((x) => x.trim()).filter((x) => x !== '')) {
        const m = /^([a-z][a-z0-9_.-]{0,39}):(viewer|operator):([\x21-\x2b\x2d-\x7e]{16,200})$/.exec(entry);
        if (!m) {
          // Never echo the entry: it holds a secret.
          ctx.addIssue({ code: z.ZodIssueCode.custom, message: `CONSOLE_USERS entry ${users.length + 1} must be name:role:token (name: a-z, 0-9, _ . -, up to 40; role: viewer or operator; token: 16-200 printable characters, no space or comma)` });
          return z.NEVER;
        }
        users.push({ name: m[1]!, role: m[2] as ConsoleRole, token: m[3]! });
      }
      return users;
    }),
  CONSOLE_HOST: z
    .string()
    .optional()
    .transform((v, ctx) => {
      const h = v === undefined || v.trim() === '' ? '127.0.0.1' : v.trim().replace(/^\[(.*)\]$/, '$1');
      if (h !== 'localhost' && isIP(h) === 0) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: `CONSOLE_HOST must be an IP address the console answers on (127.0.0.1, 0.0.0.0, ::, 10.1.2.3, ...) or localhost, got "${v}"` });
        return z.NEVER;
      }
      return h === 'localhost' ? '127.0.0.1' : h;
    }),
  CONSOLE_HOSTNAMES: z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v.trim() === '') return [];
      const names = v.split(',').map((x) => x.trim().toLowerCase()).filter((x) => x !== '');
      for (const n of names) {
        if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(n) || n.length > 253) {
          ctx.addIssue({ code: z.ZodIssueCode.custom, message: `CONSOLE_HOSTNAMES must be host names separated by commas (exact names, no wildcard, no port), got "${n}"` });
          return z.NEVER;
        }
      }
      return names;
    }),
  METRICS_SNAPSHOT_MS: positiveIntFromEnv('METRICS_SNAPSHOT_MS', 5_000, 600_000),
  // Statement timeouts per use (each at least 1 s, at most 1 h; unset: 60 s, the desk and commands follow DATABASE_STATEMENT_TIMEOUT_MS).
  DATABASE_STATEMENT_TIMEOUT_MS: positiveIntFromEnv('DATABASE_STATEMENT_TIMEOUT_MS', 60_000, 3_600_000),
  DESK_STATEMENT_TIMEOUT_MS: positiveIntFromEnv('DESK_STATEMENT_TIMEOUT_MS', 0, 3_600_000),
  COMMAND_STATEMENT_TIMEOUT_MS: positiveIntFromEnv('COMMAND_STATEMENT_TIMEOUT_MS', 0, 3_600_000),
  CONSOLE_DATABASE_URL: optionalUrl('CONSOLE_DATABASE_URL', ['postgres:', 'postgresql:']),
  ALERT_TIMEOUT_MS: positiveIntFromEnv('ALERT_TIMEOUT_MS', 10_000, 600_000),
  HTTP_PORT: z
    .string()
    .optional()
    .transform((v, ctx) => {
      // 9464: the port commonly used by Prometheus exporters; 0 = any free port.
      if (v === undefined || v === '') return DEFAULT_HTTP_PORT;
      const n = Number(v);
      if (!/^[0-9]+$/.test(v) || n > 65535) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: `HTTP_PORT must be 0-65535, got "${v}"` });
        return z.NEVER;
      }
      return n;
    }),
});

export interface Config {
  databaseUrl: string | undefined;
  bank: {
    url: string | undefined;
    /** BANK_SIMULATOR=in-process: run the bank simulator inside the process even with a DATABASE_URL. */
    simulator: boolean;
    iscd: string;
    fintechApsno: string;
    accessToken: string;
    /** ApiSvcCd per NH API. */
    svcCodes: ApiSvcCodes;
    /** BrdtBrno sent when registering fin-accounts (the institution's business registration number). */
    brdtBrno: string;
    perCallLimit: bigint;
    maxInFlight: number;
    timeoutMs: number;
  };
  workerConcurrency: number;
  /** stopTimeoutMs: how long a stop waits for the jobs in hand before it releases what is left and exits. */
  worker: { heartbeatMs: number; deadAfterMs: number; pollIntervalMs: number; stopTimeoutMs: number };
  timeZone: string;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  httpPort: number;
  /** HTTP_HOST: the address /healthz, /readyz and /metrics listen on (default 127.0.0.1; 0.0.0.0 in a container). */
  httpHost: string;
  /** ALERT_WEBHOOK_URL (Slack-compatible: POST {"text": ...}); unset = alerts are recorded, not sent. */
  alerts: { webhookUrl: string | undefined; timeoutMs: number };
  /**
   * The web console (src/console): every page needs a sign-in. databaseUrl:
   * CONSOLE_DATABASE_URL, the login it reads (and acts) with; unset =
   * DATABASE_URL (embedded: a settlement_operator login).
   */
  console: {
    /** Who may sign in: CONSOLE_TOKEN (operator "operator"), CONSOLE_VIEWER_TOKEN (viewer "viewer"), CONSOLE_USERS. Empty: the console is off. */
    users: ConsoleUser[];
    databaseUrl: string | undefined;
    /** CONSOLE_HOST: the local address the console answers on (default 127.0.0.1: loopback connections only; 0.0.0.0 or :: = any, on purpose). */
    host: string;
    /** CONSOLE_HOSTNAMES: names a request's Host may carry besides localhost and the address it reached. */
    hostnames: string[];
  };
  /** METRICS_SNAPSHOT_MS: /metrics reads the database at most once per this period, however many scrape. */
  metricsSnapshotMs: number;
  /**
   * Statement timeouts (ms) per use: the worker's pool (stages, reconcile,
   * tasks: DATABASE_STATEMENT_TIMEOUT_MS), the bank desk's connection (claims
   * and outcomes: DESK_STATEMENT_TIMEOUT_MS) and one-shot commands
   * (COMMAND_STATEMENT_TIMEOUT_MS). The console (5 s) and /metrics (3 s) have their own.
   */
  statementTimeoutMs: { worker: number; desk: number; command: number };
}

export type ConsoleRole = 'viewer' | 'operator';
/** A person who may sign in to the console; `name` goes into the audit of their actions. */
export interface ConsoleUser {
  name: string;
  role: ConsoleRole;
  /** Secret: never logged or shown. */
  token: string;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
  readonly code = 'config_invalid';
  constructor(readonly problems: string[]) {
    super(`invalid configuration: ${problems.join('; ')}`);
  }
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => i.message));
  }
  const e = parsed.data;
  // Rules between settings, all reported together.
  const problems: string[] = [];
  if (e.WORKER_DEAD_AFTER_MS < 3 * e.WORKER_HEARTBEAT_MS) {
    problems.push(`WORKER_DEAD_AFTER_MS (${e.WORKER_DEAD_AFTER_MS}) must be at least three heartbeats (3 × WORKER_HEARTBEAT_MS = ${3 * e.WORKER_HEARTBEAT_MS}): a live worker would be declared dead`);
  }
  if (e.BANK_SIMULATOR && e.BANK_URL) problems.push('BANK_SIMULATOR=in-process and BANK_URL are both set: choose one bank');
  for (const [name, v] of [['DATABASE_STATEMENT_TIMEOUT_MS', e.DATABASE_STATEMENT_TIMEOUT_MS], ['DESK_STATEMENT_TIMEOUT_MS', e.DESK_STATEMENT_TIMEOUT_MS], ['COMMAND_STATEMENT_TIMEOUT_MS', e.COMMAND_STATEMENT_TIMEOUT_MS]] as const) {
    if (v !== 0 && v < 1000) problems.push(`${name} must be at least 1000 (ms), got ${v}`);
  }
  if (e.METRICS_SNAPSHOT_MS < 1000) problems.push(`METRICS_SNAPSHOT_MS must be at least 1000 (a database read for /metrics at most once a second), got ${e.METRICS_SNAPSHOT_MS}`);
  const users: ConsoleUser[] = [
    ...(e.CONSOLE_TOKEN ? [{ name: 'operator', role: 'operator' as const, token: e.CONSOLE_TOKEN }] : []),
    ...(e.CONSOLE_VIEWER_TOKEN ? [{ name: 'viewer', role: 'viewer' as const, token: e.CONSOLE_VIEWER_TOKEN }] : []),
    ...e.CONSOLE_USERS,
  ];
  if (new Set(users.map((u) => u.name)).size !== users.length) problems.push('console users must have distinct names (CONSOLE_TOKEN is "operator", CONSOLE_VIEWER_TOKEN is "viewer")');
  if (new Set(users.map((u) => u.token)).size !== users.length) problems.push('console users must have distinct tokens (a token names one person)');
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    databaseUrl: e.DATABASE_URL,
    bank: {
      url: e.BANK_URL,
      simulator: e.BANK_SIMULATOR,
      iscd: e.BANK_ISCD,
      fintechApsno: e.BANK_FINTECH_APSNO,
      accessToken: e.BANK_ACCESS_TOKEN,
      svcCodes: Object.fromEntries(APIS.map((api) => [api, (e as Record<string, unknown>)[apiSvcEnvName(api)] as string])) as Record<ApiNm, string>,
      brdtBrno: e.BANK_BRDT_BRNO,
      perCallLimit: e.BANK_PER_CALL_LIMIT,
      maxInFlight: e.BANK_MAX_IN_FLIGHT,
      timeoutMs: e.BANK_TIMEOUT_MS,
    },
    // The sizing rule: a process keeps about twice its share of the bank's
    // cap busy (a claimed transfer waits behind every call in flight); with
    // one process, its share is the whole cap.
    workerConcurrency: e.WORKER_CONCURRENCY || Math.min(1_000, 2 * e.BANK_MAX_IN_FLIGHT),
    worker: { heartbeatMs: e.WORKER_HEARTBEAT_MS, deadAfterMs: e.WORKER_DEAD_AFTER_MS, pollIntervalMs: e.WORKER_POLL_INTERVAL_MS, stopTimeoutMs: e.WORKER_STOP_TIMEOUT_MS },
    timeZone: e.SETTLEMENT_TIMEZONE,
    logLevel: e.LOG_LEVEL,
    httpPort: e.HTTP_PORT,
    httpHost: e.HTTP_HOST,
    alerts: { webhookUrl: e.ALERT_WEBHOOK_URL, timeoutMs: e.ALERT_TIMEOUT_MS },
    console: { users, databaseUrl: e.CONSOLE_DATABASE_URL, host: e.CONSOLE_HOST, hostnames: e.CONSOLE_HOSTNAMES },
    metricsSnapshotMs: e.METRICS_SNAPSHOT_MS,
    statementTimeoutMs: {
      worker: e.DATABASE_STATEMENT_TIMEOUT_MS,
      desk: e.DESK_STATEMENT_TIMEOUT_MS || e.DATABASE_STATEMENT_TIMEOUT_MS,
      command: e.COMMAND_STATEMENT_TIMEOUT_MS || e.DATABASE_STATEMENT_TIMEOUT_MS,
    },
  };
}
