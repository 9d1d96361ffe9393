import { parseArgs } from 'node:util';
import { z } from 'zod';

/** The figures of SPEC section 6. */
export const FIGURES = ['P1', 'P2', 'P3', 'P4'] as const;
export type Figure = (typeof FIGURES)[number];

export class BenchUsageError extends Error {
  override name = 'BenchUsageError';
}

/** `--help`: not an error; main prints USAGE and exits 0. */
export class BenchHelp extends Error {
  override name = 'BenchHelp';
}

const int = (min: number, max: number) =>
  z.string().regex(/^[0-9]+$/, 'must be a whole number').transform(Number).pipe(z.number().int().min(min).max(max));

const schema = z
  .object({
    chunks: int(1, 200_000).default('2000'),
    latencyMs: int(1, 10_000).default('250'),
    maxInFlight: int(1, 1_000).default('50'),
    workers: int(1, 16).default('2'),
    concurrency: int(1, 500).optional(),
    only: z
      .string()
      .transform((s) => s.split(',').map((x) => x.trim().toUpperCase()).filter(Boolean))
      .pipe(z.array(z.enum(FIGURES)).min(1, 'name at least one of P1,P2,P3,P4'))
      .optional(),
    large: z.boolean().default(false),
    json: z.boolean().default(false),
    profile: z.boolean().default(false),
    flood: z.boolean().default(false),
    floor: z.boolean().default(false),
  })
  .strict();

export type BenchOptions = Omit<z.output<typeof schema>, 'only'> & {
  figures: Set<Figure>;
  /**
   * Per worker process: twice its share of the cap, plus 5. Behind each call
   * in flight a transfer is claimed and waiting, so the slot goes to it the
   * moment the bank answers (a slot that waits for a job to be fetched and
   * claimed loses that time every round), and at the end of a day one
   * process can use the whole cap.
   */
  concurrency: number;
};

export const USAGE = `usage: npm run bench -- [--chunks N] [--latency-ms N] [--max-in-flight N] [--workers N] [--concurrency N]
                        [--only P1,P2,P3,P4] [--large] [--json] [--profile] [--flood] [--floor]
  --chunks N         chunks paid in P1 and P3, jobs in P3's no-op run (default 2000)
  --latency-ms N     bank latency L for P1/P2 (default 250; jitter 0)
  --max-in-flight N  in-flight cap M, on the simulator and BANK_MAX_IN_FLIGHT (default 50)
  --workers N        settle worker processes W (default 2)
  --concurrency N    WORKER_CONCURRENCY per process (default 2*ceil(M/W)+5: a waiting transfer behind each call in flight)
  --only LIST        figures to run (P2 needs P1's wall, so it brings P1 along)
  --large            P4 also at 10,000,000 accruals (minutes of seeding)
  --json             results as one JSON object on stdout; the prose goes to stderr
  --profile          pg_stat_statements in the benchmark's own embedded Postgres: per-chunk statements and round trips
  --flood            P1 also pays the day while 64 scrapers read one worker's /metrics and 64 signed-in readers load its console's page of the day (issue 23: target ≤ 1.10 of the quiet wall)
  --floor            P1 also runs its N calls from W bare HTTP clients (no database, nothing between calls) against the same simulator: the ratio this machine allows before any of our work`;

/** Strict `--kebab-case` flags validated with zod; any problem is one BenchUsageError line. */
export function parseOptions(argv: string[]): BenchOptions {
  if (argv.includes('--help') || argv.includes('-h')) throw new BenchHelp(USAGE);
  let values: Record<string, unknown>;
  try {
    values = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        chunks: { type: 'string' },
        'latency-ms': { type: 'string' },
        'max-in-flight': { type: 'string' },
        workers: { type: 'string' },
        concurrency: { type: 'string' },
        only: { type: 'string' },
        large: { type: 'boolean' },
        json: { type: 'boolean' },
        profile: { type: 'boolean' },
        flood: { type: 'boolean' },
        floor: { type: 'boolean' },
      },
    }).values;
  } catch (e) {
    throw new BenchUsageError((e as Error).message.split('\n')[0] ?? 'bad arguments');
  }
  const camel: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(values)) camel[k.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase())] = v;
  const r = schema.safeParse(camel);
  if (!r.success) {
    const i = r.error.issues[0]!;
    const flag = `--${String(i.path[0] ?? 'arguments').replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())}`;
    throw new BenchUsageError(`${flag}: ${i.message}`);
  }
  const { only, concurrency, ...rest } = r.data;
  const figures = new Set<Figure>(only ?? FIGURES);
  // P2 is N·L / (P1 wall): it needs P1's wall time from the same run.
  if (figures.has('P2')) figures.add('P1');
  return { ...rest, figures, concurrency: concurrency ?? 2 * Math.ceil(rest.maxInFlight / rest.workers) + 5 };
}
