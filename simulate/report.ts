/**
 * Figures per strategy from a simulation run, as JSON-ready objects and as a Markdown table.
 * Pure.
 */
import { Priority } from '../domain/slot.js';
import { mean, percentile } from './percentile.js';
import type { SimulationResult, StrategyRun } from './runSimulation.js';
import type { StrategyName } from './strategies/placementStrategy.js';

export interface StrategySummary {
  strategy: StrategyName;
  admitted: number;
  refused: number;
  refusedByCode: Record<string, number>;
  /** Transitions of a GPU into memory over-commit (real use above its memory: OOM kills in real life). */
  overcommitEvents: number;
  /** Pods that sat on a GPU while it was over-committed. */
  overcommitPods: number;
  /** Time GPUs spent hosting at least one pod, hours. */
  gpuHours: number;
  /** Run time of the admitted pods, hours. */
  admittedPodHours: number;
  /** gpuHours / admittedPodHours: GPUs used per unit of admitted work (lower packs tighter). */
  gpuHoursPerPodHour: number | null;
  peakGpusInUse: number;
  meanSlowdown: number | null;
  p95Slowdown: number | null;
  meanSlowdownHigh: number | null;
  p95SlowdownHigh: number | null;
  meanSlowdownLow: number | null;
  p95SlowdownLow: number | null;
  /** Wall-clock time per placement decision, microseconds. */
  placeTimeMedianUs: number | null;
  placeTimeP99Us: number | null;
  /** Mean compute supplied on the GPUs in use, 0..1 (what DCGM_FI_PROF_SM_ACTIVE would average). */
  meanSmUtilisation: number | null;
  /** Mean of memory really used / total on the GPUs in use, 0..1 (sampled every step; over-committed GPUs count as full). */
  meanMemoryUtilisation: number | null;
  /** Requests served per second over the run, by the request model (simulate/requestModel.ts). */
  servedRequestsPerS: number | null;
  /** Served / offered requests of the admitted pods (1: every request found the compute it needed). */
  servedShare: number | null;
  /** Mean response time of the requests offered to admitted pods, s. */
  meanResponseS: number | null;
}

export interface TraceSummary {
  trace: string;
  cluster: string;
  pods: number;
  gpus: number;
  policy: string;
  metricsIntervalS: number;
  scrapeDelayS: number;
  strategies: StrategySummary[];
}

