import pino from 'pino';
import { ReservationLedger } from './ledger.js';
import { ReservationState } from '../domain/slot.js';
import { TEST_KEY_RING } from '../testing/decisionKeys.js';
import { sealedPod } from '../testing/sealedPods.js';
import type { SealedPodSpec } from '../testing/sealedPods.js';
import { PodReservationTracker, containersRunningSince } from './podReservations.js';
import type { PodLike } from './podReservations.js';

const logger = pino({ level: 'silent' });
const GPU = 'GPU-11111111-1111-1111-1111-111111111111';

const pod = (name: string, reservationId: string, extra: Partial<SealedPodSpec> = {}) => sealedPod({ name, reservationId, gpuUuid: GPU, ...extra });

function edited(p: ReturnType<typeof sealedPod>, annotations: Record<string, string | undefined>, labels: Record<string, string | undefined> = {}): PodLike {
  const copy = structuredClone(p);
  for (const [k, v] of Object.entries(annotations)) {
    if (v === undefined) delete copy.metadata.annotations[k];
    else copy.metadata.annotations[k] = v;
  }
  for (const [k, v] of Object.entries(labels)) {
    if (v === undefined) delete copy.metadata.labels[k];
    else copy.metadata.labels[k] = v;
  }
  return copy;
}

describe('containersRunningSince', () => {
  test('the latest start among the GPU containers, or null while any of them does not run', () => {
    const p: PodLike = {
      status: {
        containerStatuses: [
          { name: 'a', state: { running: { startedAt: '2026-01-01T00:00:10Z' } } },
          { name: 'b', state: { running: { startedAt: '2026-01-01T00:00:20Z' } } },
          { name: 'c', state: {} },
        ],
      },
    };
    expect(containersRunningSince(p, ['a', 'b'])).toBe(Date.parse('2026-01-01T00:00:20Z'));
    expect(containersRunningSince(p, ['a', 'c'])).toBeNull();
    expect(containersRunningSince({}, ['a'])).toBeNull();
  });
});

