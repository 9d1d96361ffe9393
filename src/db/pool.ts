import {
  createPool,
  createBigintTypeParser,
  SchemaValidationError,
  type DatabasePool,
  type Interceptor,
  type QueryResultRow,
} from 'slonik';

export type { DatabasePool };

/**
 * Checks each row against the zod schema of `sql.type(...)` queries, so a
 * result whose shape drifts from what the code expects fails loudly.
 */
const resultParser: Interceptor = {
  name: 'zod-result-parser',
  transformRowAsync: async (ctx, query, row) => {
    const parser = ctx.resultParser;
    if (!parser) return row;
    const r = await parser.safeParseAsync(row);
    if (!r.success) throw new SchemaValidationError(query, row, r.error.issues);
    return r.data as QueryResultRow;
  },
};

/**
 * The project's own pool. int8 is parsed to bigint (money never becomes a JS
 * number); dates and timestamps stay as the strings Postgres sends.
 */
export async function createDbPool(url: string, opts: { maximumPoolSize?: number; applicationName?: string; statementTimeoutMs?: number } = {}): Promise<DatabasePool> {
  const u = new URL(url);
  if (opts.applicationName) u.searchParams.set('application_name', opts.applicationName);
  return createPool(u.toString(), {
    maximumPoolSize: opts.maximumPoolSize ?? 10,
    // Sent at connection start (slonik's default is 60 s).
    ...(opts.statementTimeoutMs ? { statementTimeout: opts.statementTimeoutMs } : {}),
    typeParsers: [
      createBigintTypeParser(),
      { name: 'date', parse: (v: string) => v },
      { name: 'timestamptz', parse: (v: string) => v },
      { name: 'timestamp', parse: (v: string) => v },
      { name: 'numeric', parse: (v: string) => v },
    ],
    interceptors: [resultParser],
    // slonik's default runs DISCARD ALL each time a connection goes back to
    // the pool: a second round trip for every query. We keep no session state
    // on pooled connections (no SET, no session locks: bank-call slots live
    // on the limiter's own connections), so there is nothing to discard.
    resetConnection: async () => {},
    connectionRetryLimit: 5,
    queryRetryLimit: 0,
    transactionRetryLimit: 5,
  });
}
