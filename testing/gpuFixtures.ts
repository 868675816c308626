/**
 * Small GPU inventories for the cluster adapter's tests and benchmark.
 */
import type { GpuInventory, GpuSample } from '../domain/inventory.js';
import { H100_TOTAL_MIB, h100 } from './gpuSamples.js';

export { H100_TOTAL_MIB };

/** An idle H100 sampled at `sampledAtMs` (512 MiB reserved by the driver, nothing used). */
export function idleGpu(node: string, index: number, sampledAtMs: number): GpuSample {
  return h100(node, index, sampledAtMs, { memory: { totalMiB: H100_TOTAL_MIB, usedMiB: 0, freeMiB: H100_TOTAL_MIB - 512, reservedMiB: 512 } });
}

/** `nodes` nodes with `gpusPerNode` idle GPUs each, all schedulable. */
export function idleInventory(nodes: number, gpusPerNode: number, sampledAtMs: number): GpuInventory {
  const gpus: GpuSample[] = [];
  for (let n = 0; n < nodes; n++) for (let g = 0; g < gpusPerNode; g++) gpus.push(idleGpu(`node-${n}`, g, sampledAtMs));
  return { gpus, nodes: {}, source: 'test', fetchedAtMs: sampledAtMs, skippedLines: 0, problems: [] };
}
