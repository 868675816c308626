/**
 * Whole-system test of cluster mode: the built webhook as a child process against the
 * in-process stand-in API server, with self-managed certificates (Secret created, caBundle
 * patched), dcgm-exporter discovery, durable reservations and confirmation from the pod watch.
 */
import { X509Certificate } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { h100 } from '../dcgm/testing/gpuSamples.js';
import { StandInApiServer } from '../kube/testing/standInApiServer.js';
import type { StoredObject } from '../kube/testing/standInApiServer.js';
import { gpuPodReview } from './support/reviews.js';
import type { StandInExporter } from './support/standInExporter.js';
import { startStandInExporter } from './support/standInExporter.js';
import type { WebhookProcess } from './support/webhookProcess.js';
import { httpsRequest, spawnWebhook, waitUntilReady } from './support/webhookProcess.js';

const NS = 'mps-system';
const WEBHOOK_CONFIG = 'mps-injector';

let api: StandInApiServer;
let exporter: StandInExporter;
let webhook: WebhookProcess;
let caPem = '';

const readyNode = (name: string): StoredObject => ({
  metadata: { name, labels: { 'nvidia.com/gpu.product': 'NVIDIA-H100-80GB-HBM3' } },
  status: { conditions: [{ type: 'Ready', status: 'True' }] },
});

beforeAll(async () => {
  api = await StandInApiServer.start();
  // The exporter's host label says "wrong-host": discovery must map its GPUs to the pod's node instead.
  exporter = await startStandInExporter([0, 1].map((i) => h100('wrong-host', i, Date.now())));
  const exporterPort = Number(new URL(exporter.url).port);
  api.create('nodes', readyNode('gpu-node-a'));
  api.create('pods', {
    metadata: { name: 'nvidia-dcgm-exporter-abcde', namespace: 'gpu-operator', labels: { app: 'nvidia-dcgm-exporter' } },
    spec: { nodeName: 'gpu-node-a', containers: [{ name: 'exporter', image: 'dcgm-exporter' }] },
    status: { phase: 'Running', podIP: '127.0.0.1' },
  });
  api.create('mutatingwebhookconfigurations', {
    metadata: { name: WEBHOOK_CONFIG },
    webhooks: [{ name: 'pods.mps-injector.io', clientConfig: { service: { name: 'mps-injector', namespace: NS, path: '/mutate' } } }],
  } as StoredObject);

  const dir = await mkdtemp(path.join(tmpdir(), 'mps-injector-cluster-'));
  const kubeconfig = path.join(dir, 'kubeconfig');
  await writeFile(kubeconfig, api.kubeConfig().exportConfig());
  const configFile = path.join(dir, 'config.yaml');
  await writeFile(
    configFile,
    stringify({
      server: { host: '127.0.0.1', port: 0, tlsCertFile: path.join(dir, 'tls/tls.crt'), tlsKeyFile: path.join(dir, 'tls/tls.key'), drainDelaySeconds: 0 },
      cluster: { enabled: true, namespace: NS },
      certificates: { mode: 'self-managed', secretName: 'mps-injector-tls', serviceName: 'mps-injector', mutatingWebhookConfigurationName: WEBHOOK_CONFIG },
      metrics: { source: 'discovery', refreshSeconds: 0.5, discovery: { namespace: 'gpu-operator', labelSelector: 'app=nvidia-dcgm-exporter', port: exporterPort } },
    }),
  );
  webhook = await spawnWebhook(['serve', '--config', configFile], { env: { KUBECONFIG: kubeconfig, POD_NAME: 'mps-injector-0' } });
  const secret = api.get('secrets', NS, 'mps-injector-tls') as { data?: Record<string, string> } | null;
  caPem = Buffer.from(secret?.data?.['ca.crt'] ?? '', 'base64').toString('utf8');
  await waitUntilReady(webhook.port, caPem, 20_000, `mps-injector.${NS}.svc`);
});

afterAll(async () => {
  await webhook?.stop();
  await exporter?.close();
  await api?.stop();
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
  const annotationsOf = Object.fromEntries(ops.filter((o) => o.path.startsWith('/metadata/annotations/')).map((o) => [o.path.slice('/metadata/annotations/'.length).replace('~1', '/'), String(o.value)]));
  const labelsOf = Object.fromEntries(ops.filter((o) => o.path.startsWith('/metadata/labels/')).map((o) => [o.path.slice('/metadata/labels/'.length).replace('~1', '/'), String(o.value)]));
  expect(labelsOf['mps-injector.io/injected']).toBe('true');
  api.create('pods', { metadata: { name: 'llm-1', namespace: 'colin-coder', labels: { app: 'echo-server', ...labelsOf }, annotations: annotationsOf }, spec: { nodeName: 'gpu-node-a', containers: [{ name: 'c', image: 'x' }] }, status: { phase: 'Running' } });
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
