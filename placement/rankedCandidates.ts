/**
 * The GPUs that fit one kind of pod, kept ranked between placement passes. Pure.
 *
 * A pod's kind is everything placement reads from the request and the configuration (memory,
 * thread percent, priority, policy, hints, model) plus the replica preference in force. For a
 * kind, every GPU's fit and score depend only on the inventory (fixed), its ledger snapshot and
 * the clock. So the fitting GPUs are kept in a heap ordered as the full pass orders them (score,
 * then node name, GPU index, UUID), and a pass only looks again at the GPUs whose snapshot
 * changed since the previous one (a pointer compare per GPU) and moves them in the heap: a few
 * per admission. The clock enters in two ways, each of which makes the kind start again from a
 * full evaluation: a GPU's sample turning stale, and a pending reservation's expiry falling due.
 * The rules themselves are the full pass's (placement/chooseSlot.ts), applied to the columns
 * of the placement table (placement/placementTable.ts).
 */
import type { GpuInventory, GpuSample } from '../domain/inventory.js';
import { PlacementPolicy, Priority } from '../domain/slot.js';
import type { GpuPreference, PlacementConfig, SlotRequest } from '../domain/slot.js';
import { placementTableOf, refreshRow } from './placementTable.js';
import type { PlacementTable } from './placementTable.js';
import type { GpuReservationTotals, TotalsLedgerView } from './reservationTotals.js';
import { clampAskedThreadPercent, deriveThreadPercent, memoryShare } from './threadPercent.js';

/**
 * Score taken off a hot GPU when hotGpuAction is 'deprioritise'. Scores lie in [-1, 2], so
 * for a `high` pod every cool GPU that fits beats every hot one; for a `low` pod a hot GPU
 * only loses against cool GPUs of comparable packing (binpack may still fill it before
 * opening an idle GPU).
 */
export const HOT_PENALTY: Readonly<Record<Priority, number>> = Object.freeze({ [Priority.High]: 10, [Priority.Low]: 0.5 });

/** Deterministic order among equal scores: node name, then GPU index, then UUID. */
export function breaksTie(candidate: GpuSample, incumbent: GpuSample): boolean {
  if (candidate.node !== incumbent.node) return candidate.node < incumbent.node;
  if (candidate.index !== incumbent.index) return candidate.index < incumbent.index;
  return candidate.uuid < incumbent.uuid;
}

export function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Kinds of pod kept per inventory; past this the cache starts again. */
const KINDS_KEPT = 16;

/** The ranking of one kind of pod over one inventory. */
interface Ranking {
  /** The preference scores it was built with (null: none). */
  preferred: ArrayLike<number> | null;
  /** The clock of the last pass: a pass earlier than this starts again. */
  lastNowMs: number;
  /** The first time a GPU that was fresh turns stale, or a reservation it counted expires: from then it starts again. */
  validUntilMs: number;
  /** The ledger snapshot each GPU was evaluated with (undefined: not evaluated). */
  sums: (GpuReservationTotals | undefined)[];
  score: Float64Array;
  threads: Float64Array;
  /** Heap of GPU positions, best first; position of each GPU in it (-1: does not fit). */
  heap: Int32Array;
  size: number;
  slot: Int32Array;
}

const rankingsOf = new WeakMap<PlacementTable, Map<string, Ranking>>();
const configIds = new WeakMap<PlacementConfig, number>();
let nextConfigId = 1;

/** Text of an optional string or list for a kind key (quoted, so no value can imitate a separator). */
const keyPart = (value: string | readonly string[] | null | undefined): string => (value === null || value === undefined ? '-' : JSON.stringify(value));

function kindKey(request: SlotRequest, config: PlacementConfig): string {
  let configId = configIds.get(config);
  if (configId === undefined) {
    configId = nextConfigId++;
    configIds.set(config, configId);
  }
  return `${configId}|${request.memoryMiB}|${request.threadPercent}|${request.priority}|${request.policy ?? '-'}|${keyPart(request.gpuModel)}|${keyPart(request.pinnedNode)}|${keyPart(request.gpuUuidIn)}|${keyPart(request.gpuUuidNotIn)}`;
}

/**
 * Fit and score of each GPU for one kind of pod: the full pass's rules, read from the
 * placement table's columns.
 */
