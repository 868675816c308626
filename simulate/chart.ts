/**
 * The per-trace chart, one panel per question, each strategy in a row of its own so that no
 * series hides another (two strategies that both sit at zero over-commit events would draw one
 * line over the other): GPUs in use, over-commit events so far, pods refused so far, p95
 * slowdown per strategy and priority, and, for a trace with a burst of arrivals, the burst
 * zoomed in. Count axes tick at whole numbers. Specified in Vega-Lite, compiled to Vega and
 * rendered to SVG headless.
 */
import type * as Vega from 'vega';
import type { TopLevelSpec } from 'vega-lite';
import type * as VegaLite from 'vega-lite';
import { percentile } from './percentile.js';
import type { SimulationResult, SimulationSeries } from './runSimulation.js';
import { STRATEGY_NAMES } from './strategies/placementStrategy.js';

/** Fixed colours per strategy, so every chart reads the same way. */
const STRATEGY_COLOURS = ['#1b9e77', '#d95f02', '#7570b3', '#e7298a'];
/** Width of every panel's plot area, px. */
export const CHART_PANEL_WIDTH = 640;

interface SeriesRow {
  strategy: string;
  hours: number;
  minutes: number;
  gpusInUse: number;
  overcommitEvents: number;
  refused: number;
}

function seriesRows(strategy: string, series: SimulationSeries, originS: number): SeriesRow[] {
  return series.tS.map((tS, i) => ({
    strategy,
    hours: tS / 3600,
    minutes: (tS - originS) / 60,
    gpusInUse: series.gpusInUse[i] ?? 0,
    overcommitEvents: series.overcommitEvents[i] ?? 0,
    refused: series.refused[i] ?? 0,
  }));
}

const color = {
  field: 'strategy',
  type: 'nominal',
  title: 'Strategy',
  scale: { domain: [...STRATEGY_NAMES], range: STRATEGY_COLOURS },
  legend: null,
} as const;

/** A count axis: whole-number ticks only. */
const countAxis = { tickMinStep: 1, format: 'd' } as const;

/** One small chart per strategy, stacked, sharing the x and y scales. */
function perStrategyPanel(title: string, rows: readonly SeriesRow[], x: Record<string, unknown>, field: keyof SeriesRow, yTitle: string, strategies: readonly string[]): Record<string, unknown> {
  return {
    title,
    data: { values: rows },
    facet: { row: { field: 'strategy', type: 'nominal', sort: [...strategies], title: null, header: { labelAngle: 0, labelAlign: 'left', labelFontWeight: 'bold' } } },
    spacing: 6,
    spec: {
      width: CHART_PANEL_WIDTH,
      height: 48,
      mark: { type: 'line', interpolate: 'step-after', strokeWidth: 2 },
      encoding: { x, y: { field, type: 'quantitative', title: yTitle, axis: countAxis, scale: { domainMin: 0 } }, color },
    },
    resolve: { scale: { y: 'shared' } },
  };
}

export function buildChartSpec(result: SimulationResult): TopLevelSpec {
  const strategies = result.runs.map((r) => r.strategy);
  const rows = result.runs.flatMap((run) => seriesRows(run.strategy, run.series, 0));
  const x = { field: 'hours', type: 'quantitative', title: 'Time since trace start (h)' };
  const slowdowns = result.runs.flatMap((run): { strategy: string; pods: string; p95: number }[] => {
    const all = run.slowdowns.map((s) => s.slowdown);
    const high = run.slowdowns.filter((s) => s.priority === 'high').map((s) => s.slowdown);
    const low = run.slowdowns.filter((s) => s.priority === 'low').map((s) => s.slowdown);
    return [
      { strategy: run.strategy, pods: 'all', p95: percentile(all, 95) },
      { strategy: run.strategy, pods: 'high priority', p95: percentile(high, 95) },
      { strategy: run.strategy, pods: 'low priority', p95: percentile(low, 95) },
    ].filter((row) => Number.isFinite(row.p95));
  });
  const panels: Record<string, unknown>[] = [
    perStrategyPanel('GPUs hosting at least one pod', rows, x, 'gpusInUse', 'GPUs', strategies),
    perStrategyPanel('Memory over-commit events so far (OOM kills in real life)', rows, x, 'overcommitEvents', 'Events', strategies),
    perStrategyPanel('Pods refused so far', rows, x, 'refused', 'Pods', strategies),
    {
      title: 'p95 slowdown (demand over supply; 1 = as fast as alone)',
      data: { values: slowdowns },
      width: CHART_PANEL_WIDTH,
      height: 160,
      mark: { type: 'bar' },
      encoding: {
        x: { field: 'strategy', type: 'nominal', sort: [...strategies], title: null, axis: { labelAngle: 0 } },
        xOffset: { field: 'pods', type: 'nominal', sort: ['all', 'high priority', 'low priority'] },
        y: { field: 'p95', type: 'quantitative', title: 'p95 slowdown' },
        color: { field: 'pods', type: 'nominal', title: 'Pods', scale: { domain: ['all', 'high priority', 'low priority'], range: ['#555555', '#1f78b4', '#a6cee3'] } },
      },
    },
  ];
  if (result.burst !== null) {
    const burst = result.burst;
    const zoomRows = result.runs.flatMap((run) => (run.burstSeries === null ? [] : seriesRows(run.strategy, run.burstSeries, burst.fromS)));
    const zx = { field: 'minutes', type: 'quantitative', title: `Minutes from ${(burst.fromS / 60).toFixed(1)} min into the trace`, scale: { domain: [0, (burst.toS - burst.fromS) / 60] } };
    panels.push(
      perStrategyPanel(`The burst zoomed in: GPUs in use while ${burst.pods} pods arrive within a minute`, zoomRows, zx, 'gpusInUse', 'GPUs', strategies),
      perStrategyPanel('The burst zoomed in: pods refused so far', zoomRows, zx, 'refused', 'Pods', strategies),
    );
  }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: `${result.trace}: ${result.pods} pods on ${result.cluster} (${result.gpus} GPUs)`,
      subtitle: `${result.settings.policy}; metrics every ${result.settings.metricsIntervalS} s, visible ${result.settings.scrapeDelayS} s later; seed ${result.settings.seed}; one row per strategy`,
    },
    vconcat: panels,
    spacing: 24,
    // Strategies and priority groups are coloured by scales of their own.
    resolve: { scale: { color: 'independent' } },
    config: { font: 'sans-serif', background: 'white' },
  } as unknown as TopLevelSpec;
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
