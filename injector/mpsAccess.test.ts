import type { Container, Pod, Volume } from 'kubernetes-types/core/v1.js';
import { buildConfig } from '../config/schema.js';
import type { Config } from '../config/schema.js';
import { enforceMpsAccess, findMpsAccessProblems, pathRelation, pathSegments } from './mpsAccess.js';

const injection = (overrides: Partial<Config['injection']> = {}): Config['injection'] => buildConfig({ injection: overrides }).injection;
const INJECTING = { injecting: true };

function podWith(spec: { containers?: Container[]; initContainers?: Container[]; ephemeralContainers?: Container[]; volumes?: Volume[] }): Pod {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'ns' }, spec: { containers: [{ name: 'app', image: 'x' }], ...spec } };
}

describe('pathRelation', () => {
  test.each([
    ['/run/nvidia/mps/pipe', 'at'],
    ['/run/nvidia/mps/pipe/', 'at'],
    ['//run///nvidia/mps/pipe//', 'at'],
    ['/run/nvidia/mps/./pipe', 'at'],
    ['/run/nvidia/mps/shm/../pipe', 'at'],
    ['/var/run/nvidia/mps/pipe', 'at'],
    ['/run/nvidia/mps/pipe/control', 'under'],
    ['/run/nvidia/mps', 'above'],
    ['/run/nvidia', 'above'],
    ['/run', 'above'],
    ['/var/run', 'above'],
    ['/var', 'above'],
    ['/', 'above'],
    ['/run/nvidia/mps/pipe-other', null],
    ['/run/nvidia/mpsx', null],
    ['/run/nvidia-persistenced', null],
    ['/var/log', null],
    ['/opt/run/nvidia/mps/pipe', null],
  ])('%s against /run/nvidia/mps/pipe: %s', (path, relation) => {
    expect(pathRelation(path, '/run/nvidia/mps/pipe')).toBe(relation);
  });

  test('the MPS directory may be configured under /var/run too', () => {
    expect(pathRelation('/run/mps', '/var/run/mps/pipe')).toBe('above');
    expect(pathRelation('/var/run/mps/pipe', '/var/run/mps/pipe')).toBe('at');
  });

  test('.. never climbs above the root', () => {
    expect(pathSegments('/../../run/./x/')).toEqual(['run', 'x']);
  });
});

