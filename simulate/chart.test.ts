import { buildCluster } from './cluster.js';
import { buildChartSpec, renderChartSvg } from './chart.js';
import { defaultSimulationSettings, runSimulation } from './runSimulation.js';
import { STRATEGY_NAMES } from './strategies/placementStrategy.js';
import { buildTrace } from './trace.js';

describe('chart', () => {
  it('renders an SVG of GPUs in use and over-commit events that names every strategy', async () => {
    const trace = buildTrace({
      name: 'tiny',
      pods: [
        { id: 'a', arrivalS: 0, durationS: 600, memoryMiB: 50_000, computePercent: 40, priority: 'high', workload: 'w' },
        { id: 'b', arrivalS: 30, durationS: 600, memoryMiB: 50_000, computePercent: 40, priority: 'low', workload: 'w' },
      ],
    });
    const cluster = buildCluster({ name: 'one-node', nodes: [{ name: 'n', gpus: 2, model: 'NVIDIA H100 80GB HBM3', memoryMiB: 81559 }] });
    const result = runSimulation(trace, cluster, { ...defaultSimulationSettings(), clock: () => 0 });
    const spec = buildChartSpec(result);
    const svg = await renderChartSvg(spec);
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    for (const name of STRATEGY_NAMES) expect(svg).toContain(`>${name}<`);
    expect(svg).toContain('GPUs in use');
    expect(svg).toContain('Over-commit events');
    expect(svg).toContain('tiny: 2 pods on one-node');
  });
});
