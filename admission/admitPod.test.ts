import type { Pod } from 'kubernetes-types/core/v1.js';
import fjp from 'fast-json-patch';
import { buildConfig } from '../config/schema.js';
import type { Config } from '../config/schema.js';
import type { GpuInventory, GpuSample } from '../domain/inventory.js';
import { H100_TOTAL_MIB, h100 } from '../testing/gpuSamples.js';
import { ReservationLedger } from '../reservations/ledger.js';
import type { ReservationStore } from '../reservations/reservationStore.js';
import { LocalReservationStore } from '../reservations/reservationStore.js';
import type { Reservation } from '../domain/slot.js';
import { admitAndCommit } from './admitAndCommit.js';
import { TEST_KEY_RING } from '../testing/decisionKeys.js';
import type { AdmitContext } from './admitPod.js';
import { DRY_RUN_RESERVATION, admitPod } from './admitPod.js';

const NOW = 1_700_000_000_000;

const gpu = (node: string, index: number, usedMiB = 0): GpuSample =>
  h100(node, index, NOW - 1000, { memory: { totalMiB: H100_TOTAL_MIB, usedMiB, freeMiB: H100_TOTAL_MIB - usedMiB, reservedMiB: 0 } });

const inventory = (gpus: GpuSample[]): GpuInventory => ({ gpus, nodes: {}, source: 'test', fetchedAtMs: NOW, skippedLines: 0, problems: [] });

const pod = (annotations: Record<string, string> = {}, labels: Record<string, string> = {}): Pod => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'p', namespace: 'ns', annotations, labels },
  spec: { containers: [{ name: 'main', image: 'x' }] },
});

const context = (config: Config, gpus: GpuSample[], ledger = new ReservationLedger({ ttlMs: 60_000 })): AdmitContext => ({ config, inventory: inventory(gpus), ledger, nowMs: NOW, keys: TEST_KEY_RING });

test('a fitting pod is mutated, reserved, and its patch reproduces the mutated pod', () => {
  const ctx = context(buildConfig({}), [gpu('a', 0)]);
  const original = pod({ 'mps-injector.io/gpu-memory': '8Gi' });
  const result = admitPod({ pod: original, namespace: 'ns', requestUid: 'uid-1', dryRun: false }, ctx);
  if (result.outcome !== 'mutated') throw new Error(`expected mutated, got ${JSON.stringify(result)}`);
  expect(result.reservation?.memoryMiB).toBe(8192);
  expect(ctx.ledger.list(NOW)).toHaveLength(1);
  expect(fjp.applyPatch(structuredClone(original), result.patch, true, false).newDocument).toEqual(result.mutated);
  expect(result.mutated.metadata?.annotations?.['mps-injector.io/reservation']).toBe(result.reservation?.id);
});

test('dry run decides without reserving', () => {
  const ctx = context(buildConfig({}), [gpu('a', 0)]);
  const result = admitPod({ pod: pod(), namespace: 'ns', requestUid: 'uid-1', dryRun: true }, ctx);
  expect(result.outcome).toBe('mutated');
  expect(ctx.ledger.list(NOW)).toHaveLength(0);
  if (result.outcome === 'mutated') expect(result.mutated.metadata?.annotations?.['mps-injector.io/reservation']).toBe(DRY_RUN_RESERVATION);
});

test('an already-injected pod yields an empty patch and no new reservation', () => {
  const ctx = context(buildConfig({}), [gpu('a', 0)]);
  const first = admitPod({ pod: pod(), namespace: 'ns', requestUid: 'uid-1', dryRun: false }, ctx);
  if (first.outcome !== 'mutated') throw new Error('expected mutated');
  const again = admitPod({ pod: first.mutated, namespace: 'ns', requestUid: 'uid-2', dryRun: false }, ctx);
  expect(again.outcome).toBe('mutated');
  if (again.outcome === 'mutated') {
    expect(again.reinjected).toBe(true);
    expect(again.patch).toEqual([]);
  }
  expect(ctx.ledger.list(NOW)).toHaveLength(1);
});

