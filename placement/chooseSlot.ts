/**
 * The placement engine: pick one MPS slot (node + GPU) for a pod from the GPU inventory and
 * the reservation ledger, or refuse with a reason a person can act on. Pure and synchronous.
 *
 * Each GPU is either excluded (first failing rule, counted) or scored, and the best score wins,
 * ties broken by node name, then GPU index, then UUID. Rules, score and thread formula:
 * docs/adr/0002-placement.md. chooseSlot keeps the fitting GPUs ranked between calls and looks
 * again only at those whose reservations changed; chooseSlotByFullPass evaluates every GPU and
 * counts the exclusions, for refusals (docs/adr/0010-serving-performance.md).
 */
import type { GpuInventory, GpuSample, NodeState } from '../domain/inventory.js';
import { describeChoice, describeNoFit, describeNoMetrics } from './describeDecision.js';
import type { ExclusionTally } from './describeDecision.js';
import { clampAskedThreadPercent, deriveThreadPercent, explainThreadPercent, memoryShare } from './threadPercent.js';
import { keepsTotals, sumReservations } from './reservationTotals.js';
import { committedMiB } from './memoryAccounting.js';
import { countUnreservedPods } from './unreservedPods.js';
import { HOT_PENALTY, bestRankedCandidate, breaksTie, escapeRegExp } from './rankedCandidates.js';
import type { GpuReservationTotals } from './reservationTotals.js';
import { Exclusion, PlacementPolicy, Priority } from '../domain/slot.js';
import type { GpuPreference, LedgerView, PlacementConfig, SlotChoice, SlotDecision, SlotRequest } from '../domain/slot.js';

export { countUnreservedPods };

/**
 * Reads each GPU's reservation sums. From a ReservationLedger: its snapshots laid out by
 * position (sequential reads, no hashing per GPU), falling back to totals() where an expiry is
 * due. From any other LedgerView: a pass over onGpu().
 */
function sumsReader(ledger: LedgerView, gpus: readonly GpuSample[], nowMs: number): (position: number, gpuUuid: string) => GpuReservationTotals {
  if (keepsTotals(ledger)) {
    const snapshots = ledger.snapshotsFor(gpus);
    return (position, uuid) => {
      const snapshot = snapshots[position];
      return snapshot !== undefined && nowMs < snapshot.nextExpiryMs ? snapshot : ledger.totals(uuid, nowMs);
    };
  }
  return (_position, uuid) => sumReservations(ledger.onGpu(uuid, nowMs));
}

function nodeStateOf(inventory: GpuInventory, node: string): NodeState | undefined {
  return Object.hasOwn(inventory.nodes, node) ? inventory.nodes[node] : undefined;
}

function newTally(): ExclusionTally {
  return {
    counts: {
      [Exclusion.NodeMismatch]: 0,
      [Exclusion.GpuUuid]: 0,
      [Exclusion.ModelMismatch]: 0,
      [Exclusion.Stale]: 0,
      [Exclusion.Mig]: 0,
      [Exclusion.Xid]: 0,
      [Exclusion.NodeUnschedulable]: 0,
      [Exclusion.NoMpsDaemon]: 0,
      [Exclusion.NoMemoryMetrics]: 0,
      [Exclusion.ClientCap]: 0,
      [Exclusion.Memory]: 0,
      [Exclusion.Compute]: 0,
      [Exclusion.Hot]: 0,
    },
    freshCount: 0,
    newestSampleMs: -Infinity,
    shortOfMemory: null,
    shortOfMemoryRoomMiB: -Infinity,
    shortOfCompute: null,
    shortOfComputeLeft: -Infinity,
    shortOfComputeHighBudget: false,
    shortOfComputeLowHeld: 0,
    firstXid: null,
    firstUnschedulable: null,
    noMpsDaemonNodes: [],
  };
}

/**
 * The full pass: every GPU either excluded (first failing rule, counted) or scored. It is the
 * reference chooseSlot's table pass must agree with, and the path of every refusal (the
 * counts and the nearest misses make its reason).
 */
