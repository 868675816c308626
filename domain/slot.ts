/**
 * Types of the placement engine: what a pod asks for, what the engine decides,
 * and the reservations it keeps. Pure data: no I/O here.
 */
import type { GpuSample } from './inventory.js';

export const Priority = { High: 'high', Low: 'low' } as const;
export type Priority = (typeof Priority)[keyof typeof Priority];

export const PlacementPolicy = { Binpack: 'binpack', Spread: 'spread' } as const;
export type PlacementPolicy = (typeof PlacementPolicy)[keyof typeof PlacementPolicy];

/** What one pod asks of the placement engine (read from its annotations by the injector). */
export interface SlotRequest {
  /** Identity of the pod for the ledger and logs: "namespace/name" or "namespace/generateName*uid". */
  podKey: string;
  /** Pinned device memory the pod needs, MiB. */
  memoryMiB: number;
  /** Compute share asked for (1..100), or null to let the engine derive it from metrics. */
  threadPercent: number | null;
  /**
   * Ceiling on the SMs the pod may use (1..100, at least the ask), the pod's own
   * `mps-injector.io/gpu-percent-limit`; absent: placement.threadCeilingFactor decides.
   */
  threadPercentLimit?: number;
  priority: Priority;
  /** Substring the GPU model must contain (case-insensitive), or null. */
  gpuModel: string | null;
  /** Node the pod already pins (nodeSelector kubernetes.io/hostname or required node affinity), or null. */
  pinnedNode: string | null;
  /** True when the pod has a name (not only a generateName): a name exists once, so a repeated admission supersedes the earlier one. */
  podNamed?: boolean;
  /** This pod's placement policy, instead of the configured one (absent: the configured one). */
  policy?: PlacementPolicy;
  /** Only GPUs with one of these UUIDs are candidates (absent: any). */
  gpuUuidIn?: readonly string[];
  /** GPUs with one of these UUIDs are never candidates (absent: none ruled out). */
  gpuUuidNotIn?: readonly string[];
}

/** Placement settings (the `placement` block of the configuration). */
export interface PlacementConfig {
  policy: PlacementPolicy;
  /** A GPU sample older than this is stale and not a candidate. */
  maxMetricsAgeSeconds: number;
  /** Memory kept free on every GPU for the MPS server and CUDA contexts, MiB. */
  memorySafetyMarginMiB: number;
  /**
   * Warm-up: a reservation counts as visible in a GPU sample only when its pod's GPU containers
   * had been running this long when the sample was taken; until then its whole memory is added
   * on top of the observed use (docs/adr/0002-placement.md).
   */
  observeAfterRunningSeconds: number;
  /** MPS client cap per GPU (48 on Volta and newer). */
  maxClientsPerGpu: number;
  /** Upper bound on the sum of granted thread percentages per GPU (100 = no oversubscription). */
  maxThreadPercentSum: number;
  /**
   * Upper bound on the sum of thread percentages granted to `high` pods per GPU, within
   * maxThreadPercentSum (100: latency-critical pods never oversubscribe compute among themselves).
   */
  maxHighThreadPercentSum: number;
  /** Bounds of a granted thread percentage. */
  minThreadPercent: number;
  maxThreadPercent: number;
  /**
   * Per priority, the MPS limit (CUDA_MPS_ACTIVE_THREAD_PERCENTAGE) as a multiple of the granted
   * share: min(100, ceil(grant x factor)). 1: the limit is the grant. The budgets count grants,
   * never limits (docs/adr/0002-placement.md).
   */
  threadCeilingFactor: Readonly<Record<Priority, number>>;
  /** Observed utilisation (percent) at or above which a GPU is hot. */
  hotUtilPercent: number;
  /** What a hot GPU means: deprioritised in ordering, or excluded outright. */
  hotGpuAction: 'deprioritise' | 'exclude';
  /** Node label that names the GPU model, consulted by the gpu-model filter when the exporter's modelName does not match. */
  gpuModelNodeLabel: string;
}

