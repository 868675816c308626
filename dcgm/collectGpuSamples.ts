/**
 * Turns dcgm-exporter series (from a text scrape or from Prometheus) into one GpuSample per
 * physical GPU. Pure: no I/O.
 *
 * Exporter data is not trusted: a GPU whose UUID is not an NVIDIA GPU UUID, whose node is
 * not a node name, whose series disagree on who it is, or whose memory figures it cannot
 * have is left out and counted; sample times later than the data's arrival are clamped to
 * it. See ADR 0003.
 */
import {
  GpuExclusion,
  gpuExclusions,
  noIngestionFaults,
  type GpuMemory,
  type GpuPodRef,
  type GpuSample,
  type IngestionFaults,
} from '../domain/inventory.js';
import { DcgmLabel, DcgmMetric, type PodLabelNames } from './dcgmNames.js';
import { isGpuUuid, isMigUuid, isNodeName, memoryCeilingMiB, quoteExcerpt } from './gpuIdentity.js';

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
  /** When the data arrived, epoch ms: no sample time may lie after it (default: fallbackTimeMs). */
  receivedAtMs?: number;
}

export interface CollectedGpus {
  gpus: GpuSample[];
  problems: string[];
  faults: IngestionFaults;
}

/** FB_TOTAL may disagree with free + used + reserved by rounding; beyond this share it is reported. */
const FB_TOTAL_TOLERANCE = 0.01;

/**
 * Pods listed per GPU at most. MPS serves at most 48 clients a GPU, and each client holds at
 * most one reservation, so a GPU with this many pods is full whatever is reserved on it;
 * listing more only costs memory (and placement time).
 */
export const MAX_LISTED_PODS_PER_GPU = 128;

/** Label sets whose GPU is remembered at most; past it, a label set is placed again for each series. */
const MAX_REMEMBERED_LABEL_SETS = 65_536;

/** Sample times up to this far ahead of receipt are clamped without a word (clocks a little apart). */
export const CLOCK_SKEW_TOLERANCE_MS = 1000;

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

const memoryFamilies: Readonly<Partial<Record<Reading, string>>> = {
  [Reading.FbFree]: DcgmMetric.FbFree,
  [Reading.FbUsed]: DcgmMetric.FbUsed,
  [Reading.FbReserved]: DcgmMetric.FbReserved,
  [Reading.FbTotal]: DcgmMetric.FbTotal,
};

/** Why a GPU is left out, and the first example. */
interface Exclusion {
  reason: GpuExclusion;
  detail: string;
}

interface GpuAccumulator {
  uuid: string;
  node: string;
  index: number;
  model: string;
  pciBusId: string | null;
  mig: boolean;
  oldestMs: number;
  /** How far the latest sample time lay ahead of receipt, ms (0: none). */
  aheadMs: number;
  /** One entry per namespace/pod (the first container seen), at most MAX_LISTED_PODS_PER_GPU. */
  pods: GpuPodRef[];
  /** namespace/pod of `pods`, for a constant-time duplicate check. */
  podKeys: Set<string>;
  /** Pods not listed because the list was full. */
  unlistedPods: number;
  /** Device-level readings (series without MIG instance labels) by Reading slot; NaN: none seen. */
  readings: number[];
  xid: number;
  exclusion: Exclusion | null;
}

/** What a label set says: the GPU it belongs to and whether it names a MIG instance. */
interface SeriesPlace {
  gpu: GpuAccumulator;
  migInstance: boolean;
}
const NO_NODE = 'no-node';
/** Series of a GPU that is left out before it has an accumulator (no usable UUID). */
const REJECTED = 'rejected';
type PlaceOrNot = SeriesPlace | typeof NO_NODE | typeof REJECTED | null;

function gpuIndexOf(labels: SeriesLabels): number | null {
  const text = labels[DcgmLabel.Gpu];
  if (text === undefined || text.length > 4 || !/^\d+$/.test(text)) return null;
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
  return `node ${quoteExcerpt(gpu.node)} GPU ${gpu.index} (${gpu.uuid})`;
}

const present = (n: number | undefined): n is number => n !== undefined && !Number.isNaN(n);

/** What to check, per reason a GPU was left out. */
const exclusionAdvice: Record<GpuExclusion, string> = {
  'invalid-uuid':
    'a UUID label must be one NVIDIA GPU UUID (GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx), or it would reach NVIDIA_VISIBLE_DEVICES as it is; check what writes the exporter\'s labels',
  'missing-uuid': 'without a UUID label a GPU cannot be named in NVIDIA_VISIBLE_DEVICES; check the exporter version and its label configuration',
  'invalid-node':
    'a node name must be a DNS-1123 subdomain of at most 253 characters; set NODE_NAME on the exporter, or give the scrape target its node',
  'conflicting-series':
    'a GPU has one node, ordinal, bus ID and model; check for two exporters claiming one GPU, or relabelling that merges nodes',
  'implausible-memory': 'check the exporter: these are not readings the GPU can give',
};

