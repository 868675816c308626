import { RandomDraws, hashUniform, mulberry32, normalFromUniforms } from './seededRandom.js';

describe('mulberry32', () => {
  it('repeats its sequence for a seed and differs between seeds', () => {
    const a = mulberry32(42);
    const b = mulberry32(42);
    const c = mulberry32(43);
    const seqA = Array.from({ length: 5 }, a);
    expect(Array.from({ length: 5 }, b)).toEqual(seqA);
    expect(Array.from({ length: 5 }, c)).not.toEqual(seqA);
  });

  it('stays in [0, 1) and averages about one half', () => {
    const next = mulberry32(7);
    const values = Array.from({ length: 20000 }, next);
    expect(Math.min(...values)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...values)).toBeLessThan(1);
    const avg = values.reduce((s, v) => s + v, 0) / values.length;
    expect(avg).toBeGreaterThan(0.49);
    expect(avg).toBeLessThan(0.51);
  });
});

describe('hashUniform', () => {
  it('depends only on its keys, and on each of them', () => {
    expect(hashUniform(1, 2, 3)).toBe(hashUniform(1, 2, 3));
    expect(hashUniform(1, 2, 3)).not.toBe(hashUniform(1, 2, 4));
    expect(hashUniform(1, 2, 3)).not.toBe(hashUniform(2, 1, 3));
    const values = Array.from({ length: 5000 }, (_, i) => hashUniform(9, i));
    expect(Math.min(...values)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...values)).toBeLessThan(1);
  });
});

describe('RandomDraws', () => {
  it('draws exponentials with the asked mean and normals with the asked spread', () => {
    const draws = new RandomDraws(mulberry32(3));
    const exps = Array.from({ length: 20000 }, () => draws.exponential(1 / 30));
    const expMean = exps.reduce((s, v) => s + v, 0) / exps.length;
    expect(expMean).toBeGreaterThan(28.5);
    expect(expMean).toBeLessThan(31.5);
    const normals = Array.from({ length: 20000 }, () => draws.normal(5, 2));
    const m = normals.reduce((s, v) => s + v, 0) / normals.length;
    const sd = Math.sqrt(normals.reduce((s, v) => s + (v - m) ** 2, 0) / normals.length);
    expect(m).toBeCloseTo(5, 1);
    expect(sd).toBeGreaterThan(1.9);
    expect(sd).toBeLessThan(2.1);
  });

  it('picks weighted items in proportion and integers within bounds', () => {
    const draws = new RandomDraws(mulberry32(5));
    const counts = { a: 0, b: 0 };
    for (let i = 0; i < 10000; i++) counts[draws.weighted([{ item: 'a' as const, weight: 3 }, { item: 'b' as const, weight: 1 }])]++;
    expect(counts.a / 10000).toBeGreaterThan(0.72);
    expect(counts.a / 10000).toBeLessThan(0.78);
    const ints = new Set(Array.from({ length: 1000 }, () => draws.integer(2, 4)));
    expect([...ints].sort()).toEqual([2, 3, 4]);
  });

  it('turns two uniforms into a normal deviate (Box-Muller)', () => {
    expect(normalFromUniforms(0, 0)).toBeCloseTo(0, 12);
    expect(normalFromUniforms(1 - Math.exp(-0.5), 0.5)).toBeCloseTo(-1, 10);
    expect(normalFromUniforms(1 - Math.exp(-0.5), 0)).toBeCloseTo(1, 10);
  });
});
