import t from 'tap';
import { ConfigError, loadConfig } from '../../src/config.js';

t.test('defaults', async (t) => {
  const c = loadConfig({});
  t.equal(c.bank.perCallLimit, 100000n, 'per-call limit is a bigint, 100,000 KRW');
  t.equal(c.timeZone, 'Asia/Seoul');
  t.equal(c.databaseUrl, undefined);
  t.equal(c.bank.maxInFlight, 50);
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
  t.match(out, '******7890', 'last four digits kept');
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
