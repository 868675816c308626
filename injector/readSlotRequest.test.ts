import type { Pod } from 'kubernetes-types/core/v1.js';
import { buildConfig } from '../config/schema.js';
import type { SlotChoice } from '../domain/slot.js';
import { injectPod } from './injectPod.js';
import { Annotation } from '../domain/names.js';
import { InvalidPodError, podKeyOf, readPinnedNode, readSlotRequest } from './readSlotRequest.js';
import { podIdentityOf, readDecisionRecord, sealDecision } from '../domain/decisionRecord.js';
import { TEST_KEY_RING } from '../testing/decisionKeys.js';
import type { PodIntent, ReadSlotRequestContext } from './readSlotRequest.js';

const config = buildConfig({ requests: { defaultGpuMemory: '6Gi', highPriorityThreshold: 1000 } });
const ctx: ReadSlotRequestContext = { namespace: 'inference', requestUid: 'abcdef12-3456-7890-abcd-ef1234567890', config, keys: TEST_KEY_RING };

function pod(annotations: Record<string, string> = {}, spec: Partial<Pod['spec']> = {}): Pod {
  return {
    metadata: { name: 'web', annotations },
    spec: { containers: [{ name: 'server' }, { name: 'tokenizer' }, { name: 'exporter' }], ...spec },
  };
}

function place(intent: PodIntent): Extract<PodIntent, { kind: 'place' }> {
  if (intent.kind !== 'place') throw new Error(`expected place, got ${intent.kind}: ${JSON.stringify(intent)}`);
  return intent;
}

function invalid(p: Pod): InvalidPodError {
  try {
    readSlotRequest(p, ctx);
  } catch (err) {
    if (err instanceof InvalidPodError) return err;
    throw err;
  }
  throw new Error('expected InvalidPodError');
}

const choice: SlotChoice = {
  ok: true,
  node: 'gpu-node-1',
  gpuUuid: 'GPU-a65a773d-52bb-bcc1-a8ee-f78c3faa2e2d',
  gpuIndex: 3,
  gpuModel: 'NVIDIA H100 80GB HBM3',
  threadPercent: 30,
  memoryLimitMiB: 8192,
  priority: 'high',
  metricsAgeSeconds: 7,
  considered: 8,
  reason: 'spread: least loaded GPU',
};

describe('readSlotRequest defaults', () => {
  test('a pod without annotations asks for the default memory, all containers, derived priority', () => {
    const intent = place(readSlotRequest(pod(), ctx));
    expect(intent.containers).toEqual(['server', 'tokenizer', 'exporter']);
    expect(intent.request).toEqual({
      podKey: 'inference/web',
      memoryMiB: 6144,
      threadPercent: null,
      priority: 'low',
      gpuModel: null,
      pinnedNode: null,
      podNamed: true,
    });
  });

  test('annotations set memory, percent, model and priority', () => {
    const intent = place(
      readSlotRequest(
        pod({
          [Annotation.GpuMemory]: '10G',
          [Annotation.GpuPercent]: ' 40 ',
          [Annotation.GpuModel]: ' H100 ',
          [Annotation.Priority]: 'High',
        }),
        ctx,
      ),
    );
    expect(intent.request).toMatchObject({ memoryMiB: 9537, threadPercent: 40, gpuModel: 'H100', priority: 'high' });
  });

  test.each([
    [undefined, 'low'],
    [999, 'low'],
    [1000, 'high'],
    [2000000000, 'high'],
  ])('spec.priority %p gives %s', (priority, expected) => {
    const intent = place(readSlotRequest(pod({}, priority === undefined ? {} : { priority }), ctx));
    expect(intent.request.priority).toBe(expected);
  });

  test('the priority annotation overrides spec.priority', () => {
    expect(place(readSlotRequest(pod({ [Annotation.Priority]: 'low' }, { priority: 5000 }), ctx)).request.priority).toBe('low');
    expect(place(readSlotRequest(pod({ [Annotation.Priority]: 'high' }, { priority: 0 }), ctx)).request.priority).toBe('high');
  });

  test('the containers annotation selects containers in its own order, without duplicates', () => {
    const intent = place(readSlotRequest(pod({ [Annotation.Containers]: ' tokenizer,server ,tokenizer,' }), ctx));
    expect(intent.containers).toEqual(['tokenizer', 'server']);
  });
});

