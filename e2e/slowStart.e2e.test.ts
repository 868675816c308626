/**
 * Whole-system test of capacity accounting under real cluster timing: a ReplicaSet creates 60
 * pods in slow-start batches (1, 2, 4, 8, 16, 29) across many metric refreshes of a fixed dump
 * in which nothing the webhook placed runs yet. No GPU may be granted beyond its memory. Then
 * the pods run (status updates with a start older than the warm-up) and the dump shows their
 * use: the webhook's free room must match the arithmetic, neither double counting nor losing
 * the grants.
 */
import type { GpuSample } from '../domain/inventory.js';
import { H100_TOTAL_MIB, h100 } from '../testing/gpuSamples.js';
import type { StoredObject } from '../testing/standInApiServer.js';
import { defaultConfig } from '../config/schema.js';
import { startClusterWebhook } from './support/clusterWebhook.js';
import type { ClusterWebhook } from './support/clusterWebhook.js';
import { gpuPodReview, storedPodAfter } from './support/reviews.js';

const GIB = 1024;
const NODE = 'gpu-node-a';
const MARGIN_MIB = defaultConfig().placement.memorySafetyMarginMiB;
const WARM_UP_MS = defaultConfig().placement.observeAfterRunningSeconds * 1000;
/** Memory in use on each GPU by processes the webhook did not place (GPU 0 carries a 10 GiB job). */
const UNRESERVED_MIB = [10 * GIB, 0];
const BATCHES = [1, 2, 4, 8, 16, 29];

let cluster: ClusterWebhook;
const gpusWithUse = (extraMiB: readonly number[]): GpuSample[] =>
  [0, 1].map((i) => {
    const used = (UNRESERVED_MIB[i] ?? 0) + (extraMiB[i] ?? 0);
    return h100(NODE, i, Date.now(), { memory: { totalMiB: H100_TOTAL_MIB, usedMiB: used, freeMiB: H100_TOTAL_MIB - used, reservedMiB: 0 } });
  });

beforeAll(async () => {
  cluster = await startClusterWebhook({ node: NODE, exporterGpus: gpusWithUse([0, 0]), config: {} });
});

afterAll(async () => {
  await cluster?.stop();
});

interface Grant {
  pod: StoredObject;
  gpuUuid: string;
  memoryMiB: number;
}

test('a ReplicaSet rollout of 60 pods that exist but do not run never over-grants a GPU; once they run, free room matches the arithmetic', async () => {
  const uuids = gpusWithUse([0, 0]).map((g) => g.uuid);
  const grants: Grant[] = [];
  const refusals: string[] = [];
  let refreshes = 0;
  let next = 0;

  for (const size of BATCHES) {
    const batch = Array.from({ length: size }, () => next++);
    await Promise.all(
      batch.map(async (i) => {
        const review = gpuPodReview({ uid: `rollout-${i}`, name: '', version: 'v1beta1', annotations: { 'mps-injector.io/gpu-memory': '12Gi' } });
        const answer = (await cluster.mutate(review)).json() as { response: { allowed: boolean; patch?: string; status?: { message: string } } };
        if (!answer.response.allowed) {
          refusals.push(answer.response.status?.message ?? '');
          return;
        }
        // The API server stores the pod right after admission; it stays Pending (scheduling, image pull).
        const pod = cluster.api.create('pods', storedPodAfter(review, answer.response.patch ?? '', { suffix: `p${i}`, nodeName: NODE }) as unknown as StoredObject);
        const annotations = pod.metadata.annotations ?? {};
        grants.push({ pod, gpuUuid: annotations['mps-injector.io/gpu-uuid'] ?? '', memoryMiB: parseInt(annotations['mps-injector.io/memory-limit'] ?? '0', 10) });
      }),
    );
    // The controller's next batch comes after a couple of metric refreshes that still show none of these pods.
    for (let k = 0; k < 2; k++) {
      await cluster.exporter.nextScrape();
      refreshes++;
    }
  }

  expect(grants.length + refusals.length).toBe(60);
  expect(refreshes).toBeGreaterThanOrEqual(10);
  const grantedOn = uuids.map((uuid) => grants.filter((g) => g.gpuUuid === uuid).reduce((sum, g) => sum + g.memoryMiB, 0));
  // The promise: granted + what the webhook did not place + margin <= total, on every GPU.
  uuids.forEach((uuid, i) => {
    expect({ uuid, committed: (grantedOn[i] ?? 0) + (UNRESERVED_MIB[i] ?? 0) + MARGIN_MIB <= H100_TOTAL_MIB }).toEqual({ uuid, committed: true });
  });
  // And it still packs: the room left on each GPU is less than one more pod.
  uuids.forEach((_uuid, i) => expect(H100_TOTAL_MIB - (grantedOn[i] ?? 0) - (UNRESERVED_MIB[i] ?? 0) - MARGIN_MIB).toBeLessThan(12 * GIB));
  expect(refusals.every((m) => /no GPU fits 12Gi/.test(m))).toBe(true);

  // The pods run: their containers started longer ago than the warm-up, and the dump shows their use.
  const startedAt = new Date(Date.now() - WARM_UP_MS - 60_000).toISOString();
  for (const { pod } of grants) {
    const containers = (pod.metadata.annotations?.['mps-injector.io/containers'] ?? '').split(',');
    cluster.api.modify('pods', pod.metadata.namespace ?? null, pod.metadata.name ?? '', (p) => {
      (p as { status?: unknown }).status = {
        phase: 'Running',
        containerStatuses: containers.map((name) => ({ name, ready: true, restartCount: 0, image: 'x', imageID: '', state: { running: { startedAt } } })),
      };
    });
  }
  cluster.exporter.setGpus(gpusWithUse(grantedOn));

  const expectedFree = uuids.map((_uuid, i) => H100_TOTAL_MIB - (UNRESERVED_MIB[i] ?? 0) - (grantedOn[i] ?? 0) - MARGIN_MIB);
  const freeOf = (text: string, uuid: string): number | null => {
    const line = text.split('\n').find((l) => l.startsWith('mps_injector_gpu_memory_free_bytes{') && l.includes(`gpu_uuid="${uuid}"`));
    return line === undefined ? null : Number(line.slice(line.lastIndexOf(' ') + 1)) / (1024 * 1024);
  };
  let free: (number | null)[] = [];
  for (let attempt = 0; attempt < 40; attempt++) {
    await cluster.exporter.nextScrape();
    const text = await cluster.metrics();
    free = uuids.map((uuid) => freeOf(text, uuid));
    if (free.every((f, i) => f !== null && Math.abs(f - (expectedFree[i] ?? 0)) <= 1)) break;
  }
  // Neither double counted (free would be lower by the grants) nor lost (higher by them): within 1 MiB.
  free.forEach((f, i) => expect(Math.abs((f ?? Infinity) - (expectedFree[i] ?? 0))).toBeLessThanOrEqual(1));
}, 90_000);
