import { describe, expect, test } from '@jest/globals';
import { defaultConfig } from '../config/schema.js';
import type { GpuInventory, GpuMemory, GpuPodRef, GpuSample, NodeState } from '../domain/inventory.js';
import { chooseSlot, countUnreservedPods } from './chooseSlot.js';
import { ReservationLedger } from '../reservations/ledger.js';
import { PREFERENCE_STEP } from './replicaPreference.js';
import type { GpuPreference, LedgerView, PlacementConfig, Priority, Reservation, SlotChoice, SlotDecision, SlotRefusal, SlotRequest } from '../domain/slot.js';

const NOW = 1_700_000_000_000;
const GIB = 1024;
const H100_MIB = 80 * GIB;

function memory(totalMiB: number, usedMiB: number): GpuMemory {
  return { totalMiB, usedMiB, freeMiB: totalMiB - usedMiB, reservedMiB: 0 };
}

function gpu(overrides: Partial<GpuSample> = {}): GpuSample {
  const node = overrides.node ?? 'node-a';
  const index = overrides.index ?? 0;
  return {
    node,
    uuid: `GPU-${node}-${index}`,
    index,
    model: 'NVIDIA H100 80GB HBM3',
    pciBusId: null,
    memory: memory(H100_MIB, 0),
    utilPercent: 0,
    smActive: null,
    grEngineActive: null,
    xid: 0,
    mig: false,
    sampledAtMs: NOW - 5_000,
    pods: [],
    ...overrides,
  };
}

function nodeState(name: string, overrides: Partial<NodeState> = {}): NodeState {
  return { name, schedulable: true, labels: {}, ...overrides };
}

function inventoryOf(gpus: GpuSample[], nodes: NodeState[] = []): GpuInventory {
  return {
    gpus,
    nodes: Object.fromEntries(nodes.map((n) => [n.name, n])),
    source: 'test',
    fetchedAtMs: NOW,
    skippedLines: 0,
    problems: [],
  };
}

function placement(overrides: Partial<PlacementConfig> = {}): PlacementConfig {
  return { ...defaultConfig().placement, ...overrides };
}

function request(overrides: Partial<SlotRequest> = {}): SlotRequest {
  return { podKey: 'ml/new-pod', memoryMiB: 8 * GIB, threadPercent: null, priority: 'low', gpuModel: null, pinnedNode: null, ...overrides };
}

function ledgerOf(): ReservationLedger {
  let n = 0;
  return new ReservationLedger({ ttlMs: 120_000, newId: () => `r-${++n}` });
}

/** A ledger holding confirmed reservations made before the GPU samples: [gpuUuid, memoryMiB, threadPercent, priority (default low)] each. */
function ledgerWith(...held: Array<[string, number, number, Priority?]>): ReservationLedger {
  const ledger = ledgerOf();
  held.forEach(([gpuUuid, memoryMiB, threadPercent, priority = 'low'], i) => {
    const r = ledger.reserve({ podKey: `ml/held-${i}`, node: gpuUuid.split('-').slice(1, 3).join('-'), gpuUuid, memoryMiB, threadPercent, priority }, NOW - 3_600_000);
    ledger.confirm(r.id, NOW - 3_600_000);
    // Long-running pods: every sample taken now already shows their memory.
    ledger.markRunning(r.id, NOW - 3_500_000);
  });
  return ledger;
}

function choose(gpus: GpuSample[], opts: { ledger?: LedgerView; req?: Partial<SlotRequest>; config?: Partial<PlacementConfig>; nodes?: NodeState[] } = {}): SlotDecision {
  return chooseSlot(inventoryOf(gpus, opts.nodes), opts.ledger ?? ledgerOf(), request(opts.req), placement(opts.config), NOW);
}

function expectChoice(decision: SlotDecision): SlotChoice {
  if (!decision.ok) throw new Error(`expected a choice, got refusal: ${decision.reason}`);
  return decision;
}

function expectRefusal(decision: SlotDecision): SlotRefusal {
  if (decision.ok) throw new Error(`expected a refusal, got ${decision.node} GPU ${decision.gpuIndex}: ${decision.reason}`);
  return decision;
}

const pod = (name: string, container = 'main', namespace = 'ml'): GpuPodRef => ({ namespace, pod: name, container });

