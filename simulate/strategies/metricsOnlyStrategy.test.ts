import type { GpuInventory, GpuSample } from '../../domain/inventory.js';
import type { TracePod } from '../trace.js';
import { MetricsOnlyStrategy } from './metricsOnlyStrategy.js';

function sample(uuid: string, usedMiB: number, model = 'NVIDIA H100 80GB HBM3'): GpuSample {
  return {
    node: 'n',
    uuid,
    index: Number(uuid.slice(-1)),
    model,
    pciBusId: null,
    memory: { totalMiB: 81920, usedMiB, freeMiB: 81920 - usedMiB, reservedMiB: 0 },
    utilPercent: 0,
    smActive: 0,
    grEngineActive: 0,
    xid: 0,
    mig: false,
    sampledAtMs: 0,
    pods: [],
  };
}

const inventory = (gpus: GpuSample[]): GpuInventory => ({ gpus, nodes: {}, source: 'test', fetchedAtMs: 0, skippedLines: 0, problems: [] });
const pod = (memoryMiB: number, gpuModel: string | null = null): TracePod => ({
  id: 'p',
  arrivalS: 0,
  durationS: 1,
  memoryMiB,
  computePercent: 30,
  priority: 'high',
  workload: 't',
  gpuModel,
});

describe('MetricsOnlyStrategy', () => {
  const s = new MetricsOnlyStrategy();
  const observed = inventory([sample('gpu-0', 60000), sample('gpu-1', 10000), sample('gpu-2', 10000), sample('gpu-3', 0, 'NVIDIA L4')]);

  it('picks the GPU with the most observed free memory (first on ties) and grants the asked share', () => {
    expect(s.place({ pod: pod(8192, 'H100'), podKey: 'sim/p', nowMs: 0, observed })).toEqual({
      ok: true,
      gpuUuid: 'gpu-1',
      threadPercent: 30,
      memoryLimitMiB: 8192,
      highPriorityClient: false,
    });
  });

  it('keeps no bookkeeping: the same snapshot gives the same answer again', () => {
    const first = s.place({ pod: pod(8192), podKey: 'sim/a', nowMs: 0, observed });
    const second = s.place({ pod: pod(8192), podKey: 'sim/b', nowMs: 0, observed });
    expect(second).toEqual(first);
    expect(s.heldSlots()).toBe(0);
  });

  it('refuses when no GPU shows enough free memory', () => {
    expect(s.place({ pod: pod(90000), podKey: 'sim/p', nowMs: 0, observed })).toMatchObject({ ok: false, code: 'no-fit' });
  });
});
