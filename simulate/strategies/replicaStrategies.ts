/**
 * The NVIDIA device plugin's sharing modes: every GPU is advertised as N replicas and the
 * scheduler hands out replicas by count, with no view of memory use.
 *
 * - equal-split (MPS): each replica is an MPS client with 100/N percent of the threads and
 *   memory/N pinned memory; a pod that needs more memory than a replica is refused.
 * - time-slicing: replicas carry no limits; pods take turns on the GPU.
 *
 * Replica choice follows the simulation's policy: binpack takes the GPU with the most replicas
 * in use (then node/index order), spread the one with the fewest. The real kube-scheduler
 * scores nodes least-allocated by default, which would spread pods and cost these baselines
 * more GPU-hours; giving them the same packing as mps-injector keeps the comparison about the
 * sharing model.
 */
import type { SimGpu } from '../cluster.js';
import { PlacementPolicy } from '../../domain/slot.js';
import { Sharing, StrategyName } from './placementStrategy.js';
import type { PlacementInput, PlacementStrategy, StrategyDecision } from './placementStrategy.js';

export function modelMatches(model: string, wanted: string | null): boolean {
  return wanted === null || model.toLowerCase().includes(wanted.toLowerCase());
}

/** Replica counts per GPU and which GPU each pod holds a replica of. */
class ReplicaBook {
  private readonly used = new Map<string, number>();
  private readonly byPod = new Map<string, string>();

  constructor(
    readonly gpus: readonly SimGpu[],
    readonly replicasPerGpu: number,
    private readonly policy: PlacementPolicy,
  ) {
    if (!Number.isInteger(replicasPerGpu) || replicasPerGpu < 1) {
      throw new RangeError(`replicas per GPU must be a whole number of at least 1, got ${replicasPerGpu}; pass --replicas 2, 4, 8, ...`);
    }
  }

  /** The GPU to take a replica of, or null when every eligible GPU is full. */
  pick(eligible: (gpu: SimGpu) => boolean): SimGpu | null {
    let best: SimGpu | null = null;
    let bestUsed = 0;
    for (const gpu of this.gpus) {
      if (!eligible(gpu)) continue;
      const used = this.used.get(gpu.uuid) ?? 0;
      if (used >= this.replicasPerGpu) continue;
      const better = best === null || (this.policy === PlacementPolicy.Binpack ? used > bestUsed : used < bestUsed);
      if (better) {
        best = gpu;
        bestUsed = used;
      }
    }
    return best;
  }

  take(podKey: string, gpu: SimGpu): void {
    this.used.set(gpu.uuid, (this.used.get(gpu.uuid) ?? 0) + 1);
    this.byPod.set(podKey, gpu.uuid);
  }

  give(podKey: string): void {
    const uuid = this.byPod.get(podKey);
    if (uuid === undefined) return;
    this.byPod.delete(podKey);
    const left = (this.used.get(uuid) ?? 1) - 1;
    if (left > 0) this.used.set(uuid, left);
    else this.used.delete(uuid);
  }

  held(): number {
    return this.byPod.size;
  }
}

export class EqualSplitStrategy implements PlacementStrategy {
  readonly name = StrategyName.EqualSplit;
  readonly sharing = Sharing.Mps;
  readonly readsMetrics = false;
  private readonly book: ReplicaBook;

  constructor(gpus: readonly SimGpu[], replicasPerGpu: number, policy: PlacementPolicy) {
    this.book = new ReplicaBook(gpus, replicasPerGpu, policy);
  }

  place({ pod, podKey }: PlacementInput): StrategyDecision {
    const n = this.book.replicasPerGpu;
    const memoryOf = (gpu: SimGpu) => Math.floor(gpu.memoryMiB / n);
    const fits = (g: SimGpu) => modelMatches(g.model, pod.gpuModel) && memoryOf(g) >= pod.memoryMiB;
    if (!this.book.gpus.some(fits)) {
      return { ok: false, code: 'too-large', reason: `${pod.memoryMiB} MiB is more than one replica's memory (GPU memory / ${n}) on every GPU` };
    }
    const gpu = this.book.pick(fits);
    if (gpu === null) return { ok: false, code: 'no-replica', reason: 'every replica that is large enough is taken' };
    this.book.take(podKey, gpu);
    return { ok: true, gpuUuid: gpu.uuid, threadPercent: Math.floor(100 / n), memoryLimitMiB: memoryOf(gpu), highPriorityClient: false };
  }

  started(): void {}
  departed(podKey: string): void {
    this.book.give(podKey);
  }
  heldSlots(): number {
    return this.book.held();
  }
}

export class TimeSlicingStrategy implements PlacementStrategy {
  readonly name = StrategyName.TimeSlicing;
  readonly sharing = Sharing.TimeSlicing;
  readonly readsMetrics = false;
  private readonly book: ReplicaBook;

  constructor(gpus: readonly SimGpu[], replicasPerGpu: number, policy: PlacementPolicy) {
    this.book = new ReplicaBook(gpus, replicasPerGpu, policy);
  }

  place({ pod, podKey }: PlacementInput): StrategyDecision {
    const gpu = this.book.pick((g) => modelMatches(g.model, pod.gpuModel));
    if (gpu === null) return { ok: false, code: 'no-replica', reason: 'every replica is taken' };
    this.book.take(podKey, gpu);
    return { ok: true, gpuUuid: gpu.uuid, threadPercent: null, memoryLimitMiB: null, highPriorityClient: false };
  }

  started(): void {}
  departed(podKey: string): void {
    this.book.give(podKey);
  }
  heldSlots(): number {
    return this.book.held();
  }
}
