/**
 * chooseSlot reads the placement table (typed columns, rows kept per ledger snapshot); the
 * full pass reads every GPU's sample and ledger sums afresh. Both must make the same decision,
 * field for field, for any inventory, ledger, configuration, preference and request, and keep
 * doing so while the ledger changes under one inventory (rows computed earlier must never be
 * read once stale).
 */
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { defaultConfig } from '../config/schema.js';
import type { GpuInventory, GpuPodRef, GpuSample, NodeState } from '../domain/inventory.js';
import type { PlacementConfig, Priority, SlotRequest } from '../domain/slot.js';
import { ReservationLedger } from '../reservations/ledger.js';
import { chooseSlot, chooseSlotByFullPass } from './chooseSlot.js';
import { replicaPreference } from './replicaPreference.js';

const NOW = 1_700_000_000_000;
const GIB = 1024;
const MODEL_LABEL = 'nvidia.com/gpu.product';
const MODELS = ['NVIDIA H100 80GB HBM3', 'NVIDIA A100-SXM4-40GB', 'Tesla V100'];
const NODES = ['node-a', 'node-b', 'node-c', 'node-d'];

interface GpuSpec {
  node: number;
  model: number;
  totalMiB: number | null;
  usedMiB: number;
  util: number | null;
  mig: boolean;
  ageS: number;
  pods: number[];
}

const gpuSpecArb: fc.Arbitrary<GpuSpec> = fc.record({
  node: fc.nat({ max: NODES.length - 1 }),
  model: fc.nat({ max: MODELS.length - 1 }),
  totalMiB: fc.oneof({ weight: 8, arbitrary: fc.constantFrom(40 * GIB, 80 * GIB, 16 * GIB) }, { weight: 1, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.constant(0) }),
  // Few distinct figures, so equal scores (and the tie-break) are common.
  usedMiB: fc.oneof({ weight: 3, arbitrary: fc.constantFrom(0, 4 * GIB, 20 * GIB) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 40 * GIB }) }),
  util: fc.option(fc.oneof(fc.constantFrom(0, 50, 90), fc.integer({ min: 0, max: 100 })), { freq: 6 }),
  mig: fc.constantFrom(false, false, false, false, false, false, false, true),
  ageS: fc.oneof({ weight: 9, arbitrary: fc.integer({ min: 0, max: 80 }) }, { weight: 1, arbitrary: fc.integer({ min: 91, max: 1200 }) }),
  pods: fc.array(fc.nat({ max: 5 }), { maxLength: 3 }),
});

const nodeArb: fc.Arbitrary<Omit<NodeState, 'name'> | null> = fc.option(
  fc.record({
    schedulable: fc.constantFrom(true, true, true, false),
    labels: fc.constantFrom<Record<string, string>>({}, { [MODEL_LABEL]: 'NVIDIA-H100-80GB-HBM3' }, { [MODEL_LABEL]: 'A100' }),
    mpsDaemonReady: fc.constantFrom<boolean | undefined>(undefined, true, true, false),
  }),
  { freq: 3 },
);

type LedgerStep =
  | { kind: 'reserve'; gpu: number; memoryGiB: number; threadPercent: number; priority: Priority; pod: number; unknownGpu: boolean }
  | { kind: 'confirm'; pick: number }
  | { kind: 'running'; pick: number; agoS: number | null }
  | { kind: 'release'; pick: number }
  | { kind: 'wait'; seconds: number }
  | { kind: 'choose' };

const priorityArb = fc.constantFrom<Priority>('low', 'high');

const ledgerStepArb: fc.Arbitrary<LedgerStep> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('reserve' as const),
      gpu: fc.nat(),
      memoryGiB: fc.integer({ min: 0, max: 30 }),
      threadPercent: fc.integer({ min: 0, max: 60 }),
      priority: priorityArb,
      pod: fc.nat({ max: 8 }),
      unknownGpu: fc.constantFrom(false, false, false, false, false, false, false, false, false, true),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('confirm' as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('running' as const), pick: fc.nat(), agoS: fc.option(fc.integer({ min: 0, max: 900 }), { freq: 4 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('release' as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('wait' as const), seconds: fc.integer({ min: 1, max: 20 }) }) },
  { weight: 3, arbitrary: fc.constant({ kind: 'choose' as const }) },
);

/** Null four times in five. */
function rarely<T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | null> {
  return fc.oneof({ weight: 4, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: arb });
}

