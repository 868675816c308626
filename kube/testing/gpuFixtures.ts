/**
 * Small GPU inventories for the cluster adapter's tests and benchmark.
 */
import type { GpuInventory, GpuSample } from '../../dcgm/inventory.js';

export const H100_TOTAL_MIB = 81_559;

/** An idle H100 sampled at `sampledAtMs`. */
export function idleGpu(node: string, index: number, sampledAtMs: number): GpuSample {
  return {
    node,
    uuid: `GPU-${node}-${String(index).padStart(4, '0')}-0000-0000-000000000000`,
    index,
    model: 'NVIDIA H100 80GB HBM3',
    pciBusId: `00000000:${(0x53 + index).toString(16)}:00.0`,
    memory: { totalMiB: H100_TOTAL_MIB, usedMiB: 0, freeMiB: H100_TOTAL_MIB - 512, reservedMiB: 512 },
    utilPercent: 0,
    smActive: null,
    grEngineActive: null,
    xid: 0,
    mig: false,
    sampledAtMs,
    pods: [],
  };
}

/** `nodes` nodes with `gpusPerNode` idle GPUs each, all schedulable. */
export function idleInventory(nodes: number, gpusPerNode: number, sampledAtMs: number): GpuInventory {
  const gpus: GpuSample[] = [];
  for (let n = 0; n < nodes; n++) for (let g = 0; g < gpusPerNode; g++) gpus.push(idleGpu(`node-${n}`, g, sampledAtMs));
  return { gpus, nodes: {}, source: 'test', fetchedAtMs: sampledAtMs, skippedLines: 0, problems: [] };
}
