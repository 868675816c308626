import { CliError } from './cliError.js';
import { readPods } from './readPods.js';

const pod = (name: string): string => `apiVersion: v1\nkind: Pod\nmetadata:\n  name: ${name}\nspec:\n  containers:\n    - name: c\n      image: x\n`;

test('reads several YAML documents in order, skipping empty ones', () => {
  const pods = readPods(`${pod('a')}---\n---\n${pod('b')}`, 'in.yaml');
  expect(pods.map((p) => p.metadata?.name)).toEqual(['a', 'b']);
});

test('reads JSON and v1 Lists', () => {
  const list = JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [{ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'x' }, spec: { containers: [] } }] });
  expect(readPods(list, 'in.json').map((p) => p.metadata?.name)).toEqual(['x']);
});

test('refuses non-Pod documents with a message naming the document', () => {
  const text = `${pod('a')}---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n`;
  expect(() => readPods(text, 'mixed.yaml')).toThrow(CliError);
  expect(() => readPods(text, 'mixed.yaml')).toThrow(/document 2 of mixed.yaml is apps\/v1 Deployment web, not a v1 Pod/);
});

test('refuses empty input, broken YAML and pods without containers', () => {
  expect(() => readPods('', 'empty.yaml')).toThrow(/holds no documents/);
  expect(() => readPods('kind: Pod\nmetadata: [\n', 'broken.yaml')).toThrow(/cannot parse document 1 of broken.yaml/);
  expect(() => readPods('apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n', 'p.yaml')).toThrow(/without spec.containers/);
});