describe('PodReservationTracker', () => {
  let nowMs: number;
  let ledger: ReservationLedger;
  let released: string[];
  let forged: string[];
  let tracker: PodReservationTracker;

  beforeEach(() => {
    nowMs = 1_000_000;
    ledger = new ReservationLedger({ ttlMs: 60_000 });
    released = [];
    forged = [];
    tracker = new PodReservationTracker({
      ledger,
      now: () => nowMs,
      logger,
      keys: () => TEST_KEY_RING,
      events: { onReleased: (id) => released.push(id), onForged: (key, reason) => forged.push(`${key}: ${reason}`) },
    });
  });

  function reserve(podKey = 'ml/web-abcdef12'): string {
    return ledger.reserve({ podKey, node: 'node-a', gpuUuid: GPU, memoryMiB: 8192, threadPercent: 25, priority: 'high' }, nowMs).id;
  }

  test('the pod appearing confirms its pending reservation, binds its UID and real name; it no longer expires', () => {
    const id = reserve();
    tracker.upsert(pod('web-x2k4q', id, { generateName: 'web-' }));
    expect(ledger.get(id)).toMatchObject({ state: ReservationState.Confirmed, podKey: 'ml/web-x2k4q', podUid: 'uid-ml-web-x2k4q' });
    expect(ledger.expire(nowMs + 10 * 60_000)).toEqual([]);
    expect(tracker.hasLivePod(id)).toBe(true);
  });

  test('a generateName pod counts once: keyed by its real name after confirmation, so the exporter\'s series for it is its own', () => {
    const id = reserve('ml/web-7d9f-abcdef12');
    tracker.upsert(pod('web-7d9f-x2k4q', id, { generateName: 'web-7d9f-' }));
    expect(ledger.onGpu(GPU, nowMs).map((r) => r.podKey)).toEqual(['ml/web-7d9f-x2k4q']);
  });

  test('running status reaches the ledger; a restart starts the warm-up again', () => {
    const id = reserve();
    tracker.upsert(pod('web-1', id));
    expect(ledger.get(id)?.runningSinceMs ?? null).toBeNull();
    tracker.upsert(pod('web-1', id, { runningSince: '2026-01-01T00:01:00Z' }));
    expect(ledger.get(id)?.runningSinceMs).toBe(Date.parse('2026-01-01T00:01:00Z'));
    tracker.upsert(pod('web-1', id, { runningSince: '2026-01-01T00:05:00Z' }));
    expect(ledger.get(id)?.runningSinceMs).toBe(Date.parse('2026-01-01T00:05:00Z'));
  });

  test('a pod whose reservation the ledger lacks (restart, other replica) restores it, with its running status', () => {
    tracker.upsert(pod('web-1', 'from-elsewhere', { runningSince: '2026-01-01T00:01:00Z' }));
    expect(ledger.get('from-elsewhere')).toEqual(
      expect.objectContaining({ state: ReservationState.Confirmed, gpuUuid: GPU, memoryMiB: 8192, runningSinceMs: Date.parse('2026-01-01T00:01:00Z') }),
    );
  });

  test('a pod that appears after its reservation expired restores it rather than losing it', () => {
    const id = reserve();
    nowMs += 61_000;
    tracker.upsert(pod('web-1', id));
    expect(ledger.get(id)?.state).toBe(ReservationState.Confirmed);
  });

  test('Succeeded or Failed releases the capacity and marks the reservation ended', () => {
    const id = reserve();
    tracker.upsert(pod('web-1', id, { runningSince: '2026-01-01T00:01:00Z' }));
    tracker.upsert(pod('web-1', id, { phase: 'Succeeded' }));
    expect(ledger.get(id)).toBeNull();
    expect(tracker.hasEnded(id)).toBe(true);
    expect(released).toEqual([id]);
  });

  test('an already-finished pod seen at start-up releases a reservation restored from elsewhere', () => {
    ledger.restore({ id: 'old', podKey: 'ml/x', node: 'node-a', gpuUuid: GPU, memoryMiB: 1, threadPercent: 1, priority: 'low', state: 'pending', createdAtMs: nowMs, expiresAtMs: nowMs + 1000 });
    tracker.upsert(pod('x', 'old', { phase: 'Failed' }));
    expect(ledger.get('old')).toBeNull();
    expect(tracker.hasEnded('old')).toBe(true);
  });

  test('ended reservations are forgotten after the cut-off', () => {
    tracker.upsert(pod('x', 'r'));
    tracker.remove(pod('x', 'r'));
    tracker.pruneEnded(nowMs + 1);
    expect(tracker.hasEnded('r')).toBe(false);
  });

  describe('untrusted pods', () => {
    test('a pod in any namespace with the label and unsealed annotations holds nothing, and is reported once', () => {
      const phantom = edited(pod('phantom', 'huge', { namespace: 'elsewhere', memoryMiB: 1_000_000 * 1024 }), { 'mps-injector.io/seal': undefined });
      tracker.upsert(phantom);
      tracker.upsert(phantom);
      expect(ledger.list(nowMs)).toEqual([]);
      expect(tracker.forgedPods).toBe(1);
      expect(forged).toEqual([expect.stringMatching(/^elsewhere\/phantom: .*without the webhook's seal/)]);
    });

    test('a genuine seal with a raised memory limit does not verify', () => {
      tracker.upsert(edited(pod('greedy', 'r-g'), { 'mps-injector.io/memory-limit': '1000000Gi' }));
      expect(ledger.list(nowMs)).toEqual([]);
      expect(forged[0]).toMatch(/does not match/);
    });

    test('a second pod with a copy of a bound decision holds nothing', () => {
      tracker.upsert(pod('web-1', 'r-1', { uid: 'u-1' }));
      tracker.upsert(pod('web-1', 'r-1', { uid: 'u-2' })); // same name, re-created from the stored spec
      expect(ledger.list(nowMs)).toHaveLength(1);
      expect(ledger.get('r-1')?.podUid).toBe('u-1');
      expect(forged[0]).toMatch(/already held by another pod/);
    });

    test('removing the annotations or the label of a running pod releases nothing', () => {
      const id = reserve();
      const running = pod('llm-1', id, { runningSince: '2026-01-01T00:01:00Z' });
      tracker.upsert(running);
      tracker.upsert(edited(running, { 'mps-injector.io/reservation': undefined }));
      tracker.upsert(edited(running, {}, { 'mps-injector.io/injected': undefined }));
      tracker.upsert(edited(running, { 'mps-injector.io/memory-limit': '1Mi', 'mps-injector.io/seal': undefined }));
      expect(ledger.get(id)).toMatchObject({ state: ReservationState.Confirmed, memoryMiB: 8192 });
      expect(released).toEqual([]);
      // Its end (by UID) still releases.
      tracker.remove(edited(running, { 'mps-injector.io/reservation': undefined }));
      expect(ledger.get(id)).toBeNull();
    });

    test('the deletion of another pod with the same name does not release a pod it does not own', () => {
      const id = reserve();
      tracker.upsert(pod('web-1', id, { uid: 'u-1' }));
      tracker.remove(pod('web-1', id, { uid: 'u-other' }));
      expect(ledger.get(id)).not.toBeNull();
    });
  });
});