describe('findMpsAccessProblems', () => {
  test('a plain pod, and one using only what injection adds, have none', () => {
    expect(findMpsAccessProblems(podWith({}), ['app'], injection(), INJECTING)).toEqual([]);
    const injectedShape = podWith({
      containers: [
        {
          name: 'app',
          env: [{ name: 'CUDA_MPS_ACTIVE_THREAD_PERCENTAGE', value: '30' }, { name: 'NVIDIA_VISIBLE_DEVICES', value: 'GPU-1' }],
          volumeMounts: [
            { name: 'mps-injector-pipe-3', mountPath: '/run/nvidia/mps/pipe' },
            { name: 'mps-injector-shm', mountPath: '/dev/shm' },
          ],
        },
      ],
      initContainers: [{ name: 'mps-injector-wait-mps', volumeMounts: [{ name: 'mps-injector-pipe-3', mountPath: '/run/nvidia/mps/pipe' }] }],
      volumes: [
        { name: 'mps-injector-pipe-3', hostPath: { path: '/run/nvidia/mps/pipe', type: 'Directory' } },
        { name: 'mps-injector-shm', hostPath: { path: '/run/nvidia/mps/shm', type: 'Directory' } },
        { name: 'logs', hostPath: { path: '/var/log/app' } },
      ],
    });
    expect(findMpsAccessProblems(injectedShape, ['app'], injection(), INJECTING)).toEqual([]);
  });

  test('MPS variables in an unselected, an init and an ephemeral container; valueFrom counts too', () => {
    const pod = podWith({
      containers: [
        { name: 'app', env: [{ name: 'CUDA_MPS_PIPE_DIRECTORY', value: '/tmp' }] },
        { name: 'sidecar', env: [{ name: 'NVIDIA_VISIBLE_DEVICES', value: 'all' }, { name: 'PATH', value: '/bin' }] },
      ],
      initContainers: [{ name: 'setup', env: [{ name: 'CUDA_MPS_PINNED_DEVICE_MEM_LIMIT', valueFrom: { configMapKeyRef: { name: 'c', key: 'k' } } }] }],
      ephemeralContainers: [{ name: 'debug', env: [{ name: 'CUDA_MPS_ACTIVE_THREAD_PERCENTAGE', value: '100' }] }],
    });
    expect(findMpsAccessProblems(pod, ['app'], injection(), INJECTING)).toEqual([
      { kind: 'env', container: { kind: 'container', name: 'sidecar' }, names: ['NVIDIA_VISIBLE_DEVICES'] },
      { kind: 'env', container: { kind: 'init container', name: 'setup' }, names: ['CUDA_MPS_PINNED_DEVICE_MEM_LIMIT'] },
      { kind: 'env', container: { kind: 'ephemeral container', name: 'debug' }, names: ['CUDA_MPS_ACTIVE_THREAD_PERCENTAGE'] },
    ]);
  });

  test('hostPaths at, under and above either MPS directory, named by volume; other hostPaths pass', () => {
    const pod = podWith({
      volumes: [
        { name: 'own-pipe', hostPath: { path: '/run/nvidia/mps/pipe' } },
        { name: 'control', hostPath: { path: '/var/run/nvidia/mps/shm/seg', type: 'File' } },
        { name: 'everything', hostPath: { path: '/' } },
        { name: 'logs', hostPath: { path: '/var/log' } },
        // Named like injection's volume, but not its shape.
        { name: 'mps-injector-pipe', hostPath: { path: '/run/nvidia/mps', type: 'Directory' } },
      ],
    });
    expect(findMpsAccessProblems(pod, ['app'], injection(), INJECTING)).toEqual([
      { kind: 'host-path', volume: 'own-pipe', path: '/run/nvidia/mps/pipe', relation: 'at', directory: 'pipe', directoryPath: '/run/nvidia/mps/pipe' },
      { kind: 'host-path', volume: 'control', path: '/var/run/nvidia/mps/shm/seg', relation: 'under', directory: 'shm', directoryPath: '/run/nvidia/mps/shm' },
      { kind: 'host-path', volume: 'everything', path: '/', relation: 'above', directory: 'pipe', directoryPath: '/run/nvidia/mps/pipe' },
      { kind: 'host-path', volume: 'mps-injector-pipe', path: '/run/nvidia/mps', relation: 'above', directory: 'pipe', directoryPath: '/run/nvidia/mps/pipe' },
    ]);
  });

  test("injection's volumes mounted by a container it did not select, and mounts over the pipe", () => {
    const pod = podWith({
      containers: [
        { name: 'app', volumeMounts: [{ name: 'scratch', mountPath: '/run/nvidia/mps/pipe/' }, { name: 'cfg', mountPath: '/run/nvidia/mps/pipe/control' }] },
        { name: 'sidecar', volumeMounts: [{ name: 'mps-injector-pipe', mountPath: '/mps' }] },
      ],
      volumes: [
        { name: 'scratch', emptyDir: {} },
        { name: 'cfg', configMap: { name: 'c' } },
        { name: 'mps-injector-pipe', hostPath: { path: '/run/nvidia/mps/pipe', type: 'Directory' } },
      ],
    });
    expect(findMpsAccessProblems(pod, ['app'], injection(), INJECTING)).toEqual([
      { kind: 'pipe-shadowed', container: { kind: 'container', name: 'app' }, volume: 'scratch', mountPath: '/run/nvidia/mps/pipe/' },
      { kind: 'pipe-shadowed', container: { kind: 'container', name: 'app' }, volume: 'cfg', mountPath: '/run/nvidia/mps/pipe/control' },
      { kind: 'injected-volume-mount', container: { kind: 'container', name: 'sidecar' }, volume: 'mps-injector-pipe', mountPath: '/mps', directory: 'pipe' },
    ]);
  });

  test('a pod the webhook leaves alone may not reach MPS at all, not even in injection-shaped volumes', () => {
    const pod = podWith({
      containers: [{ name: 'app', env: [{ name: 'NVIDIA_VISIBLE_DEVICES', value: 'all' }], volumeMounts: [{ name: 'mps-injector-pipe', mountPath: '/run/nvidia/mps/pipe' }] }],
      initContainers: [{ name: 'mps-injector-wait-mps', env: [{ name: 'CUDA_MPS_PIPE_DIRECTORY', value: '/x' }] }],
      volumes: [{ name: 'mps-injector-pipe', hostPath: { path: '/run/nvidia/mps/pipe', type: 'Directory' } }],
    });
    expect(findMpsAccessProblems(pod, ['app'], injection(), { injecting: false }).map((f) => f.kind)).toEqual(['env', 'env', 'host-path']);
  });

  test('with mountShm off, an shm-shaped volume is the pod\'s own', () => {
    const pod = podWith({ volumes: [{ name: 'mps-injector-shm', hostPath: { path: '/run/nvidia/mps/shm', type: 'Directory' } }] });
    expect(findMpsAccessProblems(pod, ['app'], injection(), INJECTING)).toEqual([]);
    expect(findMpsAccessProblems(pod, ['app'], injection({ mountShm: false }), INJECTING)).toMatchObject([{ kind: 'host-path', volume: 'mps-injector-shm' }]);
  });
});

