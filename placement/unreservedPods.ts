/**
 * Pods the exporter maps to a GPU that hold no reservation on it: MPS clients placement
 * counts against a GPU's client cap beside its reservations. Pure.
 */
import type { GpuPodRef } from '../domain/inventory.js';
import type { Reservation } from '../domain/slot.js';

function podKeyIs(podKey: string, pod: GpuPodRef): boolean {
  return (
    podKey.length === pod.namespace.length + 1 + pod.pod.length &&
    podKey.charCodeAt(pod.namespace.length) === 47 /* '/' */ &&
    podKey.startsWith(pod.namespace) &&
    podKey.endsWith(pod.pod)
  );
}

/**
 * Pods the exporter maps to a GPU (device-plugin allocations, or processes the webhook did
 * not place) that hold no reservation on it: each distinct namespace/pod counts once.
 */
export function countUnreservedPods(pods: readonly GpuPodRef[], reservations: readonly Reservation[]): number {
  let count = 0;
  outer: for (let i = 0; i < pods.length; i++) {
    const pod = pods[i];
    if (pod === undefined) continue;
    for (let j = 0; j < i; j++) {
      const earlier = pods[j];
      if (earlier !== undefined && earlier.namespace === pod.namespace && earlier.pod === pod.pod) continue outer;
    }
    for (const r of reservations) if (podKeyIs(r.podKey, pod)) continue outer;
    count++;
  }
  return count;
}
