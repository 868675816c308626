/**
 * How much of a GPU's memory is spoken for: the one rule placement, the webhook's per-GPU
 * metrics and the operator's status all read. Pure.
 *
 * A GPU sample shows what processes use at the moment it was taken. A reservation is inside
 * that figure only when its pod could have loaded by then: every GPU container of the pod had
 * been running (no restart) for the warm-up period before the sample was taken. Every other
 * reservation (pending, confirmed but unscheduled, pulling images, loading, crash-looping)
 * is added in full on top of the observed use.
 *
 *   visible     = reservations whose pod ran for the warm-up before the sample
 *   unreserved  = max(0, observed used - visible granted)   (use of what the webhook did not place)
 *   committed   = unreserved + all granted                  (= max(used + unobserved, granted))
 *   free room   = total - committed - safety margin
 *
 * So, once every granted pod uses its full limit, unreserved + granted + margin <= total holds
 * on every GPU the webhook grants on (docs/adr/0002-placement.md).
 */
import type { GpuMemory } from '../domain/inventory.js';
import type { Reservation } from '../domain/slot.js';

/** The reservation sums accounting needs (a ledger snapshot fits). */
export interface ReservedMemory {
  /** Sum of granted memory limits, MiB. */
  readonly memoryMiB: number;
  readonly clients: number;
  /** Earliest and latest runningSinceMs among the reservations; Infinity stands for "not running". */
  readonly earliestRunningSinceMs: number;
  readonly latestRunningSinceMs: number;
  readonly reservations: readonly Reservation[];
}

/** One GPU's memory as placement counts it, MiB. */
export interface GpuMemoryAccount {
  totalMiB: number;
  /** What the sample shows in use. */
  observedUsedMiB: number;
  /** Sum of the limits granted on the GPU. */
  grantedMiB: number;
  /** Granted memory the sample cannot show yet (its pods had not run for the warm-up). */
  unobservedMiB: number;
  /** Observed use of what the webhook did not place. */
  unreservedUsedMiB: number;
  /** unreserved + granted: memory spoken for once every granted pod uses its full limit. */
  committedMiB: number;
  /** total - committed - safety margin (negative when over-committed). */
  freeMiB: number;
}

/** The runningSinceMs of a reservation as a number: Infinity while its pod is not running. */
export function runningSinceOf(reservation: Pick<Reservation, 'runningSinceMs'>): number {
  const since = reservation.runningSinceMs;
  return since === null || since === undefined ? Infinity : since;
}

/** True when a sample taken at sampledAtMs can already show the reservation's memory. */
export function isVisibleInSample(reservation: Pick<Reservation, 'runningSinceMs'>, sampledAtMs: number, observeAfterMs: number): boolean {
  return runningSinceOf(reservation) + observeAfterMs <= sampledAtMs;
}

/** Granted memory the sample cannot show yet. O(1) when all or none are visible, else one pass over the GPU's reservations. */
export function unobservedMiB(sums: ReservedMemory, sampledAtMs: number, observeAfterMs: number): number {
  if (sums.clients === 0) return 0;
  const cutoffMs = sampledAtMs - observeAfterMs;
  if (sums.latestRunningSinceMs <= cutoffMs) return 0;
  if (sums.earliestRunningSinceMs > cutoffMs) return sums.memoryMiB;
  let hidden = 0;
  for (const r of sums.reservations) if (runningSinceOf(r) > cutoffMs) hidden += r.memoryMiB;
  return hidden;
}

/** Memory spoken for on a GPU: max(observed used + unobserved grants, all grants). */
export function committedMiB(memory: GpuMemory, sums: ReservedMemory, sampledAtMs: number, observeAfterMs: number): number {
  if (sums.clients === 0) return memory.usedMiB;
  const withHidden = memory.usedMiB + unobservedMiB(sums, sampledAtMs, observeAfterMs);
  return withHidden > sums.memoryMiB ? withHidden : sums.memoryMiB;
}

/** The full account of one GPU, for metrics and status (placement's hot loop calls committedMiB). */
export function accountGpuMemory(memory: GpuMemory, sums: ReservedMemory, sampledAtMs: number, observeAfterMs: number, marginMiB: number): GpuMemoryAccount {
  const hidden = unobservedMiB(sums, sampledAtMs, observeAfterMs);
  const visibleGranted = sums.memoryMiB - hidden;
  const unreservedUsedMiB = Math.max(0, memory.usedMiB - visibleGranted);
  const committed = unreservedUsedMiB + sums.memoryMiB;
  return {
    totalMiB: memory.totalMiB,
    observedUsedMiB: memory.usedMiB,
    grantedMiB: sums.memoryMiB,
    unobservedMiB: hidden,
    unreservedUsedMiB,
    committedMiB: committed,
    freeMiB: memory.totalMiB - committed - marginMiB,
  };
}

/** One GPU of an inventory as the webhook counts it: its sample, its reservations and its memory account. */
export interface GpuAccountRow {
  node: string;
  uuid: string;
  index: number;
  model: string;
  sampledAtMs: number;
  /** Null when the exporter publishes no memory series for the GPU. */
  account: GpuMemoryAccount | null;
  reservations: readonly Reservation[];
  threadPercent: number;
}

/** What per-GPU accounting reads from the ledger (a ReservationLedger fits). */
export interface TotalsView {
  totals(gpuUuid: string, nowMs: number): ReservedMemory & { readonly threadPercent: number };
}

/** Every GPU of an inventory, accounted with the same rule placement uses. O(GPUs + reservations). */
export function accountGpus(gpus: readonly GpuSampleLike[], ledger: TotalsView, config: { observeAfterRunningSeconds: number; memorySafetyMarginMiB: number }, nowMs: number): GpuAccountRow[] {
  const observeAfterMs = config.observeAfterRunningSeconds * 1000;
  return gpus.map((gpu) => {
    const sums = ledger.totals(gpu.uuid, nowMs);
    return {
      node: gpu.node,
      uuid: gpu.uuid,
      index: gpu.index,
      model: gpu.model,
      sampledAtMs: gpu.sampledAtMs,
      account: gpu.memory === null ? null : accountGpuMemory(gpu.memory, sums, gpu.sampledAtMs, observeAfterMs, config.memorySafetyMarginMiB),
      reservations: sums.reservations,
      threadPercent: sums.threadPercent,
    };
  });
}

/** The parts of a GPU sample accounting reads. */
export interface GpuSampleLike {
  node: string;
  uuid: string;
  index: number;
  model: string;
  sampledAtMs: number;
  memory: GpuMemory | null;
}
