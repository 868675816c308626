import { buildCluster, expandCluster } from '../cluster.js';
import type { TracePod } from '../trace.js';
import { EqualSplitStrategy, TimeSlicingStrategy } from './replicaStrategies.js';
import type { PlacementStrategy } from './placementStrategy.js';

const gpus = expandCluster(
  buildCluster({
    name: 'mixed',
    nodes: [
      { name: 'big', gpus: 2, model: 'NVIDIA H100 80GB HBM3', memoryMiB: 81920 },
      { name: 'small', gpus: 1, model: 'NVIDIA L4', memoryMiB: 23034 },
    ],
  }),
);

const pod = (id: string, memoryMiB: number, gpuModel: string | null = null): TracePod => ({
  id,
  arrivalS: 0,
  durationS: 60,
  memoryMiB,
  computePercent: 10,
  priority: 'low',
  workload: 'test',
  gpuModel,
});

function place(strategy: PlacementStrategy, p: TracePod) {
  return strategy.place({ pod: p, podKey: `sim/${p.id}`, nowMs: 0, observed: null });
}

describe('EqualSplitStrategy', () => {
  it('grants 100/N threads and memory/N, refuses pods larger than a replica everywhere', () => {
    const s = new EqualSplitStrategy(gpus, 4, 'binpack');
    expect(place(s, pod('a', 8192))).toEqual({ ok: true, gpuUuid: gpus[0]!.uuid, threadPercent: 25, memoryLimitMiB: 20480, highPriorityClient: false });
    expect(place(s, pod('huge', 30000))).toMatchObject({ ok: false, code: 'too-large' });
  });

  it('binpack fills the fullest GPU first; spread the emptiest', () => {
    const bin = new EqualSplitStrategy(gpus, 2, 'binpack');
    const a = place(bin, pod('a', 1000));
    const b = place(bin, pod('b', 1000));
    expect(a.ok && b.ok && a.gpuUuid === b.gpuUuid).toBe(true);
    const spread = new EqualSplitStrategy(gpus, 2, 'spread');
    const c = place(spread, pod('c', 1000));
    const d = place(spread, pod('d', 1000));
    expect(c.ok && d.ok && c.gpuUuid !== d.gpuUuid).toBe(true);
  });

  it('runs out of replicas, and gets them back when pods leave', () => {
    const s = new EqualSplitStrategy(gpus, 1, 'binpack');
    for (const id of ['a', 'b', 'c']) expect(place(s, pod(id, 1000)).ok).toBe(true);
    expect(place(s, pod('d', 1000))).toMatchObject({ ok: false, code: 'no-replica' });
    expect(s.heldSlots()).toBe(3);
    s.departed('sim/b');
    expect(s.heldSlots()).toBe(2);
    expect(place(s, pod('d', 1000)).ok).toBe(true);
  });

  it('honours a GPU model constraint', () => {
    const s = new EqualSplitStrategy(gpus, 4, 'binpack');
    const placed = place(s, pod('l4', 1000, 'L4'));
    expect(placed.ok && placed.gpuUuid).toBe(gpus[2]!.uuid);
  });
});

describe('TimeSlicingStrategy', () => {
  it('ignores memory, sets no limits, and counts replicas', () => {
    const s = new TimeSlicingStrategy(gpus, 1, 'binpack');
    expect(place(s, pod('a', 80000))).toEqual({ ok: true, gpuUuid: gpus[0]!.uuid, threadPercent: null, memoryLimitMiB: null, highPriorityClient: false });
    expect(place(s, pod('b', 80000)).ok).toBe(true);
    expect(place(s, pod('c', 80000)).ok).toBe(true);
    expect(place(s, pod('d', 1))).toMatchObject({ ok: false, code: 'no-replica' });
    for (const id of ['a', 'b', 'c']) s.departed(`sim/${id}`);
    expect(s.heldSlots()).toBe(0);
  });

  it('rejects a replica count that is not a positive whole number', () => {
    expect(() => new TimeSlicingStrategy(gpus, 0, 'binpack')).toThrow(/--replicas/);
  });
});
