import { parse } from 'yaml';
import { gpuClusterPerTest } from '../testing/standInGpuCluster.js';
import { runStatus } from './statusCommand.js';
import type { GpuStatusRow } from './statusCommand.js';

const NOW = Date.parse('2026-03-01T12:00:00Z');

describe('status against the stand-in API server', () => {
  const env = gpuClusterPerTest(NOW);

  const deps = () => ({ kubeConfig: env.standIn.kubeConfig(), now: () => NOW, exporterUrlFor: env.cluster.exporterUrlFor });

  test('one row per GPU, counted as placement counts: grants, the warm-up, durable grants, forged pods excluded', async () => {
    const run = await runStatus({ output: 'json' }, deps());
    expect(run.exitCode).toBe(0);
    const doc = JSON.parse(run.stdout) as { kind: string; metadata: { configuration: string; metricsSource: string }; items: GpuStatusRow[] };
    expect(doc.kind).toBe('GpuStatusList');
    expect(doc.metadata.configuration).toBe('ConfigMap mps-injector/mps-injector');
    expect(doc.metadata.metricsSource).toMatch(/^discovery:gpu-operator\/app=nvidia-dcgm-exporter exporters:2\/2/);
    expect(doc.items).toHaveLength(8);
    const [gpu0, gpu1, gpu2, gpu3] = doc.items;
    // Running for an hour (past the 300 s warm-up): its 20Gi is inside the observed 20Gi, so nothing unreserved.
    expect(gpu0).toMatchObject({ node: 'gpu-node-1', index: 0, clients: 1, threadPercentSum: 40, health: [], pods: [{ pod: 'ml/llm-0', reservation: 'r-llm-0', state: 'confirmed' }] });
    expect(gpu0?.memory).toMatchObject({ grantedMiB: 20_480, observedUsedMiB: 20_480, unreservedUsedMiB: 0, unobservedMiB: 0, freeMiB: 81_559 - 20_480 - 1024 });
    // Created, not running: the whole grant is added on top of the (near-idle) sample.
    expect(gpu1?.memory).toMatchObject({ grantedMiB: 8192, observedUsedMiB: 1, unreservedUsedMiB: 1, unobservedMiB: 8192, freeMiB: 81_559 - 8193 - 1024 });
    // A durable grant whose pod has not appeared yet still holds its capacity.
    expect(gpu2).toMatchObject({ clients: 1, pods: [{ pod: 'ml/web-7f8d9-x2k4q', reservation: 'r-web-x', state: 'pending' }] });
    expect(gpu3).toMatchObject({ clients: 0, pods: [], memory: expect.objectContaining({ grantedMiB: 0 }) });
    // The pod with an edited decision holds nothing on gpu-node-2 GPU 0.
    expect(doc.items[4]).toMatchObject({ node: 'gpu-node-2', index: 0, clients: 0, pods: [] });
    expect(env.standIn.countRequests((r) => r.method !== 'GET')).toBe(0);
  });

  test('the table: kubectl columns, wide adds UUIDs and totals, filters by node and namespace', async () => {
    const table = await runStatus({}, deps());
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^NODE\s+GPU\s+MODEL\s+GRANTED\s+USED\s+UNRESERVED\s+FREE\s+CLIENTS\s+THREADS\s+AGE\s+HEALTH\s+PODS$/);
    expect(lines).toHaveLength(9);
    expect(lines[1]).toMatch(/^gpu-node-1\s+0\s+H100 80GB HBM3\s+20Gi\s+20Gi\s+0Mi\s+58.6Gi\s+1\/48\s+40\/200\s+4s\s+ok\s+ml\/llm-0$/);

    const wide = await runStatus({ output: 'wide', node: ['gpu-node-2'] }, deps());
    const wideLines = wide.stdout.trimEnd().split('\n');
    expect(wideLines[0]).toContain('UUID');
    expect(wideLines[0]).toContain('COMMITTED');
    expect(wideLines).toHaveLength(5);
    expect(wideLines.slice(1).every((l) => l.startsWith('gpu-node-2'))).toBe(true);

    const ml = await runStatus({ namespace: 'ml', output: 'yaml' }, deps());
    const items = (parse(ml.stdout) as { items: GpuStatusRow[] }).items;
    expect(items.map((r) => `${r.node}/${r.index}`)).toEqual(['gpu-node-1/0', 'gpu-node-1/1', 'gpu-node-1/2']);
    const none = await runStatus({ namespace: 'other' }, deps());
    expect(none.stdout).toBe('');
    expect(none.stderr.at(-1)).toMatch(/^No GPUs found holding pods of namespace other/);
  });

  test('health: a cordoned node, a stale exporter and a GPU with reservations but no metrics', async () => {
    env.standIn.modify('nodes', null, 'gpu-node-2', (node) => {
      (node as { spec?: Record<string, unknown> }).spec = { unschedulable: true };
    });
    await env.cluster.exporters.get('gpu-node-1')?.stop();
    env.cluster.exporters.delete('gpu-node-1');
    const run = await runStatus({ output: 'json' }, deps());
    const items = (JSON.parse(run.stdout) as { items: GpuStatusRow[] }).items;
    expect(items.filter((r) => r.node === 'gpu-node-2').every((r) => r.health.includes('cordoned'))).toBe(true);
    // gpu-node-1 is gone from the metrics: its reservations still show, marked not-in-metrics.
    const orphans = items.filter((r) => r.node === 'gpu-node-1');
    expect(orphans.map((r) => r.pods.map((p) => p.pod)).flat().sort()).toEqual(['ml/embed-0', 'ml/llm-0', 'ml/web-7f8d9-x2k4q']);
    expect(orphans.every((r) => r.health.includes('not-in-metrics'))).toBe(true);
    expect(run.stderr.join('\n')).toMatch(/^warning: http:\/\/127.0.0.1:1\/metrics: request failed/m);
  });

  test('without the decision key Secret, pods are not trusted and nothing is created', async () => {
    env.standIn.remove('secrets', 'mps-injector', 'mps-injector-decision-key');
    const run = await runStatus({ output: 'json' }, deps());
    const items = (JSON.parse(run.stdout) as { items: GpuStatusRow[] }).items;
    expect(items[0]?.pods).toEqual([]);
    expect(items[2]?.pods.map((p) => p.reservation)).toEqual(['r-web-x']);
    expect(run.stderr.join('\n')).toContain('the decision key Secret mps-injector/mps-injector-decision-key does not exist');
    expect(env.standIn.get('secrets', 'mps-injector', 'mps-injector-decision-key')).toBeNull();
  });

  test('an unreachable API server is an I/O error (exit 3)', async () => {
    const kubeConfig = env.standIn.kubeConfig();
    await env.standIn.stop();
    await expect(runStatus({}, { kubeConfig, now: () => NOW })).rejects.toMatchObject({ exitCode: 3, message: expect.stringContaining('unreachable') });
  });
});
