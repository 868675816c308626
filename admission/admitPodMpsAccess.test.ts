/**
 * MPS access only through the injector, through the admission pipeline the webhook and the CLI
 * share: refusals are 'invalid-pod' and reserve nothing; strip mode patches the parts away.
 */
import { TEST_KEY_RING } from '../testing/decisionKeys.js';
import fjp from 'fast-json-patch';
import type { Pod } from 'kubernetes-types/core/v1.js';
import { buildConfig } from '../config/schema.js';
import type { Config } from '../config/schema.js';
import type { GpuSample } from '../domain/inventory.js';
import { H100_TOTAL_MIB, h100 } from '../testing/gpuSamples.js';
import { findMpsAccessProblems } from '../injector/mpsAccess.js';
import { ReservationLedger } from '../reservations/ledger.js';
import type { AdmitContext, PodAdmission } from './admitPod.js';
import { admitPod } from './admitPod.js';

const NOW = 1_700_000_000_000;
const gpu = (): GpuSample => h100('node-a', 0, NOW - 1000, { memory: { totalMiB: H100_TOTAL_MIB, usedMiB: 0, freeMiB: H100_TOTAL_MIB, reservedMiB: 0 } });
const context = (config: Config): AdmitContext => ({
  config,
  inventory: { gpus: [gpu()], nodes: {}, source: 'test', fetchedAtMs: NOW, skippedLines: 0, problems: [] },
  ledger: new ReservationLedger({ ttlMs: 60_000 }),
  nowMs: NOW,
  keys: TEST_KEY_RING,
});
const admit = (pod: Pod, ctx: AdmitContext): PodAdmission => admitPod({ pod, namespace: 'ns', requestUid: 'uid-1', dryRun: false }, ctx);

const basePod = (spec: Partial<NonNullable<Pod['spec']>>, annotations: Record<string, string> = {}, labels: Record<string, string> = {}): Pod => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'llm-1', namespace: 'ns', annotations, labels },
  spec: { containers: [{ name: 'app', image: 'vllm' }], ...spec },
});

const cases: [string, Pod, string][] = [
  [
    'an unselected sidecar with NVIDIA_VISIBLE_DEVICES=all',
    basePod(
      { containers: [{ name: 'app', image: 'vllm' }, { name: 'sidecar', image: 'exporter', env: [{ name: 'NVIDIA_VISIBLE_DEVICES', value: 'all' }] }] },
      { 'mps-injector.io/containers': 'app' },
    ),
    'container "sidecar" (not selected for the GPU) sets NVIDIA_VISIBLE_DEVICES',
  ],
  [
    'an init container with its own CUDA_MPS_ACTIVE_THREAD_PERCENTAGE',
    basePod({ initContainers: [{ name: 'warmup', image: 'vllm', env: [{ name: 'CUDA_MPS_ACTIVE_THREAD_PERCENTAGE', value: '100' }] }] }),
    'init container "warmup" sets CUDA_MPS_ACTIVE_THREAD_PERCENTAGE',
  ],
  [
    'a sidecar with its own hostPath to /run/nvidia/mps',
    basePod(
      {
        containers: [{ name: 'app', image: 'vllm' }, { name: 'sidecar', image: 'x', volumeMounts: [{ name: 'mps', mountPath: '/mps' }] }],
        volumes: [{ name: 'mps', hostPath: { path: '/run/nvidia/mps' } }],
      },
      { 'mps-injector.io/containers': 'app' },
    ),
    "volume \"mps\" is a hostPath at /run/nvidia/mps, above the node's MPS pipe directory /run/nvidia/mps/pipe",
  ],
  [
    'a selected container with an emptyDir over the pipe directory',
    basePod({
      containers: [{ name: 'app', image: 'vllm', volumeMounts: [{ name: 'scratch', mountPath: '/run/nvidia/mps/pipe' }] }],
      volumes: [{ name: 'scratch', emptyDir: {} }],
    }),
    'container "app" mounts volume "scratch" at /run/nvidia/mps/pipe, over the MPS pipe directory mps-injector mounts there',
  ],
];

describe.each(cases)('%s', (_what, pod, clause) => {
  test('reject (the default): refused as an invalid pod naming it, and nothing is reserved', () => {
    const ctx = context(buildConfig({}));
    const result = admit(pod, ctx);
    expect(result).toMatchObject({ outcome: 'refused', reason: 'invalid-pod' });
    if (result.outcome === 'refused') expect(result.message).toContain(clause);
    expect(ctx.ledger.list(NOW)).toEqual([]);
  });

  test('strip: placed, the patch removes it, a warning says so, and reinjection is a no-op', () => {
    const ctx = context(buildConfig({ injection: { mpsAccessPolicy: 'strip' } }));
    const result = admit(pod, ctx);
    if (result.outcome !== 'mutated') throw new Error(`expected mutated, got ${JSON.stringify(result)}`);
    expect(result.warnings.some((w) => w.includes('injection.mpsAccessPolicy "strip"') && w.includes(clause))).toBe(true);
    const patched = fjp.applyPatch(structuredClone(pod), result.patch, true, false).newDocument;
    expect(patched).toEqual(result.mutated);
    const selected = result.mutated.metadata?.annotations?.['mps-injector.io/containers']?.split(',') ?? [];
    expect(findMpsAccessProblems(result.mutated, selected, ctx.config.injection, { injecting: true })).toEqual([]);
    expect(ctx.ledger.list(NOW)).toHaveLength(1);

    const again = admit(result.mutated, ctx);
    expect(again).toMatchObject({ outcome: 'mutated', reinjected: true, patch: [], warnings: [] });
  });
});

test('a pod the webhook leaves alone (opted out) is refused when it reaches MPS, also under strip', () => {
  const pod = basePod({ volumes: [{ name: 'pipe', hostPath: { path: '/var/run/nvidia/mps/pipe/' } }] }, {}, { 'mps-injector.io/inject': 'false' });
  for (const policy of ['reject', 'strip'] as const) {
    const result = admit(pod, context(buildConfig({ injection: { mpsAccessPolicy: policy } })));
    expect(result).toMatchObject({ outcome: 'refused', reason: 'invalid-pod' });
    if (result.outcome === 'refused') expect(result.message).toContain('mps-injector does not inject this pod');
  }
  // Without MPS access the same opted-out pod is skipped as before.
  expect(admit(basePod({}, {}, { 'mps-injector.io/inject': 'false' }), context(buildConfig({})))).toMatchObject({ outcome: 'skipped' });
});

test('an injected pod comes back as an empty patch: the injected env, volumes and init container are not findings', () => {
  const ctx = context(buildConfig({}));
  const first = admit(basePod({ containers: [{ name: 'app', image: 'vllm' }, { name: 'log', image: 'fluent-bit' }] }, { 'mps-injector.io/containers': 'app' }), ctx);
  if (first.outcome !== 'mutated') throw new Error(`expected mutated, got ${JSON.stringify(first)}`);
  expect(admit(first.mutated, ctx)).toMatchObject({ outcome: 'mutated', reinjected: true, patch: [] });
});
