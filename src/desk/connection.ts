/**
 * The bank desk's database connection: one per process, opened when first
 * needed, listening for freed bank-call slots (settlement_bank_slot). When it
 * breaks, every slot it held is gone with it (`onLost`); the next round trip
 * opens another.
 */
import pg from 'pg';

export interface DeskConnectionOptions {
  url: string;
  applicationName: string;
  /** statement_timeout of the connection (ms); unset: the server's. */
  statementTimeoutMs?: number;
  /** A slot was given back somewhere while this process waits (a notification). */
  onNotify(): void;
  /** The connection broke or ended: its session locks are gone. */
  onLost(): void;
  onError(e: unknown): void;
}

export interface DeskConnection {
  /** The open connection, if any. */
  current(): pg.Client | undefined;
  /** The open connection, or a new one. */
  get(): Promise<pg.Client>;
  /** Is `c` still the open connection (a round trip on it may go on)? */
  isCurrent(c: pg.Client): boolean;
  /** No new connection from now on (one being opened ends itself). */
  markClosed(): void;
  /** Ends the open connection. */
  close(): Promise<void>;
}

export function createDeskConnection(o: DeskConnectionOptions): DeskConnection {
  let client: pg.Client | undefined;
  let connecting: Promise<pg.Client> | undefined;
  let closed = false;

  const url = new URL(o.url);
  url.searchParams.set('application_name', o.applicationName);

  const lose = (c: pg.Client) => {
    if (client !== c) return;
    client = undefined;
    connecting = undefined;
    o.onLost();
    void c.end().catch(() => undefined);
  };

  const get = (): Promise<pg.Client> =>
    client ? Promise.resolve(client) : (connecting ??= (async () => {
      const c = new pg.Client({ connectionString: url.toString(), ...(o.statementTimeoutMs !== undefined ? { statement_timeout: o.statementTimeoutMs } : {}) });
      c.on('error', (e) => {
        o.onError(e);
        lose(c);
      });
      c.on('end', () => lose(c));
      c.on('notification', () => o.onNotify());
      c.on('notice', () => undefined);
      try {
        await c.connect();
        await c.query('listen settlement_bank_slot');
      } catch (e) {
        connecting = undefined;
        void c.end().catch(() => undefined);
        throw e;
      }
      if (closed) {
        await c.end().catch(() => undefined);
        throw new Error('the bank desk is closed');
      }
      client = c;
      return c;
    })());

  return {
    current: () => client,
    get,
    isCurrent: (c) => client === c,
    markClosed: () => {
      closed = true;
    },
    async close() {
      closed = true;
      const c = client;
      client = undefined;
      await c?.end().catch(() => undefined);
    },
  };
}
