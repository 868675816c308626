/**
 * What the simulator asks of a placement strategy. Each strategy keeps its own bookkeeping
 * (a reservation ledger, replica counts, or nothing) and is told when its pods start and end.
 */
import type { GpuInventory } from '../../domain/inventory.js';
import type { TracePod } from '../trace.js';

export const StrategyName = {
  MpsInjector: 'mps-injector',
  MetricsOnly: 'metrics-only',
  EqualSplit: 'equal-split',
  TimeSlicing: 'time-slicing',
} as const;
export type StrategyName = (typeof StrategyName)[keyof typeof StrategyName];
export const STRATEGY_NAMES: readonly StrategyName[] = Object.values(StrategyName);

export function isStrategyName(text: string): text is StrategyName {
  return (STRATEGY_NAMES as readonly string[]).includes(text);
}

/** How pods on one GPU share its compute (see interference.ts). */
/** How mps-injector takes a reservation as visible in a GPU sample (docs/adr/0002-placement.md). */
export const ObserveRule = { Running: 'running', Legacy: 'legacy' } as const;
export type ObserveRule = (typeof ObserveRule)[keyof typeof ObserveRule];

export const Sharing = { Mps: 'mps', TimeSlicing: 'time-slicing' } as const;
export type Sharing = (typeof Sharing)[keyof typeof Sharing];

export interface PlacementInput {
  pod: TracePod;
  /** "namespace/name" of the simulated pod. */
  podKey: string;
  /** Simulated wall-clock time of the admission, epoch ms. */
  nowMs: number;
  /** The latest published DCGM snapshot; null for strategies that do not read metrics. */
  observed: GpuInventory | null;
}

export interface StrategyPlacement {
  ok: true;
  gpuUuid: string;
  /** CUDA_MPS_ACTIVE_THREAD_PERCENTAGE: the MPS limit the pod runs under (for mps-injector, at or above the share it reserved); null where no cap applies (time-slicing). */
  threadPercent: number | null;
  /** Pinned device memory limit granted, MiB; null where none applies. */
  memoryLimitMiB: number | null;
  /** True when the pod runs as a high-priority MPS client (CUDA_MPS_CLIENT_PRIORITY=0 with low pods at 1). */
  highPriorityClient: boolean;
}

export interface StrategyRefusal {
  ok: false;
  /** Short stable code for tallies ("no-fit", "too-large", "no-replica", ...). */
  code: string;
  reason: string;
}

export type StrategyDecision = StrategyPlacement | StrategyRefusal;

export interface PlacementStrategy {
  readonly name: StrategyName;
  readonly sharing: Sharing;
  /** True when place() needs the observed inventory. */
  readonly readsMetrics: boolean;
  place(input: PlacementInput): StrategyDecision;
  /** The pod is running (its reservation, if any, is confirmed). */
  started(podKey: string, nowMs: number): void;
  /** The pod object was created (the pod watch sees it: its reservation, if any, is confirmed); it runs only later. */
  created?(podKey: string, nowMs: number): void;
  /** The pod ended: give its capacity back. */
  departed(podKey: string, nowMs: number): void;
  /** Slots still held by the strategy's bookkeeping at nowMs (0 once every pod has ended). */
  heldSlots(nowMs: number): number;
}