class KindRules {
  readonly maxAgeMs: number;
  private readonly modelMatches: Uint8Array | null;
  private readonly pinnedNode: string | null;
  private readonly askedThreads: number | null;
  private readonly binpack: boolean;
  private readonly uuidsIn: Set<string> | null;
  private readonly uuidsNotIn: Set<string> | null;
  private readonly lowerCaseUuids: readonly string[] | null;
  private readonly excludeHot: boolean;
  private readonly hotPenalty: number;
  private readonly memoryMiB: number;
  private readonly marginMiB: number;
  private readonly maxClients: number;
  private readonly maxThreadSum: number;
  private readonly maxHighThreadSum: number;
  private readonly hotUtil: number;
  private readonly minThreads: number;
  private readonly maxThreads: number;
  private shareOfTotalMiB = Number.NaN;
  private share = 0;
  /** Set by fits(): the GPU's score and granted thread percent. */
  score = 0;
  threads = 0;

  constructor(
    private readonly inventory: GpuInventory,
    private readonly table: PlacementTable,
    request: SlotRequest,
    config: PlacementConfig,
    private readonly preferred: ArrayLike<number> | null,
  ) {
    this.maxAgeMs = config.maxMetricsAgeSeconds * 1000;
    const wantedModel = request.gpuModel === null || request.gpuModel.trim() === '' ? null : request.gpuModel.trim();
    this.modelMatches = wantedModel === null ? null : table.modelMatches(wantedModel, new RegExp(escapeRegExp(wantedModel), 'i'), config.gpuModelNodeLabel);
    this.pinnedNode = request.pinnedNode;
    this.askedThreads = request.threadPercent === null ? null : clampAskedThreadPercent(request.threadPercent, config);
    this.binpack = (request.policy ?? config.policy) === PlacementPolicy.Binpack;
    this.uuidsIn = request.gpuUuidIn === undefined ? null : new Set(request.gpuUuidIn.map((u) => u.toLowerCase()));
    this.uuidsNotIn = request.gpuUuidNotIn === undefined || request.gpuUuidNotIn.length === 0 ? null : new Set(request.gpuUuidNotIn.map((u) => u.toLowerCase()));
    this.lowerCaseUuids = this.uuidsIn !== null || this.uuidsNotIn !== null ? table.lowerCaseUuids() : null;
    this.excludeHot = config.hotGpuAction === 'exclude';
    this.hotPenalty = HOT_PENALTY[request.priority];
    this.memoryMiB = request.memoryMiB;
    this.marginMiB = config.memorySafetyMarginMiB;
    this.maxClients = config.maxClientsPerGpu;
    this.maxThreadSum = config.maxThreadPercentSum;
    // A `high` pod also stays within the high-priority budget; a `low` one only within the total.
    this.maxHighThreadSum = request.priority === Priority.High ? config.maxHighThreadPercentSum : Infinity;
    this.hotUtil = config.hotUtilPercent;
    this.minThreads = config.minThreadPercent;
    this.maxThreads = config.maxThreadPercent;
  }

  /** True when the sample of GPU i is fresh at nowMs (and it is not ruled out whatever the pod). */
  isCandidate(i: number, nowMs: number): boolean {
    const table = this.table;
    if (table.ruledOut[i] !== 0 || nowMs - table.sampledAtMs[i]! > this.maxAgeMs) return false;
    if (this.pinnedNode !== null && this.inventory.gpus[i]!.node !== this.pinnedNode) return false;
    if (this.lowerCaseUuids !== null) {
      const uuid = this.lowerCaseUuids[i]!;
      if ((this.uuidsIn !== null && !this.uuidsIn.has(uuid)) || (this.uuidsNotIn !== null && this.uuidsNotIn.has(uuid))) return false;
    }
    return this.modelMatches === null || this.modelMatches[i] !== 0;
  }

