/**
 * The typed GPU inventory that DCGM ingestion produces and placement consumes.
 * Pure data: no I/O here.
 */

/** Memory figures of one GPU in MiB, as dcgm-exporter reports them. */
export interface GpuMemory {
  /** free + used + reserved (dcgm-exporter has no FB_TOTAL by default). */
  totalMiB: number;
  usedMiB: number;
  freeMiB: number;
  reservedMiB: number;
}

/** A workload that the exporter's Kubernetes mapping attributes to a GPU. */
export interface GpuPodRef {
  namespace: string;
  pod: string;
  container: string;
}

/** One physical GPU as last sampled. */
export interface GpuSample {
  /** Kubernetes node name (scrape target's node first, host label second). */
  node: string;
  /** GPU UUID, e.g. "GPU-c4529c8d-...". The stable identity of a GPU. */
  uuid: string;
  /** Ordinal of the GPU on its node (the exporter's `gpu` label). */
  index: number;
  /** The exporter's `modelName`, e.g. "NVIDIA H100 80GB HBM3". */
  model: string;
  pciBusId: string | null;
  /** null when the exporter publishes no DCGM_FI_DEV_FB_* series for this GPU. */
  memory: GpuMemory | null;
  /** DCGM_FI_DEV_GPU_UTIL, percent 0..100; null when absent. */
  utilPercent: number | null;
  /** DCGM_FI_PROF_SM_ACTIVE, ratio 0..1; null when absent. */
  smActive: number | null;
  /** DCGM_FI_PROF_GR_ENGINE_ACTIVE, ratio 0..1; null when absent. */
  grEngineActive: number | null;
  /** DCGM_FI_DEV_XID_ERRORS: last XID number, 0 = none. */
  xid: number;
  /** True when any series of this GPU carries GPU_I_PROFILE / GPU_I_ID (MIG is enabled). */
  mig: boolean;
  /** When this sample was taken, epoch milliseconds. */
  sampledAtMs: number;
  /** Pods the exporter maps to this GPU (Kubernetes mapping on). */
  pods: GpuPodRef[];
}

/** What is known of a node apart from its GPUs (filled by the cluster adapter; optional offline). */
export interface NodeState {
  name: string;
  /** false when cordoned (spec.unschedulable) or not Ready. */
  schedulable: boolean;
  /** Why it is not schedulable, for refusal messages ("cordoned", "NotReady"). */
  unschedulableReason?: string;
  labels: Record<string, string>;
  /** False when no MPS control-daemon pod is Ready on the node; absent when not checked (cluster.mpsDaemon.required off, or no pod watch). */
  mpsDaemonReady?: boolean;
}

/** Why a GPU was left out of an inventory: its exporter's data about it cannot be trusted. */
export const GpuExclusion = {
  /** The UUID label is not one NVIDIA GPU UUID ("all", "none", "GPU-1,GPU-2", ...). */
  InvalidUuid: 'invalid-uuid',
  /** No UUID label: the GPU cannot be named in NVIDIA_VISIBLE_DEVICES. */
  MissingUuid: 'missing-uuid',
  /** The node is not a Kubernetes node name (DNS-1123 subdomain, at most 253 characters). */
  InvalidNode: 'invalid-node',
  /** One UUID on two nodes, ordinals, bus IDs or models, or two UUIDs on one node and ordinal. */
  ConflictingSeries: 'conflicting-series',
  /** Memory figures the GPU cannot have: negative, above its total or above what its model holds. */
  ImplausibleMemory: 'implausible-memory',
} as const;
export type GpuExclusion = (typeof GpuExclusion)[keyof typeof GpuExclusion];

export const gpuExclusions: readonly GpuExclusion[] = Object.values(GpuExclusion);

/** Counts of what ingestion had to distrust, for logs and metrics. */
export interface IngestionFaults {
  /** GPUs left out of the inventory, by reason (each GPU counted once, under its first reason). */
  excludedGpus: Record<GpuExclusion, number>;
  /** Well-formed UUIDs among the excluded GPUs: their earlier samples must not stand in for them. */
  excludedUuids: string[];
  /** GPUs whose sample time lay ahead of the time the data was received (more than a second); clamped to it. */
  clockSkewedGpus: number;
  /** The largest such lead, seconds (0 when none). */
  maxClockSkewSeconds: number;
}

export const noIngestionFaults = (): IngestionFaults => ({
  excludedGpus: Object.fromEntries(gpuExclusions.map((r) => [r, 0])) as Record<GpuExclusion, number>,
  excludedUuids: [],
  clockSkewedGpus: 0,
  maxClockSkewSeconds: 0,
});

/** Sum of two fault counts (several scrape targets, or a refresh on top of a fetch). */
export function addIngestionFaults(a: IngestionFaults, b: IngestionFaults): IngestionFaults {
  const excludedGpus = { ...a.excludedGpus };
  for (const r of gpuExclusions) excludedGpus[r] += b.excludedGpus[r];
  return {
    excludedGpus,
    excludedUuids: b.excludedUuids.length === 0 ? a.excludedUuids : [...a.excludedUuids, ...b.excludedUuids],
    clockSkewedGpus: a.clockSkewedGpus + b.clockSkewedGpus,
    maxClockSkewSeconds: Math.max(a.maxClockSkewSeconds, b.maxClockSkewSeconds),
  };
}

/** Total of the excluded GPUs. */
export const excludedGpuCount = (faults: IngestionFaults | undefined): number =>
  faults === undefined ? 0 : gpuExclusions.reduce((n, r) => n + faults.excludedGpus[r], 0);

export interface GpuInventory {
  gpus: GpuSample[];
  /** Node facts by node name. A node absent here is treated as schedulable. */
  nodes: Record<string, NodeState>;
  /** Where the data came from, for logs ("file:/x.prom", "exporters:3/3", "prometheus:http://..."). */
  source: string;
  /** When the source last produced this inventory, epoch ms. */
  fetchedAtMs: number;
  /** Lines or series skipped as malformed while building this inventory. */
  skippedLines: number;
  /** Human-readable problems met while building it (an exporter that timed out, ...). */
  problems: string[];
  /** What the sources had to distrust (absent: nothing, or a source that does not count). */
  faults?: IngestionFaults;
}

export const emptyInventory = (nowMs: number, source = 'none'): GpuInventory => ({
  gpus: [],
  nodes: {},
  source,
  fetchedAtMs: nowMs,
  skippedLines: 0,
  problems: [],
});
