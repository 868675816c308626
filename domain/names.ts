/**
 * The user-facing names of mps-injector: annotations, labels, env variables, and the
 * names of what the webhook adds to a pod. Stable: users, the Helm chart and tests rely on them.
 */

export const ANNOTATION_PREFIX = 'mps-injector.io/';

/** Pod annotations. The first six and the placement hints a user may set; the rest the webhook writes. */
export const Annotation = {
  /** User: Kubernetes quantity of pinned GPU memory ("8Gi"). */
  GpuMemory: 'mps-injector.io/gpu-memory',
  /** User: compute share asked for, integer 1..100. */
  GpuPercent: 'mps-injector.io/gpu-percent',
  /** User: ceiling on the compute share the pod may use when SMs are idle, integer 1..100, at least gpu-percent. */
  GpuPercentLimit: 'mps-injector.io/gpu-percent-limit',
  /** User: comma list of containers that get the GPU. The webhook writes back the list it injected. */
  Containers: 'mps-injector.io/containers',
  /** User: substring the GPU model must contain. */
  GpuModel: 'mps-injector.io/gpu-model',
  /** User: `high` or `low`. The webhook writes back the priority it applied. */
  Priority: 'mps-injector.io/priority',
  /** User hint: `binpack` or `spread`, this pod's placement policy instead of placement.policy. */
  Policy: 'mps-injector.io/policy',
  /** User hint: comma list of GPU UUIDs; only these GPUs are candidates. */
  GpuUuidIn: 'mps-injector.io/gpu-uuid-in',
  /** User hint: comma list of GPU UUIDs that are never candidates. */
  GpuUuidNotIn: 'mps-injector.io/gpu-uuid-not-in',
  Node: 'mps-injector.io/node',
  GpuUuid: 'mps-injector.io/gpu-uuid',
  GpuIndex: 'mps-injector.io/gpu-index',
  ThreadPercent: 'mps-injector.io/thread-percent',
  /** MPS limit granted (CUDA_MPS_ACTIVE_THREAD_PERCENTAGE) when above thread-percent; absent: the same. */
  ThreadPercentLimit: 'mps-injector.io/thread-percent-limit',
  /** Pinned memory limit granted, e.g. "8192Mi". */
  MemoryLimit: 'mps-injector.io/memory-limit',
  /** Id of the reservation held for the pod; its presence marks a pod as injected. */
  Reservation: 'mps-injector.io/reservation',
  MetricsAgeSeconds: 'mps-injector.io/metrics-age-seconds',
  /** One sentence: why this GPU. */
  Decision: 'mps-injector.io/decision',
} as const;
export type Annotation = (typeof Annotation)[keyof typeof Annotation];

export const Label = {
  /** Namespace label: `enabled` opts the namespace in. */
  NamespaceInjection: 'mps-injector.io/injection',
  /** Pod label: `false` opts the pod out. */
  PodInject: 'mps-injector.io/inject',
  /** Pod label the webhook writes (`true`) on every pod it injects, so the cluster watch selects only those pods. */
  Injected: 'mps-injector.io/injected',
} as const;
export type Label = (typeof Label)[keyof typeof Label];

/** MPS client env variables injected into each selected container. */
export const Env = {
  PipeDirectory: 'CUDA_MPS_PIPE_DIRECTORY',
  ThreadPercentage: 'CUDA_MPS_ACTIVE_THREAD_PERCENTAGE',
  PinnedMemLimit: 'CUDA_MPS_PINNED_DEVICE_MEM_LIMIT',
  VisibleDevices: 'NVIDIA_VISIBLE_DEVICES',
  ClientPriority: 'CUDA_MPS_CLIENT_PRIORITY',
} as const;
export type Env = (typeof Env)[keyof typeof Env];

/** Preferred names of the volumes the webhook adds (a free suffixed name is used when the pod owns one of these). */
export const VolumeName = {
  Pipe: 'mps-injector-pipe',
  Shm: 'mps-injector-shm',
} as const;
export type VolumeName = (typeof VolumeName)[keyof typeof VolumeName];

/** Name of the init container that waits for the node's MPS control daemon. */
export const INIT_CONTAINER_NAME = 'mps-injector-wait-mps';

/** Env of the init container (also available to a custom init command). */
export const InitEnv = {
  /** Container path of the MPS pipe directory. */
  Pipe: 'MPS_PIPE',
  /** Node path of the MPS pipe directory, for messages. */
  HostPipe: 'MPS_HOST_PIPE',
  /** Seconds to wait for the control pipe. */
  Timeout: 'MPS_TIMEOUT',
  /** Node the pod was placed on. */
  Node: 'MPS_NODE',
} as const;

/** Node label the webhook pins the pod with. */
export const HOSTNAME_LABEL = 'kubernetes.io/hostname';

/** Extended resource of the NVIDIA device plugin; a pod asking for it is left alone. */
export const NVIDIA_GPU_RESOURCE = 'nvidia.com/gpu';

/** Where the MPS daemon's shm directory is mounted in containers. */
export const SHM_MOUNT_PATH = '/dev/shm';