export function chooseSlotByFullPass(inventory: GpuInventory, ledger: LedgerView, request: SlotRequest, config: PlacementConfig, nowMs: number, preference: GpuPreference | null = null): SlotDecision {
  const gpus = inventory.gpus;
  const maxAgeMs = config.maxMetricsAgeSeconds * 1000;
  const readSums = sumsReader(ledger, gpus, nowMs);
  const wantedModel = request.gpuModel === null || request.gpuModel.trim() === '' ? null : request.gpuModel.trim();
  const modelPattern = wantedModel === null ? null : new RegExp(escapeRegExp(wantedModel), 'i');
  const pinnedNode = request.pinnedNode;
  const askedThreads = request.threadPercent === null ? null : clampAskedThreadPercent(request.threadPercent, config);
  const policy = request.policy ?? config.policy;
  const binpack = policy === PlacementPolicy.Binpack;
  // Per-pod GPU hints: UUIDs compared without regard to case (absent: no filter).
  const uuidsIn = request.gpuUuidIn === undefined ? null : new Set(request.gpuUuidIn.map((u) => u.toLowerCase()));
  const uuidsNotIn = request.gpuUuidNotIn === undefined || request.gpuUuidNotIn.length === 0 ? null : new Set(request.gpuUuidNotIn.map((u) => u.toLowerCase()));
  const excludeHot = config.hotGpuAction === 'exclude';
  const hotPenalty = HOT_PENALTY[request.priority];
  const marginMiB = config.memorySafetyMarginMiB;
  const observeAfterMs = config.observeAfterRunningSeconds * 1000;
  const maxClients = config.maxClientsPerGpu;
  const maxThreadSum = config.maxThreadPercentSum;
  // A `high` pod also stays within the high-priority budget; a `low` one only within the total.
  const maxHighThreadSum = request.priority === Priority.High ? config.maxHighThreadPercentSum : Infinity;
  const hotUtil = config.hotUtilPercent;
  const minThreads = config.minThreadPercent;
  const maxThreads = config.maxThreadPercent;
  // GPUs of one model share a total: the memory share is computed once per distinct total.
  let shareOfTotalMiB = Number.NaN;
  let share = 0;
  const tally = newTally();
  const counts = tally.counts;
  // The exporter lists a node's GPUs together: look each node up once per run of its GPUs.
  let nodeName: string | null = null;
  let node: NodeState | undefined;
  let nodeLabelMatch: boolean | null = null;
  // A fleet has few models: test the pattern once per run of equal model names.
  let lastModel: string | null = null;
  let lastModelMatch = false;

  let best: GpuSample | null = null;
  let bestScore = -Infinity;
  let bestThreads = 0;
  let bestRoomMiB = 0;
  let bestSums: GpuReservationTotals | null = null;
  let bestClients = 0;
  let preferred: ArrayLike<number> | null = null;

  for (let i = 0; i < gpus.length; i++) {
    const gpu = gpus[i];
    if (gpu === undefined) continue;

    const fresh = nowMs - gpu.sampledAtMs <= maxAgeMs;
    if (fresh) tally.freshCount++;
    if (gpu.sampledAtMs > tally.newestSampleMs) tally.newestSampleMs = gpu.sampledAtMs;

    if (pinnedNode !== null && gpu.node !== pinnedNode) {
      counts[Exclusion.NodeMismatch]++;
      continue;
    }
    if (uuidsIn !== null || uuidsNotIn !== null) {
      const uuid = gpu.uuid.toLowerCase();
      if ((uuidsIn !== null && !uuidsIn.has(uuid)) || (uuidsNotIn !== null && uuidsNotIn.has(uuid))) {
        counts[Exclusion.GpuUuid]++;
        continue;
      }
    }
    if (gpu.node !== nodeName) {
      nodeName = gpu.node;
      node = nodeStateOf(inventory, nodeName);
      nodeLabelMatch = null;
    }
    if (modelPattern !== null) {
      if (gpu.model !== lastModel) {
        lastModel = gpu.model;
        lastModelMatch = modelPattern.test(lastModel);
      }
      if (!lastModelMatch) {
        if (nodeLabelMatch === null) {
          const label = node?.labels[config.gpuModelNodeLabel];
          nodeLabelMatch = label !== undefined && modelPattern.test(label);
        }
        if (!nodeLabelMatch) {
          counts[Exclusion.ModelMismatch]++;
          continue;
        }
      }
    }
    if (!fresh) {
      counts[Exclusion.Stale]++;
      continue;
    }
    if (gpu.mig) {
      counts[Exclusion.Mig]++;
      continue;
    }
    if (gpu.xid !== 0) {
      counts[Exclusion.Xid]++;
      tally.firstXid ??= gpu;
      continue;
    }
    if (node?.schedulable === false) {
      counts[Exclusion.NodeUnschedulable]++;
      tally.firstUnschedulable ??= gpu;
      continue;
    }
    if (node?.mpsDaemonReady === false) {
      counts[Exclusion.NoMpsDaemon]++;
      // A node's GPUs come together: note each node once per run of its GPUs.
      if (tally.noMpsDaemonNodes[tally.noMpsDaemonNodes.length - 1] !== gpu.node) tally.noMpsDaemonNodes.push(gpu.node);
      continue;
    }
    const memory = gpu.memory;
    if (memory === null) {
      counts[Exclusion.NoMemoryMetrics]++;
      continue;
    }

    // Observed use alone already rules out a full GPU: skip the ledger unless it could be the
    // best of those short of memory (reservations only ever lower the room).
    const observedRoomMiB = memory.totalMiB - memory.usedMiB - marginMiB;
    if (observedRoomMiB < request.memoryMiB) {
      counts[Exclusion.Memory]++;
      if (observedRoomMiB > tally.shortOfMemoryRoomMiB) {
        const roomMiB = memory.totalMiB - committedMiB(memory, readSums(i, gpu.uuid), gpu.sampledAtMs, observeAfterMs) - marginMiB;
        if (roomMiB > tally.shortOfMemoryRoomMiB) {
          tally.shortOfMemoryRoomMiB = roomMiB;
          tally.shortOfMemory = gpu;
        }
      }
      continue;
    }

    const sums = readSums(i, gpu.uuid);
    const committed = committedMiB(memory, sums, gpu.sampledAtMs, observeAfterMs);
    const roomMiB = memory.totalMiB - committed - marginMiB;
    if (roomMiB < request.memoryMiB) {
      counts[Exclusion.Memory]++;
      if (roomMiB > tally.shortOfMemoryRoomMiB) {
        tally.shortOfMemoryRoomMiB = roomMiB;
        tally.shortOfMemory = gpu;
      }
      continue;
    }

    const clients = gpu.pods.length === 0 ? sums.clients : sums.clients + countUnreservedPods(gpu.pods, sums.reservations);
    if (clients >= maxClients) {
      counts[Exclusion.ClientCap]++;
      continue;
    }

    const totalLeft = maxThreadSum - sums.threadPercent;
    const highLeft = maxHighThreadSum - sums.highThreadPercent;
    const budgetLeft = highLeft < totalLeft ? highLeft : totalLeft;
    if (memory.totalMiB !== shareOfTotalMiB) {
      shareOfTotalMiB = memory.totalMiB;
      share = memoryShare(request.memoryMiB, shareOfTotalMiB, maxThreadSum);
    }
    const threads = askedThreads ?? deriveThreadPercent(share, gpu.utilPercent, budgetLeft, minThreads, maxThreads);
    if (threads > budgetLeft) {
      counts[Exclusion.Compute]++;
      if (budgetLeft > tally.shortOfComputeLeft) {
        tally.shortOfComputeLeft = budgetLeft;
        tally.shortOfCompute = gpu;
        tally.shortOfComputeHighBudget = highLeft < totalLeft;
        tally.shortOfComputeLowHeld = sums.threadPercent - sums.highThreadPercent;
      }
      continue;
    }

    const hot = gpu.utilPercent !== null && gpu.utilPercent >= hotUtil;
    if (hot && excludeHot) {
      counts[Exclusion.Hot]++;
      continue;
    }

    // Capacity already committed on the GPU, 0..1 (memory or compute, whichever is fuller).
    const memoryLoad = memory.totalMiB > 0 ? committed / memory.totalMiB : 1;
    const computeLoad = sums.threadPercent / maxThreadSum;
    const allocated = memoryLoad > computeLoad ? memoryLoad : computeLoad;
    let score: number;
    if (binpack) {
      score = (clients > 0 ? 1 : 0) + allocated;
    } else {
      const busy = gpu.utilPercent === null ? 0 : gpu.utilPercent / 100;
      score = -(allocated > busy ? allocated : busy);
    }
    if (hot) score -= hotPenalty;
    // Several replicas: this replica's own GPUs first (docs/adr/0005-multi-replica-reservations.md).
    if (preference !== null) score += (preferred ??= preference.scoresFor(gpus))[i] ?? 0;

    if (best === null || score > bestScore || (score === bestScore && breaksTie(gpu, best))) {
      best = gpu;
      bestScore = score;
      bestThreads = threads;
      bestRoomMiB = roomMiB;
      bestSums = sums;
      bestClients = clients;
    }
  }

  if (best !== null && bestSums !== null && best.memory !== null) {
    return choiceOf(best, best.memory.totalMiB, { threads: bestThreads, roomMiB: bestRoomMiB, sums: bestSums, clients: bestClients }, request, policy, config, nowMs, gpus.length);
  }

  const excluded: Partial<Record<Exclusion, number>> = {};
  for (const code of Object.values(Exclusion)) if (counts[code] > 0) excluded[code] = counts[code];

  if (tally.freshCount === 0) {
    return { ok: false, code: 'no-metrics', reason: describeNoMetrics(inventory, config, nowMs, tally), considered: gpus.length, excluded };
  }
  return { ok: false, code: 'no-fit', reason: describeNoFit(inventory, request, wantedModel, config, tally), considered: gpus.length, excluded };
}

