/**
 * Pods as the API server stores them after the webhook placed them: the decision annotations
 * with a valid seal under the test key ring, a UID, and container statuses. One builder for the
 * tracker, integration and whole-system tests.
 */
import { podIdentityOf, recordAnnotations, sealDecision } from '../domain/decisionRecord.js';
import { Label } from '../domain/names.js';
import type { Priority } from '../domain/slot.js';
import { TEST_KEY_RING } from './decisionKeys.js';

export interface SealedPodSpec {
  name: string;
  namespace?: string;
  /** Sealed under this generateName instead of the name (a ReplicaSet's pod). */
  generateName?: string;
  uid?: string;
  reservationId: string;
  node?: string;
  gpuUuid?: string;
  gpuIndex?: number;
  memoryMiB?: number;
  threadPercent?: number;
  priority?: Priority;
  containers?: string[];
  issuedAtMs?: number;
  phase?: string;
  /** Start time of every GPU container (running), or undefined while none runs. */
  runningSince?: string;
}

export interface SealedPod {
  apiVersion: 'v1';
  kind: 'Pod';
  metadata: { name: string; namespace: string; generateName?: string; uid: string; creationTimestamp: string; labels: Record<string, string>; annotations: Record<string, string> };
  spec: { containers: { name: string; image: string }[]; nodeName?: string };
  status: { phase: string; containerStatuses?: { name: string; ready: boolean; restartCount: number; image: string; imageID: string; state: { running?: { startedAt: string }; waiting?: { reason: string } } }[] };
}

export function sealedPod(spec: SealedPodSpec): SealedPod {
  const namespace = spec.namespace ?? 'ml';
  const containers = spec.containers ?? ['server'];
  const choice = {
    ok: true as const,
    node: spec.node ?? 'node-a',
    gpuUuid: spec.gpuUuid ?? 'GPU-11111111-1111-1111-1111-111111111111',
    gpuIndex: spec.gpuIndex ?? 0,
    gpuModel: 'NVIDIA H100 80GB HBM3',
    threadPercent: spec.threadPercent ?? 25,
    memoryLimitMiB: spec.memoryMiB ?? 8192,
    priority: spec.priority ?? ('high' as Priority),
    metricsAgeSeconds: 3,
    considered: 8,
    reason: 'test placement',
  };
  const identity = podIdentityOf({ metadata: spec.generateName !== undefined ? { generateName: spec.generateName } : { name: spec.name } }, namespace);
  const seal = sealDecision(
    { pod: identity, reservationId: spec.reservationId, node: choice.node, gpuUuid: choice.gpuUuid, gpuIndex: choice.gpuIndex, threadPercent: choice.threadPercent, memoryLimitMiB: choice.memoryLimitMiB, priority: choice.priority, containers, issuedAtMs: spec.issuedAtMs ?? 1_700_000_000_000 },
    TEST_KEY_RING,
  );
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: spec.name,
      namespace,
      ...(spec.generateName !== undefined ? { generateName: spec.generateName } : {}),
      uid: spec.uid ?? `uid-${namespace}-${spec.name}`,
      creationTimestamp: '2026-01-01T00:00:00Z',
      labels: { [Label.Injected]: 'true' },
      annotations: recordAnnotations(choice, spec.reservationId, containers, {}, seal),
    },
    spec: { containers: containers.map((name) => ({ name, image: 'vllm/vllm-openai:v0.6.3' })) },
    status: {
      phase: spec.phase ?? (spec.runningSince !== undefined ? 'Running' : 'Pending'),
      ...(spec.runningSince !== undefined
        ? { containerStatuses: containers.map((name) => ({ name, ready: true, restartCount: 0, image: 'vllm/vllm-openai:v0.6.3', imageID: '', state: { running: { startedAt: spec.runningSince as string } } })) }
        : {}),
    },
  };
}
