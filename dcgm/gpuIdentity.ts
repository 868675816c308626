/**
 * What an exporter may say about a GPU's identity and size, checked before it reaches
 * placement: a UUID ends up in NVIDIA_VISIBLE_DEVICES, a node name in a nodeSelector, and
 * memory figures decide how much is granted. Pure: no I/O.
 */

const HEX_UUID = '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}';

/** NVIDIA's GPU UUID, as nvidia-smi -L and DCGM print it: `GPU-` and a hex UUID. */
const GPU_UUID = new RegExp(`^GPU-${HEX_UUID}$`);

/** A MIG device: `MIG-<uuid>` (R470 and later) or `MIG-GPU-<uuid>/<gi>/<ci>` (earlier drivers). */
const MIG_UUID = new RegExp(`^MIG-(?:${HEX_UUID}|GPU-${HEX_UUID}/\\d{1,3}/\\d{1,3})$`);

/** A physical GPU's UUID. "all", "none", "GPU-1,GPU-2" and anything else that is not one UUID fail. */
export const isGpuUuid = (s: string): boolean => GPU_UUID.test(s);

/** A MIG device's UUID. */
export const isMigUuid = (s: string): boolean => MIG_UUID.test(s);

/** DNS-1123 subdomain, as Kubernetes requires of node names. */
const DNS_SUBDOMAIN = /^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$/;
const MAX_NODE_NAME = 253;

/** Whether `s` can be a Kubernetes node name (a DNS-1123 subdomain of at most 253 characters). */
export const isNodeName = (s: string): boolean => s.length > 0 && s.length <= MAX_NODE_NAME && DNS_SUBDOMAIN.test(s);

/**
 * No GPU has more memory than this (MiB). The largest shipping parts hold 288 GB; a figure
 * above 1 TiB is not a reading.
 */
export const MAX_GPU_MEMORY_MIB = 1024 * 1024;

/** Model names state their memory in GB ("NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-40GB"); this much over it is allowed. */
const MODEL_MEMORY_SLACK = 1.05;
const MODEL_MEMORY = /(?:^|[^0-9])(\d{1,4})\s?GB(?![a-zA-Z])/;

/**
 * The most memory (MiB) a GPU of this model can report: what its name states, with 5%
 * slack (an "80GB" H100 has 81,559 MiB, an "80GB" A100 81,920 MiB), else MAX_GPU_MEMORY_MIB.
 */
export function memoryCeilingMiB(model: string): number {
  const stated = MODEL_MEMORY.exec(model);
  const gb = stated ? Number(stated[1]) : 0;
  return gb > 0 ? Math.min(MAX_GPU_MEMORY_MIB, Math.ceil(gb * 1024 * MODEL_MEMORY_SLACK)) : MAX_GPU_MEMORY_MIB;
}

const EXCERPT_CHARS = 80;

/** A value from outside, quoted and cut for a message: never echo a megabyte back. */
export function quoteExcerpt(s: string): string {
  return JSON.stringify(s.length > EXCERPT_CHARS ? `${s.slice(0, EXCERPT_CHARS)}...` : s);
}