const exclusionSubject: Record<GpuExclusion, string> = {
  'invalid-uuid': 'with a UUID label that is not an NVIDIA GPU UUID',
  'missing-uuid': 'without a UUID label',
  'invalid-node': 'on a node name that is not valid',
  'conflicting-series': 'whose series conflict',
  'implausible-memory': 'with memory figures the GPU cannot have',
};

/** One sentence per reason GPUs were left out, with the count, the first example and what to check. */
export function describeExclusions(counts: Readonly<Record<GpuExclusion, number>>, examples: ReadonlyMap<GpuExclusion, string>): string[] {
  const problems: string[] = [];
  for (const reason of gpuExclusions) {
    const count = counts[reason];
    if (count === 0) continue;
    const example = examples.get(reason);
    problems.push(`excluded ${count} GPU(s) ${exclusionSubject[reason]}${example ? ` (first: ${example})` : ''}; ${exclusionAdvice[reason]}`);
  }
  return problems;
}

/** The sentence for sample times that lay ahead of their arrival. */
export function describeClockSkew(gpus: number, maxAheadSeconds: number, first: string): string {
  return (
    `${gpus} GPU(s) carry sample times up to ${maxAheadSeconds.toFixed(0)} s ahead of when their data arrived (first: ${first}); ` +
    'their sample time is the time of arrival instead, so they still go stale when their source stops. ' +
    'Check the clock (NTP) of whatever stamped them: the exporter\'s node, Prometheus, or the writer of the dump file'
  );
}

/**
 * The GPU's memory, or why its figures cannot be true. Figures that understate what is
 * free (free + used + reserved below FB_TOTAL) are kept, with a problem.
 */
function memoryOf(gpu: GpuAccumulator, problems: string[]): GpuMemory | null | Exclusion {
  const implausible = (detail: string): Exclusion => ({ reason: GpuExclusion.ImplausibleMemory, detail: `${describeGpu(gpu)}: ${detail}` });
  for (const [slot, family] of Object.entries(memoryFamilies)) {
    const value = gpu.readings[Number(slot)];
    if (present(value) && value < 0) return implausible(`${family} is ${value} MiB`);
  }
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
  const ceilingMiB = memoryCeilingMiB(gpu.model);
  const held = gpu.model ? `a ${quoteExcerpt(gpu.model)} holds at most ${ceilingMiB} MiB` : `no GPU holds more than ${ceilingMiB} MiB`;
  if (present(totalSeries) && totalSeries > ceilingMiB) return implausible(`${DcgmMetric.FbTotal} is ${totalSeries} MiB, but ${held}`);
  if (totalMiB > ceilingMiB) return implausible(`free + used + reserved is ${totalMiB} MiB, but ${held}`);
  if (present(totalSeries) && totalMiB > totalSeries * (1 + FB_TOTAL_TOLERANCE)) {
    return implausible(`free + used + reserved is ${totalMiB} MiB, more than its ${DcgmMetric.FbTotal} of ${totalSeries} MiB`);
  }
  if (present(totalSeries) && totalMiB < totalSeries * (1 - FB_TOTAL_TOLERANCE)) {
    problems.push(
      `${describeGpu(gpu)}: ${DcgmMetric.FbTotal} is ${totalSeries} MiB but free + used + reserved is ${totalMiB} MiB; ` +
        'using free + used + reserved. Check that the FB series come from one exporter sample.',
    );
  }
  return { totalMiB, usedMiB: used, freeMiB, reservedMiB };
}

const orNull = (n: number | undefined): number | null => (present(n) ? n : null);

/**
 * Groups series per GPU (by UUID) as they are read, and turns each GPU's readings into a
 * GpuSample at the end. Series are added one by one so that a large scrape never has to be
 * held as series objects; every step per series is constant time, so a GPU with 20,000
 * per-pod series costs 20,000 steps.
 */
export class GpuSampleCollector {
  private readonly byUuid = new Map<string, GpuAccumulator>();
  /** The GPU each node and ordinal holds (device series only): two UUIDs there conflict. */
  private readonly bySlot = new Map<string, GpuAccumulator>();
  /** Series that share a label set object (one per metric family) share their GPU. */
  private readonly places = new Map<SeriesLabels, PlaceOrNot>();
  /** GPUs left out before they had an accumulator, by a key of what identified them. */
  private readonly rejected = new Map<string, GpuExclusion>();
  private readonly rejectedExamples = new Map<GpuExclusion, string>();
  private readonly receivedAtMs: number;
  private withoutNode = 0;
  private firstWithoutNode = '';

