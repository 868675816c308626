import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { CliError } from './cliError.js';
import { runInject } from './injectCommand.js';

const repo = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const example = (f: string): string => path.join(repo, 'examples', f);
const NOW = Date.now();
const noStdin = async (): Promise<string> => '';

test('the bundled example is placed and injected; the decision goes to stderr', async () => {
  const run = await runInject({ file: example('pod.yaml'), metrics: example('dcgm-h100x8.prom'), output: 'yaml' }, { stdin: noStdin, nowMs: NOW });
  expect(run.exitCode).toBe(0);
  const pod = parseAllDocuments(run.stdout)[0]?.toJS() as { metadata: { annotations: Record<string, string> }; spec: { containers: { name: string; env?: { name: string; value?: string }[] }[] } };
  expect(pod.metadata.annotations['mps-injector.io/node']).toBe('gpu-node-1');
  expect(pod.metadata.annotations['mps-injector.io/thread-percent']).toBe('30');
  const env = Object.fromEntries((pod.spec.containers[0]?.env ?? []).map((e) => [e.name, e.value]));
  expect(env.CUDA_MPS_PINNED_DEVICE_MEM_LIMIT).toBe('0=12288M');
  expect(env.CUDA_MPS_CLIENT_PRIORITY).toBe('0');
  expect(run.stderr.join('\n')).toContain('inference/llm-inference:');
});

test('several pods are placed in order, each seeing the reservations before it; every refusal is reported and the rest still placed', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'inject-'));
  const one = await readFile(example('pod.yaml'), 'utf8');
  const big = one.replace('gpu-memory: 12Gi', 'gpu-memory: 70Gi');
  const file = path.join(dir, 'pods.yaml');
  // 8 GPUs: GPU 0 is busy; 7 free ones take one 70Gi pod each; the 8th 70Gi pod cannot fit.
  await writeFile(file, Array.from({ length: 7 }, (_, i) => big.replace('name: llm-inference', `name: big-${i}`)).join('---\n'));
  const fits = await runInject({ file, metrics: example('dcgm-h100x8.prom'), output: 'json' }, { stdin: noStdin, nowMs: NOW });
  expect(fits.exitCode).toBe(0);
  const list = JSON.parse(fits.stdout) as { items: { metadata: { annotations: Record<string, string> } }[] };
  const uuids = list.items.map((p) => p.metadata.annotations['mps-injector.io/gpu-uuid']);
  expect(new Set(uuids).size).toBe(7);
  expect(fits.stderr.at(-1)).toBe('placed 7 of 7');

  // The 8th and 9th do not fit; the small 10th still does, after them.
  const small = one.replace('name: llm-inference', 'name: small').replace('gpu-memory: 12Gi', 'gpu-memory: 6Gi');
  await writeFile(file, [...Array.from({ length: 9 }, (_, i) => big.replace('name: llm-inference', `name: big-${i}`)), small].join('---\n'));
  const refused = await runInject({ file, metrics: example('dcgm-h100x8.prom'), output: 'yaml' }, { stdin: noStdin, nowMs: NOW });
  expect(refused.exitCode).toBe(1);
  const placed = parseAllDocuments(refused.stdout).map((d) => (d.toJS() as { metadata: { name: string } }).metadata.name);
  expect(placed).toEqual(['big-0', 'big-1', 'big-2', 'big-3', 'big-4', 'big-5', 'big-6', 'small']);
  const refusals = refused.stderr.filter((l) => l.includes(': refused: '));
  expect(refusals).toHaveLength(2);
  expect(refusals[0]).toMatch(/^inference\/big-7: refused: mps-injector: no GPU .*fits 70Gi: 8 considered, 8 short of memory/);
  expect(refused.stderr.at(-1)).toBe('placed 8 of 10; 2 refused: 2 no GPU of model "H100" fits 70Gi');
});

