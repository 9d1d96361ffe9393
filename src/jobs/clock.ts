import type { DatabasePool } from '../db/pool.js';
import { databaseNowMs } from '../db/support.js';

/**
 * The database's clock, kept in this process. No decision about money rests on
 * the host's clock: NH's Tsymd/Trtm and every "is the date over" come from
 * Postgres' now(). `sync()` reads the database's time (the worker calls it with
 * every heartbeat); in between, time advances by the monotonic clock, which a
 * wrong or jumping wall clock does not move.
 */
export interface DbClock {
  now(): Date;
  sync(): Promise<void>;
  /** How far this host's wall clock (Date.now()) is ahead of the database's, in ms (negative: behind). */
  wallSkewMs(): number;
}

export async function createDbClock(db: DatabasePool): Promise<DbClock> {
  let baseDbMs = 0;
  let baseMono = 0;
  const sync = async () => {
    const before = performance.now();
    const dbMs = await databaseNowMs(db);
    const after = performance.now();
    // The database read its clock somewhere inside the round trip: take the middle.
    baseDbMs = dbMs;
    baseMono = (before + after) / 2;
  };
  await sync();
  const dbNowMs = () => baseDbMs + (performance.now() - baseMono);
  return { now: () => new Date(dbNowMs()), sync, wallSkewMs: () => Date.now() - dbNowMs() };
}
