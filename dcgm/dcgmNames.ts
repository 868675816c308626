/**
 * Names dcgm-exporter uses: the metric families this project reads and the labels it
 * puts on every series. Shared by the text parser, the renderer and the Prometheus source.
 */

/** Metric families that feed a GpuSample. */
export const DcgmMetric = {
  FbFree: 'DCGM_FI_DEV_FB_FREE',
  FbUsed: 'DCGM_FI_DEV_FB_USED',
  FbReserved: 'DCGM_FI_DEV_FB_RESERVED',
  FbTotal: 'DCGM_FI_DEV_FB_TOTAL',
  GpuUtil: 'DCGM_FI_DEV_GPU_UTIL',
  SmActive: 'DCGM_FI_PROF_SM_ACTIVE',
  GrEngineActive: 'DCGM_FI_PROF_GR_ENGINE_ACTIVE',
  XidErrors: 'DCGM_FI_DEV_XID_ERRORS',
} as const;
export type DcgmMetric = (typeof DcgmMetric)[keyof typeof DcgmMetric];

export const dcgmMetricNames: readonly DcgmMetric[] = Object.values(DcgmMetric);

/** Labels of a dcgm-exporter series. */
export const DcgmLabel = {
  Gpu: 'gpu',
  Uuid: 'UUID',
  PciBusId: 'pci_bus_id',
  Device: 'device',
  ModelName: 'modelName',
  /** Host label of released exporter versions. */
  HostnameUpper: 'Hostname',
  /** Host label of newer exporter builds. */
  HostnameLower: 'hostname',
  DriverVersion: 'DCGM_FI_DRIVER_VERSION',
  MigProfile: 'GPU_I_PROFILE',
  MigInstanceId: 'GPU_I_ID',
  Container: 'container',
  Namespace: 'namespace',
  Pod: 'pod',
  PodUid: 'pod_uid',
} as const;

/** Where a series names the pod it belongs to (Kubernetes mapping on). */
export interface PodLabelNames {
  pod: string;
  namespace: string;
  container: string;
}

export const exporterPodLabels: PodLabelNames = {
  pod: DcgmLabel.Pod,
  namespace: DcgmLabel.Namespace,
  container: DcgmLabel.Container,
};

/**
 * Prometheus renames an exporter's `pod`/`namespace`/`container` to `exported_*` when the
 * scrape adds target labels of the same names (honor_labels: false).
 */
export const prometheusExportedPodLabels: PodLabelNames = {
  pod: 'exported_pod',
  namespace: 'exported_namespace',
  container: 'exported_container',
};

/**
 * DCGM marks a field it has no reading for with "blank" sentinels. Values in these ranges
 * are not measurements.
 */
export function isDcgmBlank(value: number): boolean {
  // DCGM_INT32_BLANK .. DCGM_INT32_NOT_SUPPORTED range, and everything from DCGM_FP64_BLANK up
  // (the int64 blanks are larger still).
  return (value >= 0x7ffffff0 && value <= 0x7fffffff) || value >= 140737488355328;
}
