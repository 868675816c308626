import { NodeStateTable, nodeStateOf } from './nodeStates.js';

const ready = { conditions: [{ type: 'Ready', status: 'True' }] };

describe('nodeStateOf', () => {
  test('a Ready, uncordoned node is schedulable and keeps its labels', () => {
    expect(nodeStateOf({ metadata: { name: 'n', labels: { 'nvidia.com/gpu.product': 'NVIDIA-H100-80GB-HBM3' } }, status: ready })).toEqual({
      name: 'n',
      schedulable: true,
      labels: { 'nvidia.com/gpu.product': 'NVIDIA-H100-80GB-HBM3' },
    });
  });

  test('cordoned wins over Ready', () => {
    expect(nodeStateOf({ metadata: { name: 'n' }, spec: { unschedulable: true }, status: ready })).toEqual(
      expect.objectContaining({ schedulable: false, unschedulableReason: 'cordoned' }),
    );
  });

  test.each([
    [{ conditions: [{ type: 'Ready', status: 'False', reason: 'KubeletNotReady' }] }, 'NotReady (KubeletNotReady)'],
    [{ conditions: [{ type: 'Ready', status: 'Unknown' }] }, 'NotReady (kubelet stopped reporting)'],
    [{ conditions: [] }, 'NotReady (no Ready condition reported)'],
  ])('not Ready: %j -> %s', (status, reason) => {
    expect(nodeStateOf({ metadata: { name: 'n' }, status })).toEqual(expect.objectContaining({ schedulable: false, unschedulableReason: reason }));
  });
});

describe('NodeStateTable', () => {
  test('the snapshot changes only after a change, and deletions drop the node', () => {
    const table = new NodeStateTable();
    table.upsert({ metadata: { name: 'a' }, status: ready });
    const first = table.snapshot();
    expect(table.snapshot()).toBe(first);
    table.upsert({ metadata: { name: 'a' }, spec: { unschedulable: true }, status: ready });
    const second = table.snapshot();
    expect(second).not.toBe(first);
    expect(second.a?.schedulable).toBe(false);
    table.remove({ metadata: { name: 'a' } });
    expect(table.snapshot()).toEqual({});
  });

  test('once daemons are checked, every state says whether its node has a Ready MPS daemon', () => {
    const table = new NodeStateTable();
    table.upsert({ metadata: { name: 'a' }, status: ready });
    table.upsert({ metadata: { name: 'b' }, status: ready });
    expect(table.snapshot().a).not.toHaveProperty('mpsDaemonReady');
    table.setMpsDaemonNodes(new Set(['b']));
    expect(table.snapshot().a?.mpsDaemonReady).toBe(false);
    expect(table.snapshot().b?.mpsDaemonReady).toBe(true);
    const snapshot = table.snapshot();
    table.setMpsDaemonNodes(new Set(['a', 'b']));
    expect(table.snapshot()).not.toBe(snapshot);
    expect(table.snapshot().a?.mpsDaemonReady).toBe(true);
  });
});
