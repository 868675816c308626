import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { gpuClusterPerTest } from '../testing/standInGpuCluster.js';
import { runInject } from './injectCommand.js';

const NOW = Date.parse('2026-03-01T12:00:00Z');
const pod = (name: string, memory: string): string =>
  `apiVersion: v1\nkind: Pod\nmetadata:\n  name: ${name}\n  namespace: ml\n  annotations:\n    mps-injector.io/gpu-memory: ${memory}\nspec:\n  containers:\n    - name: server\n      image: vllm\n`;

describe('inject --cluster against the stand-in API server', () => {
  const env = gpuClusterPerTest(NOW);

  test('--dry-run answers "would it fit now, and where" from the live metrics and ledger, writing nothing', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'inject-cluster-'));
    const file = path.join(dir, 'pods.yaml');
    // GPU 1 holds embed-0's 8Gi (not running yet), GPU 2 a 12Gi grant whose pod is not created yet: neither fits 71Gi.
    await writeFile(file, [pod('a', '71Gi'), pod('b', '71Gi'), pod('c', '79Gi')].join('---\n'));
    const deps = { stdin: async () => '', nowMs: NOW, kubeConfig: env.standIn.kubeConfig(), exporterUrlFor: env.cluster.exporterUrlFor };
    const run = await runInject({ file, output: 'yaml', cluster: true, dryRun: true }, deps);
    const previews = parseAllDocuments(run.stdout).map((d) => d.toJS() as { metadata: { name: string }; placements: { node: string; gpuIndex: number }[] });
    expect(previews.map((p) => `${p.metadata.name}:${p.placements[0]?.node}/${p.placements[0]?.gpuIndex}`)).toEqual(['a:gpu-node-1/3', 'b:gpu-node-2/0']);
    expect(run.stderr.at(-1)).toBe('placed 2 of 3; 1 refused: 1 no GPU fits 79Gi');
    expect(run.exitCode).toBe(1);
    expect(env.standIn.countRequests((r) => r.method !== 'GET')).toBe(0);

    // --metrics replaces the live metrics (here one node's exporter); the ledger is still the cluster's.
    await writeFile(file, pod('a', '71Gi'));
    const offline = await runInject({ file, output: 'yaml', cluster: true, dryRun: true, metrics: env.cluster.exporters.get('gpu-node-1')?.url ?? '' }, deps);
    expect(parseAllDocuments(offline.stdout)[0]?.toJS()).toMatchObject({ placements: [{ node: 'gpu-node-1', gpuIndex: 3 }] });
  });
});
