import type { Container, Pod } from 'kubernetes-types/core/v1.js';
import { buildConfig } from '../config/schema.js';
import type { Config } from '../config/schema.js';
import type { SlotChoice } from '../domain/slot.js';
import { buildPatch } from './buildPatch.js';
import { injectPod, mpsEnv } from './injectPod.js';
import { Annotation, INIT_CONTAINER_NAME } from '../domain/names.js';
import { podSpecProblems } from './podSpecProblems.js';

const UUID = 'GPU-a65a773d-52bb-bcc1-a8ee-f78c3faa2e2d';
const choice: SlotChoice = {
  ok: true,
  node: 'gpu-node-1',
  gpuUuid: UUID,
  gpuIndex: 3,
  gpuModel: 'NVIDIA H100 80GB HBM3',
  threadPercent: 30,
  memoryLimitMiB: 8192,
  priority: 'high',
  metricsAgeSeconds: 7,
  considered: 8,
  reason: 'spread: least loaded GPU',
};

function injectionConfig(overrides: Record<string, unknown> = {}): Config['injection'] {
  return buildConfig({ injection: overrides }).injection;
}

const config = injectionConfig();

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

function basePod(containers: Container[] = [{ name: 'app', image: 'app:1' }]): Pod {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'ns' }, spec: { containers } };
}

function container(pod: Pod, name: string): Container {
  const c = [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])].find((x) => x.name === name);
  if (c === undefined) throw new Error(`no container ${name}`);
  return c;
}

function envOf(c: Container): Record<string, string | undefined> {
  return Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value]));
}

