/**
 * Whole-system test: the built webhook as a child process, real TLS verified against the CA
 * from `certs generate`, a stand-in dcgm-exporter, AdmissionReviews in, patches applied.
 */
import fjp from 'fast-json-patch';
import type { Operation } from 'fast-json-patch';
import type { Pod } from 'kubernetes-types/core/v1.js';
import type { GpuSample } from '../domain/inventory.js';
import { H100_TOTAL_MIB, h100 } from '../testing/gpuSamples.js';
import type { StandInExporter } from '../testing/standInExporter.js';
import { startStandInExporter } from '../testing/standInExporter.js';
import { gpuPodReview, loadCapturedReview } from './support/reviews.js';
import type { GeneratedCerts, WebhookProcess } from './support/webhookProcess.js';
import { generateCerts, httpsRequest, startWebhookProcess, waitUntilReady } from './support/webhookProcess.js';

const TOTAL_MIB = H100_TOTAL_MIB;
const MARGIN_MIB = 1024;

const memory = { totalMiB: TOTAL_MIB, usedMiB: 500, freeMiB: TOTAL_MIB - 500, reservedMiB: 0 };
const cluster = (): GpuSample[] => ['gpu-node-a', 'gpu-node-b'].flatMap((node) => [0, 1].map((i) => h100(node, i, Date.now(), { memory })));

interface ReviewAnswer {
  apiVersion: string;
  response: { uid: string; allowed: boolean; patch?: string; patchType?: string; warnings?: string[]; status?: { code: number; message: string } };
}

let certs: GeneratedCerts;
let exporter: StandInExporter;
let webhook: WebhookProcess;

async function admit(review: Record<string, unknown>): Promise<ReviewAnswer> {
  const r = await httpsRequest(webhook.port, certs.caPem, { method: 'POST', path: '/mutate', body: JSON.stringify(review) });
  expect(r.status).toBe(200);
  return r.json() as ReviewAnswer;
}

function applyAnswer(review: Record<string, unknown>, answer: ReviewAnswer): Pod {
  const pod = structuredClone((review.request as { object: Pod }).object);
  if (!answer.response.patch) return pod;
  const ops = JSON.parse(Buffer.from(answer.response.patch, 'base64').toString('utf8')) as Operation[];
  return fjp.applyPatch(pod, ops, true, false).newDocument;
}

beforeAll(async () => {
  certs = await generateCerts();
  exporter = await startStandInExporter(cluster(), { slowMs: 3000 });
  webhook = await startWebhookProcess(
    {
      metrics: { source: 'exporters', exporterUrls: [exporter.url], refreshSeconds: 0.2, timeoutMs: 1000 },
      placement: { maxMetricsAgeSeconds: 5, memorySafetyMarginMiB: MARGIN_MIB, maxThreadPercentSum: 200 },
      reservations: { ttlSeconds: 600 },
    },
    certs,
  );
  await waitUntilReady(webhook.port, certs.caPem);
});

afterAll(async () => {
  await webhook?.stop();
  await exporter?.close();
});

test('a v1 review over verified TLS is answered with a patch that injects MPS', async () => {
  const review = gpuPodReview({ uid: 'e2e-v1', name: 'echo-1', annotations: { 'mps-injector.io/gpu-memory': '10Gi', 'mps-injector.io/gpu-percent': '25' } });
  const answer = await admit(review);
  expect(answer.apiVersion).toBe('admission.k8s.io/v1');
  expect(answer.response.uid).toBe('e2e-v1');
  expect(answer.response.allowed).toBe(true);
  expect(answer.response.patchType).toBe('JSONPatch');
  const pod = applyAnswer(review, answer);
  const env = Object.fromEntries((pod.spec?.containers[0]?.env ?? []).map((e) => [e.name, e.value]));
  expect(env.CUDA_MPS_ACTIVE_THREAD_PERCENTAGE).toBe('25');
  expect(env.CUDA_MPS_PINNED_DEVICE_MEM_LIMIT).toBe('0=10240M');
  expect(cluster().map((g) => g.uuid)).toContain(env.NVIDIA_VISIBLE_DEVICES);
  const node = pod.metadata?.annotations?.['mps-injector.io/node'];
  expect(['gpu-node-a', 'gpu-node-b']).toContain(node);
  expect(pod.spec?.nodeSelector?.['kubernetes.io/hostname']).toBe(node);
  expect(pod.spec?.initContainers?.[0]?.name).toBe('mps-injector-wait-mps');
  // The managedFields of the captured review are not touched by the patch.
  expect(pod.metadata?.managedFields).toEqual(((review.request as { object: Pod }).object.metadata?.managedFields));
});

