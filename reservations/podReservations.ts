/**
 * Keeps the ledger in step with the pods that carry decisions the webhook issued: a
 * reservation is confirmed (and bound to the pod's UID and real name) when its pod appears,
 * restored from the pod when the ledger does not hold it (after a restart, or granted by
 * another replica), told when the pod's GPU containers run, and released only when that pod
 * (by UID) is deleted or terminal. No I/O: the informer feeds it.
 *
 * Untrusted input: a pod's annotations and labels are whatever its creator wrote. Only a
 * record whose seal verifies counts (domain/decisionRecord.ts); a forged one is counted and
 * logged once per pod and changes nothing. Once bound, later edits of a pod's annotations or
 * labels change nothing either: capacity is released by the pod's end alone.
 */
import type { Logger } from 'pino';
import { readDecisionRecord, storedPodKey } from '../domain/decisionRecord.js';
import type { DecisionKeyRing, RecordedPod } from '../domain/decisionRecord.js';
import type { ReservationLedger } from './ledger.js';
import { ReservationState } from '../domain/slot.js';

/** The parts of a Pod this module reads (the client's V1Pod and raw watch JSON both fit). */
export interface PodLike extends RecordedPod {
  metadata?: RecordedPod['metadata'] & { uid?: string; creationTimestamp?: Date | string };
  spec?: { nodeName?: string; containers?: ReadonlyArray<{ name: string }> };
  status?: {
    phase?: string;
    containerStatuses?: ReadonlyArray<{ name: string; state?: { running?: { startedAt?: Date | string } } }>;
  };
}

/** A pod that has ended: its GPU share is free again. */
export function isPodFinished(pod: PodLike): boolean {
  const phase = pod.status?.phase;
  return phase === 'Succeeded' || phase === 'Failed';
}

function timestampMs(value: Date | string | undefined): number | null {
  if (value instanceof Date) return value.getTime();
  if (typeof value === 'string') {
    const ms = Date.parse(value);
    if (Number.isFinite(ms)) return ms;
  }
  return null;
}

/**
 * Since when every one of the named containers has been running, from the pod's container
 * statuses (the latest start among them: a restart of any starts the warm-up again), or null
 * while any of them is not running (waiting, terminated, no status yet).
 */
export function containersRunningSince(pod: PodLike, containers: readonly string[]): number | null {
  const statuses = pod.status?.containerStatuses ?? [];
  let since = -Infinity;
  for (const name of containers) {
    const status = statuses.find((s) => s.name === name);
    const started = timestampMs(status?.state?.running?.startedAt);
    if (started === null) return null;
    if (started > since) since = started;
  }
  return since === -Infinity ? null : since;
}

/** The pod's identity for the tracker: its UID (every stored pod has one), else its key. */
function uidOf(pod: PodLike): string {
  return pod.metadata?.uid ?? `key:${storedPodKey(pod)}`;
}

export interface PodReservationEvents {
  /** The pod holding a reservation ended or was deleted; its capacity was released. */
  onReleased?(reservationId: string): void;
  /** A pod carried decision annotations or the injected label the webhook did not issue (reported once per pod). */
  onForged?(podKey: string, reason: string): void;
}

interface BoundPod {
  reservationId: string;
  key: string;
  containers: readonly string[];
}

/** Keeps the ledger in step with the pods that carry genuine decisions. */
export class PodReservationTracker {
  private readonly byUid = new Map<string, BoundPod>();
  private readonly uidByReservation = new Map<string, string>();
  /** Reservations whose pods ended, with when: their durable records may be dropped. */
  private readonly ended = new Map<string, number>();
  /** Pods already reported as forged (by UID), so each is logged once. */
  private readonly forgedSeen = new Set<string>();
  private readonly ledger: ReservationLedger;
  private readonly now: () => number;
  private readonly keys: () => DecisionKeyRing;
  private readonly logger: Logger;
  private readonly events: PodReservationEvents;
  /** Pods seen with a forged record, or with a genuine record already bound to another pod. */
  forgedPods = 0;

  constructor(opts: { ledger: ReservationLedger; now: () => number; keys: () => DecisionKeyRing; logger: Logger; events?: PodReservationEvents }) {
    this.ledger = opts.ledger;
    this.now = opts.now;
    this.keys = opts.keys;
    this.logger = opts.logger;
    this.events = opts.events ?? {};
  }

