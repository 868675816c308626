/**
 * The injector's cost grows linearly with the pod. The bounds are generous (about 10x what the
 * linear code takes on a loaded 2-core machine) and still far below what a quadratic path takes
 * at this size (seconds to tens of seconds). The figures themselves come from `npm run bench`.
 */
import { performance } from 'node:perf_hooks';
import type { Pod } from 'kubernetes-types/core/v1.js';
import { buildConfig } from '../config/schema.js';
import { Priority } from '../placement/types.js';
import type { SlotChoice } from '../placement/types.js';
import { buildPatch } from './buildPatch.js';
import { injectPod } from './injectPod.js';
import { readSlotRequest } from './readSlotRequest.js';

const CONTAINERS = 40_000;
const config = buildConfig({});

const choice: SlotChoice = {
  ok: true,
  node: 'gpu-node-1',
  gpuUuid: 'GPU-a65a773d-52bb-bcc1-a8ee-f78c3faa2e2d',
  gpuIndex: 3,
  gpuModel: 'NVIDIA H100 80GB HBM3',
  threadPercent: 10,
  memoryLimitMiB: 1024,
  priority: Priority.Low,
  metricsAgeSeconds: 1,
  considered: 8,
  reason: 'binpack',
};

function bigPod(annotations: Record<string, string> = {}): { pod: Pod; names: string[] } {
  const names = Array.from({ length: CONTAINERS }, (_, i) => `c-${i}`);
  return { pod: { metadata: { name: 'big', namespace: 'ns', annotations }, spec: { containers: names.map((name) => ({ name, image: 'x' })) } }, names };
}

function timed<T>(f: () => T): { value: T; ms: number } {
  const t0 = performance.now();
  const value = f();
  return { value, ms: performance.now() - t0 };
}

test(`injecting every one of ${CONTAINERS} containers and diffing takes time linear in the pod`, () => {
  const { pod, names } = bigPod();
  const injected = timed(() => injectPod(pod, choice, 'rsv-1', names, config.injection));
  const patch = timed(() => buildPatch(pod, injected.value.pod));
  expect(patch.value.filter((op) => op.path.startsWith('/spec/containers/'))).toHaveLength(2 * CONTAINERS);
  expect(injected.ms + patch.ms).toBeLessThan(5000);
});

test(`injecting one container of ${CONTAINERS} gives a patch of what was injected`, () => {
  const { pod } = bigPod();
  const injected = timed(() => injectPod(pod, choice, 'rsv-1', ['c-39999'], config.injection));
  const patch = timed(() => buildPatch(pod, injected.value.pod));
  expect(patch.value.filter((op) => op.path.startsWith('/spec/containers/')).map((op) => op.path).sort()).toEqual(['/spec/containers/39999/env', '/spec/containers/39999/volumeMounts']);
  expect(injected.ms + patch.ms).toBeLessThan(1000);
});

test(`reading a containers annotation that names all ${CONTAINERS} containers takes time linear in the pod`, () => {
  const { pod, names } = bigPod();
  pod.metadata!.annotations = { 'mps-injector.io/containers': names.join(',') };
  const read = timed(() => readSlotRequest(pod, { namespace: 'ns', requestUid: 'u', config }));
  expect(read.value.kind).toBe('place');
  expect(read.ms).toBeLessThan(2000);
});

test(`a containers annotation naming an unknown container among ${CONTAINERS} is refused quickly with a bounded message`, () => {
  const { pod, names } = bigPod();
  pod.metadata!.annotations = { 'mps-injector.io/containers': [...names, 'nope'].join(',') };
  const read = timed(() => {
    try {
      readSlotRequest(pod, { namespace: 'ns', requestUid: 'u', config });
      return '';
    } catch (err) {
      return (err as Error).message;
    }
  });
  expect(read.value).toContain('"nope"');
  expect(read.value.length).toBeLessThan(1000);
  expect(read.ms).toBeLessThan(2000);
});
