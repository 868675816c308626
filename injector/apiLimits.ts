/**
 * Limits the API server and MPS put on a pod, checked before the webhook answers with a patch
 * that the API server would reject or a pod that could never run. Pure.
 */
import type { Pod } from 'kubernetes-types/core/v1.js';
import { Annotation } from '../domain/names.js';
import { quoteForMessage } from './quoteForMessage.js';

/** The API server's limit on a pod's annotations, keys and values together, in bytes (TotalAnnotationSizeLimitB). */
export const TOTAL_ANNOTATION_BYTES = 256 * 1024;

/** MPS clients one GPU serves at most (Volta and newer). */
export const MPS_MAX_CLIENTS_PER_GPU = 48;

/** The size the API server counts for a set of annotations: the UTF-8 bytes of every key and value. */
export function annotationBytes(annotations: Readonly<Record<string, string>> | undefined | null): number {
  return annotationSizes(annotations).total;
}

/**
 * Null when the pod's own annotations fit the API server's limit; else why not. The API server
 * checks the size only after mutating admission, so such a pod does reach the webhook: it is
 * refused before anything is chosen for it, with one pass over its annotations.
 */
export function podAnnotationLimitProblem(pod: Pod): string | null {
  const { total, largest } = annotationSizes(pod.metadata?.annotations);
  if (total <= TOTAL_ANNOTATION_BYTES) return null;
  return `mps-injector: the pod's annotations take ${total} bytes, above the API server's limit of ${TOTAL_ANNOTATION_BYTES} bytes for all annotations together${largestHint(largest)}. ${SHRINK_ADVICE}`;
}

/**
 * Null when the injected pod's annotations fit the API server's limit; else why not, naming the
 * largest annotation, which is usually the one to shrink.
 */
export function annotationLimitProblem(original: Pod, injected: Pod): string | null {
  const after = annotationBytes(injected.metadata?.annotations);
  if (after <= TOTAL_ANNOTATION_BYTES) return null;
  const { total: before, largest } = annotationSizes(original.metadata?.annotations);
  return (
    `mps-injector: the pod's annotations would take ${after} bytes once the webhook records its decision (${before} bytes now, ${after - before} added), ` +
    `above the API server's limit of ${TOTAL_ANNOTATION_BYTES} bytes for all annotations together${largestHint(largest)}. ${SHRINK_ADVICE}`
  );
}

const SHRINK_ADVICE =
  'Shrink or remove large annotations (kubectl.kubernetes.io/last-applied-configuration is one: create the pod with kubectl create or server-side apply) and create the pod again';

/** The UTF-8 bytes of every key and value together, and the largest annotation, in one pass. */
function annotationSizes(annotations: Readonly<Record<string, string>> | undefined | null): { total: number; largest: { key: string; bytes: number } | null } {
  let total = 0;
  let largestKey: string | null = null;
  let largestBytes = -1;
  for (const key of Object.keys(annotations ?? {})) {
    const bytes = Buffer.byteLength(key, 'utf8') + Buffer.byteLength(annotations![key]!, 'utf8');
    total += bytes;
    if (bytes > largestBytes) [largestKey, largestBytes] = [key, bytes];
  }
  return { total, largest: largestKey === null ? null : { key: largestKey, bytes: largestBytes } };
}

const largestHint = (largest: { key: string; bytes: number } | null): string => (largest === null ? '' : `; the largest is ${quoteForMessage(largest.key)} (${largest.bytes} bytes)`);

/** Null when `count` selected containers are within the limit; else why the pod is refused. */
export function gpuContainerLimitProblem(containers: readonly string[], maxGpuContainers: number): string | null {
  if (containers.length <= maxGpuContainers) return null;
  return (
    `mps-injector: the pod selects ${containers.length} containers for the GPU, more than the ${maxGpuContainers} allowed (injection.maxGpuContainers): ` +
    `each selected container is an MPS client, and one GPU serves at most ${MPS_MAX_CLIENTS_PER_GPU}. ` +
    `Name only the containers that use the GPU in the ${Annotation.Containers} annotation (without it, every container is selected), e.g. ${quoteForMessage(containers[0] ?? 'main')}`
  );
}
