import { describe, expect, test } from '@jest/globals';
import { LedgerError, ReservationLedger } from './ledger.js';
import type { ReservationInput } from './ledger.js';
import type { Reservation } from '../domain/slot.js';

const NOW = 1_700_000_000_000;
const TTL = 120_000;

function sequentialIds(prefix = 'r'): () => string {
  let n = 0;
  return () => `${prefix}-${++n}`;
}

function ledgerOf(ttlMs = TTL): ReservationLedger {
  return new ReservationLedger({ ttlMs, newId: sequentialIds() });
}

function input(overrides: Partial<ReservationInput> = {}): ReservationInput {
  return { podKey: 'ml/pod-a', node: 'node-a', gpuUuid: 'GPU-a0', memoryMiB: 8192, threadPercent: 25, priority: 'high', ...overrides };
}

function stored(overrides: Partial<Reservation> = {}): Reservation {
  return {
    id: 'restored-1',
    podKey: 'ml/pod-r',
    node: 'node-a',
    gpuUuid: 'GPU-a0',
    memoryMiB: 4096,
    threadPercent: 10,
    priority: 'low',
    state: 'confirmed',
    createdAtMs: NOW - 60_000,
    expiresAtMs: null,
    ...overrides,
  };
}

describe('ReservationLedger.reserve', () => {
  test('holds a pending reservation that expires one TTL later', () => {
    const ledger = ledgerOf();
    const r = ledger.reserve(input(), NOW);
    expect(r).toEqual({
      id: 'r-1',
      podKey: 'ml/pod-a',
      node: 'node-a',
      gpuUuid: 'GPU-a0',
      memoryMiB: 8192,
      threadPercent: 25,
      priority: 'high',
      state: 'pending',
      createdAtMs: NOW,
      expiresAtMs: NOW + TTL,
    });
    expect(ledger.get('r-1')).toBe(r);
    expect(ledger.size(NOW)).toBe(1);
  });

  test('keeps per-GPU totals for every GPU separately', () => {
    const ledger = ledgerOf();
    ledger.reserve(input({ memoryMiB: 1000, threadPercent: 10 }), NOW);
    ledger.reserve(input({ podKey: 'ml/pod-b', memoryMiB: 2000, threadPercent: 30 }), NOW);
    ledger.reserve(input({ podKey: 'ml/pod-c', gpuUuid: 'GPU-a1', memoryMiB: 500, threadPercent: 5 }), NOW);
    ledger.reserve(input({ podKey: 'ml/pod-d', gpuUuid: 'GPU-a1', memoryMiB: 500, threadPercent: 7, priority: 'low' }), NOW);
    expect(ledger.totals('GPU-a0', NOW)).toMatchObject({ memoryMiB: 3000, threadPercent: 40, highThreadPercent: 40, clients: 2 });
    expect(ledger.totals('GPU-a1', NOW)).toMatchObject({ memoryMiB: 1000, threadPercent: 12, highThreadPercent: 5, clients: 2 });
    expect(ledger.totals('GPU-unknown', NOW)).toMatchObject({ memoryMiB: 0, threadPercent: 0, highThreadPercent: 0, clients: 0 });
    expect(ledger.onGpu('GPU-a0', NOW).map((r) => r.podKey)).toEqual(['ml/pod-a', 'ml/pod-b']);
    expect(ledger.onGpu('GPU-unknown', NOW)).toEqual([]);
  });

  test('tracks the earliest and latest running start and the next expiry per GPU', () => {
    const ledger = ledgerOf();
    const a = ledger.reserve(input({ memoryMiB: 1000 }), NOW);
    const b = ledger.reserve(input({ podKey: 'ml/pod-b', memoryMiB: 2000 }), NOW + 10);
    const c = ledger.reserve(input({ podKey: 'ml/pod-c', memoryMiB: 4000 }), NOW + 20);
    expect(ledger.totals('GPU-a0', NOW + 30)).toEqual({
      memoryMiB: 7000,
      threadPercent: 75,
      highThreadPercent: 75,
      clients: 3,
      earliestRunningSinceMs: Infinity,
      latestRunningSinceMs: Infinity,
      nextExpiryMs: NOW + TTL,
      reservations: [a, b, c],
    });
    ledger.confirm(b.id, NOW + 30);
    ledger.confirm(c.id, NOW + 30);
    // Confirmed is not running: the pods exist, nothing runs yet.
    expect(ledger.totals('GPU-a0', NOW + 30)).toMatchObject({ memoryMiB: 7000, clients: 3, earliestRunningSinceMs: Infinity, nextExpiryMs: NOW + TTL });
    expect(ledger.markRunning(b.id, NOW + 40)).toBe(true);
    expect(ledger.markRunning(c.id, NOW + 50)).toBe(true);
    expect(ledger.totals('GPU-a0', NOW + 60)).toMatchObject({ earliestRunningSinceMs: NOW + 40, latestRunningSinceMs: Infinity });
    ledger.release(a.id);
    expect(ledger.totals('GPU-a0', NOW + 60)).toMatchObject({ memoryMiB: 6000, earliestRunningSinceMs: NOW + 40, latestRunningSinceMs: NOW + 50, nextExpiryMs: Infinity });
    ledger.markRunning(c.id, null);
    expect(ledger.totals('GPU-a0', NOW + 60)).toMatchObject({ earliestRunningSinceMs: NOW + 40, latestRunningSinceMs: Infinity });
    expect(ledger.markRunning('unknown', NOW)).toBe(false);
  });

  test('restoring a reservation from a durable record keeps the running start the pod watch reported', () => {
    const ledger = ledgerOf();
    ledger.restore(stored());
    ledger.markRunning('restored-1', NOW - 30_000);
    ledger.restore(stored());
    expect(ledger.get('restored-1')?.runningSinceMs).toBe(NOW - 30_000);
    ledger.restore(stored({ runningSinceMs: null }));
    expect(ledger.get('restored-1')?.runningSinceMs).toBeNull();
  });

  test('totals are snapshots: one taken earlier does not change', () => {
    const ledger = ledgerOf();
    ledger.reserve(input({ memoryMiB: 1000 }), NOW);
    const before = ledger.totals('GPU-a0', NOW);
    ledger.reserve(input({ podKey: 'ml/pod-b', memoryMiB: 2000 }), NOW);
    expect(before).toMatchObject({ memoryMiB: 1000, clients: 1 });
    expect(ledger.totals('GPU-a0', NOW)).toMatchObject({ memoryMiB: 3000, clients: 2 });
  });

  test('hands out frozen reservations, so callers cannot change ledger state', () => {
    const ledger = ledgerOf();
    const r = ledger.reserve(input(), NOW);
    expect(() => {
      (r as { memoryMiB: number }).memoryMiB = 1;
    }).toThrow(TypeError);
    expect(ledger.totals('GPU-a0', NOW).memoryMiB).toBe(8192);
  });

  test('a list taken from onGpu stays as it was after later changes', () => {
    const ledger = ledgerOf();
    ledger.reserve(input(), NOW);
    const before = ledger.onGpu('GPU-a0', NOW);
    ledger.reserve(input({ podKey: 'ml/pod-b' }), NOW);
    ledger.release('r-1');
    expect(before.map((r) => r.id)).toEqual(['r-1']);
    expect(ledger.onGpu('GPU-a0', NOW).map((r) => r.id)).toEqual(['r-2']);
  });

  test('rejects a repeated id with a message that says what to fix', () => {
    const ledger = new ReservationLedger({ ttlMs: TTL, newId: () => 'same' });
    ledger.reserve(input(), NOW);
    expect(() => ledger.reserve(input({ podKey: 'ml/pod-b' }), NOW)).toThrow(/"same", which is already in the ledger; give the ledger an id generator that never repeats/);
    expect(ledger.size(NOW)).toBe(1);
  });

  test.each([
    ['an empty podKey', { podKey: '' }, /podKey must be a non-empty string/],
    ['an empty gpuUuid', { gpuUuid: '' }, /gpuUuid must be a non-empty string/],
    ['negative memory', { memoryMiB: -1 }, /memoryMiB must be a finite number of at least 0, got -1/],
    ['a NaN thread percent', { threadPercent: Number.NaN }, /threadPercent must be a finite number of at least 0, got NaN/],
  ])('refuses %s with a LedgerError', (_what, overrides, message) => {
    const ledger = ledgerOf();
    expect(() => ledger.reserve(input(overrides), NOW)).toThrow(LedgerError);
    expect(() => ledger.reserve(input(overrides), NOW)).toThrow(message);
    expect(ledger.size(NOW)).toBe(0);
  });

  test('refuses a TTL that is not positive', () => {
    expect(() => new ReservationLedger({ ttlMs: 0 })).toThrow(/set reservations.ttlSeconds above 0/);
  });

  test('generates distinct ids by default', () => {
    const ledger = new ReservationLedger({ ttlMs: TTL });
    const a = ledger.reserve(input(), NOW);
    const b = ledger.reserve(input(), NOW);
    expect(a.id).not.toBe(b.id);
    expect(a.id).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('ReservationLedger expiry', () => {
  test('a pending reservation stops counting at its expiry, and expire() drops and returns it', () => {
    const ledger = ledgerOf();
    const r = ledger.reserve(input(), NOW);
    const lastLiveMs = NOW + TTL - 1;
    expect(ledger.size(lastLiveMs)).toBe(1);
    expect(ledger.totals('GPU-a0', lastLiveMs).memoryMiB).toBe(8192);
    expect(ledger.expire(lastLiveMs)).toEqual([]);

    const dueMs = NOW + TTL;
    expect(ledger.size(dueMs)).toBe(0);
    expect(ledger.list(dueMs)).toEqual([]);
    expect(ledger.onGpu('GPU-a0', dueMs)).toEqual([]);
    expect(ledger.totals('GPU-a0', dueMs)).toMatchObject({ memoryMiB: 0, threadPercent: 0, clients: 0 });
    // Still stored until expire() runs, so the caller learns which ones expired.
    expect(ledger.get(r.id)).toBe(r);

    expect(ledger.expire(dueMs)).toEqual([r]);
    expect(ledger.get(r.id)).toBeNull();
    expect(ledger.expire(dueMs + 1)).toEqual([]);
  });

  test('expires only the reservations that are due, in any order of creation', () => {
    const ledger = ledgerOf();
    const early = ledger.reserve(input({ podKey: 'ml/early' }), NOW);
    const late = ledger.reserve(input({ podKey: 'ml/late', gpuUuid: 'GPU-a1' }), NOW + 60_000);
    const earlier = ledger.reserve(input({ podKey: 'ml/earlier' }), NOW - 30_000);
    ledger.release(earlier.id);

    expect(ledger.expire(NOW + TTL)).toEqual([early]);
    expect(ledger.list(NOW + TTL)).toEqual([late]);
    expect(ledger.totals('GPU-a1', NOW + TTL).clients).toBe(1);
    expect(ledger.expire(NOW + 60_000 + TTL)).toEqual([late]);
    expect(ledger.size(NOW + 60_000 + TTL)).toBe(0);
  });

  test('a mix of due and live reservations on one GPU sums only the live ones', () => {
    const ledger = ledgerOf();
    ledger.reserve(input({ memoryMiB: 1000, threadPercent: 10 }), NOW);
    ledger.reserve(input({ podKey: 'ml/pod-b', memoryMiB: 3000, threadPercent: 20 }), NOW + 10_000);
    const between = NOW + TTL + 5_000;
    expect(ledger.totals('GPU-a0', between)).toMatchObject({ memoryMiB: 3000, threadPercent: 20, clients: 1 });
    expect(ledger.onGpu('GPU-a0', between).map((r) => r.podKey)).toEqual(['ml/pod-b']);
    expect(ledger.size(between)).toBe(1);
  });
});

describe('ReservationLedger.confirm', () => {
  test('confirming stops expiry', () => {
    const ledger = ledgerOf();
    const r = ledger.reserve(input(), NOW);
    expect(ledger.confirm(r.id, NOW + 1_000)).toBe(true);
    const confirmed = ledger.get(r.id);
    expect(confirmed).toMatchObject({ state: 'confirmed', expiresAtMs: null, createdAtMs: NOW });
    const muchLater = NOW + 10 * TTL;
    expect(ledger.expire(muchLater)).toEqual([]);
    expect(ledger.size(muchLater)).toBe(1);
    expect(ledger.totals('GPU-a0', muchLater)).toMatchObject({ memoryMiB: 8192, threadPercent: 25, clients: 1 });
  });

  test('is idempotent, refuses unknown ids and refuses reservations already past expiry', () => {
    const ledger = ledgerOf();
    const a = ledger.reserve(input(), NOW);
    const b = ledger.reserve(input({ podKey: 'ml/pod-b' }), NOW);
    expect(ledger.confirm(a.id, NOW)).toBe(true);
    expect(ledger.confirm(a.id, NOW + 2 * TTL)).toBe(true);
    expect(ledger.confirm('nope', NOW)).toBe(false);
    expect(ledger.confirm(b.id, NOW + TTL)).toBe(false);
    expect(ledger.get(b.id)?.state).toBe('pending');
  });
});

describe('ReservationLedger.release', () => {
  test('release returns the reservation once and frees its capacity', () => {
    const ledger = ledgerOf();
    const r = ledger.reserve(input(), NOW);
    ledger.reserve(input({ podKey: 'ml/pod-b', memoryMiB: 100, threadPercent: 5 }), NOW);
    expect(ledger.release(r.id)).toBe(r);
    expect(ledger.release(r.id)).toBeNull();
    expect(ledger.totals('GPU-a0', NOW)).toMatchObject({ memoryMiB: 100, threadPercent: 5, clients: 1 });
    expect(ledger.size(NOW)).toBe(1);
  });

  test('releasePod drops every reservation of that pod and no other', () => {
    const ledger = ledgerOf();
    const a1 = ledger.reserve(input(), NOW);
    const a2 = ledger.reserve(input({ gpuUuid: 'GPU-a1' }), NOW);
    ledger.confirm(a2.id, NOW);
    const b = ledger.reserve(input({ podKey: 'ml/pod-b' }), NOW);
    const released = ledger.releasePod('ml/pod-a');
    expect(released.map((r) => r.id).sort()).toEqual([a1.id, a2.id].sort());
    expect(ledger.list(NOW)).toEqual([b]);
    expect(ledger.totals('GPU-a1', NOW).clients).toBe(0);
    expect(ledger.releasePod('ml/pod-a')).toEqual([]);
  });
});

describe('ReservationLedger.restore', () => {
  test('restoring the same reservation twice holds it once', () => {
    const ledger = ledgerOf();
    ledger.restore(stored());
    ledger.restore(stored());
    expect(ledger.size(NOW)).toBe(1);
    expect(ledger.totals('GPU-a0', NOW)).toMatchObject({ memoryMiB: 4096, threadPercent: 10, clients: 1 });
  });

  test('restoring a newer copy replaces the stored one, even on another GPU', () => {
    const ledger = ledgerOf();
    ledger.restore(stored({ state: 'pending', expiresAtMs: NOW + 1_000 }));
    ledger.restore(stored({ gpuUuid: 'GPU-a1', memoryMiB: 2048 }));
    expect(ledger.totals('GPU-a0', NOW).clients).toBe(0);
    expect(ledger.totals('GPU-a1', NOW + 10 * TTL)).toMatchObject({ memoryMiB: 2048, threadPercent: 10, clients: 1 });
    expect(ledger.expire(NOW + 10 * TTL)).toEqual([]);
  });

  test('keeps its own copy of what it was given', () => {
    const ledger = ledgerOf();
    const record = stored();
    ledger.restore(record);
    record.memoryMiB = 1;
    expect(ledger.totals('GPU-a0', NOW).memoryMiB).toBe(4096);
  });

  test('a restored pending reservation still expires', () => {
    const ledger = ledgerOf();
    ledger.restore(stored({ state: 'pending', expiresAtMs: NOW + 5_000 }));
    expect(ledger.size(NOW)).toBe(1);
    expect(ledger.expire(NOW + 5_000).map((r) => r.id)).toEqual(['restored-1']);
  });

  test('refuses a record with an unknown state', () => {
    const ledger = ledgerOf();
    expect(() => ledger.restore(stored({ state: 'granted' as never }))).toThrow(/state must be "pending" or "confirmed", got "granted"/);
  });
});

describe('ReservationLedger.snapshotsFor', () => {
  const gpuList = (n: number) => Array.from({ length: n }, (_, i) => ({ uuid: `GPU-${i}` }));

  /** Deterministic pseudo-random sequence, so a failure replays. */
  function randomSource(seed: number): () => number {
    let state = seed;
    return () => {
      state = (state * 1103515245 + 12345) % 2147483648;
      return state / 2147483648;
    };
  }

  function expectInStep(ledger: ReservationLedger, gpus: { uuid: string }[], nowMs: number): void {
    const snapshots = ledger.snapshotsFor(gpus);
    expect(snapshots).toHaveLength(gpus.length);
    gpus.forEach((gpu, i) => expect(snapshots[i]).toEqual(ledger.totals(gpu.uuid, nowMs)));
  }

  test('lays out each GPU snapshot by position, a GPU named twice included', () => {
    const ledger = ledgerOf();
    ledger.reserve(input({ gpuUuid: 'GPU-1', memoryMiB: 100 }), NOW);
    const gpus = [{ uuid: 'GPU-0' }, { uuid: 'GPU-1' }, { uuid: 'GPU-1' }];
    expect(ledger.snapshotsFor(gpus).map((s) => s.memoryMiB)).toEqual([0, 100, 100]);
    ledger.reserve(input({ gpuUuid: 'GPU-1', memoryMiB: 50 }), NOW);
    expect(ledger.snapshotsFor(gpus).map((s) => s.memoryMiB)).toEqual([0, 150, 150]);
  });

  test.each([
    ['one change between passes', 1],
    ['a few changes between passes', 4],
    ['many changes between passes', 40],
    ['more changes than the journal keeps', 5000],
  ])('stays in step with totals() after %s', (_what, changesPerPass) => {
    const random = randomSource(changesPerPass);
    const ledger = ledgerOf(1_000_000);
    const gpus = gpuList(50);
    const ids: string[] = [];
    let nowMs = NOW;
    expectInStep(ledger, gpus, nowMs);
    for (let pass = 0; pass < 6; pass++) {
      for (let c = 0; c < changesPerPass; c++) {
        nowMs += 1;
        const roll = random();
        const gpu = gpus[Math.floor(random() * gpus.length)]!;
        if (roll < 0.55 || ids.length === 0) {
          ids.push(ledger.reserve(input({ podKey: `ml/p-${pass}-${c}`, gpuUuid: gpu.uuid, memoryMiB: 1 + Math.floor(random() * 1000) }), nowMs).id);
        } else if (roll < 0.8) {
          ledger.release(ids.splice(Math.floor(random() * ids.length), 1)[0]!);
        } else {
          ledger.confirm(ids[Math.floor(random() * ids.length)]!, nowMs);
        }
      }
      expectInStep(ledger, gpus, nowMs);
    }
  });

  test('a different list gets its own layout', () => {
    const ledger = ledgerOf();
    ledger.reserve(input({ gpuUuid: 'GPU-3', memoryMiB: 7 }), NOW);
    expect(ledger.snapshotsFor(gpuList(4)).map((s) => s.memoryMiB)).toEqual([0, 0, 0, 7]);
    expect(ledger.snapshotsFor([{ uuid: 'GPU-3' }, { uuid: 'GPU-0' }]).map((s) => s.memoryMiB)).toEqual([7, 0]);
  });

  test('does not apply expiries: a snapshot says when it stops being current', () => {
    const ledger = ledgerOf();
    ledger.reserve(input({ gpuUuid: 'GPU-0' }), NOW);
    const [snapshot] = ledger.snapshotsFor(gpuList(1));
    expect(snapshot?.nextExpiryMs).toBe(NOW + TTL);
    expect(snapshot?.clients).toBe(1);
    expect(ledger.totals('GPU-0', NOW + TTL).clients).toBe(0);
  });
});
