import { readManifests } from './readPods.js';

const pod = (name: string): string => `apiVersion: v1\nkind: Pod\nmetadata:\n  name: ${name}\nspec:\n  containers:\n    - name: c\n      image: x\n`;
const template = `  template:\n    metadata:\n      labels: { app: web }\n      annotations: { mps-injector.io/gpu-memory: 6Gi }\n    spec:\n      containers:\n        - name: c\n          image: x\n`;

test('reads several YAML documents in order, skipping empty ones', () => {
  const manifests = readManifests(`${pod('a')}---\n---\n${pod('b')}`, 'in.yaml');
  expect(manifests.map((m) => (m.kind === 'pod' ? m.pod.metadata?.name : m.kind))).toEqual(['a', 'b']);
});

test('reads JSON and v1 Lists', () => {
  const list = JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [{ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'x' }, spec: { containers: [] } }] });
  expect(readManifests(list, 'in.json')).toMatchObject([{ kind: 'pod', pod: { metadata: { name: 'x' } } }]);
});

test('workloads become one pod per replica from their template, named as their controller names them', () => {
  const text = [
    `apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: ml\nspec:\n  replicas: 3\n${template}`,
    `apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: db\nspec:\n  replicas: 2\n${template}`,
    `apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: train\nspec:\n  parallelism: 2\n${template}`,
    `apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: nightly\nspec:\n  schedule: "0 0 * * *"\n  jobTemplate:\n    spec:\n${template.replace(/^/gm, '    ')}`,
  ].join('---\n');
  const manifests = readManifests(text, 'w.yaml');
  expect(manifests.map((m) => (m.kind === 'workload' ? `${m.workload.kind}/${m.workload.name}:${m.pods.length}` : m.kind))).toEqual(['Deployment/web:3', 'StatefulSet/db:2', 'Job/train:2', 'CronJob/nightly:1']);
  const [deployment, statefulSet] = manifests;
  if (deployment?.kind !== 'workload' || statefulSet?.kind !== 'workload') throw new Error('expected workloads');
  expect(deployment.pods[0]?.metadata).toEqual({ labels: { app: 'web' }, annotations: { 'mps-injector.io/gpu-memory': '6Gi' }, namespace: 'ml', generateName: 'web-' });
  expect(statefulSet.pods.map((p) => `${p.metadata?.namespace}/${p.metadata?.name}`)).toEqual(['default/db-0', 'default/db-1']);
});

test('other kinds and pods without containers are reported, not fatal', () => {
  const text = `${pod('a')}---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: b\n`;
  expect(readManifests(text, 'mixed.yaml')).toMatchObject([
    { kind: 'pod' },
    { kind: 'unsupported', document: 2, what: 'v1 ConfigMap cfg', reason: expect.stringContaining('inject places Pods and the pods of Deployment') },
    { kind: 'unsupported', document: 3, reason: 'it is a Pod without spec.containers' },
  ]);
});

test('empty input and broken YAML are input errors (exit 3)', () => {
  expect(() => readManifests('', 'empty.yaml')).toThrow(/holds no documents/);
  expect(() => readManifests('kind: Pod\nmetadata: [\n', 'broken.yaml')).toThrow(expect.objectContaining({ exitCode: 3, message: expect.stringContaining('cannot parse document 1 of broken.yaml') }));
});
