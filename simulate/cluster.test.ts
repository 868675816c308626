import { buildCluster, expandCluster } from './cluster.js';

describe('cluster', () => {
  it('expands node groups into named nodes with distinct, stable GPU UUIDs', () => {
    const spec = buildCluster({ name: 'c', nodes: [{ name: 'gpu', count: 2, gpus: 3, model: 'NVIDIA H100 80GB HBM3', memoryMiB: 81559 }] });
    const gpus = expandCluster(spec);
    expect(gpus.map((g) => `${g.node}/${g.index}`)).toEqual(['gpu-1/0', 'gpu-1/1', 'gpu-1/2', 'gpu-2/0', 'gpu-2/1', 'gpu-2/2']);
    expect(new Set(gpus.map((g) => g.uuid)).size).toBe(6);
    for (const g of gpus) expect(g.uuid).toMatch(/^GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(expandCluster(spec)).toEqual(gpus);
  });

  it('explains an invalid definition', () => {
    expect(() => buildCluster({ name: 'c', nodes: [{ name: 'Bad_Name', gpus: 0, model: 'x', memoryMiB: 1 }] })).toThrow(/nodes\.0\.name: must be a DNS label[\s\S]*nodes\.0\.gpus/);
  });
});
