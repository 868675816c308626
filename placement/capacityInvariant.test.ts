/**
 * The promise, as a property: on every GPU, at every moment,
 *   (observed use of what the webhook did not place) + (sum of the limits it granted) + margin <= total,
 * whatever the interleaving of admissions, pod creation, scheduling, start, restart and end,
 * lagging metric refreshes and webhook restarts (the ledger rebuilt from pods and durable records).
 *
 * The world model: a pod's GPU memory is 0 until its containers run, then reaches its full limit
 * at some point within the warm-up (image pulled, model loaded); a restart drops it to 0 and the
 * warm-up starts again. A sample shows the world as it was when taken, and arrives late.
 */
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { defaultConfig } from '../config/schema.js';
import type { GpuInventory, GpuSample } from '../domain/inventory.js';
import { h100 } from '../testing/gpuSamples.js';
import { ReservationLedger } from '../reservations/ledger.js';
import { reserveSlot } from '../reservations/reserveSlot.js';
import type { PlacementConfig, Reservation } from '../domain/slot.js';

const GIB = 1024;
const TOTAL_MIB = 80 * GIB;
const T0 = 1_700_000_000_000;
const TTL_MS = 120_000;
/** The longest a pod takes from container start to its full memory: the default warm-up, which is chosen to cover it. */
const WORLD_MAX_LOAD_MS = defaultConfig().placement.observeAfterRunningSeconds * 1000;
const GPUS = ['GPU-00000000-0000-0000-0000-000000000000', 'GPU-00000000-0000-0000-0000-000000000001'];

type Phase = 'admitted' | 'created' | 'running' | 'crashed' | 'ended';

interface WorldPod {
  key: string;
  reservationId: string;
  gpu: string;
  limitMiB: number;
  phase: Phase;
  admittedAtMs: number;
  /** The current container instance's start (running), or null. */
  startedAtMs: number | null;
  /** How long after the start this pod's memory reaches its limit (at most the warm-up). */
  loadMs: number;
  /** Memory use over time, as [fromMs, MiB] steps, so a lagging sample can read the past. */
  history: Array<[number, number]>;
}

type Event =
  | { kind: 'admit'; memoryGiB: number }
  | { kind: 'create'; pick: number }
  | { kind: 'start'; pick: number; loadFraction: number }
  | { kind: 'crash'; pick: number }
  | { kind: 'end'; pick: number }
  | { kind: 'refresh'; lagS: number }
  | { kind: 'restart-webhook' }
  | { kind: 'wait'; seconds: number };

const eventArb: fc.Arbitrary<Event> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('admit' as const), memoryGiB: fc.integer({ min: 1, max: 40 }) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('create' as const), pick: fc.nat() }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('start' as const), pick: fc.nat(), loadFraction: fc.double({ min: 0, max: 1, noNaN: true }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('crash' as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('end' as const), pick: fc.nat() }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('refresh' as const), lagS: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 60 })) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'restart-webhook' as const }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('wait' as const), seconds: fc.integer({ min: 1, max: 400 }) }) },
);

/** What the pod watch tells the ledger: confirmed at creation, running since the container start. */
interface PodWatchView {
  confirm(ledger: ReservationLedger, pod: WorldPod, nowMs: number): void;
  running(ledger: ReservationLedger, pod: WorldPod): void;
  /** The reservation as rebuilt from the pod object after a webhook restart. */
  rebuilt(pod: WorldPod): Reservation;
}

const truthfulWatch: PodWatchView = {
  confirm: (ledger, pod, nowMs) => void ledger.confirm(pod.reservationId, nowMs),
  running: (ledger, pod) => void ledger.markRunning(pod.reservationId, pod.startedAtMs),
  rebuilt: (pod) => ({ ...reservationOf(pod), state: 'confirmed', expiresAtMs: null, runningSinceMs: pod.startedAtMs }),
};

/**
 * The rule before the warm-up existed: a confirmed reservation counted as inside every sample
 * taken after its pod was created (expressed here as "running since creation, no warm-up").
 */
