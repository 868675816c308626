/**
 * Turns dcgm-exporter series (from a text scrape or from Prometheus) into one GpuSample per
 * physical GPU. Pure: no I/O.
 */
import type { GpuMemory, GpuPodRef, GpuSample } from './inventory.js';
import { DcgmLabel, DcgmMetric, type PodLabelNames } from './dcgmNames.js';

export type SeriesLabels = Readonly<Record<string, string>>;

/** One series as read from an exposition or a query result. */
export interface DcgmSeries {
  name: string;
  labels: SeriesLabels;
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

/** Slots of the device readings a GPU keeps. */
const Reading = { FbFree: 0, FbUsed: 1, FbReserved: 2, FbTotal: 3, GpuUtil: 4, SmActive: 5, GrEngineActive: 6 } as const;
type Reading = (typeof Reading)[keyof typeof Reading];
const READINGS = 7;

function readingOf(name: string): Reading | null {
  switch (name) {
    case DcgmMetric.FbFree:
      return Reading.FbFree;
    case DcgmMetric.FbUsed:
      return Reading.FbUsed;
    case DcgmMetric.FbReserved:
      return Reading.FbReserved;
    case DcgmMetric.FbTotal:
      return Reading.FbTotal;
    case DcgmMetric.GpuUtil:
      return Reading.GpuUtil;
    case DcgmMetric.SmActive:
      return Reading.SmActive;
    case DcgmMetric.GrEngineActive:
      return Reading.GrEngineActive;
    default:
      return null;
  }
}

interface GpuAccumulator {
  key: string;
  uuid: string | null;
  node: string;
  index: number;
  model: string;
  pciBusId: string | null;
  mig: boolean;
  oldestMs: number;
  pods: GpuPodRef[];
  /** Device-level readings (series without MIG instance labels) by Reading slot; NaN: none seen. */
  readings: number[];
  xid: number;
}

/** What a label set says: the GPU it belongs to and whether it names a MIG instance. */
interface SeriesPlace {
  gpu: GpuAccumulator;
  migInstance: boolean;
}
const NO_NODE = 'no-node';
type PlaceOrNot = SeriesPlace | typeof NO_NODE | null;

function gpuIndexOf(labels: SeriesLabels): number | null {
  const text = labels[DcgmLabel.Gpu];
  if (text === undefined || !/^\d+$/.test(text)) return null;
  return Number(text);
}

function podOf(labels: SeriesLabels, podLabels: readonly PodLabelNames[]): GpuPodRef | null {
  for (const names of podLabels) {
    const pod = labels[names.pod];
    if (pod) return { namespace: labels[names.namespace] ?? '', pod, container: labels[names.container] ?? '' };
  }
  return null;
}

function describeGpu(gpu: GpuAccumulator): string {
  return `node ${gpu.node} GPU ${gpu.index}${gpu.uuid ? ` (${gpu.uuid})` : ''}`;
}

const present = (n: number | undefined): n is number => n !== undefined && !Number.isNaN(n);

function memoryOf(gpu: GpuAccumulator, problems: string[]): GpuMemory | null {
  const free = gpu.readings[Reading.FbFree];
  const used = gpu.readings[Reading.FbUsed];
  const reservedSeries = gpu.readings[Reading.FbReserved];
  const totalSeries = gpu.readings[Reading.FbTotal];
  if (!present(used) || (!present(free) && !present(totalSeries))) return null;

  let reservedMiB: number;
  let freeMiB: number;
  if (present(free)) {
    freeMiB = free;
    // Older exporters have no FB_RESERVED; FB_TOTAL (when exported) tells what is unaccounted for.
    reservedMiB = present(reservedSeries) ? reservedSeries : present(totalSeries) ? Math.max(0, totalSeries - free - used) : 0;
  } else {
    reservedMiB = present(reservedSeries) ? reservedSeries : 0;
    freeMiB = Math.max(0, (totalSeries ?? 0) - used - reservedMiB);
  }
  const totalMiB = freeMiB + used + reservedMiB;
  if (present(totalSeries) && Math.abs(totalSeries - totalMiB) > totalSeries * FB_TOTAL_TOLERANCE) {
    problems.push(
      `${describeGpu(gpu)}: DCGM_FI_DEV_FB_TOTAL is ${totalSeries} MiB but free + used + reserved is ${totalMiB} MiB; ` +
        'using free + used + reserved. Check that the FB series come from one exporter sample.',
    );
  }
  return { totalMiB, usedMiB: used, freeMiB, reservedMiB };
}

const orNull = (n: number | undefined): number | null => (present(n) ? n : null);

/**
 * Groups series per GPU (by UUID, else node + index) as they are read, and turns each GPU's
 * readings into a GpuSample at the end. Series are added one by one so that a large scrape
 * never has to be held as series objects.
 */
export class GpuSampleCollector {
  private readonly byKey = new Map<string, GpuAccumulator>();
  /** Series that share a label set object (one per metric family) share their GPU. */
  private readonly places = new Map<SeriesLabels, PlaceOrNot>();
  private withoutNode = 0;
  private firstWithoutNode = '';

  constructor(private readonly opts: CollectGpuSamplesOptions) {}

