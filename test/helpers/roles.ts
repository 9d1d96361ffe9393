/** The login role test worker processes use: it holds settlement_worker and nothing else. */
export const TEST_WORKER_LOGIN = { name: 'settle_test_worker', password: 'settle-test-worker', role: 'settlement_worker', bypassRls: true } as const;

/** `url` rewritten to log in as `login`. */
export function asLogin(url: string, login: { name: string; password: string }): string {
  const u = new URL(url);
  u.username = login.name;
  u.password = login.password;
  return u.toString();
}
