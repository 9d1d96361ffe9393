/** The second half of the explorer's random sweep in `npm test` (the first is in explore.test.ts). */
import t from 'tap';
import { sweep } from './sweep.js';

sweep(t, { from: Number(process.env['EXPLORE_MORE_FROM'] ?? 21), seeds: Number(process.env['EXPLORE_MORE_SEEDS'] ?? 20), steps: Number(process.env['EXPLORE_STEPS'] ?? 40) });
