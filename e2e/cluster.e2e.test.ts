/**
 * Whole-system test of cluster mode: the built webhook as a child process against the
 * in-process stand-in API server, with self-managed certificates (Secret created, caBundle
 * patched), dcgm-exporter discovery, durable reservations and confirmation from the pod watch.
 */
import { X509Certificate } from 'node:crypto';
import { h100 } from '../testing/gpuSamples.js';
import type { StandInApiServer, StoredObject } from '../testing/standInApiServer.js';
import { gpuPodReview, storedPodAfter } from './support/reviews.js';
import type { StandInExporter } from '../testing/standInExporter.js';
import type { WebhookProcess } from './support/webhookProcess.js';
import { httpsRequest } from './support/webhookProcess.js';
import { CLUSTER_NS, WEBHOOK_CONFIG, startClusterWebhook } from './support/clusterWebhook.js';
import type { ClusterWebhook } from './support/clusterWebhook.js';

const NS = CLUSTER_NS;

let api: StandInApiServer;
let exporter: StandInExporter;
let webhook: WebhookProcess;
let caPem = '';
let cluster: ClusterWebhook;

beforeAll(async () => {
  // The exporter's host label says "wrong-host": discovery must map its GPUs to the pod's node instead.
  cluster = await startClusterWebhook({ node: 'gpu-node-a', exporterGpus: [0, 1].map((i) => h100('wrong-host', i, Date.now())) });
  ({ api, exporter, webhook, caPem } = cluster);
});

afterAll(async () => {
  await cluster?.stop();
});

test('self-managed certificates: the Secret holds the CA, the server serves a leaf it signed, and the caBundle is patched', async () => {
  expect(caPem).toContain('BEGIN CERTIFICATE');
  const mwc = api.get('mutatingwebhookconfigurations', null, WEBHOOK_CONFIG) as unknown as { webhooks: { clientConfig: { caBundle?: string } }[] };
  expect(Buffer.from(mwc.webhooks[0]?.clientConfig.caBundle ?? '', 'base64').toString('utf8')).toContain(caPem.trim());
  const served = await new Promise<X509Certificate>((resolve, reject) => {
    import('node:tls').then(({ connect }) => {
      const socket = connect({ host: '127.0.0.1', port: webhook.port, ca: caPem, servername: `mps-injector.${NS}.svc` }, () => {
        const cert = socket.getPeerX509Certificate();
        socket.end();
        if (cert) resolve(cert);
        else reject(new Error('no peer certificate'));
      });
      socket.on('error', reject);
    }, reject);
  });
  expect(served.checkIssued(new X509Certificate(caPem))).toBe(true);
  expect(served.subjectAltName).toContain(`DNS:mps-injector.${NS}.svc`);
});

test('a pod is placed on the discovered exporter node, its reservation is durable, and the pod watch confirms it', async () => {
  const review = gpuPodReview({ uid: 'cluster-1', name: 'llm-1', annotations: { 'mps-injector.io/gpu-memory': '8Gi' } });
  const r = await httpsRequest(webhook.port, caPem, { method: 'POST', path: '/mutate', body: JSON.stringify(review), servername: `mps-injector.${NS}.svc` });
  const answer = r.json() as { response: { allowed: boolean; patch?: string; status?: { message: string } } };
  expect(answer.response.status?.message).toBeUndefined();
  expect(answer.response.allowed).toBe(true);
  const ops = JSON.parse(Buffer.from(answer.response.patch ?? '', 'base64').toString()) as { op: string; path: string; value: unknown }[];
  const annotations = ops.find((o) => o.path === '/metadata/annotations/mps-injector.io~1reservation');
  expect(annotations).toBeDefined();
  const reservationId = String(annotations?.value);
  expect(ops.find((o) => o.path === '/metadata/annotations/mps-injector.io~1node')?.value).toBe('gpu-node-a');

  // The grant is recorded in the API server before the answer (one ConfigMap per GPU).
  const records = api.list('configmaps', NS).filter((c) => JSON.stringify(c).includes(reservationId));
  expect(records).toHaveLength(1);

  // The pod appears in the API (as the API server would create it after admission): the watch confirms the reservation.
  const stored = storedPodAfter(review, answer.response.patch ?? '', { nodeName: 'gpu-node-a', status: { phase: 'Running' } }) as unknown as StoredObject;
  expect(stored.metadata.labels?.['mps-injector.io/injected']).toBe('true');
  api.create('pods', stored);
  let confirmed = false;
  for (let i = 0; i < 200 && !confirmed; i++) {
    const metrics = await httpsRequest(webhook.port, caPem, { path: '/metrics', servername: `mps-injector.${NS}.svc` });
    confirmed = /mps_injector_reservations\{state="confirmed"\} 1/.test(metrics.body);
    if (!confirmed) await exporter.nextScrape();
  }
  expect(confirmed).toBe(true);
});

test('a cordoned node gets no new pods, with the reason', async () => {
  api.modify('nodes', null, 'gpu-node-a', (n) => {
    (n as { spec?: Record<string, unknown> }).spec = { unschedulable: true };
  });
  let message = '';
  for (let i = 0; i < 200 && message === ''; i++) {
    const review = gpuPodReview({ uid: `cordon-${i}`, name: `cordon-${i}`, annotations: { 'mps-injector.io/gpu-memory': '1Gi' } });
    const r = await httpsRequest(webhook.port, caPem, { method: 'POST', path: '/mutate', body: JSON.stringify(review), servername: `mps-injector.${NS}.svc` });
    const answer = r.json() as { response: { allowed: boolean; status?: { message: string } } };
    if (!answer.response.allowed) message = answer.response.status?.message ?? '';
    else await exporter.nextScrape();
  }
  expect(message).toMatch(/no GPU fits 1Gi/);
  expect(message).toMatch(/unschedulable|cordoned/i);
});
