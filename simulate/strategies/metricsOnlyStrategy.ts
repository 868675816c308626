/**
 * Placement by metrics alone, as a metric-driven operator without reservations does: the GPU
 * whose latest DCGM snapshot shows the most free memory, if that is at least what the pod
 * needs. Ties go to the first GPU in node/index order. It keeps no bookkeeping, so pods
 * admitted between two snapshots all see the same free memory.
 */
import { Sharing, StrategyName } from './placementStrategy.js';
import type { PlacementInput, PlacementStrategy, StrategyDecision } from './placementStrategy.js';
import { modelMatches } from './replicaStrategies.js';

export class MetricsOnlyStrategy implements PlacementStrategy {
  readonly name = StrategyName.MetricsOnly;
  readonly sharing = Sharing.Mps;
  readonly readsMetrics = true;

  place(input: PlacementInput): StrategyDecision {
    if (input.observed === null) throw new Error('metrics-only strategy needs the observed inventory; the simulator must pass one');
    let bestUuid: string | null = null;
    let bestFree = -Infinity;
    for (const gpu of input.observed.gpus) {
      if (gpu.memory === null || !modelMatches(gpu.model, input.pod.gpuModel)) continue;
      const free = gpu.memory.freeMiB;
      if (free >= input.pod.memoryMiB && free > bestFree) {
        bestFree = free;
        bestUuid = gpu.uuid;
      }
    }
    if (bestUuid === null) return { ok: false, code: 'no-fit', reason: `no GPU shows ${input.pod.memoryMiB} MiB free in the latest snapshot` };
    return { ok: true, gpuUuid: bestUuid, threadPercent: input.pod.computePercent, memoryLimitMiB: input.pod.memoryMiB, highPriorityClient: false };
  }

  started(): void {}
  departed(): void {}
  heldSlots(): number {
    return 0;
  }
}
