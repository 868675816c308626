import { Resvg } from '@resvg/resvg-js';
import { buildCluster } from './cluster.js';
import { CHART_PANEL_WIDTH, buildChartSpec, renderChartSvg } from './chart.js';
import { loadCluster, loadTrace } from './loadInputs.js';
import { defaultSimulationSettings, runSimulation } from './runSimulation.js';
import { STRATEGY_NAMES } from './strategies/placementStrategy.js';
import { buildTrace } from './trace.js';

/** Width and height from a PNG's IHDR chunk. */
function pngSize(png: Buffer): { width: number; height: number } {
  expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
  expect(png.subarray(12, 16).toString('ascii')).toBe('IHDR');
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}

function svgSize(svg: string): { width: number; height: number } {
  const match = /<svg[^>]*\swidth="([\d.]+)"[^>]*\sheight="([\d.]+)"/.exec(svg);
  if (match === null) throw new Error('the SVG has no width and height');
  return { width: Math.round(Number(match[1])), height: Math.round(Number(match[2])) };
}

/** Tick labels of every axis: the text of <text> elements that are plain numbers. */
const numericLabels = (svg: string): string[] => [...svg.matchAll(/<text[^>]*>([-\d.,]+)<\/text>/g)].map((m) => m[1] as string);

describe('chart', () => {
  it('one row per strategy in every time panel, refused pods and p95 slowdown panels, whole-number ticks', async () => {
    const trace = buildTrace({
      name: 'tiny',
      pods: [
        { id: 'a', arrivalS: 0, durationS: 600, memoryMiB: 50_000, computePercent: 40, priority: 'high', workload: 'w' },
        { id: 'b', arrivalS: 30, durationS: 600, memoryMiB: 50_000, computePercent: 40, priority: 'low', workload: 'w' },
      ],
    });
    const cluster = buildCluster({ name: 'one-node', nodes: [{ name: 'n', gpus: 2, model: 'NVIDIA H100 80GB HBM3', memoryMiB: 81559 }] });
    const result = runSimulation(trace, cluster, { ...defaultSimulationSettings(), clock: () => 0 });
    expect(result.burst).toBeNull();
    const svg = await renderChartSvg(buildChartSpec(result));
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    // Three time panels, each with a row per strategy: every strategy is named at least three times.
    for (const name of STRATEGY_NAMES) expect(svg.split(`>${name}<`).length - 1).toBeGreaterThanOrEqual(3);
    for (const title of ['GPUs hosting at least one pod', 'Memory over-commit events so far', 'Pods refused so far', 'p95 slowdown']) expect(svg).toContain(title);
    expect(svg).toContain('tiny: 2 pods on one-node');
    expect(svg).not.toContain('zoomed');
    // Count axes of 0..2 would get 0.5 steps without the whole-number rule.
    const fractional = numericLabels(svg).filter((l) => /^\d+\.5$/.test(l));
    expect(fractional).toEqual([]);
  });

  it('the burst gets zoomed panels; the SVG renders to a PNG of its size (resvg)', async () => {
    const trace = await loadTrace('burst');
    const cluster = await loadCluster('h100-4x8');
    const result = runSimulation(trace, cluster, { ...defaultSimulationSettings(), strategies: ['mps-injector', 'metrics-only'], clock: () => 0 });
    expect(result.burst).not.toBeNull();
    expect(result.runs[0]?.burstSeries?.tS.length).toBeGreaterThan(100);
    const svg = await renderChartSvg(buildChartSpec(result));
    expect(svg).toContain('The burst zoomed in: GPUs in use while');
    expect(svg).toContain('The burst zoomed in: pods refused so far');

    const size = svgSize(svg);
    expect(size.width).toBeGreaterThan(CHART_PANEL_WIDTH);
    const png = new Resvg(svg, { font: { loadSystemFonts: true } }).render().asPng();
    expect(png.length).toBeGreaterThan(10_000);
    expect(pngSize(png)).toEqual(size);
  });
});
