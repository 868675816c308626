/**
 * The JSON Patch (RFC 6902) that turns the pod the API server sent into the injected pod.
 * Pure: two pods in, operations out.
 */
import jsonPatch from 'fast-json-patch';
import type { Operation } from 'fast-json-patch';
import type { Container, Pod } from 'kubernetes-types/core/v1.js';

/**
 * Operations from `original` to `mutated`. metadata.managedFields is left out of the comparison:
 * the API server owns it, and a webhook patch must not touch it. Path segments are escaped per
 * RFC 6901 ("/" as "~1", "~" as "~0"). Equal pods give [].
 *
 * The cost follows what changed, not the pod's size: injection copies only the containers it
 * writes (injectPod.ts), so only those are handed to the diff; the others are the same objects
 * in both pods and would diff to nothing.
 */
export function buildPatch(original: Pod, mutated: Pod): Operation[] {
  const [before, after] = onlyChangedContainers(withoutManagedFields(original), withoutManagedFields(mutated));
  return jsonPatch.compare(before, after);
}

function withoutManagedFields(pod: Pod): Pod {
  if (pod.metadata?.managedFields === undefined) return pod;
  const { managedFields: _managedFields, ...metadata } = pod.metadata;
  return { ...pod, metadata };
}

/**
 * The two pods with spec.containers narrowed to the entries that differ by reference, keyed by
 * their index: the diff then writes the same paths (/spec/containers/<i>/...) in the same order
 * (it walks an array's indices and an object's integer keys alike, highest first) without
 * visiting the rest. Pods whose container lists differ in length are compared whole.
 */
function onlyChangedContainers(original: Pod, mutated: Pod): [object, object] {
  const before = original.spec?.containers;
  const after = mutated.spec?.containers;
  if (!Array.isArray(before) || !Array.isArray(after) || before === after || before.length !== after.length) return [original, mutated];
  const changedBefore: Record<number, Container> = {};
  const changedAfter: Record<number, Container> = {};
  for (let i = 0; i < before.length; i++) {
    if (before[i] === after[i]) continue;
    changedBefore[i] = before[i]!;
    changedAfter[i] = after[i]!;
  }
  return [
    { ...original, spec: { ...original.spec, containers: changedBefore } },
    { ...mutated, spec: { ...mutated.spec, containers: changedAfter } },
  ];
}
