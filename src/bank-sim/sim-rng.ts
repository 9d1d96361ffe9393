/**
 * mulberry32: a tiny, fast, seedable PRNG. Good enough statistically for fault
 * injection, and — the point — reproducible: the same seed gives the same stream
 * on every machine, so a failing chaos run is replayed by its seed.
 */
export type Rng = () => number;

export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
