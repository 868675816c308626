import { expect, test } from '@jest/globals';
import type { GpuInventory, NodeState } from '../domain/inventory.js';
import { h100 } from '../testing/gpuSamples.js';
import { mergedInventory } from './mergedInventory.js';

const NOW = 1_700_000_000_000;
const metricsInventory = (nodes: GpuInventory['nodes'] = {}): GpuInventory => ({
  gpus: [h100('a', 0, NOW)],
  nodes,
  source: 'test',
  fetchedAtMs: NOW,
  skippedLines: 0,
  problems: [],
});
const cordoned: NodeState = { name: 'a', schedulable: false, unschedulableReason: 'cordoned', labels: {} };
const ready: NodeState = { name: 'a', schedulable: true, labels: {} };

test('without cluster nodes the metrics inventory itself is used', () => {
  const metrics = metricsInventory();
  const empty = Object.freeze({});
  const read = mergedInventory(() => metrics, () => empty);
  expect(read()).toBe(metrics);
});

test('cluster nodes are laid over the metrics nodes, and the merge is reused until an input changes', () => {
  let metrics = metricsInventory({ a: ready, b: ready });
  let nodes: GpuInventory['nodes'] = Object.freeze({ a: cordoned });
  const read = mergedInventory(() => metrics, () => nodes);

  const first = read();
  expect(first.nodes).toEqual({ a: cordoned, b: ready });
  expect(first.gpus).toBe(metrics.gpus);
  expect(read()).toBe(first);

  nodes = Object.freeze({ a: ready });
  const afterNodes = read();
  expect(afterNodes).not.toBe(first);
  expect(afterNodes.nodes).toEqual({ a: ready, b: ready });

  metrics = metricsInventory({ c: ready });
  const afterMetrics = read();
  expect(afterMetrics).not.toBe(afterNodes);
  expect(afterMetrics.nodes).toEqual({ a: ready, c: ready });
  expect(afterMetrics.gpus).toBe(metrics.gpus);
});