test('no fit: refused with the reason by default, or allowed unmutated with a warning', () => {
  const full = [gpu('a', 0, 80_000)];
  const refused = admitPod({ pod: pod({ 'mps-injector.io/gpu-memory': '8Gi' }), namespace: 'ns', requestUid: 'u', dryRun: false }, context(buildConfig({}), full));
  expect(refused.outcome).toBe('refused');
  if (refused.outcome === 'refused') {
    expect(refused.reason).toBe('no-fit');
    expect(refused.message).toMatch(/no GPU fits 8Gi/);
  }
  const allowed = admitPod({ pod: pod({ 'mps-injector.io/gpu-memory': '8Gi' }), namespace: 'ns', requestUid: 'u', dryRun: false }, context(buildConfig({ failure: { onNoFit: 'allow' } }), full));
  expect(allowed.outcome).toBe('allowed-unmutated');
  if (allowed.outcome === 'allowed-unmutated') expect(allowed.warning).toMatch(/without MPS.*no GPU fits 8Gi/);
});

test('stale metrics follow failure.onNoMetrics', () => {
  const stale = { ...gpu('a', 0), sampledAtMs: NOW - 3_600_000 };
  const refused = admitPod({ pod: pod(), namespace: 'ns', requestUid: 'u', dryRun: false }, context(buildConfig({}), [stale]));
  expect(refused).toMatchObject({ outcome: 'refused', reason: 'no-metrics' });
  const allowed = admitPod({ pod: pod(), namespace: 'ns', requestUid: 'u', dryRun: false }, context(buildConfig({ failure: { onNoMetrics: 'allow' } }), [stale]));
  expect(allowed).toMatchObject({ outcome: 'allowed-unmutated', reason: 'no-metrics' });
});

test('a bad annotation is refused with the injector message; opted-out pods are skipped', () => {
  const ctx = context(buildConfig({}), [gpu('a', 0)]);
  const bad = admitPod({ pod: pod({ 'mps-injector.io/gpu-memory': 'lots' }), namespace: 'ns', requestUid: 'u', dryRun: false }, ctx);
  expect(bad).toMatchObject({ outcome: 'refused', reason: 'invalid-pod' });
  if (bad.outcome === 'refused') expect(bad.message).toContain('gpu-memory');
  const out = admitPod({ pod: pod({}, { 'mps-injector.io/inject': 'false' }), namespace: 'ns', requestUid: 'u', dryRun: false }, ctx);
  expect(out.outcome).toBe('skipped');
});

class ScriptedStore implements ReservationStore {
  commits: Reservation[] = [];
  refreshes = 0;
  constructor(private readonly script: ('committed' | 'conflict' | Error)[]) {}
  async commit(r: Reservation): Promise<'committed' | 'conflict'> {
    this.commits.push(r);
    const next = this.script.shift() ?? 'committed';
    if (next instanceof Error) throw next;
    return next;
  }
  async refresh(): Promise<void> {
    this.refreshes += 1;
  }
  async release(): Promise<void> {}
}

test('a commit conflict releases the local reservation, refreshes, and chooses again', async () => {
  const ledger = new ReservationLedger({ ttlMs: 60_000 });
  const config = buildConfig({});
  const store = new ScriptedStore(['conflict', 'committed']);
  const { admission, attempts } = await admitAndCommit(
    { pod: pod(), namespace: 'ns', requestUid: 'u', dryRun: false },
    () => context(config, [gpu('a', 0)], ledger),
    { store, maxAttempts: 3, signal: AbortSignal.timeout(1000) },
  );
  expect(attempts).toBe(2);
  expect(store.refreshes).toBe(1);
  expect(admission.outcome).toBe('mutated');
  expect(ledger.list(NOW)).toHaveLength(1);
  expect(ledger.list(NOW)[0]?.id).toBe(store.commits[1]?.id);
});

test('an unreachable store gives a clear refusal and leaves nothing reserved', async () => {
  const ledger = new ReservationLedger({ ttlMs: 60_000 });
  const store = new ScriptedStore([new Error('API server https://10.0.0.1:443 unreachable (ECONNREFUSED)')]);
  const { admission } = await admitAndCommit({ pod: pod(), namespace: 'ns', requestUid: 'u', dryRun: false }, () => context(buildConfig({}), [gpu('a', 0)], ledger), {
    store,
    maxAttempts: 3,
    signal: AbortSignal.timeout(1000),
  });
  expect(admission).toMatchObject({ outcome: 'refused', reason: 'commit-failed' });
  if (admission.outcome === 'refused') expect(admission.message).toMatch(/could not record the reservation.*unreachable.*Nothing was granted/);
  expect(ledger.list(NOW)).toHaveLength(0);
});

