/**
 * Pods at and past the limits the API server and MPS set: too many GPU containers, annotations
 * near the API server's total, oversized or malformed annotation values, fields of the wrong
 * type, and pods of 20,000 containers. Every one is answered with a reason of bounded size.
 */
import { TEST_KEY_RING } from '../testing/decisionKeys.js';
import { performance } from 'node:perf_hooks';
import fjp from 'fast-json-patch';
import type { Pod } from 'kubernetes-types/core/v1.js';
import { buildConfig } from '../config/schema.js';
import type { Config } from '../config/schema.js';
import type { GpuInventory, GpuSample } from '../domain/inventory.js';
import { H100_TOTAL_MIB, h100 } from '../testing/gpuSamples.js';
import { annotationBytes, TOTAL_ANNOTATION_BYTES } from '../injector/apiLimits.js';
import { ReservationLedger } from '../reservations/ledger.js';
import type { AdmitContext, PodAdmission } from './admitPod.js';
import { admitPod, screenPod } from './admitPod.js';

const NOW = 1_700_000_000_000;
const MAX_MESSAGE = 1000;

const gpus: GpuSample[] = [0, 1].map((i) => h100('node-a', i, NOW - 1000, { memory: { totalMiB: H100_TOTAL_MIB, usedMiB: 0, freeMiB: H100_TOTAL_MIB, reservedMiB: 0 } }));
const inventory: GpuInventory = { gpus, nodes: {}, source: 'test', fetchedAtMs: NOW, skippedLines: 0, problems: [] };
const context = (config: Config = buildConfig({})): AdmitContext => ({ config, inventory, ledger: new ReservationLedger({ ttlMs: 60_000 }), nowMs: NOW, keys: TEST_KEY_RING });

const podWith = (annotations: Record<string, string>, containers = 1): Pod => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'p', namespace: 'ns', annotations },
  spec: { containers: Array.from({ length: containers }, (_, i) => ({ name: `c-${i}`, image: 'x' })) },
});

const admit = (pod: Pod, ctx = context()): PodAdmission => admitPod({ pod, namespace: 'ns', requestUid: 'uid-1', dryRun: false }, ctx);

function refusal(result: PodAdmission): string {
  if (result.outcome !== 'refused') throw new Error(`expected a refusal, got ${result.outcome}: ${JSON.stringify(result).slice(0, 300)}`);
  expect(result.reason).toBe('invalid-pod');
  expect(result.message.length).toBeLessThan(MAX_MESSAGE);
  return result.message;
}

describe('GPU containers per pod', () => {
  test('a pod that selects more containers than injection.maxGpuContainers is refused with what to do', () => {
    const ctx = context();
    const message = refusal(admit(podWith({}, 49), ctx));
    expect(message).toContain('selects 49 containers for the GPU, more than the 48 allowed (injection.maxGpuContainers)');
    expect(message).toContain('mps-injector.io/containers');
    expect(ctx.ledger.list(NOW)).toHaveLength(0);
  });

  test('the cap is configurable, and a pod within it is placed', () => {
    expect(admit(podWith({}, 48)).outcome).toBe('mutated');
    const config = buildConfig({ injection: { maxGpuContainers: 2 } });
    expect(refusal(admit(podWith({}, 3), context(config)))).toContain('more than the 2 allowed');
    expect(admit(podWith({ 'mps-injector.io/containers': 'c-0,c-2' }, 3), context(config)).outcome).toBe('mutated');
  });

  test('the cap holds for a pod that carries a recorded decision too', () => {
    const placed = admit(podWith({ 'mps-injector.io/containers': 'c-0' }, 60));
    if (placed.outcome !== 'mutated') throw new Error(placed.outcome);
    const forged = structuredClone(placed.mutated);
    forged.metadata!.annotations!['mps-injector.io/containers'] = forged.spec!.containers.map((c) => c.name).join(',');
    expect(refusal(admit(forged))).toContain('selects 60 containers');
  });
});

