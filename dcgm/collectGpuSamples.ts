/**
 * Turns dcgm-exporter series (from a text scrape or from Prometheus) into one GpuSample per
 * physical GPU. Pure: no I/O.
 */
import type { GpuMemory, GpuPodRef, GpuSample } from './inventory.js';
import { DcgmLabel, DcgmMetric, type PodLabelNames } from './dcgmNames.js';

/** One series as read from an exposition or a query result. */
export interface DcgmSeries {
  name: string;
  labels: Readonly<Record<string, string>>;
  /** A finite measurement (non-finite and blank values are dropped before this point). */
  value: number;
  /** The series' own timestamp in epoch ms, or null when the source carries none. */
  timestampMs: number | null;
}

export interface CollectGpuSamplesOptions {
  /** Node of the scrape target. When set it beats every label. */
  node?: string;
  /** Labels that name the node, most trusted first. */
  nodeLabels: readonly string[];
  /** Label names that attribute a series to a workload, most trusted first. */
  podLabels: readonly PodLabelNames[];
  /** Sample time of series that carry no timestamp (the scrape time), epoch ms. */
  fallbackTimeMs: number;
}

export interface CollectedGpus {
  gpus: GpuSample[];
  problems: string[];
}

/** FB_TOTAL may disagree with free + used + reserved by rounding; beyond this share it is reported. */
const FB_TOTAL_TOLERANCE = 0.01;

interface GpuAccumulator {
  uuid: string | null;
  node: string;
  index: number;
  model: string;
  pciBusId: string | null;
  mig: boolean;
  oldestMs: number;
  pods: Map<string, GpuPodRef>;
  /** Device-level readings (series without MIG instance labels), combined conservatively. */
  values: Partial<Record<DcgmMetric, number>>;
  xid: number;
}

const isDcgmMetric = (name: string): name is DcgmMetric =>
  name === DcgmMetric.FbFree ||
  name === DcgmMetric.FbUsed ||
  name === DcgmMetric.FbReserved ||
  name === DcgmMetric.FbTotal ||
  name === DcgmMetric.GpuUtil ||
  name === DcgmMetric.SmActive ||
  name === DcgmMetric.GrEngineActive ||
  name === DcgmMetric.XidErrors;

/**
 * Several series can describe one device reading (one per pod when the Kubernetes mapping
 * is on). They should agree; when they do not, keep the reading that is safer for
 * placement: the least free memory, the most of everything else.
 */
function combine(metric: DcgmMetric, previous: number | undefined, next: number): number {
  if (previous === undefined) return next;
  return metric === DcgmMetric.FbFree ? Math.min(previous, next) : Math.max(previous, next);
}

function gpuIndexOf(labels: Readonly<Record<string, string>>): number | null {
  const text = labels[DcgmLabel.Gpu];
  if (text === undefined || !/^\d+$/.test(text)) return null;
  return Number(text);
}

function nodeOf(labels: Readonly<Record<string, string>>, opts: CollectGpuSamplesOptions): string | null {
  if (opts.node) return opts.node;
  for (const name of opts.nodeLabels) {
    const value = labels[name];
    if (value) return value;
  }
  return null;
}

function podOf(labels: Readonly<Record<string, string>>, podLabels: readonly PodLabelNames[]): GpuPodRef | null {
  for (const names of podLabels) {
    const pod = labels[names.pod];
    if (pod) return { namespace: labels[names.namespace] ?? '', pod, container: labels[names.container] ?? '' };
  }
  return null;
}

function memoryOf(gpu: GpuAccumulator, problems: string[]): GpuMemory | null {
  const free = gpu.values[DcgmMetric.FbFree];
  const used = gpu.values[DcgmMetric.FbUsed];
  const reservedSeries = gpu.values[DcgmMetric.FbReserved];
  const totalSeries = gpu.values[DcgmMetric.FbTotal];
  if (used === undefined || (free === undefined && totalSeries === undefined)) return null;

  let reservedMiB: number;
  let freeMiB: number;
  if (free !== undefined) {
    freeMiB = free;
    // Older exporters have no FB_RESERVED; FB_TOTAL (when exported) tells what is unaccounted for.
    reservedMiB = reservedSeries ?? (totalSeries !== undefined ? Math.max(0, totalSeries - free - used) : 0);
  } else {
    reservedMiB = reservedSeries ?? 0;
    freeMiB = Math.max(0, (totalSeries ?? 0) - used - reservedMiB);
  }
  const totalMiB = freeMiB + used + reservedMiB;
  if (totalSeries !== undefined && Math.abs(totalSeries - totalMiB) > totalSeries * FB_TOTAL_TOLERANCE) {
    problems.push(
      `${describeGpu(gpu)}: DCGM_FI_DEV_FB_TOTAL is ${totalSeries} MiB but free + used + reserved is ${totalMiB} MiB; ` +
        'using free + used + reserved. Check that the FB series come from one exporter sample.',
    );
  }
  return { totalMiB, usedMiB: used, freeMiB, reservedMiB };
}

