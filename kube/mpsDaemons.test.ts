import { MpsDaemonTable, isMpsDaemonPodReady } from './mpsDaemons.js';
import type { DaemonPodLike } from './mpsDaemons.js';

function pod(name: string, node: string | undefined, ready: boolean, extra: Partial<DaemonPodLike['metadata']> = {}, phase = 'Running'): DaemonPodLike {
  return {
    metadata: { uid: `uid-${name}`, namespace: 'mps-system', name, ...extra },
    spec: node === undefined ? {} : { nodeName: node },
    status: { phase, conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
  };
}

describe('isMpsDaemonPodReady', () => {
  test.each([
    ['running and Ready', pod('a', 'gpu-a', true), true],
    ['Ready condition False', pod('a', 'gpu-a', false), false],
    ['not scheduled yet', pod('a', undefined, true), false],
    ['pending', pod('a', 'gpu-a', true, {}, 'Pending'), false],
    ['being deleted', pod('a', 'gpu-a', true, { deletionTimestamp: '2026-01-01T00:00:00Z' }), false],
    ['no conditions', { ...pod('a', 'gpu-a', true), status: { phase: 'Running' } }, false],
  ])('%s -> %s', (_name, p, expected) => {
    expect(isMpsDaemonPodReady(p)).toBe(expected);
  });
});

describe('MpsDaemonTable', () => {
  test('a node counts while at least one of its daemon pods is Ready; changes are reported, repeats are not', () => {
    const table = new MpsDaemonTable();
    expect(table.upsert(pod('a', 'gpu-a', true))).toBe(true);
    expect(table.upsert(pod('b', 'gpu-b', false))).toBe(true);
    expect([...table.readyNodes()]).toEqual(['gpu-a']);
    const before = table.readyNodes();
    expect(table.upsert(pod('a', 'gpu-a', true))).toBe(false);
    expect(table.readyNodes()).toBe(before);

    // A second (rolling update) pod on gpu-a keeps it ready when the first goes NotReady.
    table.upsert(pod('a2', 'gpu-a', true));
    table.upsert(pod('a', 'gpu-a', false));
    expect(table.readyNodes().has('gpu-a')).toBe(true);
    expect(table.remove(pod('a2', 'gpu-a', true))).toBe(true);
    expect(table.readyNodes().has('gpu-a')).toBe(false);
    expect(table.remove(pod('unknown', 'gpu-a', true))).toBe(false);

    table.upsert(pod('b', 'gpu-b', true));
    expect([...table.readyNodes()]).toEqual(['gpu-b']);
  });

  test('pods without a uid are keyed by namespace and name; pods without either are ignored', () => {
    const table = new MpsDaemonTable();
    expect(table.upsert({ metadata: { namespace: 'n', name: 'x' }, spec: { nodeName: 'gpu-c' }, status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] } })).toBe(true);
    expect(table.readyNodes().has('gpu-c')).toBe(true);
    expect(table.upsert({ spec: { nodeName: 'gpu-d' } })).toBe(false);
  });
});