describe('readSlotRequest errors', () => {
  test.each(['lots', '-1', '0', '8 Gi', '8GB', ''])('gpu-memory %p is rejected with examples', (value) => {
    const err = invalid(pod({ [Annotation.GpuMemory]: value }));
    expect(err.annotation).toBe(Annotation.GpuMemory);
    expect(err.message).toContain(`${Annotation.GpuMemory}="${value}"`);
    expect(err.message).toContain('"8Gi"');
  });

  test.each(['0', '101', '50.5', 'half', '-5', '1e2', ''])('gpu-percent %p is rejected', (value) => {
    const err = invalid(pod({ [Annotation.GpuPercent]: value }));
    expect(err.annotation).toBe(Annotation.GpuPercent);
    expect(err.message).toContain(`${Annotation.GpuPercent}="${value}"`);
    expect(err.message).toContain('1 to 100');
  });

  test.each(['1', '100'])('gpu-percent %p is accepted', (value) => {
    expect(place(readSlotRequest(pod({ [Annotation.GpuPercent]: value }), ctx)).request.threadPercent).toBe(Number(value));
  });

  test.each(['0', '101', '50.5', 'all', ''])('gpu-percent-limit %p is rejected', (value) => {
    const err = invalid(pod({ [Annotation.GpuPercentLimit]: value }));
    expect(err.annotation).toBe(Annotation.GpuPercentLimit);
    expect(err.message).toContain(`${Annotation.GpuPercentLimit}="${value}"`);
    expect(err.message).toContain('1 to 100');
  });

  test('a gpu-percent-limit below gpu-percent is rejected, naming both and the least it may be', () => {
    const err = invalid(pod({ [Annotation.GpuPercent]: '40', [Annotation.GpuPercentLimit]: '25' }));
    expect(err.annotation).toBe(Annotation.GpuPercentLimit);
    expect(err.message).toContain(`is below ${Annotation.GpuPercent}=40`);
    expect(err.message).toContain('at least 40');
  });

  test('a gpu-percent-limit at or above gpu-percent is the request\'s limit; without one the request has none', () => {
    expect(place(readSlotRequest(pod({ [Annotation.GpuPercent]: '40', [Annotation.GpuPercentLimit]: '40' }), ctx)).request.threadPercentLimit).toBe(40);
    expect(place(readSlotRequest(pod({ [Annotation.GpuPercentLimit]: '80' }), ctx)).request.threadPercentLimit).toBe(80);
    expect(place(readSlotRequest(pod({ [Annotation.GpuPercent]: '40' }), ctx)).request).not.toHaveProperty('threadPercentLimit');
  });

  test('an unknown container is rejected with the names the pod has', () => {
    const err = invalid(pod({ [Annotation.Containers]: 'server,worker,gpu' }));
    expect(err.annotation).toBe(Annotation.Containers);
    expect(err.message).toContain('"worker", "gpu"');
    expect(err.message).toContain('"server", "tokenizer", "exporter"');
  });

  test('init container names are not GPU containers', () => {
    const err = invalid(pod({ [Annotation.Containers]: 'setup' }, { initContainers: [{ name: 'setup' }] }));
    expect(err.message).toContain('"setup", which is not a container');
  });

  test('an empty containers annotation is rejected', () => {
    const err = invalid(pod({ [Annotation.Containers]: ' , ' }));
    expect(err.message).toContain('is empty');
  });

  test.each(['urgent', 'HIGHEST', '0'])('priority %p is rejected', (value) => {
    const err = invalid(pod({ [Annotation.Priority]: value }));
    expect(err.annotation).toBe(Annotation.Priority);
    expect(err.message).toContain('"high" or "low"');
  });

  test('InvalidPodError is an Error with its own name', () => {
    const err = invalid(pod({ [Annotation.Priority]: 'x' }));
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe('InvalidPodError');
  });
});

