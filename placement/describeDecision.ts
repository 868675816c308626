/**
 * The sentences placement decisions carry: why this GPU, or why none, in words an operator
 * can act on. Pure string building, called once per decision (never per GPU).
 */
import type { GpuInventory, GpuSample } from '../domain/inventory.js';
import { formatMiB } from '../domain/quantity.js';
import { ThreadBasis } from './threadPercent.js';
import { Exclusion, Priority } from '../domain/slot.js';
import type { PlacementConfig, PlacementPolicy, SlotRequest } from '../domain/slot.js';

/** What one pass over the GPUs found, for refusal messages. */
export interface ExclusionTally {
  counts: Record<Exclusion, number>;
  /** GPUs with a sample within the maximum age, whatever else excluded them. */
  freshCount: number;
  newestSampleMs: number;
  /** The GPU short of memory with the most room, and that room (MiB after the margin). */
  shortOfMemory: GpuSample | null;
  shortOfMemoryRoomMiB: number;
  /** The GPU short of compute with the most budget left, and that budget (percent). */
  shortOfCompute: GpuSample | null;
  shortOfComputeLeft: number;
  /** True when, on that GPU, the high-priority budget was the smaller one. */
  shortOfComputeHighBudget: boolean;
  /** Thread percent that `low` pods hold on that GPU (never preempted for a `high` pod). */
  shortOfComputeLowHeld: number;
  firstXid: GpuSample | null;
  firstUnschedulable: GpuSample | null;
  /** Nodes whose GPUs were excluded for want of a Ready MPS daemon, in the order met. */
  noMpsDaemonNodes: string[];
}

const FB_COUNTERS_HINT =
  "enable DCGM_FI_DEV_FB_FREE, DCGM_FI_DEV_FB_USED and DCGM_FI_DEV_FB_RESERVED in dcgm-exporter's counters CSV";

