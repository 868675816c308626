/**
 * Prometheus HTTP API query results -> GpuSample[]. Pure: no I/O.
 *
 * The query asks for the last `lookbackSeconds` of every DCGM series (a range selector in
 * an instant query), so each series comes back with the timestamps of its real samples;
 * the last one is the reading and its time is the sample time. A plain instant vector is
 * read too, with the evaluation time as the sample time.
 */
import { z } from 'zod';
import { GpuSampleCollector } from './collectGpuSamples.js';
import type { GpuSample, IngestionFaults } from '../domain/inventory.js';
import { DcgmLabel, dcgmMetricNames, exporterPodLabels, isDcgmBlank, prometheusExportedPodLabels } from './dcgmNames.js';

/**
 * Labels that name the node in Prometheus, most trusted first: those a scrape config adds
 * from the target's pod (`kubernetes_node`, `node`) beat the exporter's own host label.
 */
export const prometheusNodeLabels: readonly string[] = ['kubernetes_node', 'node', DcgmLabel.HostnameUpper, DcgmLabel.HostnameLower];

/** The PromQL that fetches every DCGM family placement reads, with `lookbackSeconds` of samples. */
export function dcgmPromQl(lookbackSeconds: number): string {
  return `{__name__=~"${dcgmMetricNames.join('|')}"}[${Math.max(1, Math.round(lookbackSeconds))}s]`;
}

const samplePair = z.tuple([z.number(), z.string()]);
const labelSet = z.record(z.string());

const queryResponse = z.discriminatedUnion('status', [
  z.object({
    status: z.literal('success'),
    data: z.discriminatedUnion('resultType', [
      z.object({ resultType: z.literal('vector'), result: z.array(z.object({ metric: labelSet, value: samplePair })) }),
      z.object({ resultType: z.literal('matrix'), result: z.array(z.object({ metric: labelSet, values: z.array(samplePair) })) }),
      z.object({ resultType: z.literal('scalar'), result: samplePair }),
      z.object({ resultType: z.literal('string'), result: samplePair }),
    ]),
    warnings: z.array(z.string()).optional(),
  }),
  z.object({ status: z.literal('error'), errorType: z.string().optional(), error: z.string().optional() }),
]);

export interface PrometheusQueryParseOptions {
  /** Labels that name the node, most trusted first (default prometheusNodeLabels). */
  nodeLabels?: readonly string[];
  /** Time of the query, epoch ms (a series without a sample time gets it). */
  queriedAtMs: number;
  /** When the answer arrived, epoch ms: later sample times are clamped to it (default: queriedAtMs). */
  receivedAtMs?: number;
}

export type PrometheusQueryParseResult =
  | { ok: true; gpus: GpuSample[]; skippedSeries: number; problems: string[]; faults: IngestionFaults }
  | { ok: false; message: string };

/** Read a `/api/v1/query` JSON answer (already JSON-parsed) into GPU samples. */
export function parsePrometheusQuery(body: unknown, opts: PrometheusQueryParseOptions): PrometheusQueryParseResult {
  const parsed = queryResponse.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return {
      ok: false,
      message: `the answer is not a Prometheus query result (${issue ? `${issue.path.join('.') || 'body'}: ${issue.message}` : 'unexpected shape'}); check that the URL is the Prometheus HTTP API base`,
    };
  }
  const answer = parsed.data;
  if (answer.status === 'error') {
    return { ok: false, message: `Prometheus refused the query: ${answer.errorType ?? 'error'}: ${answer.error ?? 'no message'}` };
  }
  const data = answer.data;
  if (data.resultType !== 'vector' && data.resultType !== 'matrix') {
    return { ok: false, message: `Prometheus answered a ${data.resultType}, not series; check that the URL is the Prometheus HTTP API base` };
  }

  const collector = new GpuSampleCollector({
    nodeLabels: opts.nodeLabels ?? prometheusNodeLabels,
    podLabels: [prometheusExportedPodLabels, exporterPodLabels],
    fallbackTimeMs: opts.queriedAtMs,
    ...(opts.receivedAtMs !== undefined ? { receivedAtMs: opts.receivedAtMs } : {}),
  });
  let skippedSeries = 0;
  let nonFinite = 0;
  let unnamed = 0;
  let badTime = 0;
  for (const item of data.result) {
    const last = 'values' in item ? item.values[item.values.length - 1] : item.value;
    const { __name__: name, ...labels } = item.metric;
    if (last === undefined) continue;
    if (!name) {
      skippedSeries++;
      unnamed++;
      continue;
    }
    const value = Number(last[1]);
    if (!Number.isFinite(value) || isDcgmBlank(value)) {
      skippedSeries++;
      nonFinite++;
      continue;
    }
    const timeMs = Math.round(last[0] * 1000);
    if (!Number.isSafeInteger(timeMs)) {
      skippedSeries++;
      badTime++;
      continue;
    }
    collector.add(name, labels, value, timeMs, false);
  }
  const collected = collector.finish();
  const problems = [...(answer.warnings ?? []).map((w) => `Prometheus warning: ${w}`)];
  if (nonFinite > 0) problems.push(`skipped ${nonFinite} series whose last value is NaN, Inf or a DCGM blank: the exporter had no reading for them`);
  if (unnamed > 0) problems.push(`skipped ${unnamed} series without a metric name: the query should select DCGM_* series by __name__`);
  if (badTime > 0) problems.push(`skipped ${badTime} series whose sample time is not a time (beyond 2^53 ms): check what Prometheus returned`);
  return { ok: true, gpus: collected.gpus, skippedSeries, problems: [...problems, ...collected.problems], faults: collected.faults };
}
