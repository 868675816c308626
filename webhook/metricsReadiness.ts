/**
 * Whether the metrics let this replica place pods: ready while at least one GPU has a sample
 * younger than placement.maxMetricsAgeSeconds, the same age test placement applies. Pure.
 */
import type { GpuInventory } from '../domain/inventory.js';

export interface Readiness {
  ready: boolean;
  /** Why not ready (or why degraded); '' when all is well. */
  reason: string;
}

/** Fresh when at least one GPU was sampled within `maxAgeSeconds` of `nowMs`; else why not, for /readyz. */
export function metricsReadiness(inventory: GpuInventory, nowMs: number, maxAgeSeconds: number): Readiness {
  const maxAgeMs = maxAgeSeconds * 1000;
  let newest = -Infinity;
  for (const gpu of inventory.gpus) {
    if (nowMs - gpu.sampledAtMs <= maxAgeMs) return { ready: true, reason: '' };
    newest = Math.max(newest, gpu.sampledAtMs);
  }
  if (inventory.gpus.length === 0) {
    return { ready: false, reason: `the DCGM metrics from ${inventory.source} list no GPUs, so every pod would be refused; check that dcgm-exporter runs on the GPU nodes and that the metrics source reaches it` };
  }
  const ageSeconds = Math.round((nowMs - newest) / 1000);
  return {
    ready: false,
    reason:
      `no GPU has metrics younger than placement.maxMetricsAgeSeconds (${maxAgeSeconds} s): the newest of ${inventory.gpus.length} GPU samples from ${inventory.source} is ${ageSeconds} s old, so every pod would be refused; ` +
      'check that dcgm-exporter is running and that the metrics source reaches it',
  };
}