/** Why a GPU was not a candidate. Stable codes: metrics and tests rely on them. */
export const Exclusion = {
  Stale: 'stale',
  Mig: 'mig',
  Xid: 'xid',
  NodeUnschedulable: 'node-unschedulable',
  NoMpsDaemon: 'no-mps-daemon',
  NodeMismatch: 'node-mismatch',
  GpuUuid: 'gpu-uuid',
  ModelMismatch: 'model-mismatch',
  NoMemoryMetrics: 'no-memory-metrics',
  ClientCap: 'client-cap',
  Memory: 'memory',
  Compute: 'compute',
  Hot: 'hot',
} as const;
export type Exclusion = (typeof Exclusion)[keyof typeof Exclusion];

/** A granted slot. */
export interface SlotChoice {
  ok: true;
  node: string;
  gpuUuid: string;
  gpuIndex: number;
  gpuModel: string;
  /** Compute share reserved: what the compute budgets count. */
  threadPercent: number;
  /**
   * CUDA_MPS_ACTIVE_THREAD_PERCENTAGE: the most SMs the pod may use, above threadPercent so it
   * can burst into idle SMs. Absent: equal to threadPercent (and on decisions recorded before).
   */
  threadCeilingPercent?: number;
  memoryLimitMiB: number;
  priority: Priority;
  /** Age of the GPU's sample when decided, whole seconds. */
  metricsAgeSeconds: number;
  /** Number of GPUs looked at. */
  considered: number;
  /** One short sentence a person can read: why this GPU. */
  reason: string;
}

/** A refusal: nothing fits. */
export interface SlotRefusal {
  ok: false;
  /** 'no-fit': GPUs exist but none fits; 'no-metrics': nothing fresh to decide on. */
  code: 'no-fit' | 'no-metrics';
  /** Actionable sentence, e.g. "no GPU fits 8Gi: 16 considered, 9 short of memory (best: node-a GPU 3, 6.1Gi free), 4 stale, 3 MIG". */
  reason: string;
  considered: number;
  /** How many GPUs were excluded for each reason. */
  excluded: Partial<Record<Exclusion, number>>;
}

export type SlotDecision = SlotChoice | SlotRefusal;

export const ReservationState = { Pending: 'pending', Confirmed: 'confirmed' } as const;
export type ReservationState = (typeof ReservationState)[keyof typeof ReservationState];

/** Capacity held on one GPU for one pod. */
export interface Reservation {
  id: string;
  podKey: string;
  node: string;
  gpuUuid: string;
  memoryMiB: number;
  /** Compute share reserved (what the budgets count). */
  threadPercent: number;
  /** MPS limit the pod runs under, when above threadPercent (informational: never counted). */
  threadCeilingPercent?: number;
  priority: Priority;
  state: ReservationState;
  createdAtMs: number;
  /** Pending reservations expire at this time unless confirmed (the pod never appeared). */
  expiresAtMs: number | null;
  /**
   * Since when every GPU container of the pod has been running without a restart, epoch ms,
   * from the pod watch's container statuses; null (or absent) while the pod is pending,
   * unscheduled, pulling images, crash-looping or restarting. Placement takes the reservation
   * as visible in a GPU sample only once its pod has been running for the warm-up period
   * (`placement.observeAfterRunningSeconds`) before that sample was taken.
   */
  runningSinceMs?: number | null;
  /** UID of the pod the reservation was confirmed for (set by the pod watch); only that pod's end releases it. */
  podUid?: string;
}

/**
 * How much a replica prefers each GPU, added to the GPU's placement score (which lies in
 * [-1, 2] before the hot penalty). Used when several replicas place pods on one fleet
 * (placement/replicaPreference.ts): whole steps rank tiers of GPUs, tiny fractions order GPUs
 * of equal score. Null or absent: no preference.
 */
export interface GpuPreference {
  /** The score to add to each GPU of `gpus`, by position (cheap to call again for the same array). */
  scoresFor(gpus: readonly GpuSample[]): ArrayLike<number>;
}

/** What placement reads from the ledger. */
export interface LedgerView {
  /** Live (pending or confirmed, not expired at nowMs) reservations on a GPU. */
  onGpu(gpuUuid: string, nowMs: number): readonly Reservation[];
}