describe('chooseSlot: each exclusion rule', () => {
  const cases: Array<{ name: string; code: string; part: RegExp; gpus: GpuSample[]; ledger?: () => LedgerView; req?: Partial<SlotRequest>; config?: Partial<PlacementConfig>; nodes?: NodeState[] }> = [
    { name: 'stale sample', code: 'stale', part: /1 stale \(samples older than 90s\)/, gpus: [gpu({ sampledAtMs: NOW - 91_000 }), gpu({ index: 1, memory: null })] },
    { name: 'MIG enabled', code: 'mig', part: /1 MIG/, gpus: [gpu({ mig: true })] },
    { name: 'XID error', code: 'xid', part: /1 with XID errors \(node-a GPU 0: XID 79\)/, gpus: [gpu({ xid: 79 })] },
    {
      name: 'cordoned node',
      code: 'node-unschedulable',
      part: /1 on unschedulable nodes \(node-a: cordoned\)/,
      gpus: [gpu()],
      nodes: [nodeState('node-a', { schedulable: false, unschedulableReason: 'cordoned' })],
    },
    {
      name: 'node without a Ready MPS daemon',
      code: 'no-mps-daemon',
      part: /1 with no MPS daemon ready on node-a \(check the MPS control daemon pods there; set cluster.mpsDaemon.required to false where MPS runs another way\)/,
      gpus: [gpu()],
      nodes: [nodeState('node-a', { mpsDaemonReady: false })],
    },
    { name: 'another node than the pinned one', code: 'node-mismatch', part: /1 on other nodes/, gpus: [gpu({ node: 'node-b' }), gpu({ index: 1, memory: null })], req: { pinnedNode: 'node-a' } },
    { name: 'another model', code: 'model-mismatch', part: /1 of other models \(seen: NVIDIA H100 80GB HBM3;/, gpus: [gpu()], req: { gpuModel: 'A100' } },
    { name: 'no FB_* series', code: 'no-memory-metrics', part: /1 without memory metrics \(enable DCGM_FI_DEV_FB_FREE, DCGM_FI_DEV_FB_USED and DCGM_FI_DEV_FB_RESERVED/, gpus: [gpu({ memory: null })] },
    { name: 'client cap reached', code: 'client-cap', part: /1 at the 2-client cap/, gpus: [gpu()], ledger: () => ledgerWith(['GPU-node-a-0', 1, 1], ['GPU-node-a-0', 1, 1]), config: { maxClientsPerGpu: 2 } },
    { name: 'not enough memory', code: 'memory', part: /1 short of memory \(best: node-a GPU 0, 7Gi free\)/, gpus: [gpu({ memory: memory(H100_MIB, 72 * GIB) })] },
    { name: 'compute budget spent', code: 'compute', part: /1 short of compute \(best: node-a GPU 0, 5% of 200% left\)/, gpus: [gpu()], ledger: () => ledgerWith(['GPU-node-a-0', 1, 195]) },
    { name: 'hot GPU with hotGpuAction exclude', code: 'hot', part: /1 hot \(utilisation at or above 85%/, gpus: [gpu({ utilPercent: 85 })], config: { hotGpuAction: 'exclude' } },
  ];

  test.each(cases)('$name is excluded as $code with its count and reason', ({ code, part, gpus, ledger, req, config, nodes }) => {
    const refusal = expectRefusal(choose(gpus, { ledger: ledger?.(), req, config, nodes }));
    expect(refusal.excluded[code as keyof SlotRefusal['excluded']]).toBe(1);
    expect(refusal.considered).toBe(gpus.length);
    expect(refusal.reason).toMatch(part);
    expect(refusal.code).toBe('no-fit');
  });

  test('the same GPU fits once the rule no longer applies', () => {
    expect(choose([gpu({ utilPercent: 84.9 })], { config: { hotGpuAction: 'exclude' } }).ok).toBe(true);
    expect(choose([gpu({ sampledAtMs: NOW - 90_000 })]).ok).toBe(true);
    expect(choose([gpu()], { nodes: [nodeState('node-a', { schedulable: true })] }).ok).toBe(true);
    expect(choose([gpu()], { nodes: [nodeState('node-a', { mpsDaemonReady: true })] }).ok).toBe(true);
  });

  test('nodes without a Ready MPS daemon are named in the refusal, the pinned one included', () => {
    const gpus = ['gpu-a', 'gpu-b', 'gpu-c', 'gpu-d'].flatMap((node) => [gpu({ node, index: 0 }), gpu({ node, index: 1 })]);
    const noDaemon = (names: string[]) => names.map((name) => nodeState(name, { mpsDaemonReady: false }));
    const pinned = expectRefusal(choose(gpus, { req: { pinnedNode: 'gpu-b' }, nodes: noDaemon(['gpu-b']) }));
    expect(pinned.reason).toBe(
      'no GPU fits 8Gi on node gpu-b: 8 considered, 6 on other nodes, 2 with no MPS daemon ready on gpu-b (check the MPS control daemon pods there; set cluster.mpsDaemon.required to false where MPS runs another way)',
    );
    expect(expectChoice(choose(gpus, { nodes: noDaemon(['gpu-a', 'gpu-b']) })).node).toBe('gpu-c');
    const all = expectRefusal(choose(gpus, { nodes: noDaemon(['gpu-a', 'gpu-b', 'gpu-c', 'gpu-d']) }));
    expect(all.excluded).toEqual({ 'no-mps-daemon': 8 });
    expect(all.reason).toContain('8 with no MPS daemon ready on gpu-a, gpu-b and 2 more nodes (');
  });
});

describe('chooseSlot: memory', () => {
  // 10000 MiB total, 1000 used, 1024 margin: exactly 7976 MiB of room.
  const small = () => gpu({ memory: memory(10_000, 1_000) });

  test('a pod that fits exactly is placed; 1 MiB more is refused as short of memory', () => {
    const fits = expectChoice(choose([small()], { req: { memoryMiB: 7_976 } }));
    expect(fits.memoryLimitMiB).toBe(7_976);
    const short = expectRefusal(choose([small()], { req: { memoryMiB: 7_977 } }));
    expect(short.excluded).toEqual({ memory: 1 });
    expect(short.reason).toBe('no GPU fits 7.8Gi: 1 considered, 1 short of memory (best: node-a GPU 0, 7.8Gi free)');
  });

  test('the safety margin is configurable', () => {
    expect(choose([small()], { req: { memoryMiB: 8_000 }, config: { memorySafetyMarginMiB: 1_000 } }).ok).toBe(true);
    expect(choose([small()], { req: { memoryMiB: 8_001 }, config: { memorySafetyMarginMiB: 1_000 } }).ok).toBe(false);
  });

  test('observed use above the reservations is what counts', () => {
    // used 30000 > reserved 10000: room = 81920 - 30000 - 1024 = 50896
    const busy = gpu({ memory: memory(H100_MIB, 30_000) });
    const ledger = ledgerWith(['GPU-node-a-0', 10_000, 10]);
    expect(choose([busy], { ledger, req: { memoryMiB: 50_896 } }).ok).toBe(true);
    expect(choose([busy], { ledger, req: { memoryMiB: 50_897 } }).ok).toBe(false);
  });

  test('reservations above the observed use are what counts (metrics lag admissions)', () => {
    // reserved 40000 > used 1000: room = 81920 - 40000 - 1024 = 40896
    const lagging = gpu({ memory: memory(H100_MIB, 1_000) });
    const ledger = ledgerWith(['GPU-node-a-0', 25_000, 10], ['GPU-node-a-0', 15_000, 10]);
    expect(choose([lagging], { ledger, req: { memoryMiB: 40_896 } }).ok).toBe(true);
    const refusal = expectRefusal(choose([lagging], { ledger, req: { memoryMiB: 40_897 } }));
    expect(refusal.reason).toContain('best: node-a GPU 0, 39.9Gi free');
  });

  describe('reservations the sample cannot show yet count on top of observed use', () => {
    // 20Gi observed (a process the webhook did not place); samples are 5s old (taken at NOW - 5s).
    const shared = () => gpu({ memory: memory(H100_MIB, 20 * GIB) });
    const SAMPLED = NOW - 5_000;
    const WARM_UP = defaultConfig().placement.observeAfterRunningSeconds * 1000;
    const reserve = (ledger: ReservationLedger, atMs: number, memoryMiB: number) =>
      ledger.reserve({ podKey: `ml/p-${atMs}`, node: 'node-a', gpuUuid: 'GPU-node-a-0', memoryMiB, threadPercent: 10, priority: 'low' }, atMs);
    const fitsExactly = (ledger: LedgerView, roomMiB: number) => {
      expect(choose([shared()], { ledger, req: { memoryMiB: roomMiB } }).ok).toBe(true);
      expect(choose([shared()], { ledger, req: { memoryMiB: roomMiB + 1 } }).ok).toBe(false);
    };

    test('pending reservations (their pods do not exist yet)', () => {
      // room = 80Gi - (20Gi + 30Gi) - 1Gi = 29Gi
      const ledger = ledgerOf();
      reserve(ledger, NOW - 60_000, 30 * GIB);
      fitsExactly(ledger, 29 * GIB);
    });

    test('confirmed reservations whose pods exist but are not running, however old the pod (scheduling, image pull)', () => {
      const ledger = ledgerOf();
      ledger.confirm(reserve(ledger, NOW - 600_000, 30 * GIB).id, NOW - 600_000);
      fitsExactly(ledger, 29 * GIB);
    });

    test('running reservations whose pods started less than the warm-up before the sample (model still loading)', () => {
      const ledger = ledgerOf();
      const r = reserve(ledger, NOW - 900_000, 30 * GIB);
      ledger.confirm(r.id, NOW - 900_000);
      ledger.markRunning(r.id, SAMPLED - WARM_UP + 1);
      fitsExactly(ledger, 29 * GIB);
    });

    test('but not running reservations whose pods ran for the warm-up before the sample, which it shows', () => {
      // max(20Gi observed, 10Gi reserved): room = 80Gi - 20Gi - 1Gi = 59Gi
      const ledger = ledgerOf();
      const r = reserve(ledger, NOW - 900_000, 10 * GIB);
      ledger.confirm(r.id, NOW - 900_000);
      ledger.markRunning(r.id, SAMPLED - WARM_UP);
      fitsExactly(ledger, 59 * GIB);
    });

    test('a restart starts the warm-up again', () => {
      const ledger = ledgerOf();
      const r = reserve(ledger, NOW - 900_000, 10 * GIB);
      ledger.confirm(r.id, NOW - 900_000);
      ledger.markRunning(r.id, NOW - 800_000);
      fitsExactly(ledger, 59 * GIB);
      ledger.markRunning(r.id, null); // crash-looping
      fitsExactly(ledger, 49 * GIB);
      ledger.markRunning(r.id, NOW - 10_000); // restarted 10 s ago
      fitsExactly(ledger, 49 * GIB);
    });

    test('the warm-up is configurable; 0 takes a pod as visible from the moment it runs', () => {
      const ledger = ledgerOf();
      const r = reserve(ledger, NOW - 900_000, 10 * GIB);
      ledger.confirm(r.id, NOW - 900_000);
      ledger.markRunning(r.id, SAMPLED);
      expect(choose([shared()], { ledger, req: { memoryMiB: 59 * GIB }, config: { observeAfterRunningSeconds: 0 } }).ok).toBe(true);
      expect(choose([shared()], { ledger, req: { memoryMiB: 59 * GIB } }).ok).toBe(false);
    });

    test('a mix: warmed-up ones under max(), the rest on top', () => {
      // warmed-up 25Gi, pending 5Gi, confirmed-not-running 3Gi: max(20Gi + 8Gi, 33Gi) = 33Gi; room = 46Gi
      const ledger = ledgerOf();
      const old = reserve(ledger, NOW - 900_000, 25 * GIB);
      ledger.confirm(old.id, NOW - 900_000);
      ledger.markRunning(old.id, NOW - 800_000);
      reserve(ledger, NOW - 1_000, 5 * GIB);
      ledger.confirm(reserve(ledger, NOW - 100_000, 3 * GIB).id, NOW - 100_000);
      fitsExactly(ledger, 46 * GIB);
      // and the same through a plain LedgerView
      const view: LedgerView = { onGpu: (uuid, now) => ledger.onGpu(uuid, now) };
      fitsExactly(view, 46 * GIB);
    });
  });

  test('reservations that expired no longer hold memory', () => {
    const ledger = ledgerOf();
    ledger.reserve({ podKey: 'ml/gone', node: 'node-a', gpuUuid: 'GPU-node-a-0', memoryMiB: 70 * GIB, threadPercent: 10, priority: 'low' }, NOW - 120_000);
    expect(choose([gpu()], { ledger }).ok).toBe(true);
  });
});

describe('chooseSlot: policies and ties', () => {
  // node-a GPU 0 idle, GPU 1 with 20Gi reserved, GPU 2 with 40Gi reserved.
  const fleet = () => [gpu({ index: 0 }), gpu({ index: 1 }), gpu({ index: 2 })];
  const held = () => ledgerWith(['GPU-node-a-1', 20 * GIB, 20], ['GPU-node-a-2', 40 * GIB, 40]);

  test('binpack picks the most loaded GPU that still fits', () => {
    const choice = expectChoice(choose(fleet(), { ledger: held() }));
    expect(choice.gpuIndex).toBe(2);
    expect(choice.reason).toBe('binpack: node-a GPU 2 (H100 80GB HBM3) has 39Gi free after 1 reservation; granted 20% (its memory share) and 8Gi');
  });

  test('binpack opens an idle GPU only when no used GPU fits', () => {
    const choice = expectChoice(choose(fleet(), { ledger: held(), req: { memoryMiB: 60 * GIB } }));
    expect(choice.gpuIndex).toBe(0);
    expect(choice.reason).toContain('with no other clients');
  });

  test('binpack prefers a GPU in use over an idle one even when the idle one shows more used memory', () => {
    const strayProcess = gpu({ index: 0, memory: memory(H100_MIB, 10 * GIB) });
    const ledger = ledgerWith(['GPU-node-a-1', 1 * GIB, 10]);
    expect(expectChoice(choose([strayProcess, gpu({ index: 1 })], { ledger })).gpuIndex).toBe(1);
  });

  test('spread picks the least loaded GPU', () => {
    const choice = expectChoice(choose(fleet(), { ledger: held(), config: { policy: 'spread' } }));
    expect(choice.gpuIndex).toBe(0);
    expect(choice.reason).toMatch(/^spread: node-a GPU 0 /);
  });

  test("a pod's own policy overrides the configured one, and the reason names the policy applied", () => {
    const spread = expectChoice(choose(fleet(), { ledger: held(), req: { policy: 'spread' } }));
    expect(spread.gpuIndex).toBe(0);
    expect(spread.reason).toMatch(/^spread: node-a GPU 0 /);
    const binpack = expectChoice(choose(fleet(), { ledger: held(), req: { policy: 'binpack' }, config: { policy: 'spread' } }));
    expect(binpack.gpuIndex).toBe(2);
    expect(binpack.reason).toMatch(/^binpack: /);
  });

  test('spread counts observed utilisation as load', () => {
    const gpus = [gpu({ index: 0, utilPercent: 60 }), gpu({ index: 1, utilPercent: 10 })];
    expect(expectChoice(choose(gpus, { config: { policy: 'spread' } })).gpuIndex).toBe(1);
  });

  test.each(['binpack', 'spread'] as const)('%s breaks ties by node name, then GPU index, whatever the input order', (policy) => {
    const twins = [gpu({ node: 'node-b', index: 0 }), gpu({ node: 'node-a', index: 3 }), gpu({ node: 'node-a', index: 1 }), gpu({ node: 'node-c', index: 0 })];
    for (const order of [twins, [...twins].reverse(), [twins[2]!, twins[0]!, twins[3]!, twins[1]!]]) {
      const choice = expectChoice(choose(order, { config: { policy } }));
      expect([choice.node, choice.gpuIndex]).toEqual(['node-a', 1]);
    }
  });
});

describe('chooseSlot: hot GPUs and priority', () => {
  // GPU 0 is in use and hot; GPU 1 is idle and cool.
  const gpus = () => [gpu({ index: 0, utilPercent: 95 }), gpu({ index: 1, utilPercent: 5 })];
  const held = () => ledgerWith(['GPU-node-a-0', 10 * GIB, 20]);

  test('binpack: a low-priority pod still fills the hot GPU in use', () => {
    const choice = expectChoice(choose(gpus(), { ledger: held(), req: { priority: 'low' } }));
    expect(choice.gpuIndex).toBe(0);
    expect(choice.reason).toContain('it is hot (95% utilisation) but ranked best');
  });

  test('binpack: a high-priority pod avoids the hot GPU', () => {
    const choice = expectChoice(choose(gpus(), { ledger: held(), req: { priority: 'high' } }));
    expect(choice.gpuIndex).toBe(1);
    expect(choice.priority).toBe('high');
  });

  test('a low-priority pod also avoids a hot GPU when a cool one is packed as well', () => {
    const ledger = ledgerWith(['GPU-node-a-0', 10 * GIB, 20], ['GPU-node-a-1', 10 * GIB, 20]);
    expect(expectChoice(choose(gpus(), { ledger, req: { priority: 'low' } })).gpuIndex).toBe(1);
  });

  test('with only hot GPUs, deprioritise still places the pod; exclude refuses', () => {
    const onlyHot = [gpu({ utilPercent: 99 })];
    expect(choose(onlyHot, { req: { priority: 'high' } }).ok).toBe(true);
    const refusal = expectRefusal(choose(onlyHot, { req: { priority: 'high' }, config: { hotGpuAction: 'exclude' } }));
    expect(refusal.excluded).toEqual({ hot: 1 });
  });

  test('a GPU without a utilisation reading is not hot', () => {
    const unknown = [gpu({ index: 0, utilPercent: null }), gpu({ index: 1, utilPercent: 90 })];
    expect(expectChoice(choose(unknown, { req: { priority: 'high' }, config: { hotGpuAction: 'exclude' } })).gpuIndex).toBe(0);
  });
});

describe('chooseSlot: thread percent', () => {
  test('derived from the memory share scaled to the oversubscription bound', () => {
    // 8Gi of 80Gi is 10% of the memory; with maxThreadPercentSum 200 that is 20%.
    expect(expectChoice(choose([gpu()])).threadPercent).toBe(20);
    expect(expectChoice(choose([gpu()], { config: { maxThreadPercentSum: 100 } })).threadPercent).toBe(10);
  });

  test('raised to the minimum for a small pod', () => {
    const choice = expectChoice(choose([gpu()], { req: { memoryMiB: 1 * GIB } }));
    expect(choice.threadPercent).toBe(10);
    expect(choice.reason).toContain('granted 10% (raised to the 10% minimum)');
  });

  test('capped at the maximum for a large pod', () => {
    const choice = expectChoice(choose([gpu()], { req: { memoryMiB: 60 * GIB }, config: { maxThreadPercent: 50 } }));
    expect(choice.threadPercent).toBe(50);
    expect(choice.reason).toContain('(memory share capped at the 50% maximum)');
  });

  test('capped by the observed idle share, never below the minimum', () => {
    expect(expectChoice(choose([gpu({ utilPercent: 70 })], { req: { memoryMiB: 40 * GIB } })).threadPercent).toBe(30);
    expect(expectChoice(choose([gpu({ utilPercent: 80 })], { req: { memoryMiB: 40 * GIB } })).reason).toContain('granted 20% (capped by the idle share observed on the GPU)');
    expect(expectChoice(choose([gpu({ utilPercent: 99 })], { req: { memoryMiB: 40 * GIB } })).threadPercent).toBe(10);
  });

  test('capped by the compute budget left on the GPU', () => {
    const choice = expectChoice(choose([gpu()], { ledger: ledgerWith(['GPU-node-a-0', 1, 185]) }));
    expect(choice.threadPercent).toBe(15);
    expect(choice.reason).toContain('granted 15% (capped by the 15% compute budget left)');
  });

  test('a budget below the minimum excludes the GPU for compute', () => {
    const refusal = expectRefusal(choose([gpu()], { ledger: ledgerWith(['GPU-node-a-0', 1, 191]) }));
    expect(refusal.excluded).toEqual({ compute: 1 });
  });

  test('an asked share is granted as asked', () => {
    const choice = expectChoice(choose([gpu()], { req: { threadPercent: 35 } }));
    expect(choice.threadPercent).toBe(35);
    expect(choice.reason).toContain('granted 35% as asked');
  });

  test('an asked share outside the configured bounds is clamped, and the reason says so', () => {
    const low = expectChoice(choose([gpu()], { req: { threadPercent: 5 } }));
    expect(low.threadPercent).toBe(10);
    expect(low.reason).toContain('(asked 5%, raised to the 10% minimum)');
    const high = expectChoice(choose([gpu()], { req: { threadPercent: 100 }, config: { maxThreadPercent: 60 } }));
    expect(high.threadPercent).toBe(60);
    expect(high.reason).toContain('(asked 100%, lowered to the 60% maximum)');
  });

  test('every derived grant lies within the configured bounds', () => {
    const config = { minThreadPercent: 15, maxThreadPercent: 70 };
    for (const memoryMiB of [1, 512, 4 * GIB, 20 * GIB, 60 * GIB, 78 * GIB]) {
      for (const utilPercent of [null, 0, 50, 84, 99]) {
        const t = expectChoice(choose([gpu({ utilPercent })], { req: { memoryMiB }, config })).threadPercent;
        expect(t).toBeGreaterThanOrEqual(15);
        expect(t).toBeLessThanOrEqual(70);
        expect(Number.isInteger(t)).toBe(true);
      }
    }
  });
});

describe('chooseSlot: compute oversubscription bound', () => {
  test('the sum of granted shares may reach the bound but not pass it', () => {
    expect(choose([gpu()], { req: { threadPercent: 50 }, ledger: ledgerWith(['GPU-node-a-0', 1, 150]) }).ok).toBe(true);
    const refusal = expectRefusal(choose([gpu()], { req: { threadPercent: 50 }, ledger: ledgerWith(['GPU-node-a-0', 1, 151]) }));
    expect(refusal.reason).toContain('1 short of compute (best: node-a GPU 0, 49% of 200% left)');
  });

  test('with the bound at 100 there is no oversubscription', () => {
    const ledger = ledgerWith(['GPU-node-a-0', 1, 60]);
    expect(choose([gpu()], { req: { threadPercent: 40 }, ledger, config: { maxThreadPercentSum: 100 } }).ok).toBe(true);
    expect(choose([gpu()], { req: { threadPercent: 41 }, ledger, config: { maxThreadPercentSum: 100 } }).ok).toBe(false);
  });
});

describe('chooseSlot: high-priority compute budget', () => {
  test('high pods share at most maxHighThreadPercentSum of a GPU; low pods fill the rest of the total budget', () => {
    const ledger = ledgerWith(['GPU-node-a-0', 1, 80, 'high']);
    expect(choose([gpu()], { req: { threadPercent: 20, priority: 'high' }, ledger }).ok).toBe(true);
    const refusal = expectRefusal(choose([gpu()], { req: { threadPercent: 21, priority: 'high' }, ledger }));
    expect(refusal.excluded).toEqual({ compute: 1 });
    expect(refusal.reason).toContain('1 short of compute (best: node-a GPU 0, 20% of the 100% high-priority budget left)');
    expect(choose([gpu()], { req: { threadPercent: 100, priority: 'low' }, ledger }).ok).toBe(true);
    expect(choose([gpu()], { req: { threadPercent: 21, priority: 'high' }, ledger, config: { maxHighThreadPercentSum: 101 } }).ok).toBe(true);
  });

  test('a high pod that fits only by taking compute low pods hold goes to another GPU, and nothing is preempted', () => {
    const ledger = ledgerWith(['GPU-node-a-0', 1, 190]);
    // Binpack prefers the GPU in use; its total budget has 10% left, below the 20% asked.
    const choice = expectChoice(choose([gpu(), gpu({ index: 1 })], { req: { threadPercent: 20, priority: 'high' }, ledger }));
    expect(choice.gpuUuid).toBe('GPU-node-a-1');
    expect(ledger.totals('GPU-node-a-0', NOW)).toMatchObject({ threadPercent: 190, highThreadPercent: 0, clients: 1 });
    const refusal = expectRefusal(choose([gpu()], { req: { threadPercent: 20, priority: 'high' }, ledger }));
    expect(refusal.reason).toContain('1 short of compute (best: node-a GPU 0, 10% of 200% left; low-priority pods hold 190% and are not preempted)');
  });

  test('a derived share of a high pod is capped by the high-priority budget left', () => {
    const choice = expectChoice(choose([gpu()], { req: { priority: 'high' }, ledger: ledgerWith(['GPU-node-a-0', 1, 90, 'high']) }));
    expect(choice.threadPercent).toBe(10);
    expect(choice.reason).toContain('granted 10% (capped by the 10% compute budget left)');
  });

  test('low pods are not held to the high-priority budget, and a high budget above the total changes nothing', () => {
    const full = ledgerWith(['GPU-node-a-0', 1, 100, 'high']);
    expect(expectChoice(choose([gpu()], { req: { threadPercent: 50 }, ledger: full })).threadPercent).toBe(50);
    const ledger = ledgerWith(['GPU-node-a-0', 1, 150, 'high']);
    const config = { maxThreadPercentSum: 160, maxHighThreadPercentSum: 500 };
    expect(choose([gpu()], { req: { threadPercent: 10, priority: 'high' }, ledger, config }).ok).toBe(true);
    expect(expectRefusal(choose([gpu()], { req: { threadPercent: 11, priority: 'high' }, ledger, config })).reason).toContain('10% of 160% left');
  });
});

describe('chooseSlot: GPU UUID hints', () => {
  const fleet = () => [gpu({ index: 0 }), gpu({ index: 1 }), gpu({ index: 2 })];

  test('gpu-uuid-in keeps only the listed GPUs (any case); gpu-uuid-not-in rules GPUs out', () => {
    expect(expectChoice(choose(fleet(), { req: { gpuUuidIn: ['gpu-node-a-2'] } })).gpuIndex).toBe(2);
    expect(expectChoice(choose(fleet(), { req: { gpuUuidNotIn: ['GPU-node-a-0', 'GPU-node-a-1'] } })).gpuIndex).toBe(2);
    expect(expectChoice(choose(fleet(), { req: { gpuUuidIn: ['GPU-node-a-1', 'GPU-node-a-2'], gpuUuidNotIn: ['GPU-node-a-1'] } })).gpuIndex).toBe(2);
  });

  test('the refusal names the annotation, and says when no listed GPU is in the metrics', () => {
    const notIn = expectRefusal(choose(fleet(), { req: { gpuUuidNotIn: ['GPU-node-a-0', 'GPU-node-a-1', 'GPU-node-a-2'] } }));
    expect(notIn.excluded).toEqual({ 'gpu-uuid': 3 });
    expect(notIn.reason).toBe("no GPU fits 8Gi: 3 considered, 3 ruled out by the pod's mps-injector.io/gpu-uuid-not-in annotation");
    const full = expectRefusal(choose([gpu({ index: 0, memory: memory(H100_MIB, 79 * GIB) }), gpu({ index: 1 })], { req: { gpuUuidIn: ['GPU-node-a-0'] } }));
    expect(full.reason).toBe("no GPU fits 8Gi: 2 considered, 1 not listed in the pod's mps-injector.io/gpu-uuid-in annotation, 1 short of memory (best: node-a GPU 0, 0Mi free)");
    const unknown = expectRefusal(choose(fleet(), { req: { gpuUuidIn: ['GPU-elsewhere-9'], gpuUuidNotIn: ['GPU-node-a-0'] } }));
    expect(unknown.reason).toBe(
      "no GPU fits 8Gi: 3 considered, 3 not allowed by the pod's mps-injector.io/gpu-uuid-in and gpu-uuid-not-in annotations (no GPU in the metrics has a UUID it lists: GPU-elsewhere-9)",
    );
  });
});

describe('chooseSlot: client cap', () => {
  test('counts ledger reservations', () => {
    const ledger = ledgerWith(['GPU-node-a-0', 1, 1], ['GPU-node-a-0', 1, 1]);
    expect(choose([gpu()], { ledger, config: { maxClientsPerGpu: 3 } }).ok).toBe(true);
    expect(choose([gpu()], { ledger, config: { maxClientsPerGpu: 2 } }).ok).toBe(false);
  });

  test('counts pods the exporter maps to the GPU that hold no reservation, once per pod', () => {
    const ledger = ledgerWith(['GPU-node-a-0', 1, 1]);
    const mapped = gpu({ pods: [pod('trainer', 'a'), pod('trainer', 'b')] });
    const refusal = expectRefusal(choose([mapped], { ledger, config: { maxClientsPerGpu: 2 } }));
    expect(refusal.excluded).toEqual({ 'client-cap': 1 });
    const choice = expectChoice(choose([mapped], { ledger, config: { maxClientsPerGpu: 3 } }));
    expect(choice.reason).toContain('after 1 reservation and 1 unreserved pod');
  });

  test('a mapped pod that holds a reservation on the GPU is not counted twice', () => {
    const ledger = ledgerWith(['GPU-node-a-0', 1, 1]);
    expect(choose([gpu({ pods: [pod('held-0')] })], { ledger, config: { maxClientsPerGpu: 2 } }).ok).toBe(true);
  });

  test('countUnreservedPods matches namespace/name exactly', () => {
    const reservations = ledgerWith(['GPU-x-0', 1, 1]).onGpu('GPU-x-0', NOW);
    expect(countUnreservedPods([pod('held-0')], reservations)).toBe(0);
    expect(countUnreservedPods([pod('held-0', 'main', 'other')], reservations)).toBe(1);
    expect(countUnreservedPods([pod('held-')], reservations)).toBe(1);
    expect(countUnreservedPods([pod('a'), pod('a', 'side'), pod('b')], [])).toBe(2);
  });
});

describe('chooseSlot: gpu-model filter and pinned node', () => {
  const mixed = () => [gpu({ node: 'node-a', model: 'NVIDIA A100-SXM4-40GB', memory: memory(40 * GIB, 0) }), gpu({ node: 'node-b' })];

  test('matches a case-insensitive substring of the exporter model', () => {
    const choice = expectChoice(choose(mixed(), { req: { gpuModel: 'h100' } }));
    expect(choice.node).toBe('node-b');
    expect(expectChoice(choose(mixed(), { req: { gpuModel: 'a100' } })).node).toBe('node-a');
  });

  test('matches the node label when the exporter model does not', () => {
    const gpus = [gpu({ node: 'node-a', model: 'NVIDIA Graphics Device' })];
    const nodes = [nodeState('node-a', { labels: { 'nvidia.com/gpu.product': 'NVIDIA-H200' } })];
    expect(expectChoice(choose(gpus, { req: { gpuModel: 'h200' }, nodes })).node).toBe('node-a');
    expect(choose(gpus, { req: { gpuModel: 'h200' }, nodes, config: { gpuModelNodeLabel: 'example.com/gpu' } }).ok).toBe(false);
  });

  test('checks the node label of each node on its own', () => {
    const unnamed = 'NVIDIA Graphics Device';
    const gpus = [gpu({ node: 'node-b', index: 0, model: unnamed }), gpu({ node: 'node-a', index: 0, model: unnamed }), gpu({ node: 'node-b', index: 1, model: unnamed })];
    const nodes = [nodeState('node-a', { labels: { 'nvidia.com/gpu.product': 'NVIDIA-H200' } }), nodeState('node-b', { labels: { 'nvidia.com/gpu.product': 'NVIDIA-L40S' } })];
    const ledger = ledgerWith(['GPU-node-b-1', GIB, 10]);
    expect(expectChoice(choose(gpus, { ledger, req: { gpuModel: 'H200' }, nodes })).node).toBe('node-a');
    expect(expectChoice(choose(gpus, { ledger, req: { gpuModel: 'L40S' }, nodes }))).toMatchObject({ node: 'node-b', gpuIndex: 1 });
    expect(expectRefusal(choose(gpus, { req: { gpuModel: 'H200', pinnedNode: 'node-b' }, nodes })).excluded).toEqual({ 'node-mismatch': 1, 'model-mismatch': 2 });
  });

  test('takes the model text literally, not as a pattern', () => {
    expect(choose(mixed(), { req: { gpuModel: 'H.00' } }).ok).toBe(false);
  });

  test('a model nobody has is refused with the models seen', () => {
    const refusal = expectRefusal(choose(mixed(), { req: { gpuModel: 'B200' } }));
    expect(refusal.excluded).toEqual({ 'model-mismatch': 2 });
    expect(refusal.reason).toBe(
      'no GPU of model "B200" fits 8Gi: 2 considered, 2 of other models (seen: NVIDIA A100-SXM4-40GB, NVIDIA H100 80GB HBM3; the nvidia.com/gpu.product node label was checked too)',
    );
  });

  test('a pinned node limits candidates to that node', () => {
    const gpus = [gpu({ node: 'node-a' }), gpu({ node: 'node-b' })];
    const ledger = ledgerWith(['GPU-node-a-0', 10 * GIB, 10]);
    expect(expectChoice(choose(gpus, { ledger })).node).toBe('node-a');
    expect(expectChoice(choose(gpus, { ledger, req: { pinnedNode: 'node-b' } })).node).toBe('node-b');
  });

  test('a refusal on a pinned node names the node', () => {
    const gpus = [gpu({ node: 'node-a' }), gpu({ node: 'node-b', memory: memory(H100_MIB, 75 * GIB) })];
    const refusal = expectRefusal(choose(gpus, { req: { pinnedNode: 'node-b' } }));
    expect(refusal.reason).toBe('no GPU fits 8Gi on node node-b: 2 considered, 1 on other nodes, 1 short of memory (best: node-b GPU 0, 4Gi free)');
  });

  test('a pinned node without GPUs in the metrics is called out', () => {
    const refusal = expectRefusal(choose([gpu({ node: 'node-a' })], { req: { pinnedNode: 'node-z' } }));
    expect(refusal.reason).toContain('node node-z has no GPU in the metrics');
  });
});

describe('chooseSlot: refusal reasons', () => {
  test('counts every reason and names the best candidate short of memory', () => {
    const gpus: GpuSample[] = [];
    // 9 short of memory: free after margin from 1Gi up to 6.1Gi (node-a GPU 3 is the best).
    for (let i = 0; i < 9; i++) {
      const roomMiB = i === 3 ? Math.round(6.1 * GIB) : GIB + i * 100;
      gpus.push(gpu({ node: 'node-a', index: i, memory: memory(H100_MIB, H100_MIB - 1024 - roomMiB) }));
    }
    for (let i = 0; i < 4; i++) gpus.push(gpu({ node: 'node-b', index: i, sampledAtMs: NOW - 300_000 }));
    for (let i = 0; i < 3; i++) gpus.push(gpu({ node: 'node-c', index: i, mig: true }));

    const refusal = expectRefusal(choose(gpus));
    expect(refusal).toEqual({
      ok: false,
      code: 'no-fit',
      considered: 16,
      excluded: { memory: 9, stale: 4, mig: 3 },
      reason: 'no GPU fits 8Gi: 16 considered, 9 short of memory (best: node-a GPU 3, 6.1Gi free), 4 stale (samples older than 90s), 3 MIG',
    });
  });

  test('no fresh sample at all is a no-metrics refusal that says how old the newest one is', () => {
    const gpus = [gpu({ index: 0, sampledAtMs: NOW - 400_000 }), gpu({ index: 1, sampledAtMs: NOW - 240_500 })];
    const refusal = expectRefusal(chooseSlot({ ...inventoryOf(gpus), source: 'exporters:0/1', problems: ['node-a: connect ECONNREFUSED'] }, ledgerOf(), request(), placement(), NOW));
    expect(refusal.code).toBe('no-metrics');
    expect(refusal.excluded).toEqual({ stale: 2 });
    expect(refusal.reason).toBe(
      'no fresh GPU metrics: the newest of 2 GPU samples is 240s old, above placement.maxMetricsAgeSeconds (90s); last problem: node-a: connect ECONNREFUSED; check that dcgm-exporter is running and that the webhook can reach it (source: exporters:0/1)',
    );
  });

  test('an empty inventory is a no-metrics refusal naming the source', () => {
    const refusal = expectRefusal(chooseSlot({ ...inventoryOf([]), source: 'file:/tmp/empty.prom' }, ledgerOf(), request(), placement(), NOW));
    expect(refusal).toMatchObject({ code: 'no-metrics', considered: 0, excluded: {} });
    expect(refusal.reason).toContain('file:/tmp/empty.prom lists no GPU');
  });

  test('one fresh GPU elsewhere makes it a no-fit refusal, not no-metrics', () => {
    const gpus = [gpu({ node: 'node-a', sampledAtMs: NOW - 400_000 }), gpu({ node: 'node-b' })];
    const refusal = expectRefusal(choose(gpus, { req: { pinnedNode: 'node-a' } }));
    expect(refusal.code).toBe('no-fit');
    expect(refusal.excluded).toEqual({ stale: 1, 'node-mismatch': 1 });
  });

  test('a node without FB_* memory series (like the sampled 8x H100 node) is refused with the counter hint', () => {
    const gpus = Array.from({ length: 8 }, (_, index) => gpu({ node: 'gpu-node-1', index, memory: null }));
    const refusal = expectRefusal(choose(gpus));
    expect(refusal.excluded).toEqual({ 'no-memory-metrics': 8 });
    expect(refusal.reason).toBe(
      "no GPU fits 8Gi: 8 considered, 8 without memory metrics (enable DCGM_FI_DEV_FB_FREE, DCGM_FI_DEV_FB_USED and DCGM_FI_DEV_FB_RESERVED in dcgm-exporter's counters CSV)",
    );
  });
});

describe('chooseSlot: the choice', () => {
  test('carries the slot, the grant, the age of the metrics and a reason', () => {
    const choice = expectChoice(
      choose([gpu({ node: 'node-a', index: 3, sampledAtMs: NOW - 41_900 })], { ledger: ledgerWith(['GPU-node-a-3', 10 * GIB, 25], ['GPU-node-a-3', 10 * GIB, 25]), req: { threadPercent: 25, priority: 'high' } }),
    );
    expect(choice).toEqual({
      ok: true,
      node: 'node-a',
      gpuUuid: 'GPU-node-a-3',
      gpuIndex: 3,
      gpuModel: 'NVIDIA H100 80GB HBM3',
      threadPercent: 25,
      memoryLimitMiB: 8 * GIB,
      priority: 'high',
      metricsAgeSeconds: 41,
      considered: 1,
      reason: 'binpack: node-a GPU 3 (H100 80GB HBM3) has 59Gi free after 2 reservations; granted 25% as asked and 8Gi',
    });
  });

  test('decides the same from a ReservationLedger as from a plain view of it, through reservations, confirmations and expiries', () => {
    let state = 7;
    const random = () => (state = (state * 1103515245 + 12345) % 2147483648) / 2147483648;
    const gpus = Array.from({ length: 12 }, (_, i) => gpu({ node: `node-${i % 3}`, index: i, memory: memory(H100_MIB, Math.floor(random() * 20 * GIB)), sampledAtMs: NOW + (i % 4) * 150_000 }));
    const inventory = inventoryOf(gpus);
    const ledger = ledgerOf();
    const view: LedgerView = { onGpu: (uuid, now) => ledger.onGpu(uuid, now) };
    const config = placement({ maxClientsPerGpu: 6, maxMetricsAgeSeconds: 10_000 });
    let placed = 0;
    for (let step = 0; step < 300; step++) {
      const nowMs = NOW + step * 2_000;
      const req = request({ podKey: `ml/s-${step}`, memoryMiB: (1 + Math.floor(random() * 12)) * GIB, threadPercent: random() < 0.5 ? null : 5 + Math.floor(random() * 60), priority: random() < 0.3 ? 'high' : 'low' });
      const fromLedger = chooseSlot(inventory, ledger, req, config, nowMs);
      expect(chooseSlot(inventory, view, req, config, nowMs)).toEqual(fromLedger);
      if (fromLedger.ok) {
        placed++;
        const r = ledger.reserve({ podKey: req.podKey, node: fromLedger.node, gpuUuid: fromLedger.gpuUuid, memoryMiB: fromLedger.memoryLimitMiB, threadPercent: fromLedger.threadPercent, priority: req.priority }, nowMs);
        if (random() < 0.5) ledger.confirm(r.id, nowMs + 500);
      }
      if (random() < 0.1) ledger.expire(nowMs);
      if (random() < 0.1) ledger.list(nowMs).slice(0, 2).forEach((r) => ledger.release(r.id));
    }
    expect(placed).toBeGreaterThan(50);
  });

  test('works the same with any LedgerView, not only ReservationLedger', () => {
    const ledger = ledgerWith(['GPU-node-a-1', 20 * GIB, 20]);
    const plainView: LedgerView = { onGpu: (uuid: string, now: number): readonly Reservation[] => ledger.onGpu(uuid, now) };
    const gpus = [gpu({ index: 0 }), gpu({ index: 1 })];
    expect(choose(gpus, { ledger: plainView })).toEqual(choose(gpus, { ledger }));
    expect(expectChoice(choose(gpus, { ledger: plainView })).gpuIndex).toBe(1);
  });
});

describe('chooseSlot: a replica preference', () => {
  // GPU 0 is half full, GPU 1 and GPU 2 idle; the preference ranks GPU 2 (and then GPU 1) above GPU 0.
  const gpus = () => [gpu({ index: 0, memory: memory(H100_MIB, 40 * GIB) }), gpu({ index: 1 }), gpu({ index: 2 })];
  const byUuid = (score: (uuid: string) => number): GpuPreference => ({ scoresFor: (fleet) => fleet.map((g) => score(g.uuid)) });
  const ownsOneAndTwo = byUuid((uuid) => (uuid.endsWith('-2') ? 2e-8 : uuid.endsWith('-1') ? 1e-8 : -PREFERENCE_STEP));

  test('without one, binpack fills the GPU in use', () => {
    expect(expectChoice(choose(gpus())).gpuIndex).toBe(0);
  });

  test('a GPU of a lower tier loses to every GPU of a higher tier, however full; equal scores follow the preference', () => {
    const decision = chooseSlot(inventoryOf(gpus()), ledgerOf(), request(), placement(), NOW, ownsOneAndTwo);
    expect(expectChoice(decision).gpuIndex).toBe(2);
  });

  test('inside a tier binpack still decides: the fuller GPU wins over a slightly preferred one', () => {
    const ledger = ledgerWith(['GPU-node-a-1', 8 * GIB, 20]);
    const decision = chooseSlot(inventoryOf(gpus()), ledger, request(), placement(), NOW, ownsOneAndTwo);
    expect(expectChoice(decision).gpuIndex).toBe(1);
  });

  test('when nothing of the higher tier fits, a lower tier is used rather than refusing', () => {
    const full = [gpu({ index: 0 }), gpu({ index: 1, memory: memory(H100_MIB, 78 * GIB) }), gpu({ index: 2, memory: memory(H100_MIB, 78 * GIB) })];
    const decision = chooseSlot(inventoryOf(full), ledgerOf(), request(), placement(), NOW, ownsOneAndTwo);
    expect(expectChoice(decision).gpuIndex).toBe(0);
  });

  test('for a high-priority pod a cool GPU two tiers down still beats a hot GPU of the top tier', () => {
    const mixed = [gpu({ index: 0 }), gpu({ index: 1, utilPercent: 95 })];
    const twoStepsDown = byUuid((uuid) => (uuid.endsWith('-0') ? -2 * PREFERENCE_STEP : 0));
    const decision = chooseSlot(inventoryOf(mixed), ledgerOf(), request({ priority: 'high' }), placement(), NOW, twoStepsDown);
    expect(expectChoice(decision).gpuIndex).toBe(0);
  });
});