/** What the winning GPU offered: its grant, room and clients as the pass computed them. */
interface Winner {
  threads: number;
  roomMiB: number;
  sums: GpuReservationTotals;
  clients: number;
}

function choiceOf(best: GpuSample, totalMiB: number, winner: Winner, request: SlotRequest, policy: PlacementPolicy, config: PlacementConfig, nowMs: number, considered: number): SlotChoice {
  const budgetLeft = computeBudgetLeft(winner.sums, request.priority, config);
  const basis = explainThreadPercent(request.threadPercent, request.memoryMiB, totalMiB, best.utilPercent, budgetLeft, config);
  return {
    ok: true,
    node: best.node,
    gpuUuid: best.uuid,
    gpuIndex: best.index,
    gpuModel: best.model,
    threadPercent: winner.threads,
    memoryLimitMiB: request.memoryMiB,
    priority: request.priority,
    metricsAgeSeconds: Math.max(0, Math.floor((nowMs - best.sampledAtMs) / 1000)),
    considered,
    reason: describeChoice({
      policy,
      gpu: best,
      roomMiB: winner.roomMiB,
      reservations: winner.sums.clients,
      otherPods: winner.clients - winner.sums.clients,
      threadPercent: winner.threads,
      askedThreadPercent: request.threadPercent,
      basis,
      budgetLeft,
      memoryMiB: request.memoryMiB,
      config,
    }),
  };
}

