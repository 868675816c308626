/**
 * The built webhook in cluster mode against the in-process stand-in API server: self-managed
 * certificates, dcgm-exporter discovery of one stand-in exporter on one GPU node, durable
 * reservations and the pod watch. Shared by the whole-system tests of cluster mode.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import type { GpuSample } from '../../domain/inventory.js';
import { StandInApiServer } from '../../testing/standInApiServer.js';
import type { StoredObject } from '../../testing/standInApiServer.js';
import type { StandInExporter } from '../../testing/standInExporter.js';
import { startStandInExporter } from '../../testing/standInExporter.js';
import type { HttpsReply, WebhookProcess } from './webhookProcess.js';
import { httpsRequest, spawnWebhook, waitUntilReady } from './webhookProcess.js';

export const CLUSTER_NS = 'mps-system';
export const WEBHOOK_CONFIG = 'mps-injector';
export const SERVER_NAME = `mps-injector.${CLUSTER_NS}.svc`;

export interface ClusterWebhook {
  api: StandInApiServer;
  exporter: StandInExporter;
  webhook: WebhookProcess;
  caPem: string;
  /** POST an AdmissionReview to /mutate. */
  mutate(review: unknown): Promise<HttpsReply>;
  /** GET /metrics text. */
  metrics(): Promise<string>;
  stop(): Promise<void>;
}

export const readyNode = (name: string): StoredObject => ({
  metadata: { name, labels: { 'nvidia.com/gpu.product': 'NVIDIA-H100-80GB-HBM3' } },
  status: { conditions: [{ type: 'Ready', status: 'True' }] },
});

/** Start the stand-ins and the webhook; `exporterGpus` are served for node `node` (their host label is ignored: discovery maps them to the pod's node). */
export async function startClusterWebhook(opts: { node: string; exporterGpus: GpuSample[]; config?: Record<string, unknown> }): Promise<ClusterWebhook> {
  const api = await StandInApiServer.start();
  const exporter = await startStandInExporter(opts.exporterGpus);
  const exporterPort = Number(new URL(exporter.url).port);
  api.create('nodes', readyNode(opts.node));
  // The chart's MPS control daemon, Ready on the node: placement requires one (cluster.mpsDaemon).
  api.create('pods', {
    metadata: { name: 'mps-injector-mps-daemon-x7k2p', namespace: CLUSTER_NS, labels: { 'app.kubernetes.io/name': 'mps-injector', 'app.kubernetes.io/component': 'mps-daemon' } },
    spec: { nodeName: opts.node, containers: [{ name: 'mps-control-daemon', image: 'cuda' }] },
    status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] },
  });
  api.create('pods', {
    metadata: { name: 'nvidia-dcgm-exporter-abcde', namespace: 'gpu-operator', labels: { app: 'nvidia-dcgm-exporter' } },
    spec: { nodeName: opts.node, containers: [{ name: 'exporter', image: 'dcgm-exporter' }] },
    status: { phase: 'Running', podIP: '127.0.0.1' },
  });
  api.create('mutatingwebhookconfigurations', {
    metadata: { name: WEBHOOK_CONFIG },
    webhooks: [{ name: 'pods.mps-injector.io', clientConfig: { service: { name: 'mps-injector', namespace: CLUSTER_NS, path: '/mutate' } } }],
  } as StoredObject);

  const dir = await mkdtemp(path.join(tmpdir(), 'mps-injector-cluster-'));
  const kubeconfig = path.join(dir, 'kubeconfig');
  await writeFile(kubeconfig, api.kubeConfig().exportConfig());
  const configFile = path.join(dir, 'config.yaml');
  await writeFile(
    configFile,
    stringify({
      server: { host: '127.0.0.1', port: 0, tlsCertFile: path.join(dir, 'tls/tls.crt'), tlsKeyFile: path.join(dir, 'tls/tls.key'), drainDelaySeconds: 0 },
      cluster: { enabled: true, namespace: CLUSTER_NS },
      certificates: { mode: 'self-managed', secretName: 'mps-injector-tls', serviceName: 'mps-injector', mutatingWebhookConfigurationName: WEBHOOK_CONFIG },
      metrics: { source: 'discovery', refreshSeconds: 0.5, discovery: { namespace: 'gpu-operator', labelSelector: 'app=nvidia-dcgm-exporter', port: exporterPort } },
      ...opts.config,
    }),
  );
  const webhook = await spawnWebhook(['serve', '--config', configFile], { env: { KUBECONFIG: kubeconfig, POD_NAME: 'mps-injector-0' } });
  const secret = api.get('secrets', CLUSTER_NS, 'mps-injector-tls') as { data?: Record<string, string> } | null;
  const caPem = Buffer.from(secret?.data?.['ca.crt'] ?? '', 'base64').toString('utf8');
  await waitUntilReady(webhook.port, caPem, 20_000, SERVER_NAME);
  return {
    api,
    exporter,
    webhook,
    caPem,
    mutate: (review) => httpsRequest(webhook.port, caPem, { method: 'POST', path: '/mutate', body: JSON.stringify(review), servername: SERVER_NAME }),
    metrics: async () => (await httpsRequest(webhook.port, caPem, { path: '/metrics', servername: SERVER_NAME })).body,
    stop: async () => {
      await webhook.stop();
      await exporter.close();
      await api.stop();
    },
  };
}