  /** Take one series. Series that are not DCGM GPU series are ignored. */
  add(name: string, labels: SeriesLabels, value: number, timestampMs: number | null): void {
    if (!name.startsWith('DCGM_')) return;
    let place = this.places.get(labels);
    if (place === undefined) {
      place = this.placeOf(labels);
      this.places.set(labels, place);
    }
    // Series of other entities (NVSwitch, CPU, ...) carry no GPU ordinal.
    if (place === null) return;
    if (place === NO_NODE) {
      if (this.withoutNode++ === 0) this.firstWithoutNode = name;
      return;
    }
    const gpu = place.gpu;
    const timeMs = timestampMs ?? this.opts.fallbackTimeMs;
    if (timeMs < gpu.oldestMs) gpu.oldestMs = timeMs;
    if (place.migInstance) gpu.mig = true;
    if (name === DcgmMetric.XidErrors) {
      // An XID on any instance is a fault of the physical GPU.
      if (value > gpu.xid) gpu.xid = value;
      return;
    }
    // Per-instance readings describe a MIG slice, not the device.
    if (place.migInstance) return;
    const slot = readingOf(name);
    if (slot === null) return;
    const previous = gpu.readings[slot] as number;
    // Several series can carry one device reading (one per pod when the Kubernetes mapping is
    // on). They should agree; when they do not, keep the reading that is safer for placement:
    // the least free memory, the most of everything else.
    if (Number.isNaN(previous)) gpu.readings[slot] = value;
    else gpu.readings[slot] = slot === Reading.FbFree ? Math.min(previous, value) : Math.max(previous, value);
  }

  /** The GPUs seen so far, in node / ordinal order, and what was wrong with them. */
  finish(): CollectedGpus {
    const problems: string[] = [];
    if (this.withoutNode > 0) {
      problems.push(
        `${this.withoutNode} DCGM series (first: ${this.firstWithoutNode}) name no node: they have no ` +
          `${this.opts.nodeLabels.join('/')} label and the scrape target has no node. ` +
          'Set NODE_NAME on the exporter or give the target its node.',
      );
    }
    const gpus: GpuSample[] = [];
    const withoutMemory: string[] = [];
    for (const gpu of this.byKey.values()) {
      const memory = memoryOf(gpu, problems);
      if (memory === null && !gpu.mig) withoutMemory.push(`${gpu.node}/${gpu.index}`);
      if (gpu.uuid === null) {
        problems.push(
          `${describeGpu(gpu)} has no UUID label; it is identified as "${gpu.key}" and cannot be selected by UUID. ` +
            'Check the exporter version and its label configuration.',
        );
      }
      gpus.push({
        node: gpu.node,
        uuid: gpu.uuid ?? gpu.key,
        index: gpu.index,
        model: gpu.model,
        pciBusId: gpu.pciBusId,
        memory,
        utilPercent: orNull(gpu.readings[Reading.GpuUtil]),
        smActive: orNull(gpu.readings[Reading.SmActive]),
        grEngineActive: orNull(gpu.readings[Reading.GrEngineActive]),
        xid: gpu.xid,
        mig: gpu.mig,
        sampledAtMs: gpu.oldestMs,
        pods: gpu.pods,
      });
    }
    if (withoutMemory.length > 0) {
      const shown = withoutMemory.slice(0, 4).join(', ') + (withoutMemory.length > 4 ? ', ...' : '');
      problems.push(
        `${withoutMemory.length} GPU(s) report no DCGM_FI_DEV_FB_FREE/FB_USED series (${shown}), so their memory is unknown ` +
          "and placement cannot use them. Add DCGM_FI_DEV_FB_FREE, DCGM_FI_DEV_FB_USED and DCGM_FI_DEV_FB_RESERVED to the exporter's counters.",
      );
    }
    gpus.sort(compareGpus);
    return { gpus, problems };
  }

  /** Find (or start) the GPU a label set belongs to. */
  private placeOf(labels: SeriesLabels): PlaceOrNot {
    const index = gpuIndexOf(labels);
    if (index === null) return null;
    const node = this.nodeOf(labels);
    if (node === null) return NO_NODE;
    const uuid = labels[DcgmLabel.Uuid] || null;
    const key = uuid ?? `${node}/gpu${index}`;
    let gpu = this.byKey.get(key);
    if (gpu === undefined) {
      gpu = {
        key,
        uuid,
        node,
        index,
        model: '',
        pciBusId: null,
        mig: false,
        oldestMs: Infinity,
        pods: [],
        readings: new Array<number>(READINGS).fill(NaN),
        xid: 0,
      };
      this.byKey.set(key, gpu);
    }
    if (!gpu.model) gpu.model = labels[DcgmLabel.ModelName] ?? '';
    if (gpu.pciBusId === null) gpu.pciBusId = labels[DcgmLabel.PciBusId] || null;
    const pod = podOf(labels, this.opts.podLabels);
    if (pod !== null && !gpu.pods.some((p) => p.pod === pod.pod && p.namespace === pod.namespace && p.container === pod.container)) {
      gpu.pods.push(pod);
    }
    const migInstance = labels[DcgmLabel.MigProfile] !== undefined || labels[DcgmLabel.MigInstanceId] !== undefined;
    return { gpu, migInstance };
  }

  private nodeOf(labels: SeriesLabels): string | null {
    if (this.opts.node) return this.opts.node;
    for (const name of this.opts.nodeLabels) {
      const value = labels[name];
      if (value) return value;
    }
    return null;
  }
}

/** Group series per GPU and read each GPU's figures (see GpuSampleCollector). */
export function collectGpuSamples(series: Iterable<DcgmSeries>, opts: CollectGpuSamplesOptions): CollectedGpus {
  const collector = new GpuSampleCollector(opts);
  for (const s of series) collector.add(s.name, s.labels, s.value, s.timestampMs);
  return collector.finish();
}

/** Deterministic order: node name, then GPU ordinal, then UUID. */
export function compareGpus(a: GpuSample, b: GpuSample): number {
  if (a.node !== b.node) return a.node < b.node ? -1 : 1;
  if (a.index !== b.index) return a.index - b.index;
  return a.uuid < b.uuid ? -1 : a.uuid > b.uuid ? 1 : 0;
}
