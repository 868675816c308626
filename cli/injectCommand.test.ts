import { TEST_KEY_RING } from '../testing/decisionKeys.js';
import { copyFile, mkdtemp, readFile, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Pod } from 'kubernetes-types/core/v1.js';
import { parseAllDocuments } from 'yaml';
import { admitPod } from '../admission/admitPod.js';
import { parseConfigText } from '../config/schema.js';
import { ReservationLedger } from '../reservations/ledger.js';
import { metricsSourceFor } from '../webhook/serve.js';
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

test('a pod carrying a forged decision is placed afresh, not reported "already injected"', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'inject-forged-'));
  const one = await readFile(example('pod.yaml'), 'utf8');
  const forged = one.replace(
    'annotations:\n',
    [
      'annotations:',
      '    mps-injector.io/reservation: forged-1',
      '    mps-injector.io/node: gpu-node-1',
      '    mps-injector.io/gpu-uuid: GPU-anything',
      '    mps-injector.io/gpu-index: "0"',
      '    mps-injector.io/thread-percent: "100"',
      '    mps-injector.io/memory-limit: 99999999999999999999Ti',
      '    mps-injector.io/decision: trust me',
      '    mps-injector.io/metrics-age-seconds: "0"',
      '',
    ].join('\n'),
  );
  expect(forged).not.toBe(one);
  const file = path.join(dir, 'pod.yaml');
  await writeFile(file, forged);
  const run = await runInject({ file, metrics: example('dcgm-h100x8.prom'), output: 'yaml' }, { stdin: noStdin, nowMs: NOW });
  expect(run.stderr.join('\n')).not.toContain('already injected');
  const pod = parseAllDocuments(run.stdout)[0]?.toJS() as { metadata: { annotations: Record<string, string> } };
  expect(pod.metadata.annotations['mps-injector.io/memory-limit']).toBe('12288Mi');
  expect(pod.metadata.annotations['mps-injector.io/reservation']).not.toBe('forged-1');
});

describe('dumps are read as the webhook reads metrics.file', () => {
  const copyOfExample = async (mtimeMs: number): Promise<string> => {
    const dir = await mkdtemp(path.join(tmpdir(), 'inject-dump-'));
    const file = path.join(dir, 'dcgm-h100x8.prom');
    await copyFile(example('dcgm-h100x8.prom'), file);
    await utimes(file, mtimeMs / 1000, mtimeMs / 1000);
    return file;
  };

  test("serve and inject give an old dump (a fresh clone's, an npm install's) the same sample time, so the README's local example places pods", async () => {
    const file = await copyOfExample(NOW - 30 * 86_400_000);
    // The README's configuration for running outside a cluster.
    const config = parseConfigText(`metrics: { source: file, file: ${file} }\n`, 'README example');
    const served = await metricsSourceFor(config, null).fetch(NOW);
    expect(served.gpus.map((g) => g.sampledAtMs)).toEqual(served.gpus.map(() => NOW));
    const run = await runInject({ file: example('pod.yaml'), metrics: file, output: 'yaml' }, { stdin: noStdin, nowMs: NOW });
    expect(run.exitCode).toBe(0);
    const decision = admitPod(
      { pod: parseAllDocuments(await readFile(example('pod.yaml'), 'utf8'))[0]?.toJS() as Pod, namespace: 'inference', requestUid: 'serve-1', dryRun: false },
      { config, inventory: served, ledger: new ReservationLedger({ ttlMs: 60_000 }), nowMs: NOW, keys: TEST_KEY_RING },
    );
    expect(decision.outcome).toBe('mutated');
  });

  test('--metrics-age-from-file (metrics.fileSampleTime: modified) takes the modification time: an old dump is stale', async () => {
    const file = await copyOfExample(NOW - 3_600_000);
    const run = await runInject({ file: example('pod.yaml'), metrics: file, output: 'yaml', metricsAgeFromFile: true }, { stdin: noStdin, nowMs: NOW });
    expect(run.exitCode).toBe(1);
    expect(run.stderr.join('\n')).toMatch(/refused: .*no fresh GPU metrics: the newest of 8 GPU samples is 3600s old/);
  });

  test('a UUID label of "all" never reaches NVIDIA_VISIBLE_DEVICES; the exclusion is reported', async () => {
    const run = await runInject({ file: example('pod.yaml'), metrics: path.join(repo, 'dcgm/fixtures/untrusted/uuid-all.prom'), output: 'yaml' }, { stdin: noStdin, nowMs: NOW });
    expect(run.stdout).not.toMatch(/value: all/);
    expect(run.stderr.join('\n')).toMatch(/metrics: excluded 1 GPU\(s\) with a UUID label that is not an NVIDIA GPU UUID/);
    // GPU 0 is busy, GPU 1 is the distrusted one: nothing fits.
    expect(run.exitCode).toBe(1);
  });

  test('FB_FREE of 1 PiB on an 80 GB GPU does not let a 500Ti pod through', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'inject-'));
    const pods = path.join(dir, 'pod.yaml');
    await writeFile(pods, (await readFile(example('pod.yaml'), 'utf8')).replace('gpu-memory: 12Gi', 'gpu-memory: 500Ti'));
    const run = await runInject({ file: pods, metrics: path.join(repo, 'dcgm/fixtures/untrusted/fb-free-1pib.prom'), output: 'yaml' }, { stdin: noStdin, nowMs: NOW });
    expect(run.exitCode).toBe(1);
    expect(run.stderr.join('\n')).toMatch(/refused: .*no GPU .*fits 512000Gi: 1 considered, 1 short of memory/);
  });
});