test('a v1beta1 review is answered in v1beta1', async () => {
  const review = gpuPodReview({ uid: 'e2e-v1beta1', name: '', version: 'v1beta1', annotations: { 'mps-injector.io/gpu-memory': '2Gi' } });
  const answer = await admit(review);
  expect(answer.apiVersion).toBe('admission.k8s.io/v1beta1');
  expect(answer.response.allowed).toBe(true);
  const pod = applyAnswer(review, answer);
  expect(pod.metadata?.generateName).toBe('echoheaders-deployment-6f8fb55c79-');
  expect(pod.metadata?.annotations?.['mps-injector.io/reservation']).toBeTruthy();
});

test('bad requests get 400 / 413 / 415 with a message, and the server keeps serving', async () => {
  const wrongType = await httpsRequest(webhook.port, certs.caPem, { method: 'POST', path: '/mutate', body: '{}', contentType: 'text/plain' });
  expect(wrongType.status).toBe(415);
  expect(wrongType.body).toContain('application/json');

  const malformed = await httpsRequest(webhook.port, certs.caPem, { method: 'POST', path: '/mutate', body: '{"kind": "AdmissionRev' });
  expect(malformed.status).toBe(400);
  expect(malformed.body).toContain('not valid JSON');

  const notAReview = await httpsRequest(webhook.port, certs.caPem, { method: 'POST', path: '/mutate', body: JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }) });
  expect(notAReview.status).toBe(400);
  expect(notAReview.body).toContain('request');

  const huge = await httpsRequest(webhook.port, certs.caPem, { method: 'POST', path: '/mutate', body: Buffer.alloc(3 * 1024 * 1024 + 10, 32) });
  expect(huge.status).toBe(413);

  const health = await httpsRequest(webhook.port, certs.caPem, { path: '/healthz' });
  expect(health.status).toBe(200);
});

test('non-Pod and opted-out requests are allowed without a patch', async () => {
  const review = loadCapturedReview('v1-pod-create-kubectl.json.txt');
  const request = review.request as Record<string, unknown>;
  request.uid = 'e2e-update';
  request.operation = 'UPDATE';
  const answer = await admit(review);
  expect(answer.response.allowed).toBe(true);
  expect(answer.response.patch).toBeUndefined();
});

test('metrics endpoint reports requests, latency in seconds, decisions and reservations', async () => {
  const r = await httpsRequest(webhook.port, certs.caPem, { path: '/metrics' });
  expect(r.status).toBe(200);
  expect(r.body).toMatch(/mps_injector_admission_requests_total\{outcome="mutated"\} [1-9]/);
  expect(r.body).toContain('mps_injector_admission_duration_seconds_bucket');
  expect(r.body).toMatch(/mps_injector_decisions_total\{result="granted",reason="binpack"\} [1-9]/);
  expect(r.body).toMatch(/mps_injector_reservations\{state="pending"\} [1-9]/);
  expect(r.body).toMatch(/mps_injector_metrics_age_seconds [0-9.]+/);
});

