/**
 * A whole GPU cluster in the stand-in API server, as the chart installs mps-injector into it:
 * namespaces (one opted in), GPU nodes, dcgm-exporter pods answered by stand-in exporters,
 * MPS control daemon pods, two webhook replicas with their ConfigMap, Service, webhook
 * configuration and TLS Secret, the decision key Secret, injected pods with sealed decisions
 * and a durable reservation. For the operator commands' tests and the README's sample output.
 */
import { stringify } from 'yaml';
import type { PemPair } from '../certs/issue.js';
import type { GpuSample } from '../domain/inventory.js';
import { renderDcgmText } from '../dcgm/renderDcgmText.js';
import { h100 } from './gpuSamples.js';
import { durableObjectName, encodeDurableRecord } from '../reservations/durableReservations.js';
import type { ExporterPod } from '../dcgm/exporterDiscovery.js';
import { StandInApiServer as StandInApiServerClass } from './standInApiServer.js';
import type { StandInApiServer, StoredObject } from './standInApiServer.js';
import { afterEach, beforeEach } from '@jest/globals';
import { startStandInExporter } from './standInExporter.js';
import type { StandInExporter } from './standInExporter.js';
import { testKeySecret } from './decisionKeys.js';
import { sealedPod } from './sealedPods.js';

export const WEBHOOK_NS = 'mps-injector';
export const EXPORTER_NS = 'gpu-operator';
export const SERVICE_ACCOUNT = 'mps-injector';
export const GPU_NODES = ['gpu-node-1', 'gpu-node-2'] as const;

export interface GpuClusterOptions {
  /** The clock of the samples and pods. */
  nowMs: number;
  /** Nodes that get no MPS daemon pod. */
  withoutMpsDaemon?: readonly string[];
  /** Nodes whose exporter pod is missing. */
  withoutExporter?: readonly string[];
  /** The webhook's CA and serving pair; no webhook configuration, Service or TLS Secret without it. */
  certificates?: { ca: PemPair; serving: PemPair };
  /** Extra configuration merged into the webhook's (the chart's ConfigMap). */
  config?: Record<string, unknown>;
}

export interface GpuCluster {
  exporters: Map<string, StandInExporter>;
  /** Where each discovered exporter pod answers: its node's stand-in exporter. */
  exporterUrlFor: (pod: ExporterPod) => string;
  gpus: GpuSample[];
  stop(): Promise<void>;
}

const ready = [{ type: 'Ready', status: 'True' }];