describe('injectPod', () => {
  test('never mutates its input (a frozen pod injects fine)', () => {
    const pod = deepFreeze(basePod());
    const { pod: out } = injectPod(pod, choice, 'rsv-1', ['app'], config);
    expect(out).not.toBe(pod);
    expect(pod.spec?.initContainers).toBeUndefined();
  });

  test('a frozen pod with every field injection writes to injects fine; what it does not change is shared', () => {
    const full: Pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'p', namespace: 'ns', annotations: { team: 'a' }, labels: { app: 'x' } },
      spec: {
        containers: [
          { name: 'app', image: 'app:1', env: [{ name: 'A', value: '1' }], volumeMounts: [{ name: 'data', mountPath: '/data' }] },
          { name: 'sidecar', image: 'side:1', env: [{ name: 'B', value: '2' }] },
        ],
        initContainers: [{ name: 'setup', image: 'setup:1' }],
        volumes: [{ name: 'data', emptyDir: {} }],
        nodeSelector: { zone: 'a' },
        tolerations: [{ key: 'other', operator: 'Exists' }],
      },
    };
    const before = structuredClone(full);
    const pod = deepFreeze(full);
    const cfg = injectionConfig({ tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }] });
    const { pod: out } = injectPod(pod, choice, 'rsv-1', ['app'], cfg);
    expect(pod).toEqual(before);
    expect(container(out, 'app').env).toHaveLength(6);
    expect(container(out, 'app').volumeMounts).toHaveLength(3);
    expect(out.spec?.volumes).toHaveLength(3);
    expect(out.spec?.tolerations).toHaveLength(2);
    expect(out.spec?.nodeSelector).toEqual({ zone: 'a', 'kubernetes.io/hostname': 'gpu-node-1' });
    expect(out.spec?.containers[1]).toBe(pod.spec?.containers[1]);
    expect(out.spec?.volumes?.[0]).toBe(pod.spec?.volumes?.[0]);
    expect(buildPatch(pod, out).every((op) => !op.path.startsWith('/spec/containers/1'))).toBe(true);
  });

  test('injects the MPS env into the selected container', () => {
    const { pod, warnings } = injectPod(basePod(), choice, 'rsv-1', ['app'], config);
    expect(container(pod, 'app').env).toEqual([
      { name: 'CUDA_MPS_PIPE_DIRECTORY', value: '/run/nvidia/mps/pipe' },
      { name: 'CUDA_MPS_ACTIVE_THREAD_PERCENTAGE', value: '30' },
      { name: 'CUDA_MPS_PINNED_DEVICE_MEM_LIMIT', value: '0=8192M' },
      { name: 'NVIDIA_VISIBLE_DEVICES', value: UUID },
      { name: 'CUDA_MPS_CLIENT_PRIORITY', value: '0' },
    ]);
    expect(warnings).toEqual([]);
  });

  test('low priority is MPS client priority 1', () => {
    const { pod } = injectPod(basePod(), { ...choice, priority: 'low' }, 'rsv-1', ['app'], config);
    expect(envOf(container(pod, 'app'))['CUDA_MPS_CLIENT_PRIORITY']).toBe('1');
  });

  test('only selected containers get env and mounts', () => {
    const { pod } = injectPod(basePod([{ name: 'a' }, { name: 'b' }, { name: 'c' }]), choice, 'rsv-1', ['c', 'a'], config);
    expect(container(pod, 'a').env).toHaveLength(5);
    expect(container(pod, 'c').volumeMounts).toHaveLength(2);
    expect(container(pod, 'b')).toEqual({ name: 'b' });
    expect(pod.metadata?.annotations?.[Annotation.Containers]).toBe('c,a');
  });

  test('a selected container missing from the pod gives a warning, not an error', () => {
    const { warnings } = injectPod(basePod(), choice, 'rsv-1', ['app', 'ghost'], config);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('container "ghost"');
  });

  test('replaces MPS variables the pod set, in place, with a warning naming container, variable, old and new value', () => {
    const pod = basePod([
      {
        name: 'app',
        env: [
          { name: 'A', value: '1' },
          { name: 'CUDA_MPS_ACTIVE_THREAD_PERCENTAGE', value: '100' },
          { name: 'B', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
          { name: 'NVIDIA_VISIBLE_DEVICES', valueFrom: { configMapKeyRef: { name: 'gpu', key: 'ids' } } },
          { name: 'CUDA_MPS_PIPE_DIRECTORY', value: '/run/nvidia/mps/pipe' },
        ],
      },
    ]);
    const { pod: out, warnings } = injectPod(pod, choice, 'rsv-1', ['app'], config);
    expect(container(out, 'app').env).toEqual([
      { name: 'A', value: '1' },
      { name: 'CUDA_MPS_ACTIVE_THREAD_PERCENTAGE', value: '30' },
      { name: 'B', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      { name: 'NVIDIA_VISIBLE_DEVICES', value: UUID },
      { name: 'CUDA_MPS_PIPE_DIRECTORY', value: '/run/nvidia/mps/pipe' },
      { name: 'CUDA_MPS_PINNED_DEVICE_MEM_LIMIT', value: '0=8192M' },
      { name: 'CUDA_MPS_CLIENT_PRIORITY', value: '0' },
    ]);
    expect(warnings).toEqual([
      expect.stringMatching(/^container "app": env CUDA_MPS_ACTIVE_THREAD_PERCENTAGE was "100", replaced by "30"/),
      expect.stringMatching(/^container "app": env NVIDIA_VISIBLE_DEVICES was taken from valueFrom\.configMapKeyRef, replaced by "GPU-a65a773d/),
    ]);
  });

  test('setVisibleDevices off: the pod keeps its NVIDIA_VISIBLE_DEVICES and the memory limit names the GPU by UUID', () => {
    const pod = basePod([{ name: 'app', env: [{ name: 'NVIDIA_VISIBLE_DEVICES', value: 'all' }] }]);
    const { pod: out, warnings } = injectPod(pod, choice, 'rsv-1', ['app'], injectionConfig({ setVisibleDevices: false }));
    const env = envOf(container(out, 'app'));
    expect(env['NVIDIA_VISIBLE_DEVICES']).toBe('all');
    expect(env['CUDA_MPS_PINNED_DEVICE_MEM_LIMIT']).toBe(`${UUID}=8192M`);
    expect(warnings).toEqual([]);
  });

  test('mpsEnv follows the configured container pipe directory', () => {
    const env = mpsEnv(choice, injectionConfig({ containerPipeDirectory: '/mps' }));
    expect(env[0]).toEqual({ name: 'CUDA_MPS_PIPE_DIRECTORY', value: '/mps' });
  });

  test('adds hostPath volumes of type Directory and mounts them', () => {
    const { pod } = injectPod(basePod(), choice, 'rsv-1', ['app'], config);
    expect(pod.spec?.volumes).toEqual([
      { name: 'mps-injector-pipe', hostPath: { path: '/run/nvidia/mps/pipe', type: 'Directory' } },
      { name: 'mps-injector-shm', hostPath: { path: '/run/nvidia/mps/shm', type: 'Directory' } },
    ]);
    expect(container(pod, 'app').volumeMounts).toEqual([
      { name: 'mps-injector-pipe', mountPath: '/run/nvidia/mps/pipe' },
      { name: 'mps-injector-shm', mountPath: '/dev/shm' },
    ]);
  });

  test('mountShm off adds no shm volume or mount', () => {
    const { pod } = injectPod(basePod(), choice, 'rsv-1', ['app'], injectionConfig({ mountShm: false }));
    expect(pod.spec?.volumes?.map((v) => v.name)).toEqual(['mps-injector-pipe']);
    expect(container(pod, 'app').volumeMounts?.map((m) => m.mountPath)).toEqual(['/run/nvidia/mps/pipe']);
  });

  test("volume names the pod owns are not reused: the first free suffix is taken", () => {
    const pod = basePod();
    pod.spec!.volumes = [
      { name: 'mps-injector-pipe', emptyDir: {} },
      { name: 'mps-injector-pipe-2', hostPath: { path: '/run/nvidia/mps/pipe', type: 'DirectoryOrCreate' } },
      { name: 'mps-injector-shm', configMap: { name: 'x' } },
    ];
    const { pod: out } = injectPod(pod, choice, 'rsv-1', ['app'], config);
    expect(out.spec?.volumes?.map((v) => v.name)).toEqual(['mps-injector-pipe', 'mps-injector-pipe-2', 'mps-injector-shm', 'mps-injector-pipe-3', 'mps-injector-shm-2']);
    expect(container(out, 'app').volumeMounts?.map((m) => m.name)).toEqual(['mps-injector-pipe-3', 'mps-injector-shm-2']);
    expect(container(out, INIT_CONTAINER_NAME).volumeMounts?.[0]?.name).toBe('mps-injector-pipe-3');
    expect(podSpecProblems(out)).toEqual([]);
  });

  test('a mount the container already has at /dev/shm stays, with a warning; the unused shm volume is not added', () => {
    const pod = basePod([{ name: 'app', volumeMounts: [{ name: 'dshm', mountPath: '/dev/shm/' }] }]);
    pod.spec!.volumes = [{ name: 'dshm', emptyDir: { medium: 'Memory' } }];
    const { pod: out, warnings } = injectPod(pod, choice, 'rsv-1', ['app'], config);
    expect(container(out, 'app').volumeMounts).toEqual([
      { name: 'dshm', mountPath: '/dev/shm/' },
      { name: 'mps-injector-pipe', mountPath: '/run/nvidia/mps/pipe' },
    ]);
    expect(out.spec?.volumes?.map((v) => v.name)).toEqual(['dshm', 'mps-injector-pipe']);
    expect(warnings).toEqual([expect.stringContaining('container "app" already mounts volume "dshm" at /dev/shm/')]);
    expect(podSpecProblems(out)).toEqual([]);
  });

  test('the shm volume is added when any selected container mounts it', () => {
    const pod = basePod([{ name: 'a', volumeMounts: [{ name: 'dshm', mountPath: '/dev/shm' }] }, { name: 'b' }]);
    pod.spec!.volumes = [{ name: 'dshm', emptyDir: {} }];
    const { pod: out } = injectPod(pod, choice, 'rsv-1', ['a', 'b'], config);
    expect(out.spec?.volumes?.map((v) => v.name)).toEqual(['dshm', 'mps-injector-pipe', 'mps-injector-shm']);
    expect(podSpecProblems(out)).toEqual([]);
  });

  test('the wait-for-MPS init container comes first, once', () => {
    const pod = basePod();
    pod.spec!.initContainers = [{ name: 'setup', image: 'setup:1' }, { name: INIT_CONTAINER_NAME, image: 'old:0' }];
    const { pod: out } = injectPod(pod, choice, 'rsv-1', ['app'], config);
    expect(out.spec?.initContainers?.map((c) => c.name)).toEqual([INIT_CONTAINER_NAME, 'setup']);
    const init = container(out, INIT_CONTAINER_NAME);
    expect(init.image).toBe('busybox:1.36');
    expect(envOf(init)).toEqual({ MPS_PIPE: '/run/nvidia/mps/pipe', MPS_HOST_PIPE: '/run/nvidia/mps/pipe', MPS_TIMEOUT: '120', MPS_NODE: 'gpu-node-1' });
    expect(init.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
  });

  test('a configured init command replaces the built-in one', () => {
    const cfg = injectionConfig({ initContainer: { command: ['/wait', '$(MPS_PIPE)'], image: 'w:1', timeoutSeconds: 9 } });
    const init = container(injectPod(basePod(), choice, 'rsv-1', ['app'], cfg).pod, INIT_CONTAINER_NAME);
    expect(init.command).toEqual(['/wait', '$(MPS_PIPE)']);
    expect(init.image).toBe('w:1');
    expect(envOf(init)['MPS_TIMEOUT']).toBe('9');
  });

  test('pins the node, keeping other selectors; a different hostname is overwritten with a warning', () => {
    const pod = basePod();
    pod.spec!.nodeSelector = { pool: 'gpu', 'kubernetes.io/hostname': 'node-z' };
    const { pod: out, warnings } = injectPod(pod, choice, 'rsv-1', ['app'], config);
    expect(out.spec?.nodeSelector).toEqual({ pool: 'gpu', 'kubernetes.io/hostname': 'gpu-node-1' });
    expect(warnings).toEqual([expect.stringContaining('was "node-z", set to "gpu-node-1"')]);
  });

  test('adds configured tolerations unless an equal one is there (defaults filled in)', () => {
    const cfg = injectionConfig({
      tolerations: [
        { key: 'nvidia.com/mps', operator: 'Exists', effect: 'NoSchedule' },
        { key: 'dedicated', value: 'gpu', effect: 'NoSchedule' },
      ],
    });
    const pod = basePod();
    pod.spec!.tolerations = [{ key: 'dedicated', operator: 'Equal', value: 'gpu', effect: 'NoSchedule' }];
    const { pod: out } = injectPod(pod, choice, 'rsv-1', ['app'], cfg);
    expect(out.spec?.tolerations).toEqual([
      { key: 'dedicated', operator: 'Equal', value: 'gpu', effect: 'NoSchedule' },
      { key: 'nvidia.com/mps', operator: 'Exists', effect: 'NoSchedule' },
    ]);
  });

  test('no configured tolerations: no tolerations field appears', () => {
    expect(injectPod(basePod(), choice, 'rsv-1', ['app'], config).pod.spec?.tolerations).toBeUndefined();
  });

  test('writes the decision annotations', () => {
    const { pod } = injectPod(basePod(), choice, 'rsv-9', ['app'], config);
    expect(pod.metadata?.annotations).toEqual({
      [Annotation.Node]: 'gpu-node-1',
      [Annotation.GpuUuid]: UUID,
      [Annotation.GpuIndex]: '3',
      [Annotation.ThreadPercent]: '30',
      [Annotation.MemoryLimit]: '8192Mi',
      [Annotation.Priority]: 'high',
      [Annotation.Containers]: 'app',
      [Annotation.Reservation]: 'rsv-9',
      [Annotation.MetricsAgeSeconds]: '7',
      [Annotation.Decision]: 'spread: least loaded GPU',
    });
  });

  test("keeps the user's spelling of containers and priority when it means the same, rewrites it otherwise", () => {
    const same = basePod([{ name: 'a' }, { name: 'b' }]);
    same.metadata!.annotations = { [Annotation.Containers]: 'a, b', [Annotation.Priority]: 'High' };
    const kept = injectPod(same, choice, 'r', ['a', 'b'], config).pod.metadata?.annotations;
    expect(kept?.[Annotation.Containers]).toBe('a, b');
    expect(kept?.[Annotation.Priority]).toBe('High');

    const different = basePod([{ name: 'a' }, { name: 'b' }]);
    different.metadata!.annotations = { [Annotation.Containers]: 'b', [Annotation.Priority]: 'low' };
    const rewritten = injectPod(different, choice, 'r', ['a', 'b'], config).pod.metadata?.annotations;
    expect(rewritten?.[Annotation.Containers]).toBe('a,b');
    expect(rewritten?.[Annotation.Priority]).toBe('high');
  });

  test('is idempotent: injecting the injected pod with the same decision changes nothing', () => {
    const pod = basePod([{ name: 'app', volumeMounts: [{ name: 'dshm', mountPath: '/dev/shm' }], env: [{ name: 'CUDA_MPS_ACTIVE_THREAD_PERCENTAGE', value: '5' }] }]);
    pod.spec!.volumes = [{ name: 'dshm', emptyDir: {} }, { name: 'mps-injector-pipe', emptyDir: {} }];
    pod.spec!.tolerations = [{ key: 'x', operator: 'Exists' }];
    const cfg = injectionConfig({ tolerations: [{ key: 'nvidia.com/mps', operator: 'Exists' }] });
    const once = injectPod(pod, choice, 'rsv-1', ['app'], cfg).pod;
    const twice = injectPod(once, choice, 'rsv-1', ['app'], cfg);
    expect(twice.pod).toEqual(once);
    expect(buildPatch(once, twice.pod)).toEqual([]);
    // The kept /dev/shm mount is still reported; the already-replaced variable is not.
    expect(twice.warnings).toEqual([expect.stringContaining('already mounts volume "dshm"')]);
  });

  test('a new decision over an injected pod updates values without duplicating anything', () => {
    const once = injectPod(basePod(), choice, 'rsv-1', ['app'], config).pod;
    const moved: SlotChoice = { ...choice, node: 'gpu-node-2', gpuUuid: 'GPU-other', gpuIndex: 0, threadPercent: 50, priority: 'low' };
    const { pod: again, warnings } = injectPod(once, moved, 'rsv-2', ['app'], config);
    expect(again.spec?.volumes).toHaveLength(2);
    expect(again.spec?.initContainers).toHaveLength(1);
    expect(container(again, 'app').volumeMounts).toHaveLength(2);
    expect(container(again, 'app').env).toHaveLength(5);
    expect(envOf(container(again, 'app'))).toMatchObject({ CUDA_MPS_ACTIVE_THREAD_PERCENTAGE: '50', NVIDIA_VISIBLE_DEVICES: 'GPU-other', CUDA_MPS_CLIENT_PRIORITY: '1' });
    expect(again.spec?.nodeSelector).toEqual({ 'kubernetes.io/hostname': 'gpu-node-2' });
    expect(again.metadata?.annotations?.[Annotation.Reservation]).toBe('rsv-2');
    expect(warnings).toHaveLength(4); // thread percentage, visible devices, client priority, node selector
  });

  test('own "__proto__" keys of a parsed pod stay plain keys, as in the input', () => {
    const pod = JSON.parse(
      '{"metadata":{"name":"p","__proto__":{"x":1},"annotations":{"__proto__":"a"}},"spec":{"__proto__":{"y":2},"containers":[{"name":"app","__proto__":{"z":3}}]}}',
    ) as Pod;
    const { pod: out } = injectPod(pod, choice, 'rsv-1', ['app'], config);
    expect(Object.getPrototypeOf(out.metadata)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(out.metadata, '__proto__')?.value).toEqual({ x: 1 });
    expect(Object.getOwnPropertyDescriptor(out.metadata?.annotations, '__proto__')?.value).toBe('a');
    expect(Object.getOwnPropertyDescriptor(out.spec, '__proto__')?.value).toEqual({ y: 2 });
    expect(Object.getOwnPropertyDescriptor(container(out, 'app'), '__proto__')?.value).toEqual({ z: 3 });
    expect(Object.getPrototypeOf(container(out, 'app'))).toBe(Object.prototype);
  });

  test('a pod without spec or metadata gets both', () => {
    const { pod } = injectPod({}, choice, 'rsv-1', [], config);
    expect(pod.spec?.initContainers?.[0]?.name).toBe(INIT_CONTAINER_NAME);
    expect(pod.metadata?.annotations?.[Annotation.Reservation]).toBe('rsv-1');
  });
});