test('a burst of 200 concurrent admissions never over-grants a GPU, and the surplus is refused with reasons', async () => {
  const ask = 20 * 1024;
  const reviews = Array.from({ length: 200 }, (_, i) =>
    gpuPodReview({ uid: `burst-${i}`, name: `burst-${i}`, annotations: { 'mps-injector.io/gpu-memory': '20Gi', 'mps-injector.io/gpu-percent': '20' } }),
  );
  const answers = await Promise.all(reviews.map((r) => admit(r)));

  const grantedMiB = new Map<string, number>();
  let granted = 0;
  const refusals: string[] = [];
  answers.forEach((answer, i) => {
    if (answer.response.allowed) {
      const pod = applyAnswer(reviews[i]!, answer);
      const uuid = pod.metadata?.annotations?.['mps-injector.io/gpu-uuid'] ?? '';
      expect(pod.metadata?.annotations?.['mps-injector.io/memory-limit']).toBe(`${ask}Mi`);
      grantedMiB.set(uuid, (grantedMiB.get(uuid) ?? 0) + ask);
      granted += 1;
    } else {
      refusals.push(answer.response.status?.message ?? '');
    }
  });
  const perGpuCapacity = TOTAL_MIB - 500 - MARGIN_MIB;
  for (const [uuid, mib] of grantedMiB) {
    expect({ uuid, fits: mib <= perGpuCapacity }).toEqual({ uuid, fits: true });
  }
  // Each GPU has room for floor(80035 / 20480) = 3 such pods. The earlier tests hold at most
  // 12Gi on any one GPU, which leaves that room intact (80035 - 12288 >= 3 * 20480), so exactly
  // 4 x 3 pods fit: no more (over-grant) and no fewer (lost capacity).
  expect(granted).toBe(12);
  expect(grantedMiB.size).toBe(4);
  expect(refusals.length).toBe(200 - granted);
  for (const message of refusals) expect(message).toMatch(/no GPU fits 20Gi: \d+ considered/);
});

test('a metrics outage gives refusals with reasons within the timeout, then recovers', async () => {
  exporter.setMode('down');
  const started = Date.now();
  let refusal = '';
  // The last good sample ages past placement.maxMetricsAgeSeconds (5 s); admissions are refused from then on.
  while (Date.now() - started < 15_000) {
    const t0 = Date.now();
    const answer = await admit(gpuPodReview({ uid: `outage-${Date.now()}`, name: 'outage', annotations: { 'mps-injector.io/gpu-memory': '1Gi' } }));
    expect(Date.now() - t0).toBeLessThan(5000);
    if (!answer.response.allowed) {
      refusal = answer.response.status?.message ?? '';
      break;
    }
    await exporter.nextScrape();
  }
  expect(refusal).toMatch(/stale|no fresh|metrics/i);
  // Every GPU is stale: the replica leaves rotation and says why, while liveness stays up.
  const stale = await httpsRequest(webhook.port, certs.caPem, { path: '/readyz' });
  expect(stale.status).toBe(503);
  expect(stale.body).toContain('no GPU has metrics younger than placement.maxMetricsAgeSeconds (5 s)');
  expect((await httpsRequest(webhook.port, certs.caPem, { path: '/healthz' })).status).toBe(200);

  exporter.setMode('slow');
  await exporter.nextScrape();
  const t0 = Date.now();
  const slowAnswer = await admit(gpuPodReview({ uid: 'outage-slow', name: 'outage-slow', annotations: { 'mps-injector.io/gpu-memory': '1Gi' } }));
  expect(Date.now() - t0).toBeLessThan(5000);
  expect(slowAnswer.response.allowed).toBe(false);

  exporter.setMode('up');
  let recovered = false;
  for (let i = 0; i < 50 && !recovered; i++) {
    await exporter.nextScrape();
    const answer = await admit(gpuPodReview({ uid: `recover-${i}`, name: `recover-${i}`, annotations: { 'mps-injector.io/gpu-memory': '1Gi' } }));
    recovered = answer.response.allowed;
  }
  expect(recovered).toBe(true);
  expect((await httpsRequest(webhook.port, certs.caPem, { path: '/readyz' })).status).toBe(200);
});

test('SIGTERM drains and exits cleanly', async () => {
  const code = await webhook.stop();
  expect(code).toBe(0);
  expect(webhook.logs.some((l) => String(l.msg).includes('shutdown complete'))).toBe(true);
});