const legacyWatch: PodWatchView = {
  confirm: (ledger, pod, nowMs) => {
    ledger.confirm(pod.reservationId, nowMs);
    ledger.markRunning(pod.reservationId, pod.admittedAtMs);
  },
  running: () => undefined,
  rebuilt: (pod) => ({ ...reservationOf(pod), state: 'confirmed', expiresAtMs: null, runningSinceMs: pod.admittedAtMs }),
};

function reservationOf(pod: WorldPod): Omit<Reservation, 'state' | 'expiresAtMs'> {
  return { id: pod.reservationId, podKey: pod.key, node: 'node-a', gpuUuid: pod.gpu, memoryMiB: pod.limitMiB, threadPercent: 1, priority: 'low', createdAtMs: pod.admittedAtMs };
}

function usageAt(pod: WorldPod, atMs: number): number {
  let used = 0;
  for (const [from, mib] of pod.history) {
    if (from > atMs) break;
    used = mib;
  }
  return used;
}

interface Violation {
  atMs: number;
  gpu: string;
  grantedMiB: number;
  unreservedMiB: number;
}

/** Replays events against the real ledger and placement; returns the first over-grant, or null. */
function replay(events: readonly Event[], unreservedGiB: readonly number[], watch: PodWatchView, placement: PlacementConfig): Violation | null {
  let nowMs = T0;
  let ids = 0;
  const newLedger = () => new ReservationLedger({ ttlMs: TTL_MS, newId: () => `r-${++ids}` });
  let ledger = newLedger();
  const pods: WorldPod[] = [];
  const unreservedMiB = new Map(GPUS.map((uuid, i) => [uuid, (unreservedGiB[i] ?? 0) * GIB]));
  let inventory: GpuInventory = { gpus: [], nodes: {}, source: 'model', fetchedAtMs: nowMs, skippedLines: 0, problems: [] };
  let lastSampleMs = -Infinity;

  const live = (p: WorldPod) => p.phase !== 'ended' && !(p.phase === 'admitted' && nowMs >= p.admittedAtMs + TTL_MS);
  const pick = (n: number, phases: readonly Phase[]) => {
    const candidates = pods.filter((p) => phases.includes(p.phase) && live(p));
    return candidates.length === 0 ? undefined : candidates[n % candidates.length];
  };
  const setUse = (pod: WorldPod, fromMs: number, mib: number) => pod.history.push([fromMs, mib]);

  const check = (): Violation | null => {
    for (const gpu of GPUS) {
      let grantedMiB = 0;
      for (const p of pods) if (p.gpu === gpu && live(p)) grantedMiB += p.limitMiB;
      const unreserved = unreservedMiB.get(gpu) ?? 0;
      if (unreserved + grantedMiB + placement.memorySafetyMarginMiB > TOTAL_MIB) return { atMs: nowMs - T0, gpu, grantedMiB, unreservedMiB: unreserved };
    }
    return null;
  };

  const refresh = (lagMs: number) => {
    const sampledAtMs = Math.max(lastSampleMs, nowMs - lagMs);
    lastSampleMs = sampledAtMs;
    const gpus: GpuSample[] = GPUS.map((uuid, index) => {
      let used = unreservedMiB.get(uuid) ?? 0;
      for (const p of pods) if (p.gpu === uuid) used += usageAt(p, sampledAtMs);
      return h100('node-a', index, sampledAtMs, { uuid, memory: { totalMiB: TOTAL_MIB, usedMiB: used, freeMiB: TOTAL_MIB - used, reservedMiB: 0 } });
    });
    inventory = { gpus, nodes: {}, source: 'model', fetchedAtMs: nowMs, skippedLines: 0, problems: [] };
  };
  refresh(0);

  for (const event of events) {
    switch (event.kind) {
      case 'admit': {
        ledger.expire(nowMs);
        const key = `ml/pod-${pods.length}`;
        const request = { podKey: key, memoryMiB: event.memoryGiB * GIB, threadPercent: 1, priority: 'low' as const, gpuModel: null, pinnedNode: null };
        const { decision, reservation } = reserveSlot(inventory, ledger, request, placement, nowMs, { dryRun: false });
        if (decision.ok && reservation !== null) {
          pods.push({ key, reservationId: reservation.id, gpu: decision.gpuUuid, limitMiB: decision.memoryLimitMiB, phase: 'admitted', admittedAtMs: nowMs, startedAtMs: null, loadMs: 0, history: [] });
        }
        break;
      }
      case 'create': {
        const pod = pick(event.pick, ['admitted']);
        if (pod === undefined) break;
        pod.phase = 'created';
        watch.confirm(ledger, pod, nowMs);
        break;
      }
      case 'start': {
        const pod = pick(event.pick, ['created', 'crashed']);
        if (pod === undefined) break;
        pod.phase = 'running';
        pod.startedAtMs = nowMs;
        pod.loadMs = Math.floor(event.loadFraction * WORLD_MAX_LOAD_MS);
        setUse(pod, nowMs + pod.loadMs, pod.limitMiB);
        watch.running(ledger, pod);
        break;
      }
      case 'crash': {
        const pod = pick(event.pick, ['running']);
        if (pod === undefined) break;
        pod.phase = 'crashed';
        pod.startedAtMs = null;
        pod.history = pod.history.filter(([from]) => from <= nowMs);
        setUse(pod, nowMs, 0);
        watch.running(ledger, pod);
        break;
      }
      case 'end': {
        const pod = pick(event.pick, ['created', 'running', 'crashed']);
        if (pod === undefined) break;
        pod.phase = 'ended';
        pod.history = pod.history.filter(([from]) => from <= nowMs);
        setUse(pod, nowMs, 0);
        ledger.release(pod.reservationId);
        break;
      }
      case 'refresh':
        refresh(event.lagS * 1000);
        break;
      case 'restart-webhook': {
        // Rebuilt from the pods (confirmed, with their container status) and the durable records (pending grants).
        ledger = newLedger();
        ids = pods.length + 1000 * (ids + 1);
        for (const p of pods) {
          if (!live(p)) continue;
          if (p.phase === 'admitted') ledger.restore({ ...reservationOf(p), state: 'pending', expiresAtMs: p.admittedAtMs + TTL_MS });
          else ledger.restore(watch.rebuilt(p));
        }
        break;
      }
      case 'wait':
        nowMs += event.seconds * 1000;
        break;
    }
    const violation = check();
    if (violation !== null) return violation;
  }
  return null;
}

