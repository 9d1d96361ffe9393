/** What every typed call of the SQL API shares: errors mapped to SettlementError, and a row that is ignored. */
import { z } from 'zod';
import { toSettlementError } from './errors.js';

export const voidRow = z.object({}).passthrough();

export async function wrap<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (e) {
    throw toSettlementError(e);
  }
}
