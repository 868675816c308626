import type { GpuInventory } from '../domain/inventory.js';
import { h100 } from '../testing/gpuSamples.js';
import { metricsReadiness } from './metricsReadiness.js';

const NOW = 1_700_000_000_000;
const inventory = (ages: number[]): GpuInventory => ({
  gpus: ages.map((age, i) => h100('node-a', i, NOW - age * 1000)),
  nodes: {},
  source: 'file:/tmp/dcgm.prom',
  fetchedAtMs: NOW,
  skippedLines: 0,
  problems: [],
});

test('ready while one GPU has metrics younger than the limit', () => {
  expect(metricsReadiness(inventory([600, 30]), NOW, 90)).toEqual({ ready: true, reason: '' });
  expect(metricsReadiness(inventory([90]), NOW, 90).ready).toBe(true);
});

test('not ready while every GPU is stale, saying how old the newest sample is and where it came from', () => {
  const r = metricsReadiness(inventory([693, 700]), NOW, 90);
  expect(r.ready).toBe(false);
  expect(r.reason).toContain('no GPU has metrics younger than placement.maxMetricsAgeSeconds (90 s)');
  expect(r.reason).toContain('the newest of 2 GPU samples from file:/tmp/dcgm.prom is 693 s old');
});

test('not ready when the metrics list no GPUs', () => {
  const r = metricsReadiness(inventory([]), NOW, 90);
  expect(r.ready).toBe(false);
  expect(r.reason).toContain('list no GPUs');
});
