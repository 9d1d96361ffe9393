import type pg from 'pg';

/**
 * Where a payout's database time goes (--profile, our own embedded instance
 * only): pg_stat_statements over one timed run, per chunk. Top-level rows are
 * round trips from a client; nested rows are statements inside the SQL
 * functions (pg_stat_statements.track = all). The benchmark's own progress
 * polls carry BENCH_TAG and a `bench_` column alias (pg_stat_statements may
 * drop leading comments; aliases stay) and are left out.
 */
export const BENCH_TAG = '/* bench */';
const OURS = `query not like '%bench\\_%' and query not like '%pg_stat_statements%'`;

export interface StatementRow {
  query: string;
  toplevel: boolean;
  calls: number;
  perChunk: number;
  meanMs: number;
  totalMs: number;
}

export async function resetStatements(c: pg.ClientBase): Promise<void> {
  await c.query('select pg_stat_statements_reset()');
}

export async function readStatements(c: pg.ClientBase, chunks: number, limit = 14): Promise<StatementRow[]> {
  const r = await c.query<{ query: string; toplevel: boolean; calls: string; mean: number; total: number }>(
    `select query, toplevel, calls, mean_exec_time as mean, total_exec_time as total
     from pg_stat_statements
     where dbid = (select oid from pg_database where datname = current_database())
       and ${OURS}
     order by total_exec_time desc limit $1`,
    [limit],
  );
  return r.rows.map((x) => ({
    query: x.query.replace(/\s+/g, ' ').trim().slice(0, 110),
    toplevel: x.toplevel,
    calls: Number(x.calls),
    perChunk: Number(x.calls) / chunks,
    meanMs: x.mean,
    totalMs: x.total,
  }));
}

/** Client round trips per chunk: every top-level statement except ours. */
export async function roundTripsPerChunk(c: pg.ClientBase, chunks: number): Promise<{ perChunk: number; serverMsPerChunk: number }> {
  const r = await c.query<{ calls: string; total: number }>(
    `select coalesce(sum(calls), 0) as calls, coalesce(sum(total_exec_time), 0) as total from pg_stat_statements
     where toplevel and dbid = (select oid from pg_database where datname = current_database())
       and ${OURS}`,
  );
  const row = r.rows[0]!;
  return { perChunk: Number(row.calls) / chunks, serverMsPerChunk: row.total / chunks };
}

export function formatStatements(rows: StatementRow[]): string[] {
  return rows.map(
    (s) =>
      `    ${s.toplevel ? 'rt ' : '  ↳'} ${s.perChunk.toFixed(2).padStart(6)}/chunk ${s.meanMs.toFixed(3).padStart(8)} ms ${(s.totalMs / 1000).toFixed(2).padStart(6)} s  ${s.query}`,
  );
}
