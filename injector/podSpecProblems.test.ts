import type { Pod } from 'kubernetes-types/core/v1.js';
import { podSpecProblems } from './podSpecProblems.js';

describe('podSpecProblems', () => {
  test('a sound pod has none', () => {
    const pod: Pod = {
      spec: {
        volumes: [{ name: 'v', emptyDir: {} }],
        initContainers: [{ name: 'i', volumeMounts: [{ name: 'v', mountPath: '/a' }] }],
        containers: [{ name: 'c', volumeMounts: [{ name: 'v', mountPath: '/a' }, { name: 'v', mountPath: '/b' }] }],
      },
    };
    expect(podSpecProblems(pod)).toEqual([]);
  });

  test('finds duplicate volumes, unknown volumes, duplicate paths and duplicate container names', () => {
    const pod: Pod = {
      spec: {
        volumes: [{ name: 'v', emptyDir: {} }, { name: 'v', emptyDir: {} }],
        initContainers: [{ name: 'c' }],
        containers: [{ name: 'c', volumeMounts: [{ name: 'v', mountPath: '/dev/shm' }, { name: 'w', mountPath: '/dev/shm/' }] }],
      },
    };
    expect(podSpecProblems(pod)).toEqual([
      'volume name "v" is used twice',
      'container name "c" is used twice',
      'container "c" mounts volume "w", which the pod does not define',
      'container "c" mounts two volumes at /dev/shm/',
    ]);
  });

  test('a pod without spec or containers is a problem', () => {
    expect(podSpecProblems({})).toEqual(['pod has no spec']);
    expect(podSpecProblems({ spec: { containers: [] } })).toEqual(['pod has no containers']);
  });
});