describe('annotations near the API server limit', () => {
  const padded = (room: number): Pod => {
    const base = { 'mps-injector.io/gpu-memory': '1Gi' };
    const key = 'example.com/payload';
    const used = annotationBytes(base) + key.length;
    return podWith({ ...base, [key]: 'x'.repeat(TOTAL_ANNOTATION_BYTES - used - room) });
  };

  test('a pod whose annotations would pass the limit once injected is refused, and its reservation released', () => {
    const ctx = context();
    const message = refusal(admit(padded(200), ctx));
    expect(message).toMatch(/annotations would take \d+ bytes once the webhook records its decision \(262144 - 200 = 261944 bytes now|annotations would take \d+ bytes/);
    expect(message).toContain('262144');
    expect(message).toContain('"example.com/payload"');
    expect(ctx.ledger.list(NOW)).toHaveLength(0);
  });

  test('a pod with room for the decision is placed, and its patched annotations fit', () => {
    const pod = padded(3000);
    const result = admit(pod);
    if (result.outcome !== 'mutated') throw new Error(JSON.stringify(result).slice(0, 300));
    const patched = fjp.applyPatch(structuredClone(pod), result.patch, true, false).newDocument;
    expect(annotationBytes(patched.metadata?.annotations)).toBeLessThanOrEqual(TOTAL_ANNOTATION_BYTES);
  });

  test('a pod whose own annotations are already past the limit is refused before any GPU is chosen', () => {
    // The API server checks the size only after mutating admission, so such a pod reaches the webhook.
    const ctx = context();
    let reserved = 0;
    const reserve = ctx.ledger.reserve.bind(ctx.ledger);
    ctx.ledger.reserve = (...args) => {
      reserved += 1;
      return reserve(...args);
    };
    const pod = podWith({ 'mps-injector.io/gpu-memory': '1Gi', 'example.com/blob': 'x'.repeat(1024 * 1024) });
    const message = refusal(admit(pod, ctx));
    expect(message).toContain(`the pod's annotations take ${1024 * 1024 + 'example.com/blob'.length + 'mps-injector.io/gpu-memory'.length + 3} bytes`);
    expect(message).toContain('262144');
    expect(message).toContain('"example.com/blob"');
    expect(reserved).toBe(0);
    // Screening answers it, so a worker thread that screened it sends nothing to be placed.
    expect(screenPod({ pod, namespace: 'ns', requestUid: 'uid-1', dryRun: false }, ctx).kind).toBe('answered');
  });

  test('a pod past the limit that does not ask for a GPU is left to the API server', () => {
    const optedOut = podWith({ 'mps-injector.io/gpu-memory': '1Gi', 'example.com/blob': 'x'.repeat(1024 * 1024) });
    optedOut.metadata!.labels = { 'mps-injector.io/inject': 'false' };
    expect(admit(optedOut).outcome).toBe('skipped');
  });

  test('size is counted in UTF-8 bytes, as the API server counts it', () => {
    expect(annotationBytes({ 'é': '\u{1F600}' })).toBe(2 + 4);
  });
});

describe('annotation values', () => {
  test('a gpu-model of 100 KB is refused as an invalid annotation, echoing at most a short prefix', () => {
    const message = refusal(admit(podWith({ 'mps-injector.io/gpu-model': 'x'.repeat(100 * 1024) })));
    expect(message).toContain('annotation mps-injector.io/gpu-model=');
    expect(message).toContain('(102400 characters)');
  });

  test.each(['H100|A100', '.*', '[a-', 'H100\u0000', 'h'.repeat(129)])('a gpu-model of %j is refused: model names are letters, digits and a few marks', (model) => {
    expect(refusal(admit(podWith({ 'mps-injector.io/gpu-model': model })))).toContain('is not a GPU model name');
  });

  test.each(['H100', 'NVIDIA H100 80GB HBM3', '80GB HBM3', ' h100 '])('a gpu-model of %j is honoured', (model) => {
    const result = admit(podWith({ 'mps-injector.io/gpu-model': model }));
    expect(result.outcome).toBe('mutated');
  });

  test.each([
    ['mps-injector.io/gpu-memory', 'x'.repeat(1 << 20)],
    ['mps-injector.io/gpu-percent', '9'.repeat(1 << 20)],
    ['mps-injector.io/priority', 'h'.repeat(1 << 20)],
    ['mps-injector.io/containers', 'a,'.repeat(1 << 19)],
  ])('a megabyte in %s is refused with a message that quotes a short prefix', (key, value) => {
    refusal(admit(podWith({ [key]: value })));
  });
});

describe('fields of the wrong type', () => {
  test.each([
    ['an annotation that is not a string', (p: Pod) => ((p.metadata!.annotations as Record<string, unknown>)['mps-injector.io/gpu-memory'] = 8), 'pod.metadata.annotations["mps-injector.io/gpu-memory"] must be a string, not a number'],
    ['a container name that is a number', (p: Pod) => ((p.spec!.containers[0] as unknown as Record<string, unknown>).name = 5), 'pod.spec.containers[0].name must be a string, not a number'],
    ['resources that are a string', (p: Pod) => ((p.spec!.containers[0] as unknown as Record<string, unknown>).resources = 'big'), 'pod.spec.containers[0].resources must be an object, not a string'],
    ['volumeMounts that are an object', (p: Pod) => ((p.spec!.containers[0] as unknown as Record<string, unknown>).volumeMounts = { a: 1 }), 'pod.spec.containers[0].volumeMounts must be a list, not an object'],
    ['a toleration key that is a list', (p: Pod) => (p.spec!.tolerations = [{ key: [] as unknown as string }]), 'pod.spec.tolerations[0].key must be a string, not a list'],
    ['containers that are an object', (p: Pod) => ((p.spec as unknown as Record<string, unknown>).containers = {}), 'pod.spec.containers must be a list, not an object'],
    ['labels with an own __proto__ key', (p: Pod) => (p.metadata!.labels = JSON.parse('{"__proto__": {"x": 1}}') as Record<string, string>), 'pod.metadata.labels["__proto__"] must be a string, not an object'],
  ])('%s is refused naming the field', (_what, mutate, expected) => {
    const pod = podWith({ 'mps-injector.io/gpu-memory': '1Gi' });
    mutate(pod);
    expect(refusal(admit(pod))).toContain(expected);
  });

  test('null where a field is optional reads as absent', () => {
    const pod = podWith({});
    (pod.spec!.containers[0] as unknown as Record<string, unknown>).env = null;
    (pod.spec as unknown as Record<string, unknown>).tolerations = null;
    expect(admit(pod).outcome).toBe('mutated');
  });
});

describe('pods of 20,000 containers', () => {
  const CONTAINERS = 20_000;
  // Generous: the linear pipeline takes tens of milliseconds here; the quadratic one took seconds.
  const BOUND_MS = 2000;

  test.each([
    ['no containers annotation (all selected: refused by the cap)', {}, 'refused'],
    ['an annotation that names 48 of them', { 'mps-injector.io/containers': Array.from({ length: 48 }, (_, i) => `c-${i * 400}`).join(',') }, 'mutated'],
    ['an annotation that names all of them', { 'mps-injector.io/containers': Array.from({ length: CONTAINERS }, (_, i) => `c-${i}`).join(',') }, 'refused'],
  ])('%s: answered in bounded time', (_what, annotations, outcome) => {
    const pod = podWith(annotations, CONTAINERS);
    const t0 = performance.now();
    const result = admit(pod);
    const ms = performance.now() - t0;
    expect(result.outcome).toBe(outcome);
    if (result.outcome === 'mutated') expect(result.patch.length).toBeLessThan(3 * 48 + 20);
    if (result.outcome === 'refused') expect(result.message.length).toBeLessThan(MAX_MESSAGE);
    expect(ms).toBeLessThan(BOUND_MS);
  });
});
