import { GpuSampleCollector, type SeriesLabels } from './collectGpuSamples.js';
import { exporterPodLabels } from './dcgmNames.js';

const NOW = 1_767_000_000_000;
const UUID = 'GPU-c4529c8d-69c4-b61d-e0bc-7b2460096005';

const collector = (): GpuSampleCollector =>
  new GpuSampleCollector({ nodeLabels: ['Hostname'], podLabels: [exporterPodLabels], fallbackTimeMs: NOW, receivedAtMs: NOW });

/** The label sets of `pods` per-pod series of one GPU (one object each, as a query result gives them). */
const podSeries = (pods: number): SeriesLabels[] =>
  Array.from({ length: pods }, (_, p) => ({ gpu: '0', UUID, modelName: 'NVIDIA H100 80GB HBM3', Hostname: 'gpu-node-1', namespace: 'ns', pod: `pod-${p}`, container: 'main' }));

/** Median wall time of three runs, ms. */
function timeOf(f: () => void): number {
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    f();
    times.push(performance.now() - t0);
  }
  return times.sort((a, b) => a - b)[1] as number;
}

describe('GpuSampleCollector', () => {
  test('per-pod series of one GPU cost linear time (32,000 pods vs 2,000)', () => {
    const small = podSeries(2_000);
    const large = podSeries(32_000);
    const collect = (series: SeriesLabels[]) => (): void => {
      const c = collector();
      for (const labels of series) c.add('DCGM_FI_DEV_FB_USED', labels, 1000, null, false);
      c.finish();
    };
    collect(small)();
    const smallMs = timeOf(collect(small));
    const largeMs = timeOf(collect(large));
    // 16x the series: linear is about 16x, quadratic about 256x.
    expect(largeMs).toBeLessThan(3 * 16 * smallMs + 50);
  });

  test('a series time later than the arrival is clamped to it', () => {
    const c = collector();
    c.add('DCGM_FI_DEV_GPU_UTIL', { gpu: '0', UUID, Hostname: 'gpu-node-1' }, 5, NOW + 86_400_000);
    const collected = c.finish();
    expect(collected.gpus[0]?.sampledAtMs).toBe(NOW);
    expect(collected.faults.clockSkewedGpus).toBe(1);
    expect(collected.faults.maxClockSkewSeconds).toBe(86_400);
  });
});
