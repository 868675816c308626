import { computeDemand, memoryUsedMiB } from './podUsage.js';
import type { UsageModel } from './podUsage.js';

const model: UsageModel = { memoryRampMs: 60_000, computeNoise: 0.1, stepMs: 5_000, seed: 1 };

describe('memoryUsedMiB', () => {
  it('ramps linearly from start to the need, then holds', () => {
    expect(memoryUsedMiB(8192, 1_000, 500, model)).toBe(0);
    expect(memoryUsedMiB(8192, 1_000, 31_000, model)).toBe(4096);
    expect(memoryUsedMiB(8192, 1_000, 61_000, model)).toBe(8192);
    expect(memoryUsedMiB(8192, 1_000, 999_000, model)).toBe(8192);
    expect(memoryUsedMiB(8192, 1_000, 1_000, { ...model, memoryRampMs: 0 })).toBe(8192);
  });
});

describe('computeDemand', () => {
  it('follows the share with noise that is fixed within a step and bounded', () => {
    expect(computeDemand(20, 3, 10_000, model)).toBe(computeDemand(20, 3, 14_999, model));
    const samples = Array.from({ length: 2000 }, (_, step) => computeDemand(20, 3, step * 5_000, model));
    expect(Math.min(...samples)).toBeGreaterThanOrEqual(10);
    expect(Math.max(...samples)).toBeLessThanOrEqual(30);
    const avg = samples.reduce((s, v) => s + v, 0) / samples.length;
    expect(avg).toBeGreaterThan(19.7);
    expect(avg).toBeLessThan(20.3);
    expect(new Set(samples).size).toBeGreaterThan(1000);
  });

  it('differs between pods and seeds, and is the share without noise', () => {
    expect(computeDemand(20, 3, 0, model)).not.toBe(computeDemand(20, 4, 0, model));
    expect(computeDemand(20, 3, 0, model)).not.toBe(computeDemand(20, 3, 0, { ...model, seed: 2 }));
    expect(computeDemand(20, 3, 0, { ...model, computeNoise: 0 })).toBe(20);
    expect(computeDemand(90, 3, 0, { ...model, computeNoise: 5 })).toBeLessThanOrEqual(100);
  });
});
