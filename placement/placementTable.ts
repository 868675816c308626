/**
 * What placement reads of each GPU, laid out in columns (typed arrays by inventory position)
 * so a placement pass is a run of array reads and compares. Pure.
 *
 * Two kinds of facts:
 * - per inventory, computed once: whether a GPU is ruled out whatever the pod asks (MIG, an
 *   XID, a cordoned or not-Ready node, no MPS daemon, no memory metrics), its sample time,
 *   memory and utilisation;
 * - per GPU and ledger snapshot: committed memory (warm-up accounting), clients (reservations
 *   plus unreserved pods the exporter maps to it) and the thread sums. A ledger snapshot is
 *   immutable and replaced when the GPU's reservations change, so a row is recomputed only
 *   when the snapshot it was computed from is no longer the GPU's.
 *
 * An inventory is a snapshot: its GPUs and node table must not change once placement has read
 * it (the merged inventory is rebuilt, never edited, when metrics or nodes change).
 */
import type { GpuInventory, NodeState } from '../domain/inventory.js';
import type { GpuReservationTotals } from './reservationTotals.js';
import { committedMiB } from './memoryAccounting.js';
import { countUnreservedPods } from './unreservedPods.js';

/**
 * Rows computed from ledger snapshots, for one warm-up period. A row is a function of the GPU's
 * sample and the snapshot object alone, so rows serve any ledger: a GPU whose snapshot is not
 * the one its row was computed from gets its row computed again.
 */
interface LedgerRows {
  observeAfterMs: number;
  /** The snapshot each row was computed from (undefined: not yet computed). */
  sums: (GpuReservationTotals | undefined)[];
  committedMiB: Float64Array;
  clients: Float64Array;
  threadPercent: Float64Array;
  highThreadPercent: Float64Array;
  /** The snapshot's nextExpiryMs (0 until computed). */
  nextExpiryMs: Float64Array;
}

export interface PlacementTable {
  readonly length: number;
  /** 1 where a rule that does not depend on the pod rules the GPU out (MIG, XID, node state, no memory metrics). */
  readonly ruledOut: Uint8Array;
  readonly sampledAtMs: Float64Array;
  /** 0 where the GPU has no memory metrics (ruled out). */
  readonly totalMiB: Float64Array;
  /** Utilisation in percent where utilKnown is 1. */
  readonly utilPercent: Float64Array;
  /** 0 where the exporter publishes no utilisation (placement reads it as null). */
  readonly utilKnown: Uint8Array;
  /** Committed memory, clients and thread sums of each GPU from its ledger snapshot (see refreshRow). */
  rowsFor(observeAfterMs: number): LedgerRows;
  /** 1 where the GPU's model, or its node's model label, contains the pattern (cached per pattern and label). */
  modelMatches(key: string, pattern: RegExp, labelName: string): Uint8Array;
  /** Lower-cased UUIDs by position (built on first use). */
  lowerCaseUuids(): readonly string[];
}

const tables = new WeakMap<GpuInventory, PlacementTable>();
/** Distinct model patterns kept per inventory; past this the cache starts again. */
const MODEL_PATTERNS_KEPT = 32;

function nodeStateOf(inventory: GpuInventory, node: string): NodeState | undefined {
  return Object.hasOwn(inventory.nodes, node) ? inventory.nodes[node] : undefined;
}

/** The placement table of an inventory, built on the first call for it. O(GPUs) once, then O(1). */
export function placementTableOf(inventory: GpuInventory): PlacementTable {
  let table = tables.get(inventory);
  if (table === undefined) {
    table = buildTable(inventory);
    tables.set(inventory, table);
  }
  return table;
}

function buildTable(inventory: GpuInventory): PlacementTable {
  const gpus = inventory.gpus;
  const length = gpus.length;
  const ruledOut = new Uint8Array(length);
  const sampledAtMs = new Float64Array(length);
  const totalMiB = new Float64Array(length);
  const utilPercent = new Float64Array(length);
  const utilKnown = new Uint8Array(length);
  let nodeName: string | null = null;
  let node: NodeState | undefined;
  for (let i = 0; i < length; i++) {
    const gpu = gpus[i];
    if (gpu === undefined) {
      ruledOut[i] = 1;
      continue;
    }
    if (gpu.node !== nodeName) {
      nodeName = gpu.node;
      node = nodeStateOf(inventory, nodeName);
    }
    sampledAtMs[i] = gpu.sampledAtMs;
    totalMiB[i] = gpu.memory === null ? 0 : gpu.memory.totalMiB;
    if (gpu.utilPercent !== null) {
      utilPercent[i] = gpu.utilPercent;
      utilKnown[i] = 1;
    }
    if (gpu.mig || gpu.xid !== 0 || node?.schedulable === false || node?.mpsDaemonReady === false || gpu.memory === null) ruledOut[i] = 1;
  }

  let rows: LedgerRows | null = null;
  const modelMatches = new Map<string, Uint8Array>();
  let lowerCaseUuids: string[] | null = null;
  return {
    length,
    ruledOut,
    sampledAtMs,
    totalMiB,
    utilPercent,
    utilKnown,
    rowsFor(observeAfterMs) {
      if (rows?.observeAfterMs !== observeAfterMs) {
        rows = {
          observeAfterMs,
          sums: new Array<GpuReservationTotals | undefined>(length),
          committedMiB: new Float64Array(length),
          clients: new Float64Array(length),
          threadPercent: new Float64Array(length),
          highThreadPercent: new Float64Array(length),
          nextExpiryMs: new Float64Array(length),
        };
      }
      return rows;
    },
    modelMatches(key, pattern, labelName) {
      const cacheKey = `${labelName}\n${key}`;
      let matches = modelMatches.get(cacheKey);
      if (matches === undefined) {
        matches = new Uint8Array(length);
        for (let i = 0; i < length; i++) {
          const gpu = gpus[i];
          if (gpu === undefined) continue;
          const label = nodeStateOf(inventory, gpu.node)?.labels[labelName];
          matches[i] = pattern.test(gpu.model) || (label !== undefined && pattern.test(label)) ? 1 : 0;
        }
        if (modelMatches.size >= MODEL_PATTERNS_KEPT) modelMatches.clear();
        modelMatches.set(cacheKey, matches);
      }
      return matches;
    },
    lowerCaseUuids() {
      lowerCaseUuids ??= gpus.map((gpu) => gpu.uuid.toLowerCase());
      return lowerCaseUuids;
    },
  };
}

/** Recompute row i of `rows` from the GPU's current snapshot. */
export function refreshRow(inventory: GpuInventory, rows: LedgerRows, i: number, sums: GpuReservationTotals): void {
  const gpu = inventory.gpus[i]!;
  rows.sums[i] = sums;
  rows.committedMiB[i] = gpu.memory === null ? 0 : committedMiB(gpu.memory, sums, gpu.sampledAtMs, rows.observeAfterMs);
  rows.clients[i] = gpu.pods.length === 0 ? sums.clients : sums.clients + countUnreservedPods(gpu.pods, sums.reservations);
  rows.threadPercent[i] = sums.threadPercent;
  rows.highThreadPercent[i] = sums.highThreadPercent;
  rows.nextExpiryMs[i] = sums.nextExpiryMs;
}
