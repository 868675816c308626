/**
 * Reservations as the cluster's pods record them, and the bookkeeping that keeps the ledger
 * in step with pods: a reservation is confirmed when its pod appears, restored from the pod
 * when the ledger does not hold it (after a restart, or granted by another replica), and
 * released when the last pod carrying it ends or is deleted. No I/O: the informer feeds it.
 */
import type { Logger } from 'pino';
import { quantityToMiB } from '../config/quantity.js';
import { Annotation } from '../injector/names.js';
import type { ReservationLedger } from '../placement/ledger.js';
import { Priority, ReservationState } from '../placement/types.js';
import type { Reservation } from '../placement/types.js';

/** The parts of a Pod this module reads (the client's V1Pod and raw watch JSON both fit). */
export interface PodLike {
  metadata?: {
    name?: string;
    namespace?: string;
    annotations?: Record<string, string>;
    creationTimestamp?: Date | string;
  };
  spec?: { nodeName?: string };
  status?: { phase?: string };
}

/** Reservation id the webhook writes on dry-run admissions; never held. */
const DRY_RUN_RESERVATION = 'dry-run';

export const podKeyOf = (pod: PodLike): string => `${pod.metadata?.namespace ?? ''}/${pod.metadata?.name ?? ''}`;

/** A pod that has ended: its GPU share is free again. */
export function isPodFinished(pod: PodLike): boolean {
  const phase = pod.status?.phase;
  return phase === 'Succeeded' || phase === 'Failed';
}

function wholeNumber(text: string | undefined): number | null {
  if (text === undefined || !/^\s*\d+\s*$/.test(text)) return null;
  return Number(text);
}

function timestampMs(value: Date | string | undefined, fallback: number): number {
  if (value instanceof Date) return value.getTime();
  if (typeof value === 'string') {
    const ms = Date.parse(value);
    if (Number.isFinite(ms)) return ms;
  }
  return fallback;
}

/**
 * The confirmed reservation a pod's decision annotations describe, or null when the pod
 * carries none (not injected, dry-run, or annotations incomplete).
 */
export function reservationFromPod(pod: PodLike, nowMs: number): Reservation | null {
  const a = pod.metadata?.annotations ?? {};
  const id = a[Annotation.Reservation]?.trim();
  const node = a[Annotation.Node]?.trim();
  const gpuUuid = a[Annotation.GpuUuid]?.trim();
  const threadPercent = wholeNumber(a[Annotation.ThreadPercent]);
  const memoryText = a[Annotation.MemoryLimit];
  const memoryMiB = memoryText === undefined ? null : quantityToMiB(memoryText);
  if (!id || id === DRY_RUN_RESERVATION || !node || !gpuUuid || threadPercent === null || memoryMiB === null) return null;
  const priorityText = a[Annotation.Priority]?.trim().toLowerCase();
  return {
    id,
    podKey: podKeyOf(pod),
    node,
    gpuUuid,
    memoryMiB,
    threadPercent,
    priority: priorityText === Priority.High ? Priority.High : Priority.Low,
    state: ReservationState.Confirmed,
    createdAtMs: timestampMs(pod.metadata?.creationTimestamp, nowMs),
    expiresAtMs: null,
  };
}

export interface PodReservationEvents {
  /** The last pod carrying a reservation ended or was deleted; its capacity was released. */
  onReleased?(reservationId: string): void;
}

/** Keeps the ledger in step with the pods that carry reservations. */
export class PodReservationTracker {
  private readonly podsByReservation = new Map<string, Set<string>>();
  private readonly reservationByPod = new Map<string, string>();
  /** Reservations whose pods ended, with when: their durable records may be dropped. */
  private readonly ended = new Map<string, number>();
  private readonly ledger: ReservationLedger;
  private readonly now: () => number;
  private readonly logger: Logger;
  private readonly events: PodReservationEvents;

  constructor(opts: { ledger: ReservationLedger; now: () => number; logger: Logger; events?: PodReservationEvents }) {
    this.ledger = opts.ledger;
    this.now = opts.now;
    this.logger = opts.logger;
    this.events = opts.events ?? {};
  }

  /** A pod was added or changed. */
  upsert(pod: PodLike): void {
    const key = podKeyOf(pod);
    const nowMs = this.now();
    const recorded = reservationFromPod(pod, nowMs);
    const previous = this.reservationByPod.get(key);
    if (recorded === null) {
      if (previous !== undefined) this.detach(key, previous);
      return;
    }
    if (previous !== undefined && previous !== recorded.id) this.detach(key, previous);
    if (isPodFinished(pod)) {
      if (this.reservationByPod.has(key)) this.detach(key, recorded.id);
      else if (!this.podsByReservation.has(recorded.id)) this.releaseEnded(recorded.id, nowMs);
      return;
    }
    this.attach(key, recorded.id);
    const held = this.ledger.get(recorded.id);
    if (held?.state === ReservationState.Confirmed) return;
    if (held !== null && this.ledger.confirm(recorded.id, nowMs)) {
      this.logger.debug({ reservation: recorded.id, pod: key }, 'reservation confirmed: its pod appeared');
      return;
    }
    this.ledger.restore(recorded);
    this.logger.debug({ reservation: recorded.id, pod: key, node: recorded.node, gpu: recorded.gpuUuid }, 'reservation restored from its pod');
  }

  /** A pod was deleted. */
  remove(pod: PodLike): void {
    const key = podKeyOf(pod);
    const id = this.reservationByPod.get(key) ?? reservationFromPod(pod, this.now())?.id;
    if (id !== undefined) this.detach(key, id);
  }

  /** True while a pod that is not finished carries the reservation. */
  hasLivePod(reservationId: string): boolean {
    return this.podsByReservation.has(reservationId);
  }

  /** True when a pod carrying the reservation was seen to end and none carries it now. */
  hasEnded(reservationId: string): boolean {
    return this.ended.has(reservationId) && !this.podsByReservation.has(reservationId);
  }

  /** Forget ended reservations older than the cut-off (their durable records are gone by then). */
  pruneEnded(olderThanMs: number): void {
    for (const [id, at] of this.ended) if (at < olderThanMs) this.ended.delete(id);
  }

  /** Pods tracked now (carrying a reservation, not finished). */
  get trackedPods(): number {
    return this.reservationByPod.size;
  }

  private attach(key: string, id: string): void {
    this.reservationByPod.set(key, id);
    let pods = this.podsByReservation.get(id);
    if (pods === undefined) {
      pods = new Set();
      this.podsByReservation.set(id, pods);
    }
    pods.add(key);
    this.ended.delete(id);
  }

  private detach(key: string, id: string): void {
    this.reservationByPod.delete(key);
    const pods = this.podsByReservation.get(id);
    pods?.delete(key);
    if (pods !== undefined && pods.size > 0) return;
    this.podsByReservation.delete(id);
    this.releaseEnded(id, this.now());
  }

  private releaseEnded(id: string, nowMs: number): void {
    this.ended.set(id, nowMs);
    const released = this.ledger.release(id);
    if (released !== null) this.logger.debug({ reservation: id, node: released.node, gpu: released.gpuUuid }, 'reservation released: its pod ended');
    this.events.onReleased?.(id);
  }
}