  /** Whether the pod fits GPU i with its current row; sets score and threads when it does. */
  fits(i: number, committed: number, clients: number, threadSum: number, highThreadSum: number): boolean {
    const table = this.table;
    const total = table.totalMiB[i]!;
    if (total - committed - this.marginMiB < this.memoryMiB) return false;
    if (clients >= this.maxClients) return false;
    const totalLeft = this.maxThreadSum - threadSum;
    const highLeft = this.maxHighThreadSum - highThreadSum;
    const budgetLeft = highLeft < totalLeft ? highLeft : totalLeft;
    // Utilisation as a plain number and a flag (a number-or-null local would box every value).
    const utilIsKnown = table.utilKnown[i] !== 0;
    const util = table.utilPercent[i]!;
    let threads: number;
    if (this.askedThreads !== null) {
      threads = this.askedThreads;
    } else {
      if (total !== this.shareOfTotalMiB) {
        this.shareOfTotalMiB = total;
        this.share = memoryShare(this.memoryMiB, total, this.maxThreadSum);
      }
      threads = deriveThreadPercent(this.share, utilIsKnown ? util : null, budgetLeft, this.minThreads, this.maxThreads);
    }
    if (threads > budgetLeft) return false;
    const hot = utilIsKnown && util >= this.hotUtil;
    if (hot && this.excludeHot) return false;

    // Capacity already committed on the GPU, 0..1 (memory or compute, whichever is fuller).
    const memoryLoad = total > 0 ? committed / total : 1;
    const computeLoad = threadSum / this.maxThreadSum;
    const allocated = memoryLoad > computeLoad ? memoryLoad : computeLoad;
    let score: number;
    if (this.binpack) {
      score = (clients > 0 ? 1 : 0) + allocated;
    } else {
      const busy = utilIsKnown ? util / 100 : 0;
      score = -(allocated > busy ? allocated : busy);
    }
    if (hot) score -= this.hotPenalty;
    if (this.preferred !== null) score += this.preferred[i] ?? 0;
    this.score = score;
    this.threads = threads;
    return true;
  }
}

/** The best fitting GPU for a pod (its position and granted thread percent), or null when none fits. */
export interface RankedChoice {
  position: number;
  threads: number;
  /** The snapshot the choice was made with. */
  sums: GpuReservationTotals;
  committedMiB: number;
  clients: number;
}

/**
 * The GPU the full pass would choose, or null when nothing fits (the caller then runs the full
 * pass for the refusal's reasons). From a ReservationLedger only.
 */