/** 2 nodes x 4 H100; GPU 0 of gpu-node-1 runs an injected pod, GPU 1 a pod being created, GPU 2 holds a grant whose pod has not appeared. */
export async function createGpuCluster(standIn: StandInApiServer, opts: GpuClusterOptions): Promise<GpuCluster> {
  const { nowMs } = opts;
  const sampledAtMs = nowMs - 4000;
  standIn.create('namespaces', { metadata: { name: WEBHOOK_NS, labels: { 'kubernetes.io/metadata.name': WEBHOOK_NS } } });
  standIn.create('namespaces', { metadata: { name: EXPORTER_NS, labels: { 'kubernetes.io/metadata.name': EXPORTER_NS } } });
  standIn.create('namespaces', { metadata: { name: 'ml', labels: { 'kubernetes.io/metadata.name': 'ml', 'mps-injector.io/injection': 'enabled' } } });
  standIn.create('namespaces', { metadata: { name: 'default', labels: { 'kubernetes.io/metadata.name': 'default' } } });
  standIn.create('nodes', { metadata: { name: 'control-plane', labels: { 'kubernetes.io/hostname': 'control-plane' } }, status: { conditions: ready } });

  const gpus: GpuSample[] = [];
  const exporters = new Map<string, StandInExporter>();
  for (const node of GPU_NODES) {
    standIn.create('nodes', {
      metadata: { name: node, labels: { 'kubernetes.io/hostname': node, 'nvidia.com/gpu.present': 'true', 'nvidia.com/gpu.product': 'NVIDIA-H100-80GB-HBM3' } },
      status: { conditions: ready, capacity: { 'nvidia.com/gpu': '4' } },
    });
    const nodeGpus = [0, 1, 2, 3].map((index) => h100(node, index, sampledAtMs, node === 'gpu-node-1' && index === 0 ? { memory: { totalMiB: 81_559, usedMiB: 20_480, freeMiB: 81_559 - 20_480 - 524, reservedMiB: 524 }, utilPercent: 41 } : {}));
    gpus.push(...nodeGpus);
    if (!(opts.withoutExporter ?? []).includes(node)) {
      exporters.set(node, await startStandInExporter(renderDcgmText(nodeGpus, { withTimestamps: true })));
      standIn.create('pods', {
        metadata: { name: `nvidia-dcgm-exporter-${node.slice(-1)}`, namespace: EXPORTER_NS, labels: { app: 'nvidia-dcgm-exporter' } },
        spec: { nodeName: node, containers: [{ name: 'exporter', image: 'dcgm-exporter' }] },
        status: { phase: 'Running', podIP: '127.0.0.1', conditions: ready },
      });
    }
    if (!(opts.withoutMpsDaemon ?? []).includes(node)) {
      standIn.create('pods', {
        metadata: { name: `mps-injector-mps-daemon-${node.slice(-1)}`, namespace: WEBHOOK_NS, labels: { 'app.kubernetes.io/name': 'mps-injector', 'app.kubernetes.io/component': 'mps-daemon' } },
        spec: { nodeName: node, containers: [{ name: 'mps-control-daemon', image: 'cuda' }] },
        status: { phase: 'Running', conditions: ready },
      });
    }
  }

  const config = {
    cluster: { enabled: true, namespace: WEBHOOK_NS },
    metrics: { source: 'discovery', discovery: { namespace: EXPORTER_NS, labelSelector: 'app=nvidia-dcgm-exporter' } },
    certificates: { mode: 'self-managed', secretName: 'mps-injector-tls', serviceName: 'mps-injector', mutatingWebhookConfigurationName: 'mps-injector' },
    ...opts.config,
  };
  standIn.create('configmaps', {
    metadata: { name: 'mps-injector', namespace: WEBHOOK_NS, labels: { 'app.kubernetes.io/name': 'mps-injector', 'app.kubernetes.io/component': 'webhook' } },
    data: { 'config.yaml': stringify(config) },
  });
  standIn.create('secrets', testKeySecret(WEBHOOK_NS) as unknown as StoredObject);
  for (const replica of ['mps-injector-7d9c5b-abcde', 'mps-injector-7d9c5b-fghij']) {
    standIn.create('pods', {
      metadata: {
        name: replica,
        namespace: WEBHOOK_NS,
        labels: { 'app.kubernetes.io/name': 'mps-injector', 'app.kubernetes.io/component': 'webhook', 'mps-injector.io/inject': 'false' },
        annotations: { 'checksum/config': 'a1b2c3' },
      },
      spec: { nodeName: 'control-plane', serviceAccountName: SERVICE_ACCOUNT, containers: [{ name: 'webhook', image: 'mps-injector' }] },
      status: { phase: 'Running', conditions: ready },
    });
  }

  const node1 = gpus.slice(0, 4);
  const running = sealedPod({ name: 'llm-0', namespace: 'ml', reservationId: 'r-llm-0', node: 'gpu-node-1', gpuUuid: node1[0]?.uuid, gpuIndex: 0, memoryMiB: 20_480, threadPercent: 40, priority: 'high', runningSince: new Date(nowMs - 3_600_000).toISOString(), issuedAtMs: nowMs - 3_700_000 });
  running.spec.nodeName = 'gpu-node-1';
  running.metadata.annotations['mps-injector.io/gpu-memory'] = '20Gi';
  standIn.create('pods', running as unknown as StoredObject);
  const starting = sealedPod({ name: 'embed-0', namespace: 'ml', reservationId: 'r-embed-0', node: 'gpu-node-1', gpuUuid: node1[1]?.uuid, gpuIndex: 1, memoryMiB: 8192, threadPercent: 20, priority: 'low', issuedAtMs: nowMs - 20_000 });
  starting.spec.nodeName = 'gpu-node-1';
  starting.metadata.annotations['mps-injector.io/gpu-memory'] = '8Gi';
  standIn.create('pods', starting as unknown as StoredObject);
  // A pod claiming a decision the webhook never issued: it holds nothing.
  const forged = sealedPod({ name: 'sneaky', namespace: 'ml', reservationId: 'r-sneaky', node: 'gpu-node-2', gpuUuid: gpus[4]?.uuid, memoryMiB: 40_960, runningSince: new Date(nowMs - 60_000).toISOString() });
  forged.metadata.annotations['mps-injector.io/memory-limit'] = '1024Mi';
  standIn.create('pods', forged as unknown as StoredObject);
  // A grant another replica made a moment ago whose pod the API server has not created yet.
  const gpu2 = node1[2]?.uuid ?? '';
  standIn.create(
    'configmaps',
    encodeDurableRecord(
      {
        name: durableObjectName(gpu2),
        gpuUuid: gpu2,
        node: 'gpu-node-1',
        resourceVersion: null,
        entries: new Map([['r-web-x', { id: 'r-web-x', podKey: 'ml/web-7f8d9-x2k4q', node: 'gpu-node-1', gpuUuid: gpu2, memoryMiB: 12_288, threadPercent: 30, priority: 'low' as const, createdAtMs: nowMs - 2000, expiresAtMs: nowMs + 118_000 }]]),
      },
      WEBHOOK_NS,
    ) as StoredObject,
  );

  if (opts.certificates !== undefined) {
    const caBundle = Buffer.from(opts.certificates.ca.certPem).toString('base64');
    standIn.create('services', {
      metadata: { name: 'mps-injector', namespace: WEBHOOK_NS, labels: { 'app.kubernetes.io/component': 'webhook' } },
      spec: { type: 'ClusterIP', ports: [{ name: 'https', port: 443, targetPort: 'https' }], selector: { 'app.kubernetes.io/component': 'webhook' } },
    });
    standIn.create('secrets', {
      metadata: { name: 'mps-injector-tls', namespace: WEBHOOK_NS },
      type: 'Opaque',
      data: {
        'tls.crt': Buffer.from(opts.certificates.serving.certPem).toString('base64'),
        'tls.key': Buffer.from(opts.certificates.serving.keyPem).toString('base64'),
        'ca.crt': caBundle,
      },
    });
    standIn.create('mutatingwebhookconfigurations', {
      metadata: { name: 'mps-injector' },
      webhooks: [
        {
          name: 'pods.mps-injector.mps-injector.io',
          clientConfig: { service: { name: 'mps-injector', namespace: WEBHOOK_NS, path: '/mutate', port: 443 }, caBundle },
          namespaceSelector: { matchLabels: { 'mps-injector.io/injection': 'enabled' } },
        },
      ],
    });
  }

  const exporterUrlFor = (pod: ExporterPod): string => {
    const exporter = pod.nodeName === null ? undefined : exporters.get(pod.nodeName);
    return exporter?.url ?? 'http://127.0.0.1:1/metrics';
  };
  return {
    exporters,
    exporterUrlFor,
    gpus,
    stop: async () => {
      for (const exporter of exporters.values()) await exporter.stop();
    },
  };
}

/** The sample cluster, fresh for every test of the calling describe block: a stand-in API server with createGpuCluster on it. */
export function gpuClusterPerTest(nowMs: number): { readonly standIn: StandInApiServer; readonly cluster: GpuCluster } {
  let standIn: StandInApiServer | undefined;
  let cluster: GpuCluster | undefined;
  beforeEach(async () => {
    standIn = await StandInApiServerClass.start();
    cluster = await createGpuCluster(standIn, { nowMs });
  });
  afterEach(async () => {
    await cluster?.stop();
    await standIn?.stop();
  });
  const started = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`${what} is only available inside a test (it is started in beforeEach)`);
    return value;
  };
  return {
    get standIn() {
      return started(standIn, 'the stand-in API server');
    },
    get cluster() {
      return started(cluster, 'the sample GPU cluster');
    },
  };
}
