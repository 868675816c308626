import { renderMarkdownTable, summarizeRun, summarizeSimulation } from './report.js';
import type { SimulationResult, StrategyRun } from './runSimulation.js';

function run(overrides: Partial<StrategyRun>): StrategyRun {
  return {
    strategy: 'mps-injector',
    admitted: 4,
    refused: 1,
    refusedByCode: { 'no-fit': 1 },
    overcommitEvents: [],
    overcommitPods: 0,
    gpuHours: 3,
    admittedPodHours: 12,
    peakGpusInUse: 2,
    slowdowns: [
      { podId: 'a', priority: 'high', slowdown: 1 },
      { podId: 'b', priority: 'high', slowdown: 3 },
      { podId: 'c', priority: 'low', slowdown: 2 },
      { podId: 'd', priority: 'low', slowdown: 4 },
    ],
    placeTimesUs: [10, 20, 30, 40, 1000],
    series: { tS: [0], gpusInUse: [0], overcommitEvents: [0], refused: [0] },
    burstSeries: null,
    placements: [],
    leftover: { residentPods: 0, heldSlots: 0 },
    smPercentMs: 0,
    memoryFractionMs: 0,
    memorySampledMs: 0,
    requests: { offered: 0, served: 0, responseSeconds: 0 },
    spanS: 0,
    ...overrides,
  };
}

describe('summarizeRun', () => {
  it('derives means, percentiles and per-priority figures from the per-pod values', () => {
    const s = summarizeRun(run({}));
    expect(s).toMatchObject({
      admitted: 4,
      refused: 1,
      overcommitEvents: 0,
      gpuHours: 3,
      admittedPodHours: 12,
      gpuHoursPerPodHour: 0.25,
      meanSlowdown: 2.5,
      meanSlowdownHigh: 2,
      meanSlowdownLow: 3,
      placeTimeMedianUs: 30,
    });
    // p95 of [1, 2, 3, 4] by linear interpolation: 3.85; of high [1, 3]: 2.9.
    expect(s.p95Slowdown).toBeCloseTo(3.85, 9);
    expect(s.p95SlowdownHigh).toBeCloseTo(2.9, 9);
  });

  it('reports null, not NaN, where there is nothing to measure', () => {
    const s = summarizeRun(run({ admitted: 0, slowdowns: [], admittedPodHours: 0, placeTimesUs: [] }));
    expect(s.meanSlowdownHigh).toBeNull();
    expect(s.p95Slowdown).toBeNull();
    expect(s.gpuHoursPerPodHour).toBeNull();
    expect(JSON.parse(JSON.stringify(s))).toEqual(s);
  });
});

describe('renderMarkdownTable', () => {
  it('renders one row per strategy with its figures', () => {
    const result = {
      trace: 'burst',
      cluster: 'h100-4x8',
      pods: 5,
      gpus: 32,
      seriesStepS: 5,
      settings: { policy: 'binpack', metricsIntervalS: 30, scrapeDelayS: 15 },
      runs: [run({}), run({ strategy: 'time-slicing', overcommitEvents: [{ atS: 1, node: 'n', gpuUuid: 'g', usedMiB: 2, totalMiB: 1, pods: 2 }], overcommitPods: 2 })],
    } as unknown as SimulationResult;
    const table = renderMarkdownTable(summarizeSimulation(result));
    const lines = table.split('\n');
    expect(lines[0]).toContain('burst on h100-4x8 (5 pods, 32 GPUs, binpack');
    const rows = lines.filter((l) => l.startsWith('| mps-injector') || l.startsWith('| time-slicing'));
    expect(rows).toHaveLength(2);
    expect(rows[0]).toBe('| mps-injector | 4 | 1 | 0 (0) | 3.0 | 0.250 | 2 | 2.50 / 3.85 | 2.00 / 2.90 | 3.00 / 3.90 | 30.0 / 961.6 |');
    expect(rows[1]).toContain('| 1 (2) |');
  });
});
