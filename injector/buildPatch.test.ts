import { performance } from 'node:perf_hooks';
import jsonPatch from 'fast-json-patch';
import type { Pod } from 'kubernetes-types/core/v1.js';
import { buildPatch } from './buildPatch.js';

const pod = (annotations: Record<string, string>, managedFields?: object[]): Pod => ({
  metadata: { name: 'p', annotations, ...(managedFields === undefined ? {} : { managedFields }) },
  spec: { containers: [{ name: 'app' }] },
});

describe('buildPatch', () => {
  test('equal pods give no operations', () => {
    expect(buildPatch(pod({ a: '1' }), pod({ a: '1' }))).toEqual([]);
  });

  test('escapes "/" as ~1 and "~" as ~0 in keys', () => {
    const patch = buildPatch(pod({}), pod({ 'mps-injector.io/node': 'n', 'team~x/owner': 'ml' }));
    expect(patch).toEqual(
      expect.arrayContaining([
        { op: 'add', path: '/metadata/annotations/mps-injector.io~1node', value: 'n' },
        { op: 'add', path: '/metadata/annotations/team~0x~1owner', value: 'ml' },
      ]),
    );
    expect(patch).toHaveLength(2);
  });

  test('managedFields never appear in the patch, whatever they hold', () => {
    const original = pod({ a: '1' }, [{ manager: 'kubectl', operation: 'Update' }]);
    const mutated = pod({ a: '2' }, [{ manager: 'other', operation: 'Apply' }]);
    const patch = buildPatch(original, mutated);
    expect(patch).toEqual([{ op: 'replace', path: '/metadata/annotations/a', value: '2' }]);
    expect(buildPatch(original, pod({ a: '1' }))).toEqual([]);
  });

  test('does not modify its inputs', () => {
    const original = pod({ a: '1' }, [{ manager: 'kubectl' }]);
    const mutated = pod({ a: '2' }, [{ manager: 'kubectl' }]);
    buildPatch(original, mutated);
    expect(original.metadata?.managedFields).toEqual([{ manager: 'kubectl' }]);
    expect(mutated.metadata?.managedFields).toEqual([{ manager: 'kubectl' }]);
  });

  test('applied to the original, the patch gives the mutated pod', () => {
    const original: Pod = { metadata: { name: 'p' }, spec: { containers: [{ name: 'a' }], initContainers: [{ name: 'x' }, { name: 'y' }] } };
    const mutated: Pod = {
      metadata: { name: 'p', annotations: { 'k/~': 'v' } },
      spec: { containers: [{ name: 'a', env: [{ name: 'E', value: '1' }] }], initContainers: [{ name: 'first' }, { name: 'x' }, { name: 'y' }] },
    };
    const { newDocument } = jsonPatch.applyPatch(structuredClone(original), buildPatch(original, mutated), true, false);
    expect(newDocument).toEqual(mutated);
  });

  test('gives the same operations, in the same order, as fast-json-patch compare', () => {
    const cases: [Pod, Pod][] = [
      [{ metadata: { name: 'p', labels: { a: '1', b: '2' } }, spec: { containers: [{ name: 'a', args: ['x', 'y', 'z'] }] } }, { metadata: { name: 'p', labels: { b: '3', c: '4' } }, spec: { containers: [{ name: 'a', args: ['x'] }] } }],
      [{ spec: { containers: [{ name: 'a', env: [{ name: 'A', value: '1' }] }], volumes: [] } }, { spec: { containers: [{ name: 'a', env: [{ name: 'A', value: '1' }, { name: 'B', value: '2' }] }, { name: 'b' }] } }],
      [{ metadata: { annotations: { x: '1' } }, spec: { containers: [] } }, { metadata: { annotations: [] as unknown as Record<string, string> }, spec: { containers: [], nodeSelector: { n: 'a' } } }],
    ];
    for (const [before, after] of cases) expect(buildPatch(before, after)).toEqual(jsonPatch.compare(before, after));
  });

  test('the patch for a large pod is proportional to what changed, not to the pod', () => {
    const env = Array.from({ length: 5000 }, (_, i) => ({ name: `V${i}`, value: 'x'.repeat(20) }));
    const original: Pod = { metadata: { name: 'p', annotations: { big: 'a'.repeat(1 << 20) } }, spec: { containers: [{ name: 'a', env }] } };
    const mutated: Pod = {
      metadata: { name: 'p', annotations: { ...original.metadata!.annotations, added: 'v' } },
      spec: { containers: [{ name: 'a', env: [...env, { name: 'NEW', value: '1' }] }] },
    };
    const patch = buildPatch(original, mutated);
    expect(patch).toEqual([
      { op: 'add', path: '/spec/containers/0/env/5000', value: { name: 'NEW', value: '1' } },
      { op: 'add', path: '/metadata/annotations/added', value: 'v' },
    ]);
  });

  test('gives the same operations, in the same order, as a diff of the whole pod', () => {
    const containers = Array.from({ length: 30 }, (_, i) => ({ name: `c-${i}`, env: [{ name: 'A', value: String(i) }] }));
    const original: Pod = { metadata: { name: 'p', annotations: { a: '1' } }, spec: { containers, tolerations: [{ key: 't' }] } };
    const changed = new Set([0, 7, 8, 29]);
    const mutated: Pod = {
      metadata: { name: 'p', annotations: { a: '1', b: '2' } },
      spec: {
        containers: containers.map((c, i) => (changed.has(i) ? { ...c, env: [...c.env, { name: 'B', value: 'x' }], volumeMounts: [{ name: 'v', mountPath: '/v' }] } : c)),
        tolerations: [{ key: 't' }, { key: 'u' }],
        nodeSelector: { n: '1' },
      },
    };
    expect(buildPatch(original, mutated)).toEqual(jsonPatch.compare(original, mutated));
  });

  test('costs what was changed, not the size of the pod: one changed container among 400,000', () => {
    const containers = Array.from({ length: 400_000 }, (_, i) => ({ name: `c-${i}` }));
    const original: Pod = { metadata: { name: 'p' }, spec: { containers } };
    const mutated: Pod = { metadata: { name: 'p' }, spec: { containers: containers.map((c, i) => (i === 123_456 ? { ...c, env: [{ name: 'A', value: '1' }] } : c)) } };
    const t0 = performance.now();
    const patch = buildPatch(original, mutated);
    const ms = performance.now() - t0;
    expect(patch).toEqual([{ op: 'add', path: '/spec/containers/123456/env', value: [{ name: 'A', value: '1' }] }]);
    // A diff that walks every container takes over 100 ms here; comparing references takes about 1 ms.
    expect(ms).toBeLessThan(50);
  });
});