  constructor(private readonly opts: CollectGpuSamplesOptions) {
    this.receivedAtMs = opts.receivedAtMs ?? opts.fallbackTimeMs;
  }

  /**
   * Take one series. Series that are not DCGM GPU series are ignored. `shared`: the labels
   * object comes again with other series (a text scrape's label set), so its GPU is
   * remembered; a labels object of one series only is placed and forgotten.
   */
  add(name: string, labels: SeriesLabels, value: number, timestampMs: number | null, shared = true): void {
    if (!name.startsWith('DCGM_')) return;
    let place = shared ? this.places.get(labels) : undefined;
    if (place === undefined) {
      place = this.placeOf(labels);
      if (shared && this.places.size < MAX_REMEMBERED_LABEL_SETS) this.places.set(labels, place);
    }
    // Series of other entities (NVSwitch, CPU, ...) carry no GPU ordinal.
    if (place === null || place === REJECTED) return;
    if (place === NO_NODE) {
      if (this.withoutNode++ === 0) this.firstWithoutNode = name;
      return;
    }
    const gpu = place.gpu;
    let timeMs = timestampMs ?? this.opts.fallbackTimeMs;
    if (timeMs > this.receivedAtMs) {
      // Time from outside: a sample cannot have been taken after it arrived.
      if (timeMs - this.receivedAtMs > gpu.aheadMs) gpu.aheadMs = timeMs - this.receivedAtMs;
      timeMs = this.receivedAtMs;
    }
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

  /** The GPUs seen so far, in node / ordinal order, what was wrong with them, and what was left out. */
  finish(): CollectedGpus {
    const problems: string[] = [];
    if (this.withoutNode > 0) {
      problems.push(
        `${this.withoutNode} DCGM series (first: ${this.firstWithoutNode}) name no node: they have no ` +
          `${this.opts.nodeLabels.join('/')} label and the scrape target has no node. ` +
          'Set NODE_NAME on the exporter or give the target its node.',
      );
    }
    const faults = noIngestionFaults();
    for (const reason of this.rejected.values()) faults.excludedGpus[reason]++;
    const examples = new Map(this.rejectedExamples);
    const gpus: GpuSample[] = [];
    const withoutMemory: string[] = [];
    let firstSkewed = '';
    const crowded: string[] = [];
    for (const gpu of this.byUuid.values()) {
      const memory = gpu.exclusion === null ? memoryOf(gpu, problems) : null;
      const exclusion = gpu.exclusion ?? (memory !== null && 'reason' in memory ? memory : null);
      if (exclusion !== null) {
        faults.excludedGpus[exclusion.reason]++;
        faults.excludedUuids.push(gpu.uuid);
        if (!examples.has(exclusion.reason)) examples.set(exclusion.reason, exclusion.detail);
        continue;
      }
      const gpuMemory = memory as GpuMemory | null;
      if (gpu.unlistedPods > 0) crowded.push(describeGpu(gpu));
      if (gpuMemory === null && !gpu.mig) withoutMemory.push(`${gpu.node}/${gpu.index}`);
      if (gpu.aheadMs > CLOCK_SKEW_TOLERANCE_MS) {
        if (faults.clockSkewedGpus++ === 0) firstSkewed = describeGpu(gpu);
        faults.maxClockSkewSeconds = Math.max(faults.maxClockSkewSeconds, gpu.aheadMs / 1000);
      }
      gpus.push({
        node: gpu.node,
        uuid: gpu.uuid,
        index: gpu.index,
        model: gpu.model,
        pciBusId: gpu.pciBusId,
        memory: gpuMemory,
        utilPercent: orNull(gpu.readings[Reading.GpuUtil]),
        smActive: orNull(gpu.readings[Reading.SmActive]),
        grEngineActive: orNull(gpu.readings[Reading.GrEngineActive]),
        xid: gpu.xid,
        mig: gpu.mig,
        sampledAtMs: gpu.oldestMs,
        pods: gpu.pods,
      });
    }
    problems.push(...describeExclusions(faults.excludedGpus, examples));
    if (faults.clockSkewedGpus > 0) problems.push(describeClockSkew(faults.clockSkewedGpus, faults.maxClockSkewSeconds, firstSkewed));
    if (crowded.length > 0) {
      problems.push(
        `${crowded.length} GPU(s) (first: ${crowded[0]}) are mapped to more than ${MAX_LISTED_PODS_PER_GPU} pods; ` +
          'only the first are listed, and such a GPU counts as full. Check the exporter\'s Kubernetes mapping.',
      );
    }
    if (withoutMemory.length > 0) {
      const shown = withoutMemory.slice(0, 4).join(', ') + (withoutMemory.length > 4 ? ', ...' : '');
      problems.push(
        `${withoutMemory.length} GPU(s) report no DCGM_FI_DEV_FB_FREE/FB_USED series (${shown}), so their memory is unknown ` +
          "and placement cannot use them. Add DCGM_FI_DEV_FB_FREE, DCGM_FI_DEV_FB_USED and DCGM_FI_DEV_FB_RESERVED to the exporter's counters.",
      );
    }
    gpus.sort(compareGpus);
    return { gpus, problems, faults };
  }

  /** Leave out a GPU that has no accumulator; `key` makes each GPU count once. */
  private reject(reason: GpuExclusion, key: string, detail: () => string): typeof REJECTED {
    if (!this.rejected.has(key)) {
      this.rejected.set(key, reason);
      if (!this.rejectedExamples.has(reason)) this.rejectedExamples.set(reason, detail());
    }
    return REJECTED;
  }

  /** Find (or start) the GPU a label set belongs to, checking what it says against what is known. */
  private placeOf(labels: SeriesLabels): PlaceOrNot {
    const index = gpuIndexOf(labels);
    if (index === null) return null;
    const node = this.nodeOf(labels);
    if (node === null) return NO_NODE;
    const uuid = labels[DcgmLabel.Uuid] ?? '';
    const where = (): string => `node ${quoteExcerpt(node)} GPU ${index}`;
    if (uuid === '') return this.reject(GpuExclusion.MissingUuid, `missing\u0000${node}\u0000${index}`, where);
    const migDevice = isMigUuid(uuid);
    if (!migDevice && !isGpuUuid(uuid)) return this.reject(GpuExclusion.InvalidUuid, `uuid\u0000${uuid}`, () => `UUID ${quoteExcerpt(uuid)} on ${where()}`);

    const model = labels[DcgmLabel.ModelName] ?? '';
    const pciBusId = labels[DcgmLabel.PciBusId] || null;
    let gpu = this.byUuid.get(uuid);
    if (gpu === undefined) {
      gpu = {
        uuid,
        node,
        index,
        model,
        pciBusId,
        mig: migDevice,
        oldestMs: Infinity,
        aheadMs: 0,
        pods: [],
        podKeys: new Set(),
        unlistedPods: 0,
        readings: new Array<number>(READINGS).fill(NaN),
        xid: 0,
        exclusion: null,
      };
      this.byUuid.set(uuid, gpu);
      if (!isNodeName(node)) this.exclude(gpu, GpuExclusion.InvalidNode, `${where()} (${uuid})`);
    } else {
      const conflict =
        node !== gpu.node
          ? `on nodes ${quoteExcerpt(gpu.node)} and ${quoteExcerpt(node)}`
          : index !== gpu.index
            ? `as GPU ${gpu.index} and GPU ${index} of node ${quoteExcerpt(node)}`
            : pciBusId !== null && gpu.pciBusId !== null && pciBusId !== gpu.pciBusId
              ? `on PCI buses ${quoteExcerpt(gpu.pciBusId)} and ${quoteExcerpt(pciBusId)}`
              : model && gpu.model && model !== gpu.model
                ? `as models ${quoteExcerpt(gpu.model)} and ${quoteExcerpt(model)}`
                : null;
      if (conflict !== null) this.exclude(gpu, GpuExclusion.ConflictingSeries, `${uuid} ${conflict}`);
      if (!gpu.model) gpu.model = model;
      if (gpu.pciBusId === null) gpu.pciBusId = pciBusId;
    }
    const migInstance = labels[DcgmLabel.MigProfile] !== undefined || labels[DcgmLabel.MigInstanceId] !== undefined;
    if (!migInstance && !migDevice) {
      const slot = `${node}\u0000${index}`;
      const holder = this.bySlot.get(slot);
      if (holder === undefined) this.bySlot.set(slot, gpu);
      else if (holder !== gpu) {
        const detail = `${where()} reports UUIDs ${holder.uuid} and ${gpu.uuid}`;
        this.exclude(holder, GpuExclusion.ConflictingSeries, detail);
        this.exclude(gpu, GpuExclusion.ConflictingSeries, detail);
      }
    }
    const pod = podOf(labels, this.opts.podLabels);
    if (pod !== null) {
      const key = `${pod.namespace}\u0000${pod.pod}`;
      if (!gpu.podKeys.has(key)) {
        if (gpu.pods.length < MAX_LISTED_PODS_PER_GPU) {
          gpu.podKeys.add(key);
          gpu.pods.push(pod);
        } else gpu.unlistedPods++;
      }
    }
    return { gpu, migInstance };
  }

  private exclude(gpu: GpuAccumulator, reason: GpuExclusion, detail: string): void {
    if (gpu.exclusion === null) gpu.exclusion = { reason, detail };
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
