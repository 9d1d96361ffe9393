import t from 'tap';
import { ConfigError, loadConfig } from '../../src/config.js';

t.test('defaults', async (t) => {
  const c = loadConfig({});
  t.equal(c.bank.perCallLimit, 100000n, 'per-call limit is a bigint, 100,000 KRW');
  t.equal(c.timeZone, 'Asia/Seoul');
  t.equal(c.databaseUrl, undefined);
  t.equal(c.bank.maxInFlight, 50);
  t.equal(c.workerConcurrency, 100, 'concurrency from the sizing rule: twice the bank cap for one process');
  t.equal(loadConfig({ BANK_MAX_IN_FLIGHT: '8' }).workerConcurrency, 16, 'and it follows the cap');
  t.equal(loadConfig({ BANK_MAX_IN_FLIGHT: '2000' }).workerConcurrency, 1000, 'up to the most WORKER_CONCURRENCY accepts');
  t.equal(c.worker.stopTimeoutMs, 25_000, 'a stop waits 25 s at most for the jobs in hand');
  t.same(c.statementTimeoutMs, { worker: 60_000, desk: 60_000, command: 60_000 }, 'statement timeouts: 60 s for the worker pool, the desk and commands');
});

t.test('statement timeouts per use', async (t) => {
  t.same(loadConfig({ DATABASE_STATEMENT_TIMEOUT_MS: '120000' }).statementTimeoutMs, { worker: 120_000, desk: 120_000, command: 120_000 }, 'the desk and commands follow DATABASE_STATEMENT_TIMEOUT_MS');
  t.same(loadConfig({ DATABASE_STATEMENT_TIMEOUT_MS: '120000', DESK_STATEMENT_TIMEOUT_MS: '5000', COMMAND_STATEMENT_TIMEOUT_MS: '600000' }).statementTimeoutMs,
    { worker: 120_000, desk: 5_000, command: 600_000 }, 'each may be set on its own');
});

t.test('typed values from the environment', async (t) => {
  const c = loadConfig({ BANK_PER_CALL_LIMIT: '50000', BANK_MAX_IN_FLIGHT: '7', WORKER_CONCURRENCY: '3', SETTLEMENT_TIMEZONE: 'UTC', LOG_LEVEL: 'DEBUG', HTTP_PORT: '8080', DATABASE_URL: 'postgres://u@h/db', BANK_URL: 'http://127.0.0.1:9/' });
  t.equal(c.bank.perCallLimit, 50000n);
  t.equal(c.bank.maxInFlight, 7);
  t.equal(c.workerConcurrency, 3);
  t.equal(c.timeZone, 'UTC');
  t.equal(c.logLevel, 'debug');
  t.equal(c.httpPort, 8080);
  t.equal(c.bank.url, 'http://127.0.0.1:9', 'trailing slash removed');
});

t.test('every problem is reported at once, by name', async (t) => {
  let err: unknown;
  try {
    loadConfig({ BANK_PER_CALL_LIMIT: '1.5', BANK_MAX_IN_FLIGHT: '0', SETTLEMENT_TIMEZONE: 'Mars/Olympus', LOG_LEVEL: 'loud', DATABASE_URL: 'mysql://x', BANK_TIMEOUT_MS: 'soon', HTTP_PORT: '70000', BANK_ISCD: 'abc' });
  } catch (e) {
    err = e;
  }
  t.ok(err instanceof ConfigError, 'a ConfigError');
  const problems = (err as ConfigError).problems.join('\n');
  for (const name of ['BANK_PER_CALL_LIMIT', 'BANK_MAX_IN_FLIGHT', 'SETTLEMENT_TIMEZONE', 'LOG_LEVEL', 'DATABASE_URL', 'BANK_TIMEOUT_MS', 'HTTP_PORT', 'BANK_ISCD']) {
    t.match(problems, name, `names ${name}`);
  }
  t.equal((err as ConfigError).problems.length, 8, 'all eight problems, not just the first');
});

t.test('logs: secrets removed, account numbers masked, money as strings', async (t) => {
  const { createLogger } = await import('../../src/log.js');
  const lines: string[] = [];
  const logger = createLogger('info', { destination: { write: (s: string) => void lines.push(s) } });
  logger.info({ accessToken: 'TOPSECRET', Header: { AccessToken: 'TOPSECRET' }, accountNo: '1234567890', amount: 250000n }, 'x');
  const out = lines.join('');
  t.notMatch(out, 'TOPSECRET', 'no access token');
  t.notMatch(out, '1234567890', 'no full account number');
  t.match(out, '"accountNo":"****7890"', 'shown as **** and the last four digits (src/mask.ts, one rule everywhere)');
  t.match(out, '"amount":"250000"', 'bigint money logged as a decimal string');
});

t.test('settings are validated as a whole', async (t) => {
  const err = (() => { try { loadConfig({ WORKER_HEARTBEAT_MS: '5000', WORKER_DEAD_AFTER_MS: '1' }); } catch (e) { return e; } })();
  t.ok(err instanceof ConfigError);
  t.match((err as ConfigError).message, /WORKER_DEAD_AFTER_MS \(1\) must be at least three heartbeats/);
  t.throws(() => loadConfig({ BANK_SIMULATOR: 'yes' }), /BANK_SIMULATOR must be "in-process"/);
  t.throws(() => loadConfig({ BANK_SIMULATOR: 'in-process', BANK_URL: 'http://127.0.0.1:9' }), /choose one bank/);
  t.equal(loadConfig({ WORKER_HEARTBEAT_MS: '500', WORKER_DEAD_AFTER_MS: '1500' }).worker.deadAfterMs, 1500, 'three heartbeats is enough');
});

