/** Synthetic H100 fleets for benchmarks: deterministic, realistic figures. */
import type { GpuSample } from '../domain/inventory.js';

export function syntheticGpus(nodes: number, gpusPerNode: number, nowMs: number): GpuSample[] {
  const gpus: GpuSample[] = [];
  for (let n = 0; n < nodes; n++) {
    for (let i = 0; i < gpusPerNode; i++) {
      const k = n * gpusPerNode + i;
      const used = 400 + ((k * 7919) % 40) * 1024;
      gpus.push({
        node: `gpu-node-${String(n).padStart(4, '0')}`,
        uuid: `GPU-${(0x10000000 + k).toString(16)}-b61d-e0bc-7b24-60096005${String(i).padStart(4, '0')}`,
        index: i,
        model: 'NVIDIA H100 80GB HBM3',
        pciBusId: `00000000:${(0x53 + i * 0x11).toString(16).toUpperCase()}:00.0`,
        memory: { totalMiB: 81559, usedMiB: used, freeMiB: 81559 - used - 0, reservedMiB: 0 },
        utilPercent: (k * 37) % 100,
        smActive: ((k * 37) % 100) / 100,
        grEngineActive: ((k * 41) % 100) / 100,
        xid: 0,
        mig: false,
        sampledAtMs: nowMs,
        pods: [],
      });
    }
  }
  return gpus;
}