export function bestRankedCandidate(inventory: GpuInventory, ledger: TotalsLedgerView, request: SlotRequest, config: PlacementConfig, nowMs: number, preference: GpuPreference | null): RankedChoice | null {
  const gpus = inventory.gpus;
  const table = placementTableOf(inventory);
  const rows = table.rowsFor(config.observeAfterRunningSeconds * 1000);
  const snapshots = ledger.snapshotsFor(gpus);
  const preferred = preference === null ? null : preference.scoresFor(gpus);
  let rankings = rankingsOf.get(table);
  if (rankings === undefined) {
    rankings = new Map();
    rankingsOf.set(table, rankings);
  }
  const key = kindKey(request, config);
  let ranking = rankings.get(key);
  const rules = new KindRules(inventory, table, request, config, preferred);
  const n = gpus.length;

  const sumsAt = (i: number): GpuReservationTotals => {
    const snapshot = snapshots[i];
    const sums = snapshot === undefined || !(nowMs < snapshot.nextExpiryMs) ? ledger.totals(gpus[i]!.uuid, nowMs) : snapshot;
    if (sums !== rows.sums[i]) refreshRow(inventory, rows, i, sums);
    return sums;
  };

  const better = (r: Ranking, a: number, b: number): boolean => {
    const sa = r.score[a]!;
    const sb = r.score[b]!;
    if (sa !== sb) return sa > sb;
    const ga = gpus[a]!;
    const gb = gpus[b]!;
    if (breaksTie(ga, gb)) return true;
    if (breaksTie(gb, ga)) return false;
    // Equal in every respect: the full pass keeps the first one it meets.
    return a < b;
  };
  const place = (r: Ranking, at: number, gpu: number): void => {
    r.heap[at] = gpu;
    r.slot[gpu] = at;
  };
  const siftUp = (r: Ranking, at: number): void => {
    const gpu = r.heap[at]!;
    while (at > 0) {
      const parent = (at - 1) >> 1;
      const above = r.heap[parent]!;
      if (!better(r, gpu, above)) break;
      place(r, at, above);
      at = parent;
    }
    place(r, at, gpu);
  };
  const siftDown = (r: Ranking, at: number): void => {
    const gpu = r.heap[at]!;
    for (;;) {
      const left = 2 * at + 1;
      if (left >= r.size) break;
      const right = left + 1;
      const child = right < r.size && better(r, r.heap[right]!, r.heap[left]!) ? right : left;
      if (!better(r, r.heap[child]!, gpu)) break;
      place(r, at, r.heap[child]!);
      at = child;
    }
    place(r, at, gpu);
  };

  /** Evaluate GPU i afresh; returns whether it fits (score and threads stored). */
  const evaluate = (r: Ranking, i: number): boolean => {
    if (!rules.isCandidate(i, nowMs)) {
      r.sums[i] = snapshots[i];
      return false;
    }
    const sums = sumsAt(i);
    r.sums[i] = sums;
    if (sums.nextExpiryMs < r.validUntilMs) r.validUntilMs = sums.nextExpiryMs;
    if (!rules.fits(i, rows.committedMiB[i]!, rows.clients[i]!, rows.threadPercent[i]!, rows.highThreadPercent[i]!)) return false;
    // A score the order cannot rank: the full pass decides.
    if (Number.isNaN(rules.score)) throw new UnrankableScore();
    r.score[i] = rules.score;
    r.threads[i] = rules.threads;
    return true;
  };

  try {
    if (ranking === undefined || ranking.preferred !== preferred || nowMs < ranking.lastNowMs || nowMs >= ranking.validUntilMs) {
      if (ranking === undefined && rankings.size >= KINDS_KEPT) rankings.clear();
      ranking = {
        preferred,
        lastNowMs: nowMs,
        validUntilMs: Infinity,
        sums: new Array<GpuReservationTotals | undefined>(n),
        score: new Float64Array(n),
        threads: new Float64Array(n),
        heap: new Int32Array(n),
        size: 0,
        slot: new Int32Array(n).fill(-1),
      };
      rankings.set(key, ranking);
      for (let i = 0; i < n; i++) {
        // A fresh GPU turns stale past this (a millisecond early, against rounding): the ranking
        // holds until the first one does. A stale one stays stale while the clock moves on.
        if (table.ruledOut[i] === 0 && nowMs - table.sampledAtMs[i]! <= rules.maxAgeMs) {
          const staleAtMs = table.sampledAtMs[i]! + rules.maxAgeMs - 1;
          if (staleAtMs < ranking.validUntilMs) ranking.validUntilMs = staleAtMs;
        }
        if (evaluate(ranking, i)) place(ranking, ranking.size++, i);
      }
      for (let at = (ranking.size >> 1) - 1; at >= 0; at--) siftDown(ranking, at);
    } else {
      ranking.lastNowMs = nowMs;
      const r = ranking;
      const seen = r.sums;
      for (let i = 0; i < n; i++) {
        if (snapshots[i] === seen[i]) continue;
        const at = r.slot[i]!;
        if (evaluate(r, i)) {
          if (at < 0) {
            place(r, r.size++, i);
            siftUp(r, r.size - 1);
          } else {
            siftUp(r, at);
            siftDown(r, r.slot[i]!);
          }
        } else if (at >= 0) {
          r.slot[i] = -1;
          const last = r.heap[--r.size]!;
          if (last !== i) {
            place(r, at, last);
            siftUp(r, at);
            siftDown(r, r.slot[last]!);
          }
        }
      }
    }
  } catch (err) {
    if (!(err instanceof UnrankableScore)) throw err;
    rankings.delete(key);
    return null;
  }

  if (ranking.size === 0) return null;
  const best = ranking.heap[0]!;
  // Rows serve every kind: another kind may have moved this GPU's row on to a later snapshot
  // since this one (whose snapshot is again what this kind evaluated) last looked.
  const sums = ranking.sums[best]!;
  if (rows.sums[best] !== sums) refreshRow(inventory, rows, best, sums);
  return { position: best, threads: ranking.threads[best]!, sums, committedMiB: rows.committedMiB[best]!, clients: rows.clients[best]! };
}

/** A GPU scored NaN: no order ranks it as the full pass does. */
class UnrankableScore extends Error {}
