import pg from 'pg';
import { freshDatabase } from '../helpers/db.js';
import { installClock } from './world.js';

/** A fresh test database on the explorer's movable clock, with one connection to it (closed when the test ends). */
export async function explorerDb(t: Parameters<typeof freshDatabase>[0]): Promise<{ db: pg.Client; url: string }> {
  const { url } = await freshDatabase(t);
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  t.teardown(() => db.end());
  await db.query('set client_min_messages = warning');
  await installClock(db);
  return { db, url };
}
