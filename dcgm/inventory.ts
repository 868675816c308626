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
}

export const emptyInventory = (nowMs: number, source = 'none'): GpuInventory => ({
  gpus: [],
  nodes: {},
  source,
  fetchedAtMs: nowMs,
  skippedLines: 0,
  problems: [],
});