describe('readSlotRequest placement hints', () => {
  const A = 'GPU-a65a773d-52bb-bcc1-a8ee-f78c3faa2e2d';
  const B = 'GPU-0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0';

  test('policy and GPU UUID lists are read into the request; absent hints leave no field', () => {
    const request = place(readSlotRequest(pod({ [Annotation.Policy]: ' Spread ', [Annotation.GpuUuidIn]: `${A}, ${B}`, [Annotation.GpuUuidNotIn]: B }), ctx)).request;
    expect(request).toMatchObject({ policy: 'spread', gpuUuidIn: [A, B], gpuUuidNotIn: [B] });
    const plain = place(readSlotRequest(pod(), ctx)).request;
    for (const field of ['policy', 'gpuUuidIn', 'gpuUuidNotIn']) expect(plain).not.toHaveProperty(field);
  });

  test.each(['pack', 'least-loaded', ''])('policy %p is rejected, naming both values and the configured default', (value) => {
    const err = invalid(pod({ [Annotation.Policy]: value }));
    expect(err.annotation).toBe(Annotation.Policy);
    expect(err.message).toBe(
      `annotation mps-injector.io/policy="${value}" must be "binpack" (fill GPUs already in use) or "spread" (the least loaded GPU); remove it to use the configured placement.policy (binpack)`,
    );
  });

  test.each([Annotation.GpuUuidIn, Annotation.GpuUuidNotIn])('%s: entries that are not GPU UUIDs are named, with an example', (annotation) => {
    const err = invalid(pod({ [annotation]: `${A}, gpu-3, 3` }));
    expect(err.annotation).toBe(annotation);
    expect(err.message).toMatch(new RegExp(`^annotation ${annotation}="${A}, gpu-3, 3" lists "gpu-3", "3", which are not GPU UUIDs; write GPU UUIDs as nvidia-smi -L prints them \\(e\\.g\\. "GPU-a65a773d-52bb-bcc1-a8ee-f78c3faa2e2d"\\), separated by commas`));
    expect(invalid(pod({ [annotation]: ' , ' })).message).toMatch(new RegExp(`^annotation ${annotation} is empty; write GPU UUIDs`));
  });

  test('lists that leave no GPU are rejected', () => {
    const err = invalid(pod({ [Annotation.GpuUuidIn]: A, [Annotation.GpuUuidNotIn]: `${B},${A}` }));
    expect(err.message).toContain('together leave no GPU: every listed GPU is also ruled out; remove the UUIDs from one of them');
  });
});

describe('readSlotRequest skips', () => {
  test('an opted-out pod is skipped even with bad annotations', () => {
    const p = pod({ [Annotation.GpuPercent]: 'bad' });
    p.metadata = { ...p.metadata, labels: { 'mps-injector.io/inject': 'false' } };
    expect(readSlotRequest(p, ctx)).toEqual({ kind: 'skip', reason: 'pod is labelled mps-injector.io/inject=false' });
  });

  test('inject=true does not skip', () => {
    const p = pod();
    p.metadata = { ...p.metadata, labels: { 'mps-injector.io/inject': 'true' } };
    expect(readSlotRequest(p, ctx).kind).toBe('place');
  });

  test('a container limiting nvidia.com/gpu is skipped, named in the reason', () => {
    const intent = readSlotRequest(pod({}, { containers: [{ name: 'a' }, { name: 'b', resources: { limits: { 'nvidia.com/gpu': '1' } } }] }), ctx);
    expect(intent.kind).toBe('skip');
    expect(intent.kind === 'skip' && intent.reason).toContain('container "b" requests nvidia.com/gpu');
  });

  test('an init container requesting nvidia.com/gpu is skipped', () => {
    const intent = readSlotRequest(pod({}, { initContainers: [{ name: 'warmup', resources: { requests: { 'nvidia.com/gpu': '1' } } }] }), ctx);
    expect(intent.kind === 'skip' && intent.reason).toContain('init container "warmup"');
  });

  test('other resources do not skip', () => {
    const p = pod({}, { containers: [{ name: 'a', resources: { limits: { cpu: '1', 'nvidia.com/mig-1g.10gb': '1' } } }] });
    expect(readSlotRequest(p, ctx).kind).toBe('place');
  });

  test('a pod without containers is skipped', () => {
    expect(readSlotRequest({ metadata: { name: 'x' }, spec: { containers: [] } }, ctx).kind).toBe('skip');
    expect(readSlotRequest({ metadata: { name: 'x' } }, ctx).kind).toBe('skip');
  });
});

