import { defaultConfig } from '../../config/schema.js';
import type { GpuInventory, GpuSample } from '../../domain/inventory.js';
import type { TracePod } from '../trace.js';
import { MpsInjectorStrategy } from './mpsInjectorStrategy.js';

const NOW = 1_700_000_000_000;

function sample(uuid: string, index: number): GpuSample {
  return {
    node: 'n',
    uuid,
    index,
    model: 'NVIDIA H100 80GB HBM3',
    pciBusId: null,
    memory: { totalMiB: 81559, usedMiB: 0, freeMiB: 81559, reservedMiB: 0 },
    utilPercent: 0,
    smActive: 0,
    grEngineActive: 0,
    xid: 0,
    mig: false,
    sampledAtMs: NOW - 20_000,
    pods: [],
  };
}

const observed: GpuInventory = { gpus: [sample('gpu-0', 0), sample('gpu-1', 1)], nodes: {}, source: 'test', fetchedAtMs: NOW, skippedLines: 0, problems: [] };
const pod = (id: string, memoryMiB: number, priority: 'high' | 'low' = 'high'): TracePod => ({
  id,
  arrivalS: 0,
  durationS: 60,
  memoryMiB,
  computePercent: 20,
  priority,
  workload: 't',
  gpuModel: null,
});

describe('MpsInjectorStrategy', () => {
  it('reserves what it grants, so pods admitted on one stale snapshot never share the same memory', () => {
    const s = new MpsInjectorStrategy(defaultConfig().placement, 120_000);
    const granted = ['a', 'b', 'c'].map((id) => s.place({ pod: pod(id, 41_000), podKey: `sim/${id}`, nowMs: NOW, observed }));
    expect(granted.map((g) => g.ok && g.gpuUuid)).toEqual(['gpu-0', 'gpu-1', false]);
    expect(granted[0]).toMatchObject({ ok: true, threadPercent: 20, memoryLimitMiB: 41_000, highPriorityClient: true });
    expect(granted[2]).toMatchObject({ ok: false, code: 'no-fit' });
    expect(s.heldSlots(NOW)).toBe(2);
  });

  it('confirms at start (no expiry) and releases at departure', () => {
    const s = new MpsInjectorStrategy(defaultConfig().placement, 1_000);
    expect(s.place({ pod: pod('a', 40_000, 'low'), podKey: 'sim/a', nowMs: NOW, observed })).toMatchObject({ ok: true, highPriorityClient: false });
    s.started('sim/a', NOW);
    expect(s.heldSlots(NOW + 3_600_000)).toBe(1);
    s.departed('sim/a');
    expect(s.heldSlots(NOW)).toBe(0);
  });

  it('fails loudly when a start comes after the reservation expired', () => {
    const s = new MpsInjectorStrategy(defaultConfig().placement, 1_000);
    s.place({ pod: pod('a', 1_000), podKey: 'sim/a', nowMs: NOW, observed });
    expect(() => s.started('sim/a', NOW + 5_000)).toThrow(/ttlSeconds/);
  });
});
