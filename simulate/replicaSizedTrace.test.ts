import { buildCluster, expandCluster } from './cluster.js';
import { replicaSizedTrace } from './replicaSizedTrace.js';
import { buildTrace } from './trace.js';

const gpus = expandCluster(buildCluster({ name: 'c', nodes: [{ name: 'n', gpus: 1, model: 'NVIDIA H100 80GB HBM3', memoryMiB: 81920 }] }));
const pod = (id: string, memoryMiB: number, gpuModel: string | null = null) => ({ id, arrivalS: 0, durationS: 1, memoryMiB, computePercent: 10, priority: 'low', workload: 'w', gpuModel });

describe('replicaSizedTrace', () => {
  it('keeps the pods that fit one replica of a matching GPU and renames the trace', () => {
    const trace = buildTrace({ name: 't', pods: [pod('fits', 20480), pod('too-big', 20481), pod('wrong-model', 1024, 'A100')] });
    const sized = replicaSizedTrace(trace, gpus, 4);
    expect(sized.name).toBe('t-replica-sized');
    expect(sized.pods.map((p) => p.id)).toEqual(['fits']);
    expect(sized.description).toContain('1 of 3 pods');
  });

  it('says what to change when nothing fits', () => {
    expect(() => replicaSizedTrace(buildTrace({ name: 't', pods: [pod('big', 50000)] }), gpus, 4)).toThrow(/lower --replicas/);
  });
});