describe('reinjection', () => {
  const ISSUED = 1_700_000_000_000;
  const original = pod({ [Annotation.Containers]: 'server' });
  const seal = sealDecision(
    { pod: podIdentityOf(original, 'inference'), reservationId: 'rsv-1', node: choice.node, gpuUuid: choice.gpuUuid, gpuIndex: choice.gpuIndex, threadPercent: choice.threadPercent, memoryLimitMiB: choice.memoryLimitMiB, priority: choice.priority, containers: ['server'], issuedAtMs: ISSUED },
    TEST_KEY_RING,
  );
  const injected = injectPod(original, choice, 'rsv-1', ['server'], config.injection, seal).pod;
  const readRecordedDecision = (p: Pod) => {
    const reading = readDecisionRecord(p, TEST_KEY_RING, 'inference');
    return reading.kind === 'genuine' ? reading.record : null;
  };

  test('an injected pod reads back as reinject with its recorded decision', () => {
    expect(readSlotRequest(injected, ctx)).toEqual({
      kind: 'reinject',
      recorded: { reservationId: 'rsv-1', containers: ['server'], issuedAtMs: ISSUED, choice: { ...choice, gpuModel: '', considered: 0 } },
    });
  });

  test('the same annotations without the seal are a forged claim: placed afresh, the reason says why', () => {
    const unsealed = structuredClone(injected);
    delete unsealed.metadata?.annotations?.['mps-injector.io/seal'];
    const intent = place(readSlotRequest(unsealed, ctx));
    expect(intent.forged).toMatch(/without the webhook's seal/);
  });

  test('a seal copied to a pod of another name or namespace does not verify', () => {
    const renamed = structuredClone(injected);
    renamed.metadata = { ...renamed.metadata, name: 'other' };
    expect(place(readSlotRequest(renamed, ctx)).forged).toMatch(/does not match/);
    expect(place(readSlotRequest(injected, { ...ctx, namespace: 'team-b' })).forged).toMatch(/does not match/);
  });

  test.each([
    [Annotation.ThreadPercent, '100'],
    [Annotation.ThreadPercentLimit, '100'],
    [Annotation.MemoryLimit, '81920Mi'],
    [Annotation.GpuUuid, 'GPU-00000000-0000-0000-0000-000000000000'],
    [Annotation.Node, 'gpu-node-9'],
    [Annotation.Reservation, 'rsv-2'],
  ])('raising %s to %p breaks the seal', (key, value) => {
    const edited = structuredClone(injected);
    edited.metadata = { ...edited.metadata, annotations: { ...edited.metadata?.annotations, [key]: value } };
    expect(place(readSlotRequest(edited, ctx)).forged).toMatch(/does not match/);
  });

  describe('a decision with a limit above the reserved share', () => {
    const limited: SlotChoice = { ...choice, threadCeilingPercent: 60 };
    const limitedSeal = sealDecision(
      { pod: podIdentityOf(original, 'inference'), reservationId: 'rsv-1', node: choice.node, gpuUuid: choice.gpuUuid, gpuIndex: choice.gpuIndex, threadPercent: 30, threadCeilingPercent: 60, memoryLimitMiB: choice.memoryLimitMiB, priority: choice.priority, containers: ['server'], issuedAtMs: ISSUED },
      TEST_KEY_RING,
    );
    const limitedPod = injectPod(original, limited, 'rsv-1', ['server'], config.injection, limitedSeal).pod;

    test('reads back with both the reserved share and the limit, and injects the limit', () => {
      expect(limitedPod.metadata?.annotations?.[Annotation.ThreadPercent]).toBe('30');
      expect(limitedPod.metadata?.annotations?.[Annotation.ThreadPercentLimit]).toBe('60');
      expect(limitedPod.spec?.containers[0]?.env?.find((e) => e.name === 'CUDA_MPS_ACTIVE_THREAD_PERCENTAGE')?.value).toBe('60');
      expect(readRecordedDecision(limitedPod)).toMatchObject({ threadPercent: 30, threadCeilingPercent: 60 });
    });

    test.each([
      ['removed', undefined],
      ['raised', '100'],
      ['lowered to the reserved share', '30'],
    ])('its limit %s breaks the seal', (_how, value) => {
      const edited = structuredClone(limitedPod);
      const annotations = { ...edited.metadata?.annotations };
      if (value === undefined) delete annotations[Annotation.ThreadPercentLimit];
      else annotations[Annotation.ThreadPercentLimit] = value;
      edited.metadata = { ...edited.metadata, annotations };
      expect(readRecordedDecision(edited)).toBeNull();
    });

    test('a decision sealed without a limit (before limits existed) still verifies and injects its reserved share', () => {
      expect(injected.metadata?.annotations).not.toHaveProperty(Annotation.ThreadPercentLimit);
      expect(readRecordedDecision(injected)).toMatchObject({ threadPercent: 30 });
      expect(readRecordedDecision(injected)).not.toHaveProperty('threadCeilingPercent');
      expect(injected.spec?.containers[0]?.env?.find((e) => e.name === 'CUDA_MPS_ACTIVE_THREAD_PERCENTAGE')?.value).toBe('30');
    });
  });

  test('the injected label alone is a claim the webhook did not make', () => {
    const labelled = pod();
    labelled.metadata = { ...labelled.metadata, labels: { 'mps-injector.io/injected': 'true' } };
    expect(place(readSlotRequest(labelled, ctx)).forged).toMatch(/mps-injector.io\/injected/);
    expect(place(readSlotRequest(pod(), ctx)).forged).toBeNull();
  });

  test.each([
    Annotation.Node,
    Annotation.GpuUuid,
    Annotation.GpuIndex,
    Annotation.ThreadPercent,
    Annotation.MemoryLimit,
    Annotation.Priority,
    Annotation.Containers,
  ])('without %s the recorded decision does not parse', (key) => {
    const damaged = structuredClone(injected);
    delete damaged.metadata?.annotations?.[key];
    expect(readRecordedDecision(damaged)).toBeNull();
  });

  test.each([
    [Annotation.GpuIndex, 'three'],
    [Annotation.ThreadPercent, '0'],
    [Annotation.ThreadPercent, '250'],
    [Annotation.MemoryLimit, 'lots'],
    [Annotation.Priority, 'urgent'],
    [Annotation.Containers, 'server,ghost'],
    [Annotation.Reservation, '  '],
  ])('%s=%p makes the recorded decision unreadable', (key, value) => {
    const damaged = structuredClone(injected);
    damaged.metadata = { ...damaged.metadata, annotations: { ...damaged.metadata?.annotations, [key]: value } };
    expect(readRecordedDecision(damaged)).toBeNull();
  });

  test('a reservation annotation with a damaged decision is placed afresh', () => {
    const damaged = structuredClone(injected);
    damaged.metadata = { ...damaged.metadata, annotations: { ...damaged.metadata?.annotations, [Annotation.GpuIndex]: 'x' } };
    const intent = place(readSlotRequest(damaged, ctx));
    expect(intent.containers).toEqual(['server']);
  });

  test('a pod without the reservation annotation is not reinjected', () => {
    const copy = structuredClone(injected);
    delete copy.metadata?.annotations?.[Annotation.Reservation];
    expect(readSlotRequest(copy, ctx).kind).toBe('place');
  });

  test('a pod named by the API server after admission still verifies under its generateName', () => {
    const generated: Pod = { metadata: { generateName: 'web-7d9f-', annotations: { [Annotation.Containers]: 'server' } }, spec: original.spec! };
    const genSeal = sealDecision(
      { pod: podIdentityOf(generated, 'inference'), reservationId: 'rsv-9', node: choice.node, gpuUuid: choice.gpuUuid, gpuIndex: choice.gpuIndex, threadPercent: choice.threadPercent, memoryLimitMiB: choice.memoryLimitMiB, priority: choice.priority, containers: ['server'], issuedAtMs: ISSUED },
      TEST_KEY_RING,
    );
    const stored = injectPod(generated, choice, 'rsv-9', ['server'], config.injection, genSeal).pod;
    stored.metadata = { ...stored.metadata, name: 'web-7d9f-x2k4q', namespace: 'inference' };
    expect(readRecordedDecision(stored)?.reservationId).toBe('rsv-9');
    // another generateName does not
    stored.metadata = { ...stored.metadata, generateName: 'web-other-' };
    expect(readRecordedDecision(stored)).toBeNull();
  });

  test('a pod without annotations has no recorded decision', () => {
    expect(readDecisionRecord({ spec: { containers: [{ name: 'a' }] } }, TEST_KEY_RING)).toEqual({ kind: 'none' });
  });
});

describe('readPinnedNode', () => {
  const term = (key: string, operator: string, values: string[]) => ({ matchExpressions: [{ key, operator, values }] });
  const withTerms = (nodeSelectorTerms: object[]): Pod =>
    pod({}, { affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms } } } } as Partial<Pod['spec']>);

  test('from the hostname node selector', () => {
    expect(readPinnedNode(pod({}, { nodeSelector: { 'kubernetes.io/hostname': 'node-a', zone: 'x' } }))).toBe('node-a');
  });

  test('the node selector wins over affinity', () => {
    const p = withTerms([term('kubernetes.io/hostname', 'In', ['node-b'])]);
    p.spec = { ...p.spec!, nodeSelector: { 'kubernetes.io/hostname': 'node-a' } };
    expect(readPinnedNode(p)).toBe('node-a');
  });

  test('from a single required term', () => {
    expect(readPinnedNode(withTerms([term('kubernetes.io/hostname', 'In', ['node-a'])]))).toBe('node-a');
  });

  test('from every term pinning the same host', () => {
    const terms = [
      term('kubernetes.io/hostname', 'In', ['node-a']),
      { matchExpressions: [{ key: 'gpu', operator: 'Exists' }, { key: 'kubernetes.io/hostname', operator: 'In', values: ['node-a'] }] },
    ];
    expect(readPinnedNode(withTerms(terms))).toBe('node-a');
  });

  test('a single-value In narrows a wider one in the same term', () => {
    const t = { matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: ['node-a', 'node-b'] }, { key: 'kubernetes.io/hostname', operator: 'In', values: ['node-a'] }] };
    expect(readPinnedNode(withTerms([t]))).toBe('node-a');
  });

  test('from the metadata.name field selector of DaemonSet pods', () => {
    expect(readPinnedNode(withTerms([{ matchFields: [{ key: 'metadata.name', operator: 'In', values: ['node-c'] }] }]))).toBe('node-c');
  });

  test.each([
    ['terms pinning different hosts', [term('kubernetes.io/hostname', 'In', ['node-a']), term('kubernetes.io/hostname', 'In', ['node-b'])]],
    ['one term unpinned', [term('kubernetes.io/hostname', 'In', ['node-a']), term('zone', 'In', ['z1'])]],
    ['several hosts allowed', [term('kubernetes.io/hostname', 'In', ['node-a', 'node-b'])]],
    ['NotIn', [term('kubernetes.io/hostname', 'NotIn', ['node-a'])]],
    ['a term contradicting itself', [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: ['node-a'] }, { key: 'kubernetes.io/hostname', operator: 'In', values: ['node-b'] }] }]],
    ['no terms', []],
  ])('not pinned: %s', (_label, terms) => {
    expect(readPinnedNode(withTerms(terms))).toBeNull();
  });

  test('preferred affinity does not pin', () => {
    const p = pod({}, {
      affinity: { nodeAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 1, preference: term('kubernetes.io/hostname', 'In', ['node-a']) }] } },
    });
    expect(readPinnedNode(p)).toBeNull();
  });

  test('the pinned node reaches the request', () => {
    expect(place(readSlotRequest(withTerms([term('kubernetes.io/hostname', 'In', ['node-a'])]), ctx)).request.pinnedNode).toBe('node-a');
  });
});

describe('podKeyOf', () => {
  test('namespace/name', () => {
    expect(podKeyOf({ metadata: { name: 'web', namespace: 'other' } }, { namespace: 'inference', requestUid: 'u' })).toBe('inference/web');
  });

  test('generateName plus the first 8 characters of the request uid', () => {
    expect(podKeyOf({ metadata: { generateName: 'web-7d9f-' } }, { namespace: 'inference', requestUid: '27f5fa18-2dfe-11e9' })).toBe('inference/web-7d9f-27f5fa18');
  });

  test("the pod's own namespace when the request has none", () => {
    expect(podKeyOf({ metadata: { name: 'web', namespace: 'team-a' } }, { namespace: '', requestUid: 'u' })).toBe('team-a/web');
  });
});

test('null annotations and labels read as none, not as an internal error', () => {
  const p = { metadata: { name: 'web', annotations: null, labels: null }, spec: { containers: [{ name: 'server' }] } } as unknown as Pod;
  expect(place(readSlotRequest(p, ctx)).containers).toEqual(['server']);
});
