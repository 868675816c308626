/**
 * The JSON Patch (RFC 6902) that turns the pod the API server sent into the injected pod.
 * Pure: two pods in, operations out.
 */
import jsonPatch from 'fast-json-patch';
import type { Operation } from 'fast-json-patch';
import type { Pod } from 'kubernetes-types/core/v1.js';

/**
 * Operations from `original` to `mutated`. metadata.managedFields is left out of the comparison:
 * the API server owns it, and a webhook patch must not touch it. Path segments are escaped per
 * RFC 6901 ("/" as "~1", "~" as "~0"). Equal pods give [].
 */
export function buildPatch(original: Pod, mutated: Pod): Operation[] {
  return jsonPatch.compare(withoutManagedFields(original), withoutManagedFields(mutated));
}

function withoutManagedFields(pod: Pod): Pod {
  if (pod.metadata?.managedFields === undefined) return pod;
  const { managedFields: _managedFields, ...metadata } = pod.metadata;
  return { ...pod, metadata };
}
