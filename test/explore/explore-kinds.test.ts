/**
 * The explorer's sweep with two kinds (tax and platform_fee, each with its own
 * settlement and corporate account, drawing on the same loan accounts): the
 * loan accounts' statements belong to both kinds' days, so a line on them
 * (a cancellation, money that matches nothing) must be a break of one of
 * them, whichever reconciles first.
 */
import t from 'tap';
import { sweep } from './sweep.js';

sweep(t, { from: Number(process.env['EXPLORE_KINDS_FROM'] ?? 1), seeds: Number(process.env['EXPLORE_KINDS_SEEDS'] ?? 8), steps: Number(process.env['EXPLORE_STEPS'] ?? 40), kinds: 2 });
