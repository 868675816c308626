import { burstFactor, computeDemand, memoryUsedMiB, podComputeDemand, podMemoryMiB } from './podUsage.js';
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

describe('podMemoryMiB', () => {
  it('is memoryUsedMiB for a pod without a KV cache', () => {
    const pod = { memoryMiB: 8192, computePercent: 20 };
    for (const at of [500, 31_000, 61_000]) expect(podMemoryMiB(pod, 1_000, at, model)).toBe(memoryUsedMiB(8192, 1_000, at, model));
  });

  it('ramps the weights, then fills the KV cache over kvGrowthS', () => {
    const pod = { memoryMiB: 30_000, computePercent: 20, kvCacheMiB: 10_000, kvGrowthS: 100 };
    expect(podMemoryMiB(pod, 0, 30_000, model)).toBe(10_000);
    expect(podMemoryMiB(pod, 0, 60_000, model)).toBe(20_000);
    expect(podMemoryMiB(pod, 0, 110_000, model)).toBe(25_000);
    expect(podMemoryMiB(pod, 0, 160_000, model)).toBe(30_000);
    expect(podMemoryMiB(pod, 0, 999_000, model)).toBe(30_000);
    expect(podMemoryMiB({ ...pod, kvGrowthS: 0 }, 0, 60_000, model)).toBe(30_000);
  });
});

describe('bursts', () => {
  const burst = { windowS: 60, share: 0.2, factor: 2.5 };

  it('one window in five (on average) carries 2.5x the load, the others 0.625x: the mean stays 1', () => {
    const factors = Array.from({ length: 5000 }, (_, w) => burstFactor(burst, 7, w * 60_000, 1));
    expect(new Set(factors)).toEqual(new Set([2.5, 0.625]));
    const mean = factors.reduce((s, f) => s + f, 0) / factors.length;
    expect(mean).toBeGreaterThan(0.97);
    expect(mean).toBeLessThan(1.03);
    expect(burstFactor(burst, 7, 0, 1)).toBe(burstFactor(burst, 7, 59_999, 1));
    expect(burstFactor(undefined, 7, 0, 1)).toBe(1);
  });

  it('scales the noisy demand and keeps it at most 100', () => {
    const pod = { memoryMiB: 1, computePercent: 60, burst };
    for (let step = 0; step < 500; step++) {
      const at = step * 5_000;
      const demand = podComputeDemand(pod, 3, at, model);
      expect(demand).toBeLessThanOrEqual(100);
      expect(demand).toBeCloseTo(Math.min(100, computeDemand(60, 3, at, model) * burstFactor(burst, 3, at, model.seed)), 9);
    }
    expect(podComputeDemand({ memoryMiB: 1, computePercent: 60 }, 3, 0, model)).toBe(computeDemand(60, 3, 0, model));
  });
});
