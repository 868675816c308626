/**
 * The reservation ledger: capacity the webhook has granted and the GPU metrics may not show
 * yet. Pure and synchronous; time comes in as `nowMs` so tests and replays control it.
 *
 * Per-GPU sums (memory, thread percent, clients) are kept up to date on every change, so
 * placement reads them in O(1). Stored reservations, per-GPU lists and per-GPU totals are
 * frozen snapshots that are replaced, never edited: anything a caller holds stays valid.
 */
import { randomUUID } from 'node:crypto';
import { ReservationState } from './types.js';
import type { LedgerView, Priority, Reservation } from './types.js';

/** What a caller asks the ledger to hold. */
export interface ReservationInput {
  podKey: string;
  node: string;
  gpuUuid: string;
  memoryMiB: number;
  threadPercent: number;
  priority: Priority;
}

/** Sums over the live reservations of one GPU. */
export interface GpuReservationTotals {
  readonly memoryMiB: number;
  readonly threadPercent: number;
  readonly clients: number;
}

/** A reservation the ledger cannot take; the message says which field and what to do. */
export class LedgerError extends Error {
  override readonly name = 'LedgerError';
}

interface GpuBook {
  /** Every stored reservation on the GPU, expired-but-not-yet-dropped ones included. */
  reservations: readonly Reservation[];
  /** Sums over `reservations`. */
  totals: GpuReservationTotals;
  /** Earliest expiry among its pending reservations; Infinity when none can expire. */
  earliestExpiryMs: number;
}

const NO_RESERVATIONS: readonly Reservation[] = Object.freeze([]);
const ZERO_TOTALS: GpuReservationTotals = Object.freeze({ memoryMiB: 0, threadPercent: 0, clients: 0 });

/** Live at nowMs: confirmed, or pending and not yet at its expiry. */
function isLive(reservation: Reservation, nowMs: number): boolean {
  return reservation.state === ReservationState.Confirmed || reservation.expiresAtMs === null || nowMs < reservation.expiresAtMs;
}

/** The time a reservation stops counting, or Infinity when it never expires. */
function expiryOf(reservation: Reservation): number {
  return reservation.state === ReservationState.Pending && reservation.expiresAtMs !== null ? reservation.expiresAtMs : Infinity;
}

function sumTotals(reservations: readonly Reservation[]): GpuReservationTotals {
  let memoryMiB = 0;
  let threadPercent = 0;
  for (const r of reservations) {
    memoryMiB += r.memoryMiB;
    threadPercent += r.threadPercent;
  }
  return Object.freeze({ memoryMiB, threadPercent, clients: reservations.length });
}

function requireText(value: unknown, field: string, origin: string): void {
  if (typeof value !== 'string' || value.length === 0) {
    throw new LedgerError(`${origin}: ${field} must be a non-empty string, got ${JSON.stringify(value)}; pass the ${field} of the chosen slot`);
  }
}

function requireAmount(value: unknown, field: string, origin: string): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new LedgerError(`${origin}: ${field} must be a finite number of at least 0, got ${String(value)}; pass the figure placement granted`);
  }
}

function validateInput(input: ReservationInput, origin: string): void {
  requireText(input.podKey, 'podKey', origin);
  requireText(input.node, 'node', origin);
  requireText(input.gpuUuid, 'gpuUuid', origin);
  requireAmount(input.memoryMiB, 'memoryMiB', origin);
  requireAmount(input.threadPercent, 'threadPercent', origin);
}

export class ReservationLedger implements LedgerView {
  private readonly ttlMs: number;
  private readonly newId: () => string;
  private readonly byId = new Map<string, Reservation>();
  private readonly byGpu = new Map<string, GpuBook>();
  private readonly byPod = new Map<string, Set<string>>();
  /** Ids of reservations that can expire (pending with an expiry). */
  private readonly expiring = new Set<string>();
  /** Earliest expiry over `expiring`; recomputed lazily once the reservation holding it leaves. */
  private earliestExpiryMs = Infinity;
  private earliestExpiryStale = false;

