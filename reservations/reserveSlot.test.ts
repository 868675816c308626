import { describe, expect, test } from '@jest/globals';
import { defaultConfig } from '../config/schema.js';
import type { GpuInventory, GpuSample } from '../domain/inventory.js';
import { ReservationLedger } from './ledger.js';
import { reserveSlot } from './reserveSlot.js';
import type { PlacementConfig, SlotRequest } from '../domain/slot.js';

const NOW = 1_700_000_000_000;
const GIB = 1024;
const TTL = 120_000;

function gpu(node: string, index: number, totalMiB = 80 * GIB, usedMiB = 0): GpuSample {
  return {
    node,
    uuid: `GPU-${node}-${index}`,
    index,
    model: 'NVIDIA H100 80GB HBM3',
    pciBusId: null,
    memory: { totalMiB, usedMiB, freeMiB: totalMiB - usedMiB, reservedMiB: 0 },
    utilPercent: 10,
    smActive: null,
    grEngineActive: null,
    xid: 0,
    mig: false,
    sampledAtMs: NOW - 1_000,
    pods: [],
  };
}

function inventoryOf(gpus: GpuSample[]): GpuInventory {
  return { gpus, nodes: {}, source: 'test', fetchedAtMs: NOW, skippedLines: 0, problems: [] };
}

function placement(overrides: Partial<PlacementConfig> = {}): PlacementConfig {
  return { ...defaultConfig().placement, ...overrides };
}

function request(podKey: string, overrides: Partial<SlotRequest> = {}): SlotRequest {
  return { podKey, memoryMiB: 8 * GIB, threadPercent: null, priority: 'low', gpuModel: null, pinnedNode: null, ...overrides };
}

function ledgerOf(): ReservationLedger {
  let n = 0;
  return new ReservationLedger({ ttlMs: TTL, newId: () => `r-${++n}` });
}

describe('reserveSlot', () => {
  test('holds the chosen capacity in the ledger as a pending reservation', () => {
    const ledger = ledgerOf();
    const { decision, reservation } = reserveSlot(inventoryOf([gpu('node-a', 0)]), ledger, request('ml/a', { priority: 'high' }), placement(), NOW, { dryRun: false });
    if (!decision.ok) throw new Error(decision.reason);
    expect(reservation).toEqual({
      id: 'r-1',
      podKey: 'ml/a',
      node: 'node-a',
      gpuUuid: 'GPU-node-a-0',
      memoryMiB: decision.memoryLimitMiB,
      threadPercent: decision.threadPercent,
      priority: 'high',
      state: 'pending',
      createdAtMs: NOW,
      expiresAtMs: NOW + TTL,
    });
    expect(ledger.totals('GPU-node-a-0', NOW)).toMatchObject({ memoryMiB: 8 * GIB, threadPercent: 20, clients: 1 });
  });

  test('a dry run decides the same but holds nothing', () => {
    const ledger = ledgerOf();
    const inventory = inventoryOf([gpu('node-a', 0)]);
    const dry = reserveSlot(inventory, ledger, request('ml/a'), placement(), NOW, { dryRun: true });
    expect(dry.reservation).toBeNull();
    expect(ledger.size(NOW)).toBe(0);
    const real = reserveSlot(inventory, ledger, request('ml/a'), placement(), NOW, { dryRun: false });
    expect(real.decision).toEqual(dry.decision);
  });

  test('a refusal holds nothing', () => {
    const ledger = ledgerOf();
    const { decision, reservation } = reserveSlot(inventoryOf([gpu('node-a', 0, 4 * GIB)]), ledger, request('ml/a'), placement(), NOW, { dryRun: false });
    expect(decision.ok).toBe(false);
    expect(reservation).toBeNull();
    expect(ledger.size(NOW)).toBe(0);
  });

  test('the next admission sees the previous reservations before the metrics do', () => {
    const ledger = ledgerOf();
    // One GPU with room for exactly two 8Gi pods: 80Gi - 1Gi margin - 62Gi used by others = 17Gi.
    // The sample keeps showing 62Gi (the new pods have not started): the ledger carries their 16Gi.
    const inventory = inventoryOf([gpu('node-a', 0, 80 * GIB, 62 * GIB)]);
    const first = reserveSlot(inventory, ledger, request('ml/a'), placement(), NOW, { dryRun: false });
    const second = reserveSlot(inventory, ledger, request('ml/b'), placement(), NOW, { dryRun: false });
    const third = reserveSlot(inventory, ledger, request('ml/c'), placement(), NOW, { dryRun: false });
    expect([first.decision.ok, second.decision.ok, third.decision.ok]).toEqual([true, true, false]);
    expect(third.decision.ok ? '' : third.decision.reason).toContain('1 short of memory (best: node-a GPU 0, 1Gi free)');
  });

  test('capacity returns when an unconfirmed reservation expires', () => {
    const ledger = ledgerOf();
    const inventory = inventoryOf([gpu('node-a', 0, 10 * GIB)]);
    const config = placement();
    expect(reserveSlot(inventory, ledger, request('ml/a'), config, NOW, { dryRun: false }).reservation).not.toBeNull();
    expect(reserveSlot(inventory, ledger, request('ml/b'), config, NOW + 1_000, { dryRun: false }).decision.ok).toBe(false);
    expect(ledger.expire(NOW + TTL).map((r) => r.podKey)).toEqual(['ml/a']);
    const later = { ...inventory, gpus: inventory.gpus.map((g) => ({ ...g, sampledAtMs: NOW + TTL - 1_000 })) };
    expect(reserveSlot(later, ledger, request('ml/b'), config, NOW + TTL, { dryRun: false }).decision.ok).toBe(true);
  });
});

