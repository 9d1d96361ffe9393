import { parseArgs } from 'node:util';
import { z } from 'zod';

export class UsageError extends Error {
  override name = 'UsageError';
  readonly code = 'usage';
}

type OptionSpec = Record<string, { type: 'string' | 'boolean'; short?: string }>;

/**
 * Parses `--kebab-case` flags strictly (unknown flags are errors), then
 * validates them with a zod schema over the camelCase names. Any problem
 * becomes one UsageError line.
 */
export function parseCommand<T extends z.ZodTypeAny>(argv: string[], options: OptionSpec, schema: T, positionals: string[] = []): z.infer<T> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: positionals.length > 0 });
  } catch (e) {
    throw new UsageError((e as Error).message.split('\n')[0] ?? 'bad arguments');
  }
  if (parsed.positionals.length > positionals.length) throw new UsageError(`unexpected argument: ${parsed.positionals[positionals.length]}`);
  const input: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(parsed.values)) input[k.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase())] = v;
  positionals.forEach((name, i) => {
    if (parsed.positionals[i] !== undefined) input[name] = parsed.positionals[i];
  });
  const r = schema.safeParse(input);
  if (!r.success) {
    const first = r.error.issues[0]!;
    const flag = first.path.length ? `--${String(first.path[0]).replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())}` : 'arguments';
    throw new UsageError(`${positionals.includes(String(first.path[0])) ? String(first.path[0]) : flag}: ${first.message}`);
  }
  return r.data;
}

export const intFlag = (min: number, max: number) =>
  z.string().regex(/^[0-9]+$/, 'must be a whole number').transform(Number).pipe(z.number().int().min(min).max(max));
export const rateFlag = z.string().regex(/^(0(\.[0-9]+)?|1(\.0+)?)$/, 'must be a number from 0 to 1').transform(Number);