  constructor(opts: { ttlMs: number; newId?: () => string }) {
    if (!Number.isFinite(opts.ttlMs) || opts.ttlMs <= 0) {
      throw new LedgerError(`reservation TTL must be a positive number of milliseconds, got ${String(opts.ttlMs)}; set reservations.ttlSeconds above 0`);
    }
    this.ttlMs = opts.ttlMs;
    this.newId = opts.newId ?? randomUUID;
  }

  /** Hold capacity for a pod that is being admitted: pending until confirmed, expiring at nowMs + TTL. */
  reserve(input: ReservationInput, nowMs: number): Reservation {
    validateInput(input, 'cannot reserve');
    const id = this.newId();
    requireText(id, 'id', 'cannot reserve');
    if (this.byId.has(id)) {
      throw new LedgerError(`cannot reserve: the id generator returned "${id}", which is already in the ledger; give the ledger an id generator that never repeats`);
    }
    const reservation: Reservation = Object.freeze({
      id,
      podKey: input.podKey,
      node: input.node,
      gpuUuid: input.gpuUuid,
      memoryMiB: input.memoryMiB,
      threadPercent: input.threadPercent,
      priority: input.priority,
      state: ReservationState.Pending,
      createdAtMs: nowMs,
      expiresAtMs: nowMs + this.ttlMs,
    });
    this.add(reservation);
    return reservation;
  }

  /**
   * The pod appeared: the reservation no longer expires. True when it is confirmed now
   * (also when it already was); false when the id is unknown or it had already expired at
   * nowMs, in which case its capacity may have been granted again: restore it from the pod instead.
   */
  confirm(id: string, nowMs: number): boolean {
    const current = this.byId.get(id);
    if (current === undefined) return false;
    if (current.state === ReservationState.Confirmed) return true;
    if (!isLive(current, nowMs)) return false;
    this.remove(current);
    this.add(Object.freeze({ ...current, state: ReservationState.Confirmed, expiresAtMs: null }));
    return true;
  }

  /** Drop one reservation (its pod ended, or the admission was abandoned). */
  release(id: string): Reservation | null {
    const current = this.byId.get(id);
    if (current === undefined) return null;
    this.remove(current);
    return current;
  }

  /** Drop every reservation held for a pod. */
  releasePod(podKey: string): Reservation[] {
    const ids = this.byPod.get(podKey);
    if (ids === undefined) return [];
    const released: Reservation[] = [];
    for (const id of [...ids]) {
      const r = this.release(id);
      if (r !== null) released.push(r);
    }
    return released;
  }

  /** Drop the pending reservations whose expiry has come (their pods never appeared) and return them. */
  expire(nowMs: number): Reservation[] {
    if (nowMs < this.earliestExpiry()) return [];
    const expired: Reservation[] = [];
    for (const id of this.expiring) {
      const r = this.byId.get(id);
      if (r !== undefined && !isLive(r, nowMs)) expired.push(r);
    }
    for (const r of expired) this.remove(r);
    return expired;
  }

  /**
   * Put back a reservation read from durable state (a pod's annotations, a stored object)
   * after a restart or refresh. Idempotent by id: restoring an id again replaces the stored
   * copy, so the ledger holds it once, in its latest state.
   */
  restore(reservation: Reservation): void {
    validateInput(reservation, `cannot restore reservation ${JSON.stringify(reservation.id)}`);
    requireText(reservation.id, 'id', 'cannot restore reservation');
    if (reservation.state !== ReservationState.Pending && reservation.state !== ReservationState.Confirmed) {
      throw new LedgerError(
        `cannot restore reservation "${reservation.id}": state must be "pending" or "confirmed", got ${JSON.stringify(reservation.state)}; fix or drop the stored record`,
      );
    }
    const existing = this.byId.get(reservation.id);
    if (existing !== undefined) this.remove(existing);
    this.add(Object.freeze({ ...reservation }));
  }

  /** The stored reservation with this id (even one past expiry that expire() has not dropped yet), or null. */
  get(id: string): Reservation | null {
    return this.byId.get(id) ?? null;
  }

  /** Every live reservation at nowMs, oldest stored first. */
  list(nowMs: number): Reservation[] {
    const live: Reservation[] = [];
    for (const r of this.byId.values()) if (isLive(r, nowMs)) live.push(r);
    return live;
  }

