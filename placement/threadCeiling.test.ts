import { describe, expect, it } from '@jest/globals';
import { defaultConfig } from '../config/schema.js';
import type { PlacementConfig, SlotChoice, SlotDecision } from '../domain/slot.js';
import { threadCeilingPercent, withThreadCeiling } from './threadCeiling.js';

function config(high: number, low: number): PlacementConfig {
  return { ...defaultConfig().placement, threadCeilingFactor: { high, low } };
}

const choice = (threadPercent: number, priority: 'high' | 'low' = 'high'): SlotChoice => ({
  ok: true,
  node: 'node-a',
  gpuUuid: 'GPU-a',
  gpuIndex: 0,
  gpuModel: 'NVIDIA H100 80GB HBM3',
  threadPercent,
  memoryLimitMiB: 8192,
  priority,
  metricsAgeSeconds: 3,
  considered: 1,
  reason: 'binpack: node-a GPU 0 (H100) has 70Gi free with no other clients; granted 20% as asked and 8Gi',
});

describe('threadCeilingPercent', () => {
  it('is the grant by default (factor 1 for both priorities)', () => {
    const defaults = defaultConfig().placement;
    expect(defaults.threadCeilingFactor).toEqual({ high: 1, low: 1 });
    expect(threadCeilingPercent(20, { priority: 'high' }, defaults)).toBe(20);
    expect(threadCeilingPercent(35, { priority: 'low' }, defaults)).toBe(35);
  });

  it("multiplies the grant by its priority's factor, rounding up, at most 100", () => {
    const c = config(1.5, 2.5);
    expect(threadCeilingPercent(20, { priority: 'high' }, c)).toBe(30);
    expect(threadCeilingPercent(20, { priority: 'low' }, c)).toBe(50);
    expect(threadCeilingPercent(21, { priority: 'high' }, c)).toBe(32);
    expect(threadCeilingPercent(30, { priority: 'high' }, config(1.1, 1))).toBe(33);
    expect(threadCeilingPercent(70, { priority: 'low' }, c)).toBe(100);
  });

  it("takes the pod's own limit over the factor, never below the grant", () => {
    const c = config(1.5, 1);
    expect(threadCeilingPercent(20, { priority: 'high', threadPercentLimit: 80 }, c)).toBe(80);
    expect(threadCeilingPercent(20, { priority: 'low', threadPercentLimit: 20 }, c)).toBe(20);
    // A grant raised to the minimum above the pod's limit: the limit follows the grant.
    expect(threadCeilingPercent(10, { priority: 'low', threadPercentLimit: 5 }, c)).toBe(10);
  });
});

describe('withThreadCeiling', () => {
  it('leaves a choice whose limit is its grant as it was', () => {
    const plain = choice(20);
    expect(withThreadCeiling(plain, { priority: 'high' }, config(1, 1))).toBe(plain);
  });

  it('adds the limit and says where it comes from', () => {
    const factor = withThreadCeiling(choice(20), { priority: 'high' }, config(1.5, 1));
    expect(factor).toMatchObject({ ok: true, threadPercent: 20, threadCeilingPercent: 30 });
    expect((factor as SlotChoice).reason).toMatch(/granted 20% as asked and 8Gi; may use up to 30% when SMs are idle \(1\.5x the grant for high pods\)$/);
    const own = withThreadCeiling(choice(20, 'low'), { priority: 'low', threadPercentLimit: 60 }, config(1, 1));
    expect((own as SlotChoice).reason).toMatch(/may use up to 60% when SMs are idle \(its gpu-percent-limit\)$/);
  });

  it('passes a refusal through', () => {
    const refusal: SlotDecision = { ok: false, code: 'no-fit', reason: 'no GPU fits 8Gi', considered: 1, excluded: {} };
    expect(withThreadCeiling(refusal, { priority: 'high' }, config(2, 2))).toBe(refusal);
  });
});