describe('enforceMpsAccess', () => {
  const offending = (): Pod =>
    podWith({
      containers: [
        { name: 'app', image: 'x', volumeMounts: [{ name: 'host-mps', mountPath: '/run/nvidia/mps/pipe' }] },
        { name: 'sidecar', image: 'y', env: [{ name: 'NVIDIA_VISIBLE_DEVICES', value: 'all' }, { name: 'MODE', value: 'x' }] },
      ],
      volumes: [{ name: 'host-mps', hostPath: { path: '/run/nvidia/mps/pipe' } }],
    });

  test('reject: one message naming each container and volume, and what to do', () => {
    const result = enforceMpsAccess(offending(), ['app'], injection(), INJECTING);
    if (result.ok) throw new Error('expected a refusal');
    expect(result.message).toBe(
      "mps-injector refuses this pod because it reaches the node's MPS daemon around the injector: " +
        'container "sidecar" (not selected for the GPU) sets NVIDIA_VISIBLE_DEVICES; ' +
        'volume "host-mps" is a hostPath at /run/nvidia/mps/pipe, the node\'s MPS pipe directory; ' +
        'container "app" mounts volume "host-mps" at /run/nvidia/mps/pipe, over the MPS pipe directory mps-injector mounts there (its MPS clients would run without the daemon\'s limits). ' +
        'Remove them: mps-injector gives the containers it selects (every regular container, or those named in the mps-injector.io/containers annotation) the MPS env and mounts itself, and no other container may reach MPS.',
    );
  });

  test('strip: removes what was found, warns for each, leaves the input alone and the rest of the pod as it was', () => {
    const input = offending();
    const before = structuredClone(input);
    const result = enforceMpsAccess(input, ['app'], injection({ mpsAccessPolicy: 'strip' }), INJECTING);
    if (!result.ok) throw new Error(result.message);
    expect(input).toEqual(before);
    expect(result.pod.spec).toEqual({
      containers: [
        { name: 'app', image: 'x' },
        { name: 'sidecar', image: 'y', env: [{ name: 'MODE', value: 'x' }] },
      ],
    });
    expect(result.warnings).toHaveLength(3);
    expect(result.warnings[0]).toMatch(/^container "sidecar": removed env NVIDIA_VISIBLE_DEVICES \(injection.mpsAccessPolicy "strip": /);
    expect(result.warnings[1]).toMatch(/^removed volume "host-mps" and every mount of it/);
    expect(findMpsAccessProblems(result.pod, ['app'], injection(), INJECTING)).toEqual([]);
  });

  test('strip does not apply to a pod the webhook leaves alone: no patch is sent, so it is refused', () => {
    const result = enforceMpsAccess(offending(), [], injection({ mpsAccessPolicy: 'strip' }), { injecting: false });
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.message).toContain('mps-injector does not inject this pod, so none of its containers may reach MPS');
  });

  test('a clean pod comes back as the same object with no warnings', () => {
    const pod = podWith({});
    const result = enforceMpsAccess(pod, ['app'], injection(), INJECTING);
    expect(result).toEqual({ ok: true, pod, warnings: [] });
    if (result.ok) expect(result.pod).toBe(pod);
  });

  test('thousands of offending containers: the message lists eight and counts the rest, in linear time', () => {
    const containers: Container[] = [{ name: 'app' }];
    for (let i = 0; i < 20_000; i += 1) containers.push({ name: `s${i}`, env: [{ name: 'NVIDIA_VISIBLE_DEVICES', value: 'all' }] });
    const started = performance.now();
    const result = enforceMpsAccess(podWith({ containers }), ['app'], injection(), INJECTING);
    const elapsedMs = performance.now() - started;
    if (result.ok) throw new Error('expected a refusal');
    expect(result.findings).toHaveLength(20_000);
    expect(result.message).toContain('container "s7" (not selected for the GPU) sets NVIDIA_VISIBLE_DEVICES; (and 19992 more).');
    expect(result.message).not.toContain('"s8"');
    // A generous bound that a quadratic pass over 20,000 containers would not meet.
    expect(elapsedMs).toBeLessThan(2000);
  });
});