  /** Live reservations on one GPU. Without expiries due, this is the stored snapshot: no copy. */
  onGpu(gpuUuid: string, nowMs: number): readonly Reservation[] {
    const book = this.byGpu.get(gpuUuid);
    if (book === undefined) return NO_RESERVATIONS;
    if (nowMs < book.earliestExpiryMs) return book.reservations;
    return Object.freeze(book.reservations.filter((r) => isLive(r, nowMs)));
  }

  /** Sums over the live reservations on one GPU: an O(1) lookup unless expiries are due and not yet dropped. */
  totals(gpuUuid: string, nowMs: number): GpuReservationTotals {
    const book = this.byGpu.get(gpuUuid);
    if (book === undefined) return ZERO_TOTALS;
    if (nowMs < book.earliestExpiryMs) return book.totals;
    return sumTotals(book.reservations.filter((r) => isLive(r, nowMs)));
  }

  /** Number of live reservations at nowMs. */
  size(nowMs: number): number {
    if (nowMs < this.earliestExpiry()) return this.byId.size;
    let live = 0;
    for (const r of this.byId.values()) if (isLive(r, nowMs)) live++;
    return live;
  }

  private earliestExpiry(): number {
    if (this.earliestExpiryStale) {
      let earliest = Infinity;
      for (const id of this.expiring) {
        const r = this.byId.get(id);
        if (r !== undefined) earliest = Math.min(earliest, expiryOf(r));
      }
      this.earliestExpiryMs = earliest;
      this.earliestExpiryStale = false;
    }
    return this.earliestExpiryMs;
  }

  private add(reservation: Reservation): void {
    this.byId.set(reservation.id, reservation);

    let pods = this.byPod.get(reservation.podKey);
    if (pods === undefined) {
      pods = new Set();
      this.byPod.set(reservation.podKey, pods);
    }
    pods.add(reservation.id);

    const expiry = expiryOf(reservation);
    if (expiry !== Infinity) {
      this.expiring.add(reservation.id);
      if (expiry < this.earliestExpiryMs) this.earliestExpiryMs = expiry;
    }

    const book = this.byGpu.get(reservation.gpuUuid);
    if (book === undefined) {
      this.byGpu.set(reservation.gpuUuid, {
        reservations: Object.freeze([reservation]),
        totals: Object.freeze({ memoryMiB: reservation.memoryMiB, threadPercent: reservation.threadPercent, clients: 1 }),
        earliestExpiryMs: expiry,
      });
      return;
    }
    book.reservations = Object.freeze([...book.reservations, reservation]);
    book.totals = Object.freeze({
      memoryMiB: book.totals.memoryMiB + reservation.memoryMiB,
      threadPercent: book.totals.threadPercent + reservation.threadPercent,
      clients: book.totals.clients + 1,
    });
    if (expiry < book.earliestExpiryMs) book.earliestExpiryMs = expiry;
  }

  private remove(reservation: Reservation): void {
    this.byId.delete(reservation.id);

    const pods = this.byPod.get(reservation.podKey);
    if (pods !== undefined) {
      pods.delete(reservation.id);
      if (pods.size === 0) this.byPod.delete(reservation.podKey);
    }

    const expiry = expiryOf(reservation);
    if (this.expiring.delete(reservation.id) && expiry <= this.earliestExpiryMs) this.earliestExpiryStale = true;

    const book = this.byGpu.get(reservation.gpuUuid);
    if (book === undefined) return;
    const remaining = book.reservations.filter((r) => r.id !== reservation.id);
    if (remaining.length === 0) {
      this.byGpu.delete(reservation.gpuUuid);
      return;
    }
    book.reservations = Object.freeze(remaining);
    // Recomputed rather than decremented: no floating-point drift, and k is bounded by the client cap.
    book.totals = sumTotals(remaining);
    if (expiry <= book.earliestExpiryMs) {
      let earliest = Infinity;
      for (const r of remaining) earliest = Math.min(earliest, expiryOf(r));
      book.earliestExpiryMs = earliest;
    }
  }
}
