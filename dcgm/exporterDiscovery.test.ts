import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { buildConfig } from '../config/schema.js';
import { renderDcgmText } from './renderDcgmText.js';
import { ReservationLedger } from '../reservations/ledger.js';
import { exporterTargets, exporterUrl } from './exporterDiscovery.js';
import type { ExporterPod } from './exporterDiscovery.js';
import { startClusterIntegration } from '../kube/startClusterIntegration.js';
import type { ClusterIntegration } from '../kube/startClusterIntegration.js';
import { clusterChangeWaiter } from '../testing/clusterChanges.js';
import { idleGpu } from '../testing/gpuFixtures.js';
import { StandInApiServer } from '../testing/standInApiServer.js';
import type { StoredObject } from '../testing/standInApiServer.js';
import { startStandInExporter } from '../testing/standInExporter.js';
import type { StandInExporter } from '../testing/standInExporter.js';

// The real GPU Operator scrape of an 8x H100 node (kept in the repository by the DCGM tests).
const REAL_SCRAPE = readFileSync(fileURLToPath(new URL('../dcgm/fixtures/h100x8-gpu-operator.prom', import.meta.url)), 'utf8');

const pod = (over: Partial<ExporterPod>): ExporterPod => ({ namespace: 'gpu-operator', name: 'dcgm-x', podIP: '10.0.0.7', nodeName: 'n1', phase: 'Running', terminating: false, ...over });

describe('exporter targets (pure)', () => {
  test('running pods with an IP and a node become targets mapped to that node; the rest are named', () => {
    const { targets, skipped } = exporterTargets(
      [
        pod({ name: 'b', podIP: 'fd00::7', nodeName: 'n2' }),
        pod({ name: 'a' }),
        pod({ name: 'pending', phase: 'Pending', podIP: null }),
        pod({ name: 'leaving', terminating: true }),
        pod({ name: 'no-ip', podIP: null }),
      ],
      (p) => exporterUrl(p, 9400, '/metrics'),
    );
    expect(targets).toEqual([
      { url: 'http://10.0.0.7:9400/metrics', node: 'n1' },
      { url: 'http://[fd00::7]:9400/metrics', node: 'n2' },
    ]);
    expect(skipped).toEqual(['gpu-operator/leaving is terminating', 'gpu-operator/no-ip has no pod IP yet', 'gpu-operator/pending is Pending']);
  });
});

describe('exporter discovery through the stand-in API server', () => {
  let standIn: StandInApiServer;
  let exporters: StandInExporter[];
  let integration: ClusterIntegration | null;

  beforeEach(async () => {
    standIn = await StandInApiServer.start();
    exporters = [];
    integration = null;
  });
  afterEach(async () => {
    await integration?.stop();
    for (const e of exporters) await e.stop();
    await standIn.stop();
  });

  const exporterPod = (name: string, nodeName: string, labels: Record<string, string> = { app: 'nvidia-dcgm-exporter' }): StoredObject => ({
    metadata: { name, namespace: 'gpu-operator', labels },
    spec: { nodeName, containers: [{ name: 'nvidia-dcgm-exporter', image: 'dcgm-exporter' }] },
    status: { phase: 'Running', podIP: '127.0.0.1' },
  });

  test('scrapes every exporter pod and maps GPUs to the pod’s node, not to the exporter’s host label', async () => {
    // Exporter 1 serves the real H100 scrape (host label "gpu-node-1"); exporter 2 a rendered one
    // whose host label is its own pod name, as when NODE_NAME is unset.
    const now = Date.now();
    exporters.push(await startStandInExporter(REAL_SCRAPE));
    exporters.push(await startStandInExporter(renderDcgmText([{ ...idleGpu('nvidia-dcgm-exporter-b7x2q', 0, now) }], { hostLabel: 'Hostname' })));
    const portOf: Record<string, number> = { 'nvidia-dcgm-exporter-k8fzp': exporters[0]?.port ?? 0, 'nvidia-dcgm-exporter-b7x2q': exporters[1]?.port ?? 0 };
    standIn.create('pods', exporterPod('nvidia-dcgm-exporter-k8fzp', 'worker-a17'));
    standIn.create('pods', exporterPod('nvidia-dcgm-exporter-b7x2q', 'worker-b02'));
    standIn.create('pods', exporterPod('unrelated', 'worker-a17', { app: 'something-else' }));
    standIn.create('nodes', { metadata: { name: 'worker-a17' }, status: { conditions: [{ type: 'Ready', status: 'True' }] } });

    const changes = clusterChangeWaiter();
    const bothSeen = Promise.all([
      changes.next('exporter', (c) => c.key.endsWith('k8fzp')),
      changes.next('exporter', (c) => c.key.endsWith('b7x2q')),
    ]);
    integration = await startClusterIntegration(buildConfig({ cluster: { enabled: true, namespace: 'mps-system' }, metrics: { source: 'discovery', timeoutMs: 2000 } }), {
      ledger: new ReservationLedger({ ttlMs: 60_000 }),
      logger: pino({ level: 'silent' }),
      kubeConfig: standIn.kubeConfig(),
      onChange: changes.onChange,
      exporterUrlFor: (p) => `http://${p.podIP}:${portOf[p.name]}/metrics`,
    });
    await integration.ready;
    await bothSeen;

    const source = integration.metricsSource;
    expect(source).not.toBeNull();
    const inventory = await (source as NonNullable<typeof source>).fetch(Date.now());
    const nodesOfGpus = new Map<string, number>();
    for (const gpu of inventory.gpus) nodesOfGpus.set(gpu.node, (nodesOfGpus.get(gpu.node) ?? 0) + 1);
    expect(Object.fromEntries(nodesOfGpus)).toEqual({ 'worker-a17': 8, 'worker-b02': 1 });
    expect(inventory.nodes['worker-a17']?.schedulable).toBe(true);
    expect(inventory.source).toMatch(/^discovery:gpu-operator\/app=nvidia-dcgm-exporter/);
    expect(exporters.map((e) => e.scrapes)).toEqual([1, 1]);
  });

  test('with no exporter pods, the inventory says where it looked and what to check', async () => {
    integration = await startClusterIntegration(buildConfig({ cluster: { enabled: true, namespace: 'mps-system' }, metrics: { source: 'discovery' } }), {
      ledger: new ReservationLedger({ ttlMs: 60_000 }),
      logger: pino({ level: 'silent' }),
      kubeConfig: standIn.kubeConfig(),
    });
    await integration.ready;
    const inventory = await (integration.metricsSource as NonNullable<ClusterIntegration['metricsSource']>).fetch(Date.now());
    expect(inventory.gpus).toEqual([]);
    expect(inventory.problems[0]).toMatch(/no running dcgm-exporter pod found in namespace gpu-operator with labels app=nvidia-dcgm-exporter.*check metrics\.discovery/);
  });

  test('other metrics sources get no discovery', async () => {
    integration = await startClusterIntegration(buildConfig({ cluster: { enabled: true, namespace: 'mps-system' }, metrics: { source: 'file' } }), {
      ledger: new ReservationLedger({ ttlMs: 60_000 }),
      logger: pino({ level: 'silent' }),
      kubeConfig: standIn.kubeConfig(),
    });
    await integration.ready;
    expect(integration.metricsSource).toBeNull();
  });
});
