/**
 * The injector's cost grows linearly with the pod. Each check times the same work at 10,000 and
 * at 40,000 containers: four times the pod must cost well under eight times the time (linear
 * code takes about four times; the quadratic paths took sixteen), and the larger run has a
 * generous absolute bound. The figures themselves come from `npm run bench`.
 */
import { TEST_KEY_RING } from '../testing/decisionKeys.js';
import { performance } from 'node:perf_hooks';
import type { Pod } from 'kubernetes-types/core/v1.js';
import { buildConfig } from '../config/schema.js';
import { Priority } from '../domain/slot.js';
import type { SlotChoice } from '../domain/slot.js';
import { buildPatch } from './buildPatch.js';
import { injectPod } from './injectPod.js';
import { readSlotRequest } from './readSlotRequest.js';

const SMALL = 10_000;
const LARGE = 40_000;
const MAX_RATIO = 8;
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

function bigPod(count: number, annotations: Record<string, string> = {}): { pod: Pod; names: string[] } {
  const names = Array.from({ length: count }, (_, i) => `c-${i}`);
  return { pod: { metadata: { name: 'big', namespace: 'ns', annotations }, spec: { containers: names.map((name) => ({ name, image: 'x' })) } }, names };
}

/** The best of two runs of `work` on a fresh input of `count` containers, in ms. */
function bestOfTwo(count: number, work: (count: number) => () => unknown): number {
  let best = Infinity;
  for (let i = 0; i < 2; i++) {
    const run = work(count);
    const t0 = performance.now();
    run();
    best = Math.min(best, performance.now() - t0);
  }
  return best;
}

function expectLinear(work: (count: number) => () => unknown, largeBoundMs: number): void {
  const small = bestOfTwo(SMALL, work);
  const large = bestOfTwo(LARGE, work);
  expect(large / Math.max(small, 1)).toBeLessThan(MAX_RATIO);
  expect(large).toBeLessThan(largeBoundMs);
}

test('injecting every container and diffing takes time linear in the pod', () => {
  expectLinear((count) => {
    const { pod, names } = bigPod(count);
    return () => buildPatch(pod, injectPod(pod, choice, 'rsv-1', names, config.injection).pod);
  }, 5000);
});

test('injecting one container gives a patch of what was injected, whatever the pod size', () => {
  const { pod } = bigPod(LARGE);
  const injected = injectPod(pod, choice, 'rsv-1', [`c-${LARGE - 1}`], config.injection);
  const patch = buildPatch(pod, injected.pod);
  expect(patch.filter((op) => op.path.startsWith('/spec/containers/')).map((op) => op.path).sort()).toEqual([`/spec/containers/${LARGE - 1}/env`, `/spec/containers/${LARGE - 1}/volumeMounts`]);
  expectLinear((count) => {
    const big = bigPod(count).pod;
    return () => buildPatch(big, injectPod(big, choice, 'rsv-1', [`c-${count - 1}`], config.injection).pod);
  }, 1000);
});

test('reading a containers annotation that names every container takes time linear in the pod', () => {
  expectLinear((count) => {
    const { pod, names } = bigPod(count);
    pod.metadata!.annotations = { 'mps-injector.io/containers': names.join(',') };
    return () => expect(readSlotRequest(pod, { namespace: 'ns', requestUid: 'u', config, keys: TEST_KEY_RING }).kind).toBe('place');
  }, 2000);
});

test('a containers annotation naming an unknown container is refused in linear time with a bounded message', () => {
  expectLinear((count) => {
    const { pod, names } = bigPod(count);
    pod.metadata!.annotations = { 'mps-injector.io/containers': [...names, 'nope'].join(',') };
    return () => {
      let message = '';
      try {
        readSlotRequest(pod, { namespace: 'ns', requestUid: 'u', config, keys: TEST_KEY_RING });
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message).toContain('"nope"');
      expect(message.length).toBeLessThan(1000);
    };
  }, 2000);
});
