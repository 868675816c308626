/**
 * The reservation ledger: capacity the webhook has granted and the GPU metrics may not show
 * yet. Pure and synchronous; time comes in as `nowMs` so tests and replays control it.
 *
 * Per-GPU sums (memory, thread percent, clients) are kept up to date on every change, so
 * totals() is an O(1) lookup, and snapshotsFor() lays them out in inventory order for a
 * placement pass. Stored reservations, per-GPU lists and per-GPU totals are frozen snapshots
 * that are replaced, never edited: anything a caller holds stays valid.
 *
 * restore() takes createdAtMs as given: pass the pod's creation time, so placement can tell
 * reservations the GPU metrics may already show from ones they cannot show yet.
 */
import { randomUUID } from 'node:crypto';
import { ReservationState } from '../domain/slot.js';
import { ZERO_RESERVATION_TOTALS as ZERO_TOTALS, expiryOf, sumReservations } from '../placement/reservationTotals.js';
import type { GpuReservationTotals, TotalsLedgerView } from '../placement/reservationTotals.js';
import type { Reservation } from '../domain/slot.js';

export { sumReservations };
export type { GpuReservationTotals };

/** What a caller asks the ledger to hold. */
export type ReservationInput = Pick<Reservation, 'podKey' | 'node' | 'gpuUuid' | 'memoryMiB' | 'threadPercent' | 'threadCeilingPercent' | 'priority'>;

/** A reservation the ledger cannot take; the message says which field and what to do. */
export class LedgerError extends Error {
  override readonly name = 'LedgerError';
}

/**
 * Per-GPU snapshots laid out in the order of one GPU list, so a placement pass reads them
 * sequentially instead of hashing every UUID. Kept per list (an inventory is immutable) and
 * brought up to date from the ledger's change journal.
 */
interface PositionIndex {
  /** Ledger revision the snapshots reflect. */
  revision: number;
  snapshots: GpuReservationTotals[];
  /** Position of each UUID in the list; null when a UUID repeats (then every refresh is a full one). */
  positions: Map<string, number> | null;
}

/** Journal length that triggers a trim; indexes that fall behind the trimmed part refresh in full. */
const JOURNAL_TRIM_AT = 4096;
/** Up to this share of the list's length in changes, an index is patched change by change; beyond, refreshed in full. */
const PATCH_MAX_SHARE = 0.25;