  /** A pod was added or changed. */
  upsert(pod: PodLike): void {
    const uid = uidOf(pod);
    const bound = this.byUid.get(uid);
    if (bound !== undefined) {
      // Bound pods keep their reservation whatever their annotations and labels say now.
      if (isPodFinished(pod)) this.release(uid, bound);
      else this.ledger.markRunning(bound.reservationId, containersRunningSince(pod, bound.containers));
      return;
    }

    const reading = readDecisionRecord(pod, this.keys(), pod.metadata?.namespace);
    if (reading.kind === 'none') return;
    const key = storedPodKey(pod);
    if (reading.kind === 'forged') {
      this.reportForged(uid, key, reading.reason);
      return;
    }
    const record = reading.record;
    const id = record.reservationId;
    const holder = this.uidByReservation.get(id);
    if (holder !== undefined && holder !== uid) {
      this.reportForged(uid, key, `its sealed decision (reservation ${id}) is already held by another pod, so it was copied`);
      return;
    }
    if (this.ended.has(id) && holder === undefined) {
      this.reportForged(uid, key, `its sealed decision (reservation ${id}) belonged to a pod that has ended, so it was copied`);
      return;
    }
    if (isPodFinished(pod)) {
      // Created and finished before we saw it running: nothing to hold.
      if (this.ledger.get(id) !== null) this.releaseId(id);
      return;
    }

    this.byUid.set(uid, { reservationId: id, key, containers: record.containers });
    this.uidByReservation.set(id, uid);
    const nowMs = this.now();
    const runningSinceMs = containersRunningSince(pod, record.containers);
    const binding = { podKey: key, podUid: uid };
    const held = this.ledger.get(id);
    if (held !== null && this.ledger.confirm(id, nowMs, binding)) {
      this.ledger.markRunning(id, runningSinceMs);
      if (held.state !== ReservationState.Confirmed) this.logger.debug({ reservation: id, pod: key }, 'reservation confirmed: its pod appeared');
      return;
    }
    this.ledger.restore({
      id,
      podKey: key,
      podUid: uid,
      node: record.node,
      gpuUuid: record.gpuUuid,
      memoryMiB: record.memoryLimitMiB,
      threadPercent: record.threadPercent,
      ...(record.threadCeilingPercent !== undefined ? { threadCeilingPercent: record.threadCeilingPercent } : {}),
      priority: record.priority,
      state: ReservationState.Confirmed,
      createdAtMs: timestampMs(pod.metadata?.creationTimestamp) ?? record.issuedAtMs,
      expiresAtMs: null,
      runningSinceMs,
    });
    this.logger.debug({ reservation: id, pod: key, node: record.node, gpu: record.gpuUuid }, 'reservation restored from its pod');
  }

  /** The pod (by UID) is gone from the API server: deleted, or replaced by another pod of the same name. */
  remove(pod: PodLike): void {
    const uid = uidOf(pod);
    const bound = this.byUid.get(uid);
    if (bound !== undefined) this.release(uid, bound);
    this.forgedSeen.delete(uid);
  }

  /** The bound pod of a UID, for a check that the pod still exists: its namespace/name, or null when none is bound. */
  boundPodKey(uid: string): string | null {
    return this.byUid.get(uid)?.key ?? null;
  }

  /** True while a pod that is not finished holds the reservation. */
  hasLivePod(reservationId: string): boolean {
    return this.uidByReservation.has(reservationId);
  }

  /** True when the pod holding the reservation was seen to end and none holds it now. */
  hasEnded(reservationId: string): boolean {
    return this.ended.has(reservationId) && !this.uidByReservation.has(reservationId);
  }

  /** Forget ended reservations older than the cut-off (their durable records are gone by then). */
  pruneEnded(olderThanMs: number): void {
    for (const [id, at] of this.ended) if (at < olderThanMs) this.ended.delete(id);
  }

  /** Pods holding a reservation now (not finished). */
  get trackedPods(): number {
    return this.byUid.size;
  }

  private reportForged(uid: string, key: string, reason: string): void {
    if (this.forgedSeen.has(uid)) return;
    this.forgedSeen.add(uid);
    this.forgedPods++;
    this.logger.warn({ pod: key, uid, reason }, 'pod carries a decision the webhook did not issue; it holds no GPU capacity');
    this.events.onForged?.(key, reason);
  }

  private release(uid: string, bound: BoundPod): void {
    this.byUid.delete(uid);
    this.uidByReservation.delete(bound.reservationId);
    this.releaseId(bound.reservationId);
  }

  private releaseId(id: string): void {
    this.ended.set(id, this.now());
    const released = this.ledger.release(id);
    if (released !== null) this.logger.debug({ reservation: id, node: released.node, gpu: released.gpuUuid }, 'reservation released: its pod ended');
    this.events.onReleased?.(id);
  }
}
