/**
 * Pods far larger than usual, for the checks that admission has no quadratic path: one with
 * 5,000 env vars, one with 200 containers (the GPU given to one of them), one with 240 KiB of
 * annotations (just under the API server's 256 KiB), all placed; and one with 1 MiB of
 * annotations, refused. Each next to the small pod it is compared with.
 */
import type { Container, Pod } from 'kubernetes-types/core/v1.js';

const GPU_ANNOTATIONS = { 'mps-injector.io/gpu-memory': '512Mi', 'mps-injector.io/gpu-percent': '1' } as const;

const container = (name: string, env: Container['env'] = []): Container => ({ name, image: 'registry.example/inference:1.0', env });

/** The baseline: one container, a few env vars, the GPU annotations. */
export function smallPod(): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { generateName: 'small-', namespace: 'bench', annotations: { ...GPU_ANNOTATIONS } },
    spec: { containers: [container('main', [{ name: 'MODEL', value: 'llama' }])] },
  };
}

/** Large pods that are placed and patched. */
export const LARGE_POD_KINDS = ['5000 env vars', '200 containers', '240 KiB of annotations'] as const;
/**
 * A large pod that is refused: the API server checks the annotations' size only after mutating
 * admission, so the webhook sees it, and refuses it before choosing a GPU.
 */
export const OVERSIZED_POD_KIND = '1 MiB of annotations';
export type LargePodKind = (typeof LARGE_POD_KINDS)[number] | typeof OVERSIZED_POD_KIND;

export function largePod(kind: LargePodKind): Pod {
  const pod = smallPod();
  switch (kind) {
    case '5000 env vars':
      pod.spec!.containers = [container('main', Array.from({ length: 5000 }, (_, i) => ({ name: `VAR_${i}`, value: `value-${i}` })))];
      break;
    case '200 containers':
      pod.spec!.containers = Array.from({ length: 200 }, (_, i) => container(`c${i}`, [{ name: 'INDEX', value: String(i) }]));
      pod.metadata!.annotations!['mps-injector.io/containers'] = 'c0';
      break;
    case '240 KiB of annotations':
      // Just under the API server's 256 KiB total for a pod's annotations, so the pod is placed.
      for (let i = 0; i < 15; i++) pod.metadata!.annotations![`example.com/blob-${i}`] = 'x'.repeat(16 * 1024);
      break;
    case '1 MiB of annotations':
      for (let i = 0; i < 64; i++) pod.metadata!.annotations![`example.com/blob-${i}`] = 'x'.repeat(16 * 1024);
      break;
  }
  return pod;
}