/**
 * Choose a slot for one pod, or refuse with a reason. Reads the ledger, never writes it: use
 * reserveSlot to hold the chosen capacity in the same synchronous step. A preference, when
 * given, is added to each candidate's score (several replicas: own GPUs first).
 *
 * From a ReservationLedger, the GPUs that fit this kind of pod are kept ranked between calls
 * (placement/rankedCandidates.ts over the columns of placement/placementTable.ts): a call looks
 * again only at the GPUs whose ledger snapshot changed since the previous one. Same rules, same
 * scores, same tie-break as the full pass, so the same decision; when nothing fits, the full
 * pass writes the refusal with its reasons.
 */
export function chooseSlot(inventory: GpuInventory, ledger: LedgerView, request: SlotRequest, config: PlacementConfig, nowMs: number, preference: GpuPreference | null = null): SlotDecision {
  if (!keepsTotals(ledger)) return chooseSlotByFullPass(inventory, ledger, request, config, nowMs, preference);
  const ranked = bestRankedCandidate(inventory, ledger, request, config, nowMs, preference);
  if (ranked === null) return chooseSlotByFullPass(inventory, ledger, request, config, nowMs, preference);
  const winner = inventory.gpus[ranked.position]!;
  const totalMiB = winner.memory?.totalMiB ?? 0;
  const winnerFacts = { threads: ranked.threads, roomMiB: totalMiB - ranked.committedMiB - config.memorySafetyMarginMiB, sums: ranked.sums, clients: ranked.clients };
  return choiceOf(winner, totalMiB, winnerFacts, request, request.policy ?? config.policy, config, nowMs, inventory.gpus.length);
}

/**
 * Compute budget left on a GPU for a pod of this priority: the total budget, and for a `high`
 * pod also the high-priority budget. Compute that `low` pods hold is never taken back.
 */
export function computeBudgetLeft(sums: Pick<GpuReservationTotals, 'threadPercent' | 'highThreadPercent'>, priority: Priority, config: Pick<PlacementConfig, 'maxThreadPercentSum' | 'maxHighThreadPercentSum'>): number {
  const totalLeft = config.maxThreadPercentSum - sums.threadPercent;
  if (priority !== Priority.High) return totalLeft;
  return Math.min(totalLeft, config.maxHighThreadPercentSum - sums.highThreadPercent);
}
