/**
 * Per-GPU reservation sums: what placement reads of a GPU's reservations, and the ledger
 * keeps up to date. Pure.
 */
import { Priority, ReservationState } from '../domain/slot.js';
import type { LedgerView, Reservation } from '../domain/slot.js';
import { runningSinceOf } from './memoryAccounting.js';
import type { ReservedMemory } from './memoryAccounting.js';

/**
 * The live reservations of one GPU and their sums: an immutable snapshot, replaced (never
 * edited) whenever the GPU's reservations change.
 */
export interface GpuReservationTotals extends ReservedMemory {
  readonly memoryMiB: number;
  readonly threadPercent: number;
  /** Sum of the thread percentages granted to `high` pods (within threadPercent). */
  readonly highThreadPercent: number;
  readonly clients: number;
  /** Earliest and latest runningSinceMs (Infinity for a pod not running): placement's warm-up test is O(1) when all or none are visible. */
  readonly earliestRunningSinceMs: number;
  readonly latestRunningSinceMs: number;
  /** When the next pending one expires; Infinity when none can. */
  readonly nextExpiryMs: number;
  readonly reservations: readonly Reservation[];
}

/** A ledger that keeps per-GPU sums (the ReservationLedger): placement reads them without summing. */
export interface TotalsLedgerView extends LedgerView {
  /** The sums of each GPU of a list, by position; expiries not applied (check nextExpiryMs). */
  snapshotsFor(gpus: readonly { uuid: string }[]): readonly GpuReservationTotals[];
  /** Live sums of one GPU at nowMs. */
  totals(gpuUuid: string, nowMs: number): GpuReservationTotals;
}

export function keepsTotals(ledger: LedgerView): ledger is TotalsLedgerView {
  const candidate = ledger as Partial<TotalsLedgerView>;
  return typeof candidate.snapshotsFor === 'function' && typeof candidate.totals === 'function';
}

const NO_RESERVATIONS: readonly Reservation[] = Object.freeze([]);
export const ZERO_RESERVATION_TOTALS: GpuReservationTotals = Object.freeze({
  memoryMiB: 0,
  threadPercent: 0,
  highThreadPercent: 0,
  clients: 0,
  earliestRunningSinceMs: Infinity,
  latestRunningSinceMs: -Infinity,
  nextExpiryMs: Infinity,
  reservations: NO_RESERVATIONS,
});

/** The time a reservation stops counting, or Infinity when it never expires. */
export function expiryOf(reservation: Reservation): number {
  return reservation.state === ReservationState.Pending && reservation.expiresAtMs !== null ? reservation.expiresAtMs : Infinity;
}

/** The snapshot of a list of reservations (all taken as live); it keeps the list, so pass one nobody edits. */
export function sumReservations(reservations: readonly Reservation[]): GpuReservationTotals {
  let memoryMiB = 0;
  let threadPercent = 0;
  let highThreadPercent = 0;
  let earliestRunningSinceMs = Infinity;
  let latestRunningSinceMs = -Infinity;
  let nextExpiryMs = Infinity;
  for (const r of reservations) {
    memoryMiB += r.memoryMiB;
    threadPercent += r.threadPercent;
    if (r.priority === Priority.High) highThreadPercent += r.threadPercent;
    const since = runningSinceOf(r);
    if (since < earliestRunningSinceMs) earliestRunningSinceMs = since;
    if (since > latestRunningSinceMs) latestRunningSinceMs = since;
    const expiry = expiryOf(r);
    if (expiry < nextExpiryMs) nextExpiryMs = expiry;
  }
  return Object.freeze({
    memoryMiB,
    threadPercent,
    highThreadPercent,
    clients: reservations.length,
    earliestRunningSinceMs,
    latestRunningSinceMs,
    nextExpiryMs,
    reservations,
  });
}