function shortModel(model: string): string {
  return model.replace(/^NVIDIA\s+/i, '');
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function gpuName(gpu: GpuSample): string {
  return `${gpu.node} GPU ${gpu.index}`;
}

export interface ChoiceFacts {
  policy: PlacementPolicy;
  gpu: GpuSample;
  /** Free memory on the GPU before this pod, after the safety margin, MiB. */
  roomMiB: number;
  reservations: number;
  otherPods: number;
  threadPercent: number;
  askedThreadPercent: number | null;
  basis: ThreadBasis;
  budgetLeft: number;
  memoryMiB: number;
  config: PlacementConfig;
}

function threadNote(facts: ChoiceFacts): string {
  const { config } = facts;
  switch (facts.basis) {
    case ThreadBasis.Asked:
      return ' as asked';
    case ThreadBasis.AskedRaised:
      return ` (asked ${facts.askedThreadPercent}%, raised to the ${config.minThreadPercent}% minimum)`;
    case ThreadBasis.AskedLowered:
      return ` (asked ${facts.askedThreadPercent}%, lowered to the ${config.maxThreadPercent}% maximum)`;
    case ThreadBasis.MemoryShare:
      return ' (its memory share)';
    case ThreadBasis.Maximum:
      return ` (memory share capped at the ${config.maxThreadPercent}% maximum)`;
    case ThreadBasis.Headroom:
      return ' (capped by the idle share observed on the GPU)';
    case ThreadBasis.Budget:
      return ` (capped by the ${facts.budgetLeft}% compute budget left)`;
    case ThreadBasis.Minimum:
      return ` (raised to the ${config.minThreadPercent}% minimum)`;
  }
}

/**
 * The ceiling part of a choice's reason: "; may use up to 60% when SMs are idle (its
 * gpu-percent-limit)" or "(1.5x the grant for high pods)".
 */
export function describeCeiling(ceiling: number, source: 'pod-limit' | 'factor', factor: number, priority: string): string {
  const why = source === 'pod-limit' ? 'its gpu-percent-limit' : `${factor}x the grant for ${priority} pods`;
  return `; may use up to ${ceiling}% when SMs are idle (${why})`;
}

/** "binpack: node-a GPU 3 (H100 80GB HBM3) has 41.2Gi free after 2 reservations; granted 25% as asked and 8Gi" */
export function describeChoice(facts: ChoiceFacts): string {
  const { gpu } = facts;
  const clients: string[] = [];
  if (facts.reservations > 0) clients.push(plural(facts.reservations, 'reservation'));
  if (facts.otherPods > 0) clients.push(plural(facts.otherPods, 'unreserved pod'));
  const company = clients.length === 0 ? 'with no other clients' : `after ${clients.join(' and ')}`;
  const util = gpu.utilPercent;
  const hot = util !== null && util >= facts.config.hotUtilPercent ? `; it is hot (${Math.round(util)}% utilisation) but ranked best` : '';
  return (
    `${facts.policy}: ${gpuName(gpu)} (${shortModel(gpu.model)}) has ${formatMiB(facts.roomMiB)} free ${company}; ` +
    `granted ${facts.threadPercent}%${threadNote(facts)} and ${formatMiB(facts.memoryMiB)}${hot}`
  );
}

/** Distinct models among GPUs (on the pinned node when there is one), for the model-mismatch part. */
function modelsSeen(inventory: GpuInventory, pinnedNode: string | null, limit: number): string[] {
  const seen: string[] = [];
  for (const gpu of inventory.gpus) {
    if (pinnedNode !== null && gpu.node !== pinnedNode) continue;
    if (!seen.includes(gpu.model)) seen.push(gpu.model);
    if (seen.length >= limit) break;
  }
  return seen;
}

function exclusionPart(code: Exclusion, n: number, inventory: GpuInventory, request: SlotRequest, config: PlacementConfig, tally: ExclusionTally): string {
  switch (code) {
    case Exclusion.NodeMismatch:
      return n === inventory.gpus.length
        ? `${n} on other nodes (node ${request.pinnedNode} has no GPU in the metrics; check the pod's node selector and that dcgm-exporter runs on that node)`
        : `${n} on other nodes`;
    case Exclusion.GpuUuid: {
      const listIn = request.gpuUuidIn;
      const unseen = listIn !== undefined && !inventory.gpus.some((gpu) => listIn.some((u) => u.toLowerCase() === gpu.uuid.toLowerCase()));
      const note = unseen ? ` (no GPU in the metrics has a UUID it lists: ${listIn.join(', ')})` : '';
      if (listIn === undefined) return `${n} ruled out by the pod's mps-injector.io/gpu-uuid-not-in annotation`;
      if (request.gpuUuidNotIn === undefined) return `${n} not listed in the pod's mps-injector.io/gpu-uuid-in annotation${note}`;
      return `${n} not allowed by the pod's mps-injector.io/gpu-uuid-in and gpu-uuid-not-in annotations${note}`;
    }
    case Exclusion.ModelMismatch: {
      const seen = modelsSeen(inventory, request.pinnedNode, 3);
      return `${n} of other models (seen: ${seen.join(', ')}; the ${config.gpuModelNodeLabel} node label was checked too)`;
    }
    case Exclusion.Stale:
      return `${n} stale (samples older than ${config.maxMetricsAgeSeconds}s)`;
    case Exclusion.Mig:
      return `${n} MIG`;
    case Exclusion.Xid: {
      const gpu = tally.firstXid;
      return gpu === null ? `${n} with XID errors` : `${n} with XID errors (${gpuName(gpu)}: XID ${gpu.xid})`;
    }
    case Exclusion.NodeUnschedulable: {
      const gpu = tally.firstUnschedulable;
      if (gpu === null) return `${n} on unschedulable nodes`;
      const why = Object.hasOwn(inventory.nodes, gpu.node) ? inventory.nodes[gpu.node]?.unschedulableReason : undefined;
      return `${n} on unschedulable nodes (${gpu.node}: ${why ?? 'unschedulable'})`;
    }
    case Exclusion.NoMpsDaemon: {
      const nodes = [...new Set(tally.noMpsDaemonNodes)];
      const named = nodes.length <= 3 ? nodes.join(', ') : `${nodes.slice(0, 2).join(', ')} and ${nodes.length - 2} more nodes`;
      return `${n} with no MPS daemon ready on ${named} (check the MPS control daemon pods there; set cluster.mpsDaemon.required to false where MPS runs another way)`;
    }
    case Exclusion.NoMemoryMetrics:
      return `${n} without memory metrics (${FB_COUNTERS_HINT})`;
    case Exclusion.ClientCap:
      return `${n} at the ${config.maxClientsPerGpu}-client cap`;
    case Exclusion.Memory: {
      const gpu = tally.shortOfMemory;
      return gpu === null ? `${n} short of memory` : `${n} short of memory (best: ${gpuName(gpu)}, ${formatMiB(Math.max(0, tally.shortOfMemoryRoomMiB))} free)`;
    }
    case Exclusion.Compute: {
      const gpu = tally.shortOfCompute;
      if (gpu === null) return `${n} short of compute`;
      const left = Math.max(0, tally.shortOfComputeLeft);
      if (tally.shortOfComputeHighBudget) return `${n} short of compute (best: ${gpuName(gpu)}, ${left}% of the ${config.maxHighThreadPercentSum}% high-priority budget left)`;
      const lowHeld =
        request.priority === Priority.High && tally.shortOfComputeLowHeld > 0 ? `; low-priority pods hold ${tally.shortOfComputeLowHeld}% and are not preempted` : '';
      return `${n} short of compute (best: ${gpuName(gpu)}, ${left}% of ${config.maxThreadPercentSum}% left${lowHeld})`;
    }
    case Exclusion.Hot:
      return `${n} hot (utilisation at or above ${config.hotUtilPercent}%, excluded by placement.hotGpuAction)`;
  }
}

/** "no GPU fits 8Gi: 16 considered, 9 short of memory (best: node-a GPU 3, 6.1Gi free), 4 stale, 3 MIG" */
export function describeNoFit(inventory: GpuInventory, request: SlotRequest, wantedModel: string | null, config: PlacementConfig, tally: ExclusionTally): string {
  const order = Object.values(Exclusion);
  const present = order.filter((code) => tally.counts[code] > 0);
  // Largest groups first; equal groups keep the rule order.
  present.sort((a, b) => tally.counts[b] - tally.counts[a] || order.indexOf(a) - order.indexOf(b));
  const parts = present.map((code) => exclusionPart(code, tally.counts[code], inventory, request, config, tally));
  const where = request.pinnedNode === null ? '' : ` on node ${request.pinnedNode}`;
  const model = wantedModel === null ? '' : ` of model "${wantedModel}"`;
  return `no GPU${model} fits ${formatMiB(request.memoryMiB)}${where}: ${[`${inventory.gpus.length} considered`, ...parts].join(', ')}`;
}

/** No GPU has a sample younger than the maximum age (or there is no GPU at all). */
export function describeNoMetrics(inventory: GpuInventory, config: PlacementConfig, nowMs: number, tally: ExclusionTally): string {
  const problem = inventory.problems.length > 0 ? `; last problem: ${inventory.problems[inventory.problems.length - 1]}` : '';
  if (inventory.gpus.length === 0) {
    return `no GPU metrics: ${inventory.source} lists no GPU${problem}; check that dcgm-exporter runs on the GPU nodes and that metrics.source points at it`;
  }
  const ageSeconds = Math.max(0, Math.floor((nowMs - tally.newestSampleMs) / 1000));
  return (
    `no fresh GPU metrics: the newest of ${plural(inventory.gpus.length, 'GPU sample')} is ${ageSeconds}s old, ` +
    `above placement.maxMetricsAgeSeconds (${config.maxMetricsAgeSeconds}s)${problem}; ` +
    `check that dcgm-exporter is running and that the webhook can reach it (source: ${inventory.source})`
  );
}
