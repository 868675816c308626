/**
 * Seeded randomness for the simulator. Two kinds, both tiny and well known:
 *
 * - A stream generator, mulberry32 (32-bit state, one multiply-xorshift round per draw),
 *   for things drawn in a fixed order: the trace generator.
 * - A counter-based draw, the 32-bit finaliser of MurmurHash3 (fmix32) folded over integer
 *   keys, for things asked for in no fixed order: per-pod compute noise and exporter phases.
 *   A value depends only on its keys, so the four strategies, which look at the same pod at
 *   different moments, still see the same noise, and a replay is identical.
 *
 * Neither is cryptographic; both are deterministic for a seed on every platform.
 */

// Math's functions bound once: a global lookup per call is slow inside Node vm contexts
// (where Jest runs the tests), and these run millions of times per simulation.
const { imul, trunc, sqrt, log, cos, PI } = Math;

/** A source of uniform numbers in [0, 1). */
export type UniformSource = () => number;

/** mulberry32: a 32-bit seeded stream of uniforms in [0, 1). */
export function mulberry32(seed: number): UniformSource {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = imul(t ^ (t >>> 15), t | 1);
    t ^= t + imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** MurmurHash3's 32-bit finaliser: a bijective avalanche of one 32-bit word. */
function fmix32(value: number): number {
  let h = value >>> 0;
  h ^= h >>> 16;
  h = imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A uniform in [0, 1) that depends only on the integer keys (counter-based). */
export function hashUniform(...keys: number[]): number {
  let h = 0x9e3779b9;
  for (const key of keys) h = fmix32(h ^ fmix32(trunc(key) | 0));
  return fmix32(h) / 4294967296;
}

/** A standard normal from two uniforms (Box-Muller). */
export function normalFromUniforms(u1: number, u2: number): number {
  const radius = sqrt(-2 * log(1 - u1));
  return radius * cos(2 * PI * u2);
}

/** Draws built on a uniform stream, as the trace generator uses them. */
export class RandomDraws {
  constructor(private readonly uniform: UniformSource) {}

  next(): number {
    return this.uniform();
  }

  /** Uniform in [low, high). */
  between(low: number, high: number): number {
    return low + (high - low) * this.uniform();
  }

  /** Uniform integer in [low, high], both included. */
  integer(low: number, high: number): number {
    return low + Math.floor(this.uniform() * (high - low + 1));
  }

  /** Exponential with the given rate (mean 1 / rate), by inversion. */
  exponential(rate: number): number {
    return -Math.log(1 - this.uniform()) / rate;
  }

  /** Normal with the given mean and standard deviation (Box-Muller). */
  normal(mean: number, sd: number): number {
    return mean + sd * normalFromUniforms(this.uniform(), this.uniform());
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.uniform() < p;
  }

  /** One item, chosen with probability proportional to its weight. */
  weighted<T>(items: readonly { item: T; weight: number }[]): T {
    const total = items.reduce((sum, entry) => sum + entry.weight, 0);
    let pick = this.uniform() * total;
    for (const entry of items) {
      pick -= entry.weight;
      if (pick < 0) return entry.item;
    }
    const last = items[items.length - 1];
    if (last === undefined) throw new RangeError('weighted(): no items to choose from; pass at least one item');
    return last.item;
  }
}