const requestArb = fc.record({
  memoryGiB: fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 0, max: 12 }) }, { weight: 1, arbitrary: fc.integer({ min: 13, max: 48 }) }),
  threadPercent: fc.option(fc.integer({ min: 0, max: 120 }), { freq: 2 }),
  priority: priorityArb,
  gpuModel: fc.constantFrom<string | null>(null, null, null, null, null, null, '', 'h100', ' A100 ', 'H100-80GB', 'nope'),
  pinnedNode: rarely(fc.constantFrom(...NODES, 'node-z')),
  policy: fc.constantFrom<'binpack' | 'spread' | undefined>(undefined, 'binpack', 'spread'),
  uuidIn: rarely(fc.array(fc.nat(), { maxLength: 4 })),
  uuidNotIn: rarely(fc.array(fc.nat(), { maxLength: 4 })),
});

const configArb: fc.Arbitrary<Partial<PlacementConfig>> = fc.record({
  memorySafetyMarginMiB: fc.constantFrom(0, 1024, 4096),
  observeAfterRunningSeconds: fc.constantFrom(0, 60, 300),
  maxClientsPerGpu: fc.constantFrom(1, 2, 3, 48),
  maxThreadPercentSum: fc.constantFrom(100, 150, 1000),
  maxHighThreadPercentSum: fc.constantFrom(50, 100),
  minThreadPercent: fc.constantFrom(1, 5, 10),
  maxThreadPercent: fc.constantFrom(50, 100),
  hotUtilPercent: fc.constantFrom(0, 50, 85, 100),
  hotGpuAction: fc.constantFrom<'deprioritise' | 'exclude'>('deprioritise', 'exclude'),
  policy: fc.constantFrom<'binpack' | 'spread'>('binpack', 'spread'),
});

const caseArb = fc.record({
  gpus: fc.array(fc.tuple(gpuSpecArb, fc.constantFrom(0, 0, 0, 0, 0, 0, 0, 0, 0, 79)), { minLength: 1, maxLength: 40 }),
  nodes: fc.array(nodeArb, { minLength: NODES.length, maxLength: NODES.length }),
  config: configArb,
  preference: fc.constantFrom<'none' | 'shared' | 'contended'>('none', 'none', 'shared', 'contended'),
  steps: fc.array(ledgerStepArb, { minLength: 1, maxLength: 60 }),
  requests: fc.array(requestArb, { minLength: 1, maxLength: 6 }),
});

function podRef(n: number): GpuPodRef {
  return { namespace: 'ml', pod: `held-${n}`, container: 'main' };
}

function inventoryOf(specs: Array<[GpuSpec, number]>, nodes: Array<Omit<NodeState, 'name'> | null>): GpuInventory {
  const perNode = new Map<number, number>();
  const gpus: GpuSample[] = specs.map(([spec, xid]) => {
    const index = perNode.get(spec.node) ?? 0;
    perNode.set(spec.node, index + 1);
    const node = NODES[spec.node]!;
    const used = spec.totalMiB === null ? 0 : Math.min(spec.usedMiB, spec.totalMiB);
    return {
      node,
      uuid: `GPU-${node}-${index}-Ab`,
      index,
      model: MODELS[spec.model]!,
      pciBusId: null,
      memory: spec.totalMiB === null ? null : { totalMiB: spec.totalMiB, usedMiB: used, freeMiB: spec.totalMiB - used, reservedMiB: 0 },
      utilPercent: spec.util,
      smActive: null,
      grEngineActive: null,
      xid,
      mig: spec.mig,
      sampledAtMs: NOW - spec.ageS * 1000,
      pods: spec.pods.map(podRef),
    };
  });
  // Not in node and index order: the tie-break, not the list order, must decide between equal scores.
  gpus.reverse();
  const nodeTable: Record<string, NodeState> = {};
  nodes.forEach((state, i) => {
    if (state !== null) nodeTable[NODES[i]!] = { name: NODES[i]!, ...state };
  });
  return { gpus, nodes: nodeTable, source: 'test', fetchedAtMs: NOW, skippedLines: 0, problems: [] };
}

type RequestSpec = typeof requestArb extends fc.Arbitrary<infer T> ? T : never;

function slotRequest(r: RequestSpec, gpus: readonly GpuSample[], n: number): SlotRequest {
  const uuidAt = (k: number, i: number): string => {
    const uuid = gpus[k % gpus.length]!.uuid;
    return i % 2 === 0 ? uuid.toUpperCase() : uuid;
  };
  return {
    podKey: `ml/new-${n}`,
    memoryMiB: r.memoryGiB * GIB,
    threadPercent: r.threadPercent,
    priority: r.priority,
    gpuModel: r.gpuModel,
    pinnedNode: r.pinnedNode,
    ...(r.policy === undefined ? {} : { policy: r.policy }),
    ...(r.uuidIn === null ? {} : { gpuUuidIn: r.uuidIn.map(uuidAt) }),
    ...(r.uuidNotIn === null ? {} : { gpuUuidNotIn: r.uuidNotIn.map(uuidAt) }),
  };
}