function describeGpu(gpu: GpuAccumulator): string {
  return `node ${gpu.node} GPU ${gpu.index}${gpu.uuid ? ` (${gpu.uuid})` : ''}`;
}

/** Group series per GPU (by UUID, else node + index) and read each GPU's figures. */
export function collectGpuSamples(series: Iterable<DcgmSeries>, opts: CollectGpuSamplesOptions): CollectedGpus {
  const byKey = new Map<string, GpuAccumulator>();
  let withoutNode = 0;
  let firstWithoutNode = '';

  for (const s of series) {
    if (!s.name.startsWith('DCGM_')) continue;
    const labels = s.labels;
    const index = gpuIndexOf(labels);
    // Series of other entities (NVSwitch, CPU, ...) carry no GPU ordinal.
    if (index === null) continue;
    const node = nodeOf(labels, opts);
    if (node === null) {
      if (withoutNode++ === 0) firstWithoutNode = s.name;
      continue;
    }
    const uuid = labels[DcgmLabel.Uuid] || null;
    const key = uuid ?? `${node}/gpu${index}`;
    const timeMs = s.timestampMs ?? opts.fallbackTimeMs;

    let gpu = byKey.get(key);
    if (gpu === undefined) {
      gpu = {
        uuid,
        node,
        index,
        model: '',
        pciBusId: null,
        mig: false,
        oldestMs: timeMs,
        pods: new Map(),
        values: {},
        xid: 0,
      };
      byKey.set(key, gpu);
    } else if (timeMs < gpu.oldestMs) {
      gpu.oldestMs = timeMs;
    }
    if (!gpu.model) gpu.model = labels[DcgmLabel.ModelName] ?? '';
    if (gpu.pciBusId === null) gpu.pciBusId = labels[DcgmLabel.PciBusId] || null;

    const pod = podOf(labels, opts.podLabels);
    if (pod !== null) {
      const podKey = `${pod.namespace}/${pod.pod}/${pod.container}`;
      if (!gpu.pods.has(podKey)) gpu.pods.set(podKey, pod);
    }

    const migInstance = labels[DcgmLabel.MigProfile] !== undefined || labels[DcgmLabel.MigInstanceId] !== undefined;
    if (migInstance) gpu.mig = true;
    if (s.name === DcgmMetric.XidErrors) {
      // An XID on any instance is a fault of the physical GPU.
      gpu.xid = Math.max(gpu.xid, s.value);
      continue;
    }
    // Per-instance readings describe a MIG slice, not the device.
    if (migInstance) continue;
    if (isDcgmMetric(s.name)) gpu.values[s.name] = combine(s.name, gpu.values[s.name], s.value);
  }

  const problems: string[] = [];
  if (withoutNode > 0) {
    problems.push(
      `${withoutNode} DCGM series (first: ${firstWithoutNode}) name no node: they have no Hostname/hostname label and ` +
        'the scrape target has no node. Set NODE_NAME on the exporter or give the target its node.',
    );
  }

  const gpus: GpuSample[] = [];
  const withoutMemory: string[] = [];
  for (const [key, gpu] of byKey) {
    const memory = memoryOf(gpu, problems);
    if (memory === null && !gpu.mig) withoutMemory.push(`${gpu.node}/${gpu.index}`);
    if (gpu.uuid === null) {
      problems.push(
        `${describeGpu(gpu)} has no UUID label; it is identified as "${key}" and cannot be selected by UUID. ` +
          'Check the exporter version and its label configuration.',
      );
    }
    gpus.push({
      node: gpu.node,
      uuid: gpu.uuid ?? key,
      index: gpu.index,
      model: gpu.model,
      pciBusId: gpu.pciBusId,
      memory,
      utilPercent: gpu.values[DcgmMetric.GpuUtil] ?? null,
      smActive: gpu.values[DcgmMetric.SmActive] ?? null,
      grEngineActive: gpu.values[DcgmMetric.GrEngineActive] ?? null,
      xid: gpu.xid,
      mig: gpu.mig,
      sampledAtMs: gpu.oldestMs,
      pods: [...gpu.pods.values()],
    });
  }
  if (withoutMemory.length > 0) {
    const shown = withoutMemory.slice(0, 4).join(', ') + (withoutMemory.length > 4 ? ', ...' : '');
    problems.push(
      `${withoutMemory.length} GPU(s) report no DCGM_FI_DEV_FB_FREE/FB_USED series (${shown}), so their memory is unknown ` +
        'and placement cannot use them. Add DCGM_FI_DEV_FB_FREE, DCGM_FI_DEV_FB_USED and DCGM_FI_DEV_FB_RESERVED to the exporter\'s counters.',
    );
  }
  gpus.sort(compareGpus);
  return { gpus, problems };
}

/** Deterministic order: node name, then GPU ordinal, then UUID. */
export function compareGpus(a: GpuSample, b: GpuSample): number {
  if (a.node !== b.node) return a.node < b.node ? -1 : 1;
  if (a.index !== b.index) return a.index - b.index;
  return a.uuid < b.uuid ? -1 : a.uuid > b.uuid ? 1 : 0;
}