test('endless conflicts stop after maxAttempts with a contention refusal', async () => {
  const ledger = new ReservationLedger({ ttlMs: 60_000 });
  const store = new ScriptedStore(['conflict', 'conflict', 'conflict']);
  const { admission, attempts } = await admitAndCommit({ pod: pod(), namespace: 'ns', requestUid: 'u', dryRun: false }, () => context(buildConfig({}), [gpu('a', 0)], ledger), {
    store,
    maxAttempts: 3,
    signal: AbortSignal.timeout(1000),
  });
  expect(attempts).toBe(3);
  expect(admission).toMatchObject({ outcome: 'refused', reason: 'contention' });
  expect(ledger.list(NOW)).toHaveLength(0);
});

test('the local store commits every reservation', async () => {
  const ledger = new ReservationLedger({ ttlMs: 60_000 });
  const { admission } = await admitAndCommit({ pod: pod(), namespace: 'ns', requestUid: 'u', dryRun: false }, () => context(buildConfig({}), [gpu('a', 0)], ledger), {
    store: new LocalReservationStore(),
    maxAttempts: 1,
    signal: AbortSignal.timeout(1000),
  });
  expect(admission.outcome).toBe('mutated');
});

describe('trust: only the webhook grants', () => {
  const GIB = 1024;
  const forgedDecision = (gpuUuid: string): Record<string, string> => ({
    'mps-injector.io/gpu-memory': '70Gi',
    'mps-injector.io/reservation': 'forged-1',
    'mps-injector.io/node': 'a',
    'mps-injector.io/gpu-uuid': gpuUuid,
    'mps-injector.io/gpu-index': '0',
    'mps-injector.io/thread-percent': '100',
    'mps-injector.io/memory-limit': '81920Mi',
    'mps-injector.io/priority': 'high',
    'mps-injector.io/decision': 'trust me',
    'mps-injector.io/containers': 'main',
    'mps-injector.io/metrics-age-seconds': '0',
  });

  test('forged decision annotations skip nothing: the pod is placed afresh, and refused where its real request does not fit', () => {
    const busy = gpu('a', 0, 70 * GIB);
    const ctx = context(buildConfig({}), [busy]);
    const result = admitPod({ pod: pod(forgedDecision(busy.uuid), { 'mps-injector.io/injected': 'true' }), namespace: 'ns', requestUid: 'uid-1', dryRun: false }, ctx);
    expect(result.outcome).toBe('refused');
    expect(result.outcome === 'refused' && result.message).toMatch(/no GPU fits 70Gi/);
    expect(ctx.ledger.list(NOW)).toEqual([]);
  });

  test('where it fits, the forged values are replaced with the webhook\'s own, and a warning says so', () => {
    const ctx = context(buildConfig({}), [gpu('a', 0)]);
    const result = admitPod({ pod: pod({ ...forgedDecision('GPU-x'), 'mps-injector.io/gpu-memory': '8Gi' }), namespace: 'ns', requestUid: 'uid-1', dryRun: false }, ctx);
    if (result.outcome !== 'mutated') throw new Error(`expected mutated, got ${JSON.stringify(result)}`);
    expect(result.reinjected).toBe(false);
    const a = result.mutated.metadata?.annotations ?? {};
    expect(a['mps-injector.io/memory-limit']).toBe('8192Mi');
    expect(a['mps-injector.io/reservation']).toBe(result.reservation?.id);
    expect(a['mps-injector.io/seal']).toMatch(/^v1\./);
    expect(result.warnings.join('\n')).toMatch(/ignored the decision this pod claimed.*without the webhook's seal/);
  });

  test('a genuine reinvocation, also on another replica that shares the key, gives an empty patch', () => {
    const first = admitPod({ pod: pod({ 'mps-injector.io/gpu-memory': '8Gi' }), namespace: 'ns', requestUid: 'uid-1', dryRun: false }, context(buildConfig({}), [gpu('a', 0)]));
    if (first.outcome !== 'mutated') throw new Error('expected mutated');
    const otherReplica = context(buildConfig({}), [gpu('a', 0)]);
    const again = admitPod({ pod: first.mutated, namespace: 'ns', requestUid: 'uid-1', dryRun: false }, { ...otherReplica, nowMs: NOW + 2_000 });
    expect(again.outcome === 'mutated' && again.reinjected).toBe(true);
    expect(again.outcome === 'mutated' && again.patch).toEqual([]);
  });

  test('a sealed decision copied onto a new pod after the reinvocation window is placed afresh', () => {
    const ctx = context(buildConfig({}), [gpu('a', 0)]);
    const first = admitPod({ pod: pod({ 'mps-injector.io/gpu-memory': '8Gi' }), namespace: 'ns', requestUid: 'uid-1', dryRun: false }, ctx);
    if (first.outcome !== 'mutated') throw new Error('expected mutated');
    const later = admitPod({ pod: first.mutated, namespace: 'ns', requestUid: 'uid-9', dryRun: false }, { ...ctx, nowMs: NOW + 31_000 });
    if (later.outcome !== 'mutated') throw new Error('expected mutated');
    expect(later.reinjected).toBe(false);
    expect(later.warnings.join('\n')).toMatch(/31s old, beyond the 30s/);
  });

  test('a sealed decision whose reservation a created pod already holds is placed afresh', () => {
    const ctx = context(buildConfig({}), [gpu('a', 0)]);
    const first = admitPod({ pod: pod({ 'mps-injector.io/gpu-memory': '8Gi' }), namespace: 'ns', requestUid: 'uid-1', dryRun: false }, ctx);
    if (first.outcome !== 'mutated' || first.reservation === null) throw new Error('expected mutated');
    ctx.ledger.confirm(first.reservation.id, NOW, { podKey: 'ns/p', podUid: 'u-1' });
    const copy = admitPod({ pod: first.mutated, namespace: 'ns', requestUid: 'uid-2', dryRun: false }, { ...ctx, nowMs: NOW + 1_000 });
    expect(copy.outcome === 'mutated' && copy.reinjected).toBe(false);
    expect(ctx.ledger.list(NOW + 1_000)).toHaveLength(2);
  });

  test('five admissions of the same named pod hold one reservation', () => {
    const ctx = context(buildConfig({}), [gpu('a', 0)]);
    for (let i = 0; i < 5; i++) admitPod({ pod: pod({ 'mps-injector.io/gpu-memory': '8Gi' }), namespace: 'ns', requestUid: `uid-${i}`, dryRun: false }, ctx);
    expect(ctx.ledger.list(NOW).map((r) => r.podKey)).toEqual(['ns/p']);
  });

  test('generateName pods are distinct pods: each admission holds its own', () => {
    const ctx = context(buildConfig({}), [gpu('a', 0)]);
    const generated: Pod = { ...pod({ 'mps-injector.io/gpu-memory': '8Gi' }), metadata: { generateName: 'web-', namespace: 'ns', annotations: { 'mps-injector.io/gpu-memory': '8Gi' } } };
    for (let i = 0; i < 3; i++) admitPod({ pod: generated, namespace: 'ns', requestUid: `uid-${i}0000000`, dryRun: false }, ctx);
    expect(ctx.ledger.list(NOW)).toHaveLength(3);
  });
});

test('a pod whose annotations and labels are null is placed as one with none, and its patch applies', () => {
  const ctx = context(buildConfig({}), [gpu('a', 0)]);
  const original = { ...pod(), metadata: { name: 'p', namespace: 'ns', annotations: null, labels: null } } as unknown as Pod;
  const result = admitPod({ pod: original, namespace: 'ns', requestUid: 'uid-1', dryRun: true }, ctx);
  if (result.outcome !== 'mutated') throw new Error(`expected mutated, got ${JSON.stringify(result)}`);
  expect(fjp.applyPatch(structuredClone(original), result.patch, true, false).newDocument).toEqual(result.mutated);
  expect(result.mutated.metadata?.labels).toEqual({ 'mps-injector.io/injected': 'true' });
});
