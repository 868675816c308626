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
 *
 * The operations are those of fast-json-patch's `compare`, except that values are not deep-cloned:
 * an operation's value is the mutated pod's own subtree. injectPod builds the mutated pod
 * copy-on-write and both pods are treated as immutable, so sharing is safe, and the work stays
 * proportional to what changed (subtrees shared by reference are skipped in O(1)).
 */
export function buildPatch(original: Pod, mutated: Pod): Operation[] {
  const operations: Operation[] = [];
  diffInto(withoutManagedFields(original), withoutManagedFields(mutated), '', operations);
  return operations;
}

type Json = Record<string, unknown> | unknown[];

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null;
const hasOwn = (o: Json, key: string): boolean => Object.prototype.hasOwnProperty.call(o, key);
const keysOf = (o: Json): string[] => Object.keys(o);
const valueAt = (o: Json, key: string): unknown => (o as Record<string, unknown>)[key];

/** fast-json-patch's `_generate` (same operations, same order), without the deep clones. */
function diffInto(before: Json, after: Json, path: string, operations: Operation[]): void {
  if (before === after) return;
  if (Array.isArray(before) && Array.isArray(after)) {
    diffArrays(before, after, path, operations);
    return;
  }
  const newKeys = keysOf(after);
  const oldKeys = keysOf(before);
  let deleted = false;
  for (let t = oldKeys.length - 1; t >= 0; t--) {
    const key = oldKeys[t]!;
    const oldVal = valueAt(before, key);
    const at = `${path}/${jsonPatch.escapePathComponent(key)}`;
    if (hasOwn(after, key) && !(valueAt(after, key) === undefined && oldVal !== undefined && !Array.isArray(after))) {
      const newVal = valueAt(after, key);
      if (isObject(oldVal) && isObject(newVal) && Array.isArray(oldVal) === Array.isArray(newVal)) {
        diffInto(oldVal, newVal, at, operations);
      } else if (oldVal !== newVal) {
        operations.push({ op: 'replace', path: at, value: newVal === undefined ? null : newVal });
      }
    } else if (Array.isArray(before) === Array.isArray(after)) {
      operations.push({ op: 'remove', path: at });
      deleted = true;
    } else {
      operations.push({ op: 'replace', path, value: after });
    }
  }
  if (!deleted && newKeys.length === oldKeys.length) return;
  for (const key of newKeys) {
    const value = valueAt(after, key);
    if (!hasOwn(before, key) && value !== undefined) operations.push({ op: 'add', path: `${path}/${jsonPatch.escapePathComponent(key)}`, value });
  }
}

/** The array case of diffInto for dense (parsed JSON) arrays, by index: no key strings for elements that did not change. */
function diffArrays(before: unknown[], after: unknown[], path: string, operations: Operation[]): void {
  let deleted = false;
  for (let i = before.length - 1; i >= 0; i--) {
    const oldVal = before[i];
    if (i < after.length) {
      const newVal = after[i];
      if (oldVal === newVal) continue;
      if (isObject(oldVal) && isObject(newVal) && Array.isArray(oldVal) === Array.isArray(newVal)) diffInto(oldVal, newVal, `${path}/${i}`, operations);
      else operations.push({ op: 'replace', path: `${path}/${i}`, value: newVal === undefined ? null : newVal });
    } else {
      operations.push({ op: 'remove', path: `${path}/${i}` });
      deleted = true;
    }
  }
  if (!deleted && after.length === before.length) return;
  for (let i = before.length; i < after.length; i++) {
    const value = after[i];
    if (value !== undefined) operations.push({ op: 'add', path: `${path}/${i}`, value });
  }
}

function withoutManagedFields(pod: Pod): Json {
  if (pod.metadata?.managedFields === undefined) return pod as Json;
  const { managedFields: _managedFields, ...metadata } = pod.metadata;
  return { ...pod, metadata } as Json;
}