describe('reserveSlot under a burst of admissions', () => {
  // 2 nodes x 2 GPUs of 40Gi; node-a GPU 1 already carries 10Gi of work the webhook did not place.
  const gpus = () => [gpu('node-a', 0, 40 * GIB), gpu('node-a', 1, 40 * GIB, 10 * GIB), gpu('node-b', 0, 40 * GIB), gpu('node-b', 1, 40 * GIB)];
  // Mixed sizes and shares, deterministic.
  const sizesMiB = [2 * GIB, 3 * GIB, 5 * GIB, 8 * GIB, 1536];
  const shares = [null, 25, null, 40, 10, null, 60];

  function burstRequest(i: number): SlotRequest {
    return request(`ml/burst-${i}`, { memoryMiB: sizesMiB[i % sizesMiB.length]!, threadPercent: shares[i % shares.length]!, priority: i % 3 === 0 ? 'high' : 'low' });
  }

  test.each(['binpack', 'spread'] as const)('%s: 200 concurrent admissions never over-commit a GPU, and the rest are refused with reasons', async (policy) => {
    const ledger = ledgerOf();
    const inventory = inventoryOf(gpus());
    const config = placement({ policy, maxClientsPerGpu: 12 });

    // Each admission runs as its own async task, interleaved on the event loop as a server would run them.
    const results = await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        await Promise.resolve();
        return reserveSlot(inventory, ledger, burstRequest(i), config, NOW, { dryRun: false });
      }),
    );

    const granted = results.filter((r) => r.reservation !== null);
    const refused = results.filter((r) => !r.decision.ok);
    expect(granted.length + refused.length).toBe(200);
    expect(granted.length).toBeGreaterThan(0);
    expect(refused.length).toBeGreaterThan(0);

    // Recount from the reservations themselves, not from the ledger's running totals.
    const perGpu = new Map<string, { memoryMiB: number; threadPercent: number; highThreadPercent: number; clients: number }>();
    for (const { reservation } of granted) {
      if (reservation === null) continue;
      const sums = perGpu.get(reservation.gpuUuid) ?? { memoryMiB: 0, threadPercent: 0, highThreadPercent: 0, clients: 0 };
      sums.memoryMiB += reservation.memoryMiB;
      sums.threadPercent += reservation.threadPercent;
      if (reservation.priority === 'high') sums.highThreadPercent += reservation.threadPercent;
      sums.clients += 1;
      perGpu.set(reservation.gpuUuid, sums);
    }
    expect([...perGpu.keys()].sort()).toEqual(gpus().map((g) => g.uuid).sort());
    for (const [uuid, sums] of perGpu) {
      const observedMiB = inventory.gpus.find((g) => g.uuid === uuid)?.memory?.usedMiB ?? Number.NaN;
      expect(sums.memoryMiB).toBeLessThanOrEqual(40 * GIB - config.memorySafetyMarginMiB - observedMiB);
      expect(sums.threadPercent).toBeLessThanOrEqual(config.maxThreadPercentSum);
      expect(sums.highThreadPercent).toBeLessThanOrEqual(config.maxHighThreadPercentSum);
      expect(sums.clients).toBeLessThanOrEqual(config.maxClientsPerGpu);
      expect(ledger.totals(uuid, NOW)).toMatchObject(sums);
    }
    expect(ledger.size(NOW)).toBe(granted.length);

    for (const { decision, reservation } of refused) {
      expect(reservation).toBeNull();
      if (decision.ok) throw new Error('unreachable');
      expect(decision.code).toBe('no-fit');
      expect(decision.reason).toMatch(/^no GPU fits [0-9.]+(Gi|Mi): 4 considered, /);
      const excludedTotal = Object.values(decision.excluded).reduce((a, b) => a + b, 0);
      expect(excludedTotal).toBe(4);
    }
  });
});

