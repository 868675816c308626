/**
 * The per-trace chart: GPUs in use over time and memory over-commit events over time, one
 * line per strategy. Specified in Vega-Lite, compiled to Vega and rendered to SVG headless.
 */
import type * as Vega from 'vega';
import type { TopLevelSpec } from 'vega-lite';
import type * as VegaLite from 'vega-lite';
import type { SimulationResult } from './runSimulation.js';
import { STRATEGY_NAMES } from './strategies/placementStrategy.js';

/** Fixed colours per strategy, so every chart reads the same way. */
const STRATEGY_COLOURS = ['#1b9e77', '#d95f02', '#7570b3', '#e7298a'];

export function buildChartSpec(result: SimulationResult): TopLevelSpec {
  const rows: { strategy: string; hours: number; gpusInUse: number; overcommitEvents: number }[] = [];
  for (const run of result.runs) {
    run.series.tS.forEach((tS, i) => {
      rows.push({ strategy: run.strategy, hours: tS / 3600, gpusInUse: run.series.gpusInUse[i] ?? 0, overcommitEvents: run.series.overcommitEvents[i] ?? 0 });
    });
  }
  const color = {
    field: 'strategy',
    type: 'nominal',
    title: 'Strategy',
    scale: { domain: [...STRATEGY_NAMES], range: STRATEGY_COLOURS },
  } as const;
  const x = { field: 'hours', type: 'quantitative', title: 'Time since trace start (h)' } as const;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: `${result.trace}: ${result.pods} pods on ${result.cluster} (${result.gpus} GPUs)`,
      subtitle: `${result.settings.policy}; metrics every ${result.settings.metricsIntervalS} s, visible ${result.settings.scrapeDelayS} s later; seed ${result.settings.seed}`,
    },
    data: { values: rows },
    vconcat: [
      {
        width: 640,
        height: 220,
        title: 'GPUs hosting at least one pod',
        mark: { type: 'line', interpolate: 'step-after' },
        encoding: { x, y: { field: 'gpusInUse', type: 'quantitative', title: 'GPUs in use' }, color },
      },
      {
        width: 640,
        height: 160,
        title: 'Memory over-commit events so far (OOM kills in real life)',
        mark: { type: 'line', interpolate: 'step-after' },
        encoding: { x, y: { field: 'overcommitEvents', type: 'quantitative', title: 'Over-commit events' }, color },
      },
    ],
    config: { font: 'sans-serif' },
  };
}

/** Render a chart spec to an SVG document. */
/** The optional chart libraries are not installed. */
export class ChartLibraryMissingError extends Error {
  override readonly name = 'ChartLibraryMissingError';
}

export async function renderChartSvg(spec: TopLevelSpec): Promise<string> {
  // Loaded on demand: the chart libraries are optional dependencies, so an install without
  // them still runs the webhook and every other command.
  let vega: typeof Vega;
  let vegaLite: typeof VegaLite;
  try {
    // One after the other: vega-lite loads vega itself, and the module cache is then warm.
    vegaLite = await import('vega-lite');
    vega = await import('vega');
  } catch (err) {
    if ((err as { code?: string }).code !== 'ERR_MODULE_NOT_FOUND') throw err;
    throw new ChartLibraryMissingError(`SVG charts need the optional packages vega and vega-lite, which are not installed (${(err as Error).message}). Install them with "npm install vega vega-lite", or run simulate without --out.`);
  }
  const view = new vega.View(vega.parse(vegaLite.compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
