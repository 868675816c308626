import pino from 'pino';
import { Annotation } from '../injector/names.js';
import { ReservationLedger } from '../placement/ledger.js';
import { ReservationState } from '../placement/types.js';
import { PodReservationTracker, reservationFromPod } from './podReservations.js';
import type { PodLike } from './podReservations.js';

const logger = pino({ level: 'silent' });

function injectedPod(name: string, id: string, extra: Partial<Record<string, string>> = {}, phase = 'Pending'): PodLike {
  return {
    metadata: {
      name,
      namespace: 'ml',
      creationTimestamp: '2026-01-01T00:00:00Z',
      annotations: {
        [Annotation.Reservation]: id,
        [Annotation.Node]: 'node-a',
        [Annotation.GpuUuid]: 'GPU-1',
        [Annotation.ThreadPercent]: '25',
        [Annotation.MemoryLimit]: '8192Mi',
        [Annotation.Priority]: 'high',
        ...extra,
      } as Record<string, string>,
    },
    status: { phase },
  };
}

describe('reservationFromPod', () => {
  test('reads the decision annotations into a confirmed reservation', () => {
    expect(reservationFromPod(injectedPod('p', 'r-1'), 5)).toEqual({
      id: 'r-1',
      podKey: 'ml/p',
      node: 'node-a',
      gpuUuid: 'GPU-1',
      memoryMiB: 8192,
      threadPercent: 25,
      priority: 'high',
      state: ReservationState.Confirmed,
      createdAtMs: Date.parse('2026-01-01T00:00:00Z'),
      expiresAtMs: null,
    });
  });

  test('a pod without the annotations, a dry-run id, or a broken figure carries no reservation', () => {
    expect(reservationFromPod({ metadata: { name: 'plain', namespace: 'ml' } }, 0)).toBeNull();
    expect(reservationFromPod(injectedPod('p', 'dry-run'), 0)).toBeNull();
    expect(reservationFromPod(injectedPod('p', 'r', { [Annotation.ThreadPercent]: 'lots' }), 0)).toBeNull();
    expect(reservationFromPod(injectedPod('p', 'r', { [Annotation.MemoryLimit]: 'eight' }), 0)).toBeNull();
  });
});

describe('PodReservationTracker', () => {
  let nowMs: number;
  let ledger: ReservationLedger;
  let released: string[];
  let tracker: PodReservationTracker;

  beforeEach(() => {
    nowMs = 1_000_000;
    ledger = new ReservationLedger({ ttlMs: 60_000 });
    released = [];
    tracker = new PodReservationTracker({ ledger, now: () => nowMs, logger, events: { onReleased: (id) => released.push(id) } });
  });

  function reserve(): string {
    return ledger.reserve({ podKey: 'ml/web-*abc', node: 'node-a', gpuUuid: 'GPU-1', memoryMiB: 8192, threadPercent: 25, priority: 'high' }, nowMs).id;
  }

  test('the pod appearing confirms its pending reservation; it no longer expires', () => {
    const id = reserve();
    tracker.upsert(injectedPod('web-1', id));
    expect(ledger.get(id)?.state).toBe(ReservationState.Confirmed);
    expect(ledger.expire(nowMs + 10 * 60_000)).toEqual([]);
    expect(tracker.hasLivePod(id)).toBe(true);
  });

  test('a pod whose reservation the ledger lacks (restart, other replica) restores it', () => {
    tracker.upsert(injectedPod('web-1', 'from-elsewhere'));
    expect(ledger.get('from-elsewhere')).toEqual(expect.objectContaining({ state: ReservationState.Confirmed, gpuUuid: 'GPU-1', memoryMiB: 8192 }));
  });

  test('a pod that appears after its reservation expired restores it rather than losing it', () => {
    const id = reserve();
    nowMs += 61_000;
    tracker.upsert(injectedPod('web-1', id));
    expect(ledger.get(id)?.state).toBe(ReservationState.Confirmed);
  });

  test('Succeeded or Failed releases the capacity and marks the reservation ended', () => {
    const id = reserve();
    tracker.upsert(injectedPod('web-1', id, {}, 'Running'));
    tracker.upsert(injectedPod('web-1', id, {}, 'Succeeded'));
    expect(ledger.get(id)).toBeNull();
    expect(tracker.hasEnded(id)).toBe(true);
    expect(released).toEqual([id]);
  });

  test('deletion releases; a reservation two pods carry is released only with the last one', () => {
    tracker.upsert(injectedPod('a', 'shared'));
    tracker.upsert(injectedPod('b', 'shared'));
    tracker.remove(injectedPod('a', 'shared'));
    expect(ledger.get('shared')).not.toBeNull();
    tracker.remove(injectedPod('b', 'shared'));
    expect(ledger.get('shared')).toBeNull();
    expect(released).toEqual(['shared']);
  });

  test('an already-finished pod seen at start-up releases a reservation restored from elsewhere', () => {
    ledger.restore({ id: 'old', podKey: 'ml/x', node: 'node-a', gpuUuid: 'GPU-1', memoryMiB: 1, threadPercent: 1, priority: 'low', state: 'pending', createdAtMs: nowMs, expiresAtMs: nowMs + 1000 });
    tracker.upsert(injectedPod('x', 'old', {}, 'Failed'));
    expect(ledger.get('old')).toBeNull();
    expect(tracker.hasEnded('old')).toBe(true);
  });

  test('ended reservations are forgotten after the cut-off', () => {
    tracker.upsert(injectedPod('x', 'r'));
    tracker.remove(injectedPod('x', 'r'));
    tracker.pruneEnded(nowMs + 1);
    expect(tracker.hasEnded('r')).toBe(false);
  });
});