describe('reserveSlot: the MPS limit above the reserved share', () => {
  test('the compute budgets count reserved shares, not limits: two high pods of 50% with limits of 100% share a GPU, a third does not', () => {
    const ledger = ledgerOf();
    const config = placement({ threadCeilingFactor: { high: 2, low: 1 } });
    const gpus = inventoryOf([gpu('node-a', 0), gpu('node-a', 1)]);
    const placed = ['ml/a', 'ml/b', 'ml/c'].map((key) => reserveSlot(gpus, ledger, request(key, { priority: 'high', threadPercent: 50 }), config, NOW, { dryRun: false }));
    const [a, b, c] = placed.map((p) => p.decision);
    expect(a).toMatchObject({ ok: true, gpuUuid: 'GPU-node-a-0', threadPercent: 50, threadCeilingPercent: 100 });
    expect(b).toMatchObject({ ok: true, gpuUuid: 'GPU-node-a-0', threadPercent: 50, threadCeilingPercent: 100 });
    // 50 + 50 fills the high-priority budget of 100 on GPU 0; limits (100 + 100) never count.
    expect(c).toMatchObject({ ok: true, gpuUuid: 'GPU-node-a-1' });
    expect(placed[0]?.reservation).toMatchObject({ threadPercent: 50, threadCeilingPercent: 100 });
    expect(ledger.totals('GPU-node-a-0', NOW)).toMatchObject({ threadPercent: 100, highThreadPercent: 100 });
  });

  test("a pod's own limit is kept in the reservation and the reason", () => {
    const ledger = ledgerOf();
    const { decision, reservation } = reserveSlot(inventoryOf([gpu('node-a', 0)]), ledger, request('ml/a', { threadPercent: 20, threadPercentLimit: 70 }), placement(), NOW, { dryRun: false });
    expect(decision).toMatchObject({ ok: true, threadPercent: 20, threadCeilingPercent: 70 });
    expect(decision.ok && decision.reason).toMatch(/may use up to 70% when SMs are idle \(its gpu-percent-limit\)/);
    expect(reservation).toMatchObject({ threadPercent: 20, threadCeilingPercent: 70 });
  });

  test('with the default factors the limit is the reserved share and nothing new is recorded', () => {
    const { decision, reservation } = reserveSlot(inventoryOf([gpu('node-a', 0)]), ledgerOf(), request('ml/a', { threadPercent: 20 }), placement(), NOW, { dryRun: false });
    expect(decision.ok && decision.threadCeilingPercent).toBeUndefined();
    expect(reservation?.threadCeilingPercent).toBeUndefined();
  });
});
