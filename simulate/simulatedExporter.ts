/**
 * A simulated dcgm-exporter fleet and the webhook's view of it. The exporter on each node
 * samples its GPUs every `intervalMs` (each node at its own seeded phase); a sample becomes
 * visible to placement `scrapeDelayMs` after it was taken. The inventory handed to a strategy
 * at time t therefore holds, per node, the newest sample taken at or before t - scrapeDelay,
 * stamped with that sample's time, so chooseSlot sees the real age of what it reads.
 */
import type { GpuInventory, GpuSample, NodeState } from '../domain/inventory.js';
import type { SimGpu } from './cluster.js';
import { hashUniform } from './seededRandom.js';

/** What a GPU really held at one moment, as the exporter would measure it. */
export interface GpuActivity {
  usedMiB: number;
  /** Delivered compute, percent (reported as DCGM_FI_DEV_GPU_UTIL, capped at 100). */
  utilPercent: number;
  /** Keys ("namespace/name") of the pods on the GPU. */
  podKeys: readonly string[];
}

export interface ExporterTiming {
  intervalMs: number;
  scrapeDelayMs: number;
  seed: number;
}

/** Node label the GPU Operator sets to the product name. */
const PRODUCT_LABEL = 'nvidia.com/gpu.product';

export class SimulatedExporter {
  private readonly nodes: { name: string; phaseMs: number; gpus: SimGpu[] }[] = [];
  private readonly nodeStates: Record<string, NodeState> = {};
  /** Latest built samples per node: the snapshot index they belong to. */
  private readonly cache = new Map<string, { index: number; samples: GpuSample[] }>();

  constructor(
    gpus: readonly SimGpu[],
    private readonly timing: ExporterTiming,
    /** The truth at a past moment; the exporter only ever asks about sample times. */
    private readonly activityAt: (gpu: SimGpu, atMs: number) => GpuActivity,
    /** Added to simulation times to make epoch milliseconds. */
    private readonly epochMs: number,
  ) {
    if (!(timing.intervalMs > 0)) throw new RangeError(`metrics interval must be above 0 s, got ${timing.intervalMs / 1000}; pass --metrics-interval 30 (or 0.000001 for no lag)`);
    if (!(timing.scrapeDelayMs >= 0)) throw new RangeError(`scrape delay must be at least 0 s, got ${timing.scrapeDelayMs / 1000}; pass --scrape-delay 0 or more`);
    for (const gpu of gpus) {
      let node = this.nodes.find((n) => n.name === gpu.node);
      if (node === undefined) {
        node = { name: gpu.node, phaseMs: hashUniform(timing.seed, this.nodes.length + 1, 0x5eed) * timing.intervalMs, gpus: [] };
        this.nodes.push(node);
        this.nodeStates[gpu.node] = { name: gpu.node, schedulable: true, labels: { [PRODUCT_LABEL]: gpu.model.replace(/ /g, '-') } };
      }
      node.gpus.push(gpu);
    }
  }

  /** Time (simulation ms) of the newest sample of a node visible at `nowMs`. */
  sampleTimeMs(phaseMs: number, nowMs: number): { index: number; atMs: number } {
    const index = Math.floor((nowMs - this.timing.scrapeDelayMs - phaseMs) / this.timing.intervalMs);
    return { index, atMs: phaseMs + index * this.timing.intervalMs };
  }

  /** Longest a visible sample can be, ms. */
  get worstAgeMs(): number {
    return this.timing.intervalMs + this.timing.scrapeDelayMs;
  }

  /** The inventory placement reads at simulation time `nowMs`. */
  inventoryAt(nowMs: number): GpuInventory {
    const gpus: GpuSample[] = [];
    let newestVisibleMs = -Infinity;
    for (const node of this.nodes) {
      const { index, atMs } = this.sampleTimeMs(node.phaseMs, nowMs);
      newestVisibleMs = Math.max(newestVisibleMs, atMs + this.timing.scrapeDelayMs);
      const cached = this.cache.get(node.name);
      if (cached !== undefined && cached.index === index) {
        gpus.push(...cached.samples);
        continue;
      }
      const samples = node.gpus.map((gpu) => this.sample(gpu, atMs));
      this.cache.set(node.name, { index, samples });
      gpus.push(...samples);
    }
    return {
      gpus,
      nodes: this.nodeStates,
      source: 'simulated-exporter',
      fetchedAtMs: this.epochMs + newestVisibleMs,
      skippedLines: 0,
      problems: [],
    };
  }

  private sample(gpu: SimGpu, atMs: number): GpuSample {
    const activity = this.activityAt(gpu, atMs);
    const usedMiB = Math.round(activity.usedMiB);
    const util = Math.min(100, Math.round(activity.utilPercent));
    return {
      node: gpu.node,
      uuid: gpu.uuid,
      index: gpu.index,
      model: gpu.model,
      pciBusId: gpu.pciBusId,
      memory: { totalMiB: gpu.memoryMiB, usedMiB, freeMiB: Math.max(0, gpu.memoryMiB - usedMiB), reservedMiB: 0 },
      utilPercent: util,
      smActive: util / 100,
      grEngineActive: util / 100,
      xid: 0,
      mig: false,
      sampledAtMs: this.epochMs + atMs,
      pods: activity.podKeys.map((key) => {
        const slash = key.indexOf('/');
        return { namespace: key.slice(0, slash), pod: key.slice(slash + 1), container: 'main' };
      }),
    };
  }
}