t.test('every ApiSvcCd is a setting whose default is the published value', async (t) => {
  const c = loadConfig({});
  t.equal(c.bank.svcCodes.DrawingTransfer, 'DrawingTransferA');
  t.equal(c.bank.svcCodes.InquireTransactionHistory, 'ReceivedTransferA');
  t.equal(loadConfig({ BANK_SVC_CHECK_ON_DRAWING_TRANSFER: '01D_001_00' }).bank.svcCodes.CheckOnDrawingTransfer, '01D_001_00');
  t.throws(() => loadConfig({ BANK_SVC_DRAWING_TRANSFER: 'CheckOnDrawingTransferA1' }), /BANK_SVC_DRAWING_TRANSFER must be 1-20/, 'over 20 characters is refused');
});

t.test('console users, scope and host names; the metrics snapshot period', async (t) => {
  const c = loadConfig({
    CONSOLE_TOKEN: 'operator-token-0123456789', CONSOLE_VIEWER_TOKEN: 'viewer-token-0123456789',
    CONSOLE_USERS: 'alice:operator:alice-token-0123456789, bob:viewer:bob:token:with:colons', CONSOLE_HOSTNAMES: 'Settle.Example.Internal, ops.example',
  });
  t.same(c.console.users.map((u) => `${u.name}/${u.role}`), ['operator/operator', 'viewer/viewer', 'alice/operator', 'bob/viewer']);
  t.equal(c.console.users[3]!.token, 'bob:token:with:colons', 'a token may hold colons');
  t.equal(c.console.host, '127.0.0.1', 'the console answers loopback connections unless set');
  t.same(c.console.hostnames, ['settle.example.internal', 'ops.example']);
  t.equal(c.metricsSnapshotMs, 5000);
  t.same(loadConfig({}).console.users, [], 'no user: the console is off');
  t.equal(loadConfig({ CONSOLE_HOST: '[::]' }).console.host, '::');
  t.equal(loadConfig({ CONSOLE_HOST: 'localhost' }).console.host, '127.0.0.1');

  const problems = (env: Record<string, string>) => {
    try {
      loadConfig(env);
    } catch (e) {
      if (e instanceof ConfigError) return e.problems.join('\n');
      throw e;
    }
    return '';
  };
  const secret = 'alice-token-0123456789';
  const bad = problems({ CONSOLE_USERS: `alice:admin:${secret}` });
  t.match(bad, /CONSOLE_USERS entry 1 must be name:role:token/, 'an unknown role');
  t.notMatch(bad, secret, 'the message never repeats the token');
  t.match(problems({ CONSOLE_USERS: 'alice:operator:short' }), /CONSOLE_USERS entry 1/, 'a short token');
  t.match(problems({ CONSOLE_USERS: `Alice:operator:${secret}` }), /CONSOLE_USERS entry 1/, 'a name outside a-z 0-9 _ . -');
  t.match(problems({ CONSOLE_USERS: `alice:operator:${secret},bob:viewer:${secret}` }), /distinct tokens/, 'one token for two people');
  t.match(problems({ CONSOLE_TOKEN: 'operator-token-0123456789', CONSOLE_USERS: `operator:viewer:${secret}` }), /distinct names/, 'a name taken by CONSOLE_TOKEN');
  t.match(problems({ CONSOLE_VIEWER_TOKEN: 'short' }), /CONSOLE_VIEWER_TOKEN must be 16-200 printable characters/);
  t.match(problems({ CONSOLE_HOST: 'console.example' }), /CONSOLE_HOST must be an IP address/, 'a name is not an address to answer on');
  t.match(problems({ CONSOLE_HOSTNAMES: '*.example' }), /CONSOLE_HOSTNAMES must be host names/, 'no wildcard');
  t.match(problems({ CONSOLE_HOSTNAMES: 'a.example:8080' }), /CONSOLE_HOSTNAMES must be host names/, 'no port');
  t.match(problems({ METRICS_SNAPSHOT_MS: '0' }), /METRICS_SNAPSHOT_MS must be between 1 and 600000/);
  t.match(problems({ METRICS_SNAPSHOT_MS: '999' }), /METRICS_SNAPSHOT_MS must be at least 1000/);
  t.match(problems({ METRICS_SNAPSHOT_MS: 'often' }), /METRICS_SNAPSHOT_MS must be a positive integer/);
  t.match(problems({ DATABASE_STATEMENT_TIMEOUT_MS: '999' }), /DATABASE_STATEMENT_TIMEOUT_MS must be at least 1000/, 'a statement timeout under a second is refused');
  t.match(problems({ DESK_STATEMENT_TIMEOUT_MS: '3600001' }), /DESK_STATEMENT_TIMEOUT_MS must be between 1 and 3600000/, 'over an hour is refused');
  t.match(problems({ COMMAND_STATEMENT_TIMEOUT_MS: '1m' }), /COMMAND_STATEMENT_TIMEOUT_MS must be a positive integer/, 'a unit is not a number of ms');
});