/** Live at nowMs: confirmed, or pending and not yet at its expiry. */
function isLive(reservation: Reservation, nowMs: number): boolean {
  return reservation.state === ReservationState.Confirmed || reservation.expiresAtMs === null || nowMs < reservation.expiresAtMs;
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

/** Position of each UUID in a GPU list, or null when one repeats. */
function positionsOf(gpus: readonly { uuid: string }[]): Map<string, number> | null {
  const positions = new Map<string, number>();
  for (let i = 0; i < gpus.length; i++) {
    const uuid = gpus[i]?.uuid ?? '';
    if (positions.has(uuid)) return null;
    positions.set(uuid, i);
  }
  return positions;
}

export class ReservationLedger implements TotalsLedgerView {
  private readonly ttlMs: number;
  private readonly newId: () => string;
  private readonly byId = new Map<string, Reservation>();
  private readonly byGpu = new Map<string, GpuReservationTotals>();
  /** Ids held per pod key: the id itself for the usual one, a Set only for a pod holding several (saves a Set per live pod). */
  private readonly byPod = new Map<string, string | Set<string>>();
  /** Ids of reservations that can expire (pending with an expiry). */
  private readonly expiring = new Set<string>();
  /** Earliest expiry over `expiring`; recomputed lazily once the reservation holding it leaves. */
  private earliestExpiryMs = Infinity;
  private earliestExpiryStale = false;
  /** Count of changes to per-GPU snapshots, and the UUIDs changed since journalBase. */
  private revision = 0;
  private journal: string[] = [];
  private journalBase = 0;
  private readonly indexes = new WeakMap<readonly { uuid: string }[], PositionIndex>();

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
      ...(input.threadCeilingPercent !== undefined && input.threadCeilingPercent > input.threadPercent ? { threadCeilingPercent: input.threadCeilingPercent } : {}),
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
  confirm(id: string, nowMs: number, pod?: { podKey: string; podUid: string }): boolean {
    const current = this.byId.get(id);
    if (current === undefined) return false;
    const bound = pod === undefined || (current.podKey === pod.podKey && current.podUid === pod.podUid);
    if (current.state === ReservationState.Confirmed && bound) return true;
    if (current.state !== ReservationState.Confirmed && !isLive(current, nowMs)) return false;
    // A pod created from a generateName gets its real name here: the ledger keys it by that from now on.
    this.replace(current, Object.freeze({ ...current, state: ReservationState.Confirmed, expiresAtMs: null, ...(pod === undefined ? {} : { podKey: pod.podKey, podUid: pod.podUid }) }));
    return true;
  }

  /**
   * What the pod watch says of the pod's GPU containers: running without a restart since
   * runningSinceMs, or null while any of them is not running (pending, pulling, restarting).
   * False when the id is unknown. A changed start time (a restart) starts the warm-up again.
   */
  markRunning(id: string, runningSinceMs: number | null): boolean {
    const current = this.byId.get(id);
    if (current === undefined) return false;
    if ((current.runningSinceMs ?? null) === runningSinceMs) return true;
    this.replace(current, Object.freeze({ ...current, runningSinceMs }));
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
    for (const id of typeof ids === 'string' ? [ids] : [...ids]) {
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
    // A durable record knows nothing of the pod's containers: keep what the pod watch reported.
    const runningSinceMs = reservation.runningSinceMs !== undefined ? reservation.runningSinceMs : (existing?.runningSinceMs ?? null);
    const next: Reservation = Object.freeze({ ...reservation, runningSinceMs });
    if (existing !== undefined) this.replace(existing, next);
    else this.add(next);
  }

  /** The stored reservation with this id (even one past expiry that expire() has not dropped yet), or null. */
  get(id: string): Reservation | null {
    return this.byId.get(id) ?? null;
  }

  /** Every reservation held for a pod key (expired ones not yet dropped included). */
  onPod(podKey: string): Reservation[] {
    const ids = this.byPod.get(podKey);
    if (ids === undefined) return [];
    const held: Reservation[] = [];
    for (const id of typeof ids === 'string' ? [ids] : ids) {
      const r = this.byId.get(id);
      if (r !== undefined) held.push(r);
    }
    return held;
  }

  /** Every live reservation at nowMs. */
  list(nowMs: number): Reservation[] {
    const live: Reservation[] = [];
    for (const r of this.byId.values()) if (isLive(r, nowMs)) live.push(r);
    return live;
  }

  /** Live reservations on one GPU. Without expiries due, this is the stored snapshot: no copy. */
  onGpu(gpuUuid: string, nowMs: number): readonly Reservation[] {
    return this.totals(gpuUuid, nowMs).reservations;
  }

  /** Live reservations on one GPU and their sums: an O(1) lookup unless expiries are due and not yet dropped. */
  totals(gpuUuid: string, nowMs: number): GpuReservationTotals {
    const book = this.byGpu.get(gpuUuid);
    if (book === undefined) return ZERO_TOTALS;
    if (nowMs < book.nextExpiryMs) return book;
    return sumReservations(Object.freeze(book.reservations.filter((r) => isLive(r, nowMs))));
  }

  /**
   * The per-GPU snapshot of each GPU of a list, by position: what totals() returns for it,
   * except that expiries are not applied, so check `nowMs < snapshot.nextExpiryMs` and call
   * totals() when it fails. O(list) on the first call for a list, then O(changes since the
   * previous call, each a map lookup). The list must not change after the first call (inventories are snapshots).
   */
  snapshotsFor(gpus: readonly { uuid: string }[]): readonly GpuReservationTotals[] {
    let index = this.indexes.get(gpus);
    if (index === undefined || index.snapshots.length !== gpus.length) {
      index = { revision: -1, snapshots: new Array<GpuReservationTotals>(gpus.length), positions: positionsOf(gpus) };
      this.indexes.set(gpus, index);
    }
    if (index.revision === this.revision) return index.snapshots;

    const snapshots = index.snapshots;
    const positions = index.positions;
    const pending = index.revision < this.journalBase ? Infinity : this.journal.length - (index.revision - this.journalBase);
    if (positions === null || pending > PATCH_MAX_SHARE * gpus.length) {
      for (let i = 0; i < gpus.length; i++) snapshots[i] = this.byGpu.get(gpus[i]?.uuid ?? '') ?? ZERO_TOTALS;
    } else {
      // The GPUs changed since the last pass (the usual case: a few admissions and confirmations), each found by its position.
      for (let j = this.journal.length - pending; j < this.journal.length; j++) {
        const changedUuid = this.journal[j]!;
        const position = positions.get(changedUuid);
        if (position !== undefined) snapshots[position] = this.byGpu.get(changedUuid) ?? ZERO_TOTALS;
      }
    }
    index.revision = this.revision;
    return snapshots;
  }

  /** Replace a GPU's snapshot (or drop it) and note the change for position indexes. */
  private setSnapshot(gpuUuid: string, reservations: readonly Reservation[]): void {
    if (reservations.length === 0) this.byGpu.delete(gpuUuid);
    // Recomputed rather than adjusted: no floating-point drift, and k is bounded by the client cap.
    else this.byGpu.set(gpuUuid, sumReservations(Object.freeze(reservations)));
    this.revision++;
    this.journal.push(gpuUuid);
    if (this.journal.length >= JOURNAL_TRIM_AT) {
      const dropped = this.journal.length / 2;
      this.journal = this.journal.slice(dropped);
      this.journalBase += dropped;
    }
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
    this.index(reservation);
    const book = this.byGpu.get(reservation.gpuUuid);
    this.setSnapshot(reservation.gpuUuid, book === undefined ? [reservation] : [...book.reservations, reservation]);
  }

  private remove(reservation: Reservation): void {
    this.unindex(reservation);
    const book = this.byGpu.get(reservation.gpuUuid);
    if (book !== undefined) this.setSnapshot(reservation.gpuUuid, without(book.reservations, reservation.id));
  }

  /** remove(current) then add(next), with one snapshot rebuild (not two) when the GPU is the same. */
  private replace(current: Reservation, next: Reservation): void {
    if (current.gpuUuid !== next.gpuUuid) {
      this.remove(current);
      this.add(next);
      return;
    }
    this.unindex(current);
    this.index(next);
    const book = this.byGpu.get(next.gpuUuid);
    this.setSnapshot(next.gpuUuid, book === undefined ? [next] : replaced(book.reservations, current.id, next));
  }

  /** byId, byPod and the expiry set, without the per-GPU snapshot. */
  private index(reservation: Reservation): void {
    this.byId.set(reservation.id, reservation);

    const pods = this.byPod.get(reservation.podKey);
    if (pods === undefined || pods === reservation.id) this.byPod.set(reservation.podKey, reservation.id);
    else if (typeof pods === 'string') this.byPod.set(reservation.podKey, new Set([pods, reservation.id]));
    else pods.add(reservation.id);

    const expiry = expiryOf(reservation);
    if (expiry !== Infinity) {
      this.expiring.add(reservation.id);
      if (expiry < this.earliestExpiryMs) this.earliestExpiryMs = expiry;
    }
  }

  private unindex(reservation: Reservation): void {
    this.byId.delete(reservation.id);

    const pods = this.byPod.get(reservation.podKey);
    if (pods === reservation.id) this.byPod.delete(reservation.podKey);
    else if (typeof pods === 'object') {
      pods.delete(reservation.id);
      if (pods.size === 0) this.byPod.delete(reservation.podKey);
    }

    const expiry = expiryOf(reservation);
    if (this.expiring.delete(reservation.id) && expiry <= this.earliestExpiryMs) this.earliestExpiryStale = true;
  }
}

/** A copy of a GPU's list without one id. */
function without(reservations: readonly Reservation[], id: string): Reservation[] {
  const kept: Reservation[] = [];
  for (const r of reservations) if (r.id !== id) kept.push(r);
  return kept;
}

/** A copy of a GPU's list with the reservation of one id replaced in place (appended if absent). */
function replaced(reservations: readonly Reservation[], id: string, next: Reservation): Reservation[] {
  const list: Reservation[] = [];
  let found = false;
  for (const r of reservations) {
    if (r.id === id) {
      list.push(next);
      found = true;
    } else list.push(r);
  }
  if (!found) list.push(next);
  return list;
}
