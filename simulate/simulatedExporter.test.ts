import { buildCluster, expandCluster } from './cluster.js';
import { SimulatedExporter } from './simulatedExporter.js';
import type { GpuActivity } from './simulatedExporter.js';

const gpus = expandCluster(
  buildCluster({ name: 'two', nodes: [{ name: 'node', count: 2, gpus: 2, model: 'NVIDIA H100 80GB HBM3', memoryMiB: 81559 }] }),
);
const EPOCH = 1_700_000_000_000;

describe('SimulatedExporter', () => {
  it('shows, per node, the newest sample taken at least the scrape delay ago, stamped with its own time', () => {
    const asked: number[] = [];
    const exporter = new SimulatedExporter(gpus, { intervalMs: 30_000, scrapeDelayMs: 15_000, seed: 3 }, (_gpu, atMs): GpuActivity => {
      asked.push(atMs);
      return { usedMiB: atMs / 1000, utilPercent: 40, podKeys: ['sim/a'] };
    }, EPOCH);
    const nowMs = 100_000;
    const inventory = exporter.inventoryAt(nowMs);
    expect(inventory.gpus).toHaveLength(4);
    for (const gpu of inventory.gpus) {
      const age = EPOCH + nowMs - gpu.sampledAtMs;
      expect(age).toBeGreaterThanOrEqual(15_000);
      expect(age).toBeLessThan(45_000);
      // The truth it reports is the truth at the sample time, not at nowMs.
      expect(gpu.memory?.usedMiB).toBe(Math.round((gpu.sampledAtMs - EPOCH) / 1000));
      expect(gpu.memory?.freeMiB).toBe(81559 - (gpu.memory?.usedMiB ?? 0));
      expect(gpu.utilPercent).toBe(40);
      expect(gpu.pods).toEqual([{ namespace: 'sim', pod: 'a', container: 'main' }]);
    }
    for (const atMs of asked) expect(atMs).toBeLessThanOrEqual(nowMs - 15_000);
  });

  it('gives each node its own phase, and serves a cached sample until the next one is visible', () => {
    let calls = 0;
    const exporter = new SimulatedExporter(gpus, { intervalMs: 30_000, scrapeDelayMs: 0, seed: 3 }, () => {
      calls++;
      return { usedMiB: 0, utilPercent: 0, podKeys: [] };
    }, EPOCH);
    const first = exporter.inventoryAt(200_000);
    const nodeTimes = new Map(first.gpus.map((g) => [g.node, g.sampledAtMs]));
    expect(new Set(nodeTimes.values()).size).toBe(2);
    const callsAfterFirst = calls;
    exporter.inventoryAt(200_001);
    expect(calls).toBe(callsAfterFirst);
    exporter.inventoryAt(230_001);
    expect(calls).toBe(2 * callsAfterFirst);
  });

  it('with a tiny interval and no delay, reports the state as of the asking moment', () => {
    const exporter = new SimulatedExporter(gpus, { intervalMs: 1e-4, scrapeDelayMs: 0, seed: 1 }, () => ({ usedMiB: 0, utilPercent: 0, podKeys: [] }), EPOCH);
    for (const gpu of exporter.inventoryAt(123_456).gpus) expect(EPOCH + 123_456 - gpu.sampledAtMs).toBeLessThanOrEqual(1e-4);
  });

  it('refuses an interval of 0 with what to pass instead', () => {
    expect(() => new SimulatedExporter(gpus, { intervalMs: 0, scrapeDelayMs: 0, seed: 1 }, () => ({ usedMiB: 0, utilPercent: 0, podKeys: [] }), EPOCH)).toThrow(
      /--metrics-interval/,
    );
  });
});