const placement = (): PlacementConfig => ({ ...defaultConfig().placement, maxThreadPercentSum: 1000 });
/** The old rule had no warm-up: visible from creation on. */
const legacyPlacement = (): PlacementConfig => ({ ...placement(), observeAfterRunningSeconds: 0 });
/** Runs per property; a failing seed is printed by fast-check and replays exactly. */
const RUNS = 1000;
const runArb = fc.tuple(fc.array(eventArb, { minLength: 1, maxLength: 120 }), fc.array(fc.integer({ min: 0, max: 30 }), { minLength: GPUS.length, maxLength: GPUS.length }));

describe('capacity invariant: a GPU is never granted beyond its memory', () => {
  test('holds under random interleavings of admissions, pod lifecycles, lagging refreshes and webhook restarts', () => {
    fc.assert(
      fc.property(runArb, ([events, unreserved]) => {
        const violation = replay(events, unreserved, truthfulWatch, placement());
        expect(violation).toBeNull();
      }),
      { numRuns: RUNS, seed: 20261130 },
    );
  });

  test('the property can fail: the rule that took a created pod as already using its memory over-grants', () => {
    const result = fc.check(
      fc.property(runArb, ([events, unreserved]) => replay(events, unreserved, legacyWatch, legacyPlacement()) === null),
      { numRuns: RUNS, seed: 20261130 },
    );
    expect(result.failed).toBe(true);
    const [events, unreserved] = result.counterexample?.[0] ?? [[], []];
    const violation = replay(events, unreserved, legacyWatch, legacyPlacement());
    expect(violation).not.toBeNull();
    // The shrunk counterexample, for the record: a handful of events suffices.
    expect(events.length).toBeLessThan(20);
  });

  test('the warm-up matters: with none, a pod that is running but still loading is taken as visible and the GPU over-granted', () => {
    const result = fc.check(
      fc.property(runArb, ([events, unreserved]) => replay(events, unreserved, truthfulWatch, { ...placement(), observeAfterRunningSeconds: 0 }) === null),
      { numRuns: RUNS, seed: 20261130 },
    );
    expect(result.failed).toBe(true);
  });
});