function rounded(value: number, digits: number): number | null {
  if (!Number.isFinite(value)) return null;
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

export function summarizeRun(run: StrategyRun): StrategySummary {
  const all = run.slowdowns.map((s) => s.slowdown);
  const high = run.slowdowns.filter((s) => s.priority === Priority.High).map((s) => s.slowdown);
  const low = run.slowdowns.filter((s) => s.priority === Priority.Low).map((s) => s.slowdown);
  return {
    strategy: run.strategy,
    admitted: run.admitted,
    refused: run.refused,
    refusedByCode: { ...run.refusedByCode },
    overcommitEvents: run.overcommitEvents.length,
    overcommitPods: run.overcommitPods,
    gpuHours: rounded(run.gpuHours, 2) ?? 0,
    admittedPodHours: rounded(run.admittedPodHours, 2) ?? 0,
    gpuHoursPerPodHour: run.admittedPodHours > 0 ? rounded(run.gpuHours / run.admittedPodHours, 4) : null,
    peakGpusInUse: run.peakGpusInUse,
    meanSlowdown: rounded(mean(all), 3),
    p95Slowdown: rounded(percentile(all, 95), 3),
    meanSlowdownHigh: rounded(mean(high), 3),
    p95SlowdownHigh: rounded(percentile(high, 95), 3),
    meanSlowdownLow: rounded(mean(low), 3),
    p95SlowdownLow: rounded(percentile(low, 95), 3),
    placeTimeMedianUs: rounded(percentile(run.placeTimesUs, 50), 1),
    placeTimeP99Us: rounded(percentile(run.placeTimesUs, 99), 1),
    meanSmUtilisation: run.gpuHours > 0 ? rounded(run.smPercentMs / (100 * run.gpuHours * 3_600_000), 4) : null,
    meanMemoryUtilisation: run.memorySampledMs > 0 ? rounded(run.memoryFractionMs / run.memorySampledMs, 4) : null,
    servedRequestsPerS: run.spanS > 0 ? rounded(run.requests.served / run.spanS, 3) : null,
    servedShare: run.requests.offered > 0 ? rounded(run.requests.served / run.requests.offered, 4) : null,
    meanResponseS: run.requests.offered > 0 ? rounded(run.requests.responseSeconds / run.requests.offered, 3) : null,
  };
}

export function summarizeSimulation(result: SimulationResult): TraceSummary {
  return {
    trace: result.trace,
    cluster: result.cluster,
    pods: result.pods,
    gpus: result.gpus,
    policy: result.settings.policy,
    metricsIntervalS: result.settings.metricsIntervalS,
    scrapeDelayS: result.settings.scrapeDelayS,
    strategies: result.runs.map(summarizeRun),
  };
}

const show = (value: number | null, digits = 2): string => (value === null ? 'n/a' : value.toFixed(digits));
const percent = (value: number | null): string => (value === null ? 'n/a' : `${(value * 100).toFixed(1)} %`);

/** One Markdown table per trace: a row per strategy. */
export function renderMarkdownTable(summary: TraceSummary): string {
  const header = [
    'Strategy',
    'Admitted',
    'Refused',
    'Over-commit events (pods)',
    'GPU-hours',
    'GPU-h per pod-h',
    'Peak GPUs',
    'Slowdown mean / p95',
    'High-priority mean / p95',
    'Low-priority mean / p95',
    'Place time p50 / p99 (µs)',
  ];
  const lines = [
    `### ${summary.trace} on ${summary.cluster} (${summary.pods} pods, ${summary.gpus} GPUs, ${summary.policy}, metrics every ${summary.metricsIntervalS} s + ${summary.scrapeDelayS} s delay)`,
    '',
    `| ${header.join(' | ')} |`,
    `|${header.map((_, i) => (i === 0 ? ' --- ' : ' ---: ')).join('|')}|`,
  ];
  for (const s of summary.strategies) {
    lines.push(
      `| ${[
        s.strategy,
        String(s.admitted),
        String(s.refused),
        `${s.overcommitEvents} (${s.overcommitPods})`,
        show(s.gpuHours, 1),
        show(s.gpuHoursPerPodHour, 3),
        String(s.peakGpusInUse),
        `${show(s.meanSlowdown)} / ${show(s.p95Slowdown)}`,
        `${show(s.meanSlowdownHigh)} / ${show(s.p95SlowdownHigh)}`,
        `${show(s.meanSlowdownLow)} / ${show(s.p95SlowdownLow)}`,
        `${show(s.placeTimeMedianUs, 1)} / ${show(s.placeTimeP99Us, 1)}`,
      ].join(' | ')} |`,
    );
  }
  return lines.join('\n');
}

/** The seed paper's measures per strategy: utilisation of the GPUs in use, and requests under the request model. */
export function renderUtilisationTable(summary: TraceSummary): string {
  const header = ['Strategy', 'SM utilisation (GPUs in use)', 'Memory utilisation (GPUs in use)', 'Served requests/s', 'Served / offered', 'Mean response time (s)'];
  const lines = [`| ${header.join(' | ')} |`, `|${header.map((_, i) => (i === 0 ? ' --- ' : ' ---: ')).join('|')}|`];
  for (const s of summary.strategies) {
    lines.push(
      `| ${[s.strategy, percent(s.meanSmUtilisation), percent(s.meanMemoryUtilisation), show(s.servedRequestsPerS, 2), percent(s.servedShare), show(s.meanResponseS, 2)].join(' | ')} |`,
    );
  }
  return lines.join('\n');
}

/** Both tables of a trace: outcomes, then utilisation and requests. */
export function renderTraceReport(summary: TraceSummary): string {
  return `${renderMarkdownTable(summary)}\n\n${renderUtilisationTable(summary)}`;
}