describe('chooseSlot (placement table) against the full pass', () => {
  test('same decision for random inventories, ledgers, configurations, preferences and requests, as the ledger changes', () => {
    let compared = 0;
    let granted = 0;
    const refusals = new Set<string>();
    fc.assert(
      fc.property(caseArb, (c) => {
        const inventory = inventoryOf(c.gpus, c.nodes);
        const config: PlacementConfig = { ...defaultConfig().placement, maxMetricsAgeSeconds: 90, gpuModelNodeLabel: MODEL_LABEL, ...c.config };
        const contended = c.preference === 'contended' ? [inventory.gpus[0]!.uuid] : [];
        const preference = c.preference === 'none' ? null : replicaPreference({ self: 'replica-a', replicas: ['replica-b', 'replica-c'], contendedGpus: () => contended });
        let n = 0;
        const ledger = new ReservationLedger({ ttlMs: 30_000, newId: () => `r-${++n}` });
        const ids: string[] = [];
        let nowMs = NOW;
        const pick = (k: number): string | undefined => ids[k % Math.max(1, ids.length)];
        const compare = (): void => {
          for (const [i, r] of c.requests.entries()) {
            const request = slotRequest(r, inventory.gpus, i);
            const expected = chooseSlotByFullPass(inventory, ledger, request, config, nowMs, preference);
            expect(chooseSlot(inventory, ledger, request, config, nowMs, preference)).toEqual(expected);
            compared++;
            if (expected.ok) granted++;
            else for (const code of Object.keys(expected.excluded)) refusals.add(code);
          }
        };
        for (const step of c.steps) {
          switch (step.kind) {
            case 'reserve': {
              const gpu = inventory.gpus[step.gpu % inventory.gpus.length]!;
              const r = ledger.reserve(
                { podKey: `ml/held-${step.pod}`, node: gpu.node, gpuUuid: step.unknownGpu ? 'GPU-elsewhere' : gpu.uuid, memoryMiB: step.memoryGiB * GIB, threadPercent: step.threadPercent, priority: step.priority },
                nowMs,
              );
              ids.push(r.id);
              break;
            }
            case 'confirm': {
              const id = pick(step.pick);
              if (id !== undefined) ledger.confirm(id, nowMs);
              break;
            }
            case 'running': {
              const id = pick(step.pick);
              if (id !== undefined) ledger.markRunning(id, step.agoS === null ? null : nowMs - step.agoS * 1000);
              break;
            }
            case 'release': {
              const id = pick(step.pick);
              if (id !== undefined) ledger.release(id);
              break;
            }
            case 'wait':
              nowMs += step.seconds * 1000;
              break;
            case 'choose': {
              compare();
              // Hold what the first request was granted, as an admission does.
              const request = slotRequest(c.requests[0]!, inventory.gpus, 0);
              const decision = chooseSlot(inventory, ledger, request, config, nowMs, preference);
              if (decision.ok) {
                ids.push(ledger.reserve({ podKey: request.podKey, node: decision.node, gpuUuid: decision.gpuUuid, memoryMiB: decision.memoryLimitMiB, threadPercent: decision.threadPercent, priority: decision.priority }, nowMs).id);
              }
              break;
            }
          }
        }
        compare();
      }),
      { seed: 20_261_130, numRuns: 400 },
    );
    // The cases must exercise both grants and refusals.
    expect(granted).toBeGreaterThan(compared / 5);
    expect(granted).toBeLessThan(compared);
    // ... and refusals for every rule.
    expect([...refusals].sort()).toEqual(['client-cap', 'compute', 'gpu-uuid', 'hot', 'memory', 'mig', 'model-mismatch', 'no-memory-metrics', 'no-mps-daemon', 'node-mismatch', 'node-unschedulable', 'stale', 'xid']);
  });

  test('ledgers that take turns over one inventory each get their own sums', () => {
    const inventory = inventoryOf(
      [
        [{ node: 0, model: 0, totalMiB: 80 * GIB, usedMiB: 0, util: 10, mig: false, ageS: 1, pods: [] }, 0],
        [{ node: 0, model: 0, totalMiB: 80 * GIB, usedMiB: 0, util: 10, mig: false, ageS: 1, pods: [] }, 0],
      ],
      [null, null, null, null],
    );
    const config = defaultConfig().placement;
    const request: SlotRequest = { podKey: 'ml/p', memoryMiB: 8 * GIB, threadPercent: null, priority: 'low', gpuModel: null, pinnedNode: null };
    const busy = new ReservationLedger({ ttlMs: 60_000 });
    busy.reserve({ podKey: 'ml/x', node: 'node-a', gpuUuid: inventory.gpus[1]!.uuid, memoryMiB: 70 * GIB, threadPercent: 10, priority: 'low' }, NOW);
    const empty = new ReservationLedger({ ttlMs: 60_000 });
    for (const ledger of [busy, empty, busy, empty]) {
      expect(chooseSlot(inventory, ledger, request, config, NOW)).toEqual(chooseSlotByFullPass(inventory, ledger, request, config, NOW));
    }
    expect(chooseSlot(inventory, busy, request, config, NOW)).toMatchObject({ ok: true, gpuUuid: inventory.gpus[1]!.uuid });
  });

  const plainGpu = (node: number, usedMiB: number, ageS = 1): [GpuSpec, number] => [{ node, model: 0, totalMiB: 80 * GIB, usedMiB, util: 10, mig: false, ageS, pods: [] }, 0];
  const plainRequest: SlotRequest = { podKey: 'ml/p', memoryMiB: 8 * GIB, threadPercent: null, priority: 'low', gpuModel: null, pinnedNode: null };

  test('a pending reservation that falls due stops counting, though its GPU saw no change since the last call', () => {
    const inventory = inventoryOf([plainGpu(0, 0), plainGpu(1, 0)], [null, null, null, null]);
    const config = { ...defaultConfig().placement, maxMetricsAgeSeconds: 3600 };
    const ledger = new ReservationLedger({ ttlMs: 30_000 });
    const [a, b] = ['node-a', 'node-b'].map((node) => inventory.gpus.find((g) => g.node === node)!) as [GpuSample, GpuSample];
    ledger.confirm(ledger.reserve({ podKey: 'ml/kept', node: b.node, gpuUuid: b.uuid, memoryMiB: 10 * GIB, threadPercent: 10, priority: 'low' }, NOW).id, NOW);
    ledger.reserve({ podKey: 'ml/never-created', node: a.node, gpuUuid: a.uuid, memoryMiB: 20 * GIB, threadPercent: 10, priority: 'low' }, NOW);
    // Binpack: the fuller GPU while the pending reservation counts, the other one once it has expired.
    expect(chooseSlot(inventory, ledger, plainRequest, config, NOW)).toMatchObject({ ok: true, gpuUuid: a.uuid });
    expect(chooseSlot(inventory, ledger, plainRequest, config, NOW + 30_000)).toMatchObject({ ok: true, gpuUuid: b.uuid });
    expect(chooseSlot(inventory, ledger, plainRequest, config, NOW + 30_000)).toEqual(chooseSlotByFullPass(inventory, ledger, plainRequest, config, NOW + 30_000));
  });

  test('a clock that goes back sees GPUs fresh again', () => {
    const inventory = inventoryOf([plainGpu(0, 0, 0), plainGpu(1, 30 * GIB, 50)], [null, null, null, null]);
    const config = { ...defaultConfig().placement, maxMetricsAgeSeconds: 60 };
    const ledger = new ReservationLedger({ ttlMs: 30_000 });
    const [a, b] = ['node-a', 'node-b'].map((node) => inventory.gpus.find((g) => g.node === node)!) as [GpuSample, GpuSample];
    expect(chooseSlot(inventory, ledger, plainRequest, config, NOW + 20_000)).toMatchObject({ ok: true, gpuUuid: a.uuid });
    expect(chooseSlot(inventory, ledger, plainRequest, config, NOW)).toMatchObject({ ok: true, gpuUuid: b.uuid });
  });

  test('same decision on a larger fleet through many grants and releases (the ranking moves GPUs up and down)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 70 }), { minLength: 60, maxLength: 160 }),
        fc.array(fc.tuple(fc.boolean(), fc.nat(), fc.integer({ min: 1, max: 24 })), { minLength: 20, maxLength: 120 }),
        fc.constantFrom<'binpack' | 'spread'>('binpack', 'spread'),
        (usedGiB, steps, policy) => {
          const inventory = inventoryOf(
            usedGiB.map((used, i) => plainGpu(i % NODES.length, used * GIB)),
            [null, null, null, null],
          );
          const config = { ...defaultConfig().placement, maxMetricsAgeSeconds: 3600, policy };
          const ledger = new ReservationLedger({ ttlMs: 600_000 });
          const held: string[] = [];
          for (const [grant, pick, memoryGiB] of steps) {
            const request = { ...plainRequest, memoryMiB: memoryGiB * GIB };
            const decision = chooseSlot(inventory, ledger, request, config, NOW);
            expect(decision).toEqual(chooseSlotByFullPass(inventory, ledger, request, config, NOW));
            if (grant && decision.ok) {
              held.push(ledger.reserve({ podKey: `ml/p-${held.length}`, node: decision.node, gpuUuid: decision.gpuUuid, memoryMiB: decision.memoryLimitMiB, threadPercent: decision.threadPercent, priority: 'low' }, NOW).id);
            } else if (held.length > 0) {
              ledger.release(held.splice(pick % held.length, 1)[0]!);
            }
          }
        },
      ),
      { seed: 1_130, numRuns: 60 },
    );
  });
});