test('workloads get a placement preview per replica; --dry-run previews pods instead of printing them', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'inject-'));
  const file = path.join(dir, 'deploy.yaml');
  const template = `  template:\n    metadata:\n      annotations: { mps-injector.io/gpu-memory: 30Gi }\n    spec:\n      containers:\n        - name: server\n          image: vllm\n`;
  await writeFile(
    file,
    `apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: ml\nspec:\n  replicas: 16\n${template}---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n`,
  );
  const run = await runInject({ file, metrics: example('dcgm-h100x8.prom'), output: 'json' }, { stdin: noStdin, nowMs: NOW });
  expect(run.exitCode).toBe(1);
  const preview = JSON.parse(run.stdout) as { kind: string; target: unknown; pods: number; placed: number; refused: number; placements: { pod: string; node: string; gpuIndex: number; memoryLimit: string }[] };
  expect(preview).toMatchObject({ kind: 'PlacementPreview', target: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'web' }, pods: 16 });
  // Two 30Gi replicas on each of the 7 idle GPUs (78.6Gi free); the busy GPU 0 has 8.6Gi: 14 placed.
  expect(preview.placed).toBe(14);
  expect(preview.placements[0]).toMatchObject({ pod: 'ml/web-*', node: 'gpu-node-1', memoryLimit: '30Gi' });
  expect(run.stderr.at(-1)).toBe('placed 14 of 17; 3 refused: 2 no GPU fits 30Gi, 1 not placed');
  expect(run.stderr).toContain('document 2 (v1 ConfigMap settings): not placed: inject places Pods and the pods of Deployment, StatefulSet, ReplicaSet, Job, CronJob');

  const dry = await runInject({ file: example('pod.yaml'), metrics: example('dcgm-h100x8.prom'), output: 'yaml', dryRun: true }, { stdin: noStdin, nowMs: NOW });
  expect(dry.exitCode).toBe(0);
  expect(parseAllDocuments(dry.stdout)[0]?.toJS()).toMatchObject({ kind: 'PlacementPreview', target: { kind: 'Pod', name: 'llm-inference' }, placements: [{ node: 'gpu-node-1', memoryLimit: '12Gi' }] });
});

test('reads pods from standard input', async () => {
  const text = await readFile(example('pod.yaml'), 'utf8');
  const run = await runInject({ file: '-', metrics: example('dcgm-h100x8.prom'), output: 'yaml' }, { stdin: async () => text, nowMs: NOW });
  expect(run.exitCode).toBe(0);
  expect(run.stdout).toContain('CUDA_MPS_ACTIVE_THREAD_PERCENTAGE');
});

test('missing files and metrics without GPUs are input errors (exit 3); no metrics at all is a usage error (exit 2)', async () => {
  await expect(runInject({ file: '/nonexistent/pod.yaml', metrics: example('dcgm-h100x8.prom'), output: 'yaml' }, { stdin: noStdin, nowMs: NOW })).rejects.toThrow(CliError);
  await expect(runInject({ file: '/nonexistent/pod.yaml', metrics: example('dcgm-h100x8.prom'), output: 'yaml' }, { stdin: noStdin, nowMs: NOW })).rejects.toMatchObject({ exitCode: 3 });
  await expect(runInject({ file: example('pod.yaml'), metrics: '/nonexistent.prom', output: 'yaml' }, { stdin: noStdin, nowMs: NOW })).rejects.toMatchObject({ exitCode: 3 });
  await expect(runInject({ file: example('pod.yaml'), output: 'yaml' }, { stdin: noStdin, nowMs: NOW })).rejects.toMatchObject({ exitCode: 2, message: expect.stringContaining('inject needs --metrics') });
  const dir = await mkdtemp(path.join(tmpdir(), 'inject-'));
  const empty = path.join(dir, 'empty.prom');
  await writeFile(empty, '# nothing here\n');
  await expect(runInject({ file: example('pod.yaml'), metrics: empty, output: 'yaml' }, { stdin: noStdin, nowMs: NOW })).rejects.toThrow(/holds no GPU series/);
});
