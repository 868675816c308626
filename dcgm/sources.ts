/**
 * Where DCGM metrics come from: thin I/O edges around the pure parsers. Each source turns
 * one fetch into a GpuInventory whose GPUs carry the time of their own sample.
 */
import { readFile, stat } from 'node:fs/promises';
import type { GpuInventory, GpuSample } from './inventory.js';
import { compareGpus } from './collectGpuSamples.js';
import { DcgmTextParser } from './parseDcgmText.js';
import { dcgmPromQl, parsePrometheusQuery } from './parsePrometheusQuery.js';

export interface MetricsSource {
  /** For logs and inventories: "file:/x.prom", "exporters", "prometheus:http://...". */
  readonly name: string;
  /**
   * One fetch. Resolves with what could be read (problems name what could not); rejects
   * with a MetricsSourceError when the source as a whole failed, or when `signal` aborts.
   */
  fetch(nowMs: number, signal?: AbortSignal): Promise<GpuInventory>;
}

/** A source failed as a whole; the message says what failed and what to check. */
export class MetricsSourceError extends Error {
  override readonly name = 'MetricsSourceError';
  constructor(
    readonly source: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Why a fetch() failed, in words a person can act on. (No instanceof: errors may come from another realm.) */
function describeFetchFailure(err: unknown, timeoutMs: number, what: string): string {
  const e = (typeof err === 'object' && err !== null ? err : {}) as { name?: unknown; message?: unknown; cause?: { code?: unknown; message?: unknown } };
  if (e.name === 'TimeoutError') return `no answer within ${timeoutMs} ms; check that ${what} is up and reachable, or raise metrics.timeoutMs`;
  const detail =
    typeof e.cause?.code === 'string'
      ? e.cause.code
      : typeof e.cause?.message === 'string'
        ? e.cause.message
        : typeof e.message === 'string'
          ? e.message
          : String(err);
  return `request failed (${detail}); check the URL, that ${what} is running, and network policies between the webhook and it`;
}

/** A signal that fires on the caller's abort or after timeoutMs, whichever comes first. */
function withTimeout(timeoutMs: number, signal?: AbortSignal): AbortSignal {
  const timeout = AbortSignal.timeout(timeoutMs);
  return signal ? AbortSignal.any([signal, timeout]) : timeout;
}

/** Rethrow when the caller aborted: that is not a failure of the source. */
function rethrowIfCallerAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason ?? new Error('aborted');
}

/** A dcgm-exporter /metrics dump on disk. Its sample time is the file's modification time. */
export class FileMetricsSource implements MetricsSource {
  readonly name: string;
  private readonly parser = new DcgmTextParser();

  constructor(
    readonly path: string,
    private readonly opts: { node?: string } = {},
  ) {
    this.name = `file:${path}`;
  }

  async fetch(nowMs: number, signal?: AbortSignal): Promise<GpuInventory> {
    let text: string;
    let mtimeMs: number;
    try {
      const info = await stat(this.path);
      mtimeMs = Math.floor(info.mtimeMs);
      text = await readFile(this.path, { encoding: 'utf8', ...(signal ? { signal } : {}) });
    } catch (err) {
      rethrowIfCallerAborted(signal);
      const reason = typeof (err as { message?: unknown })?.message === 'string' ? (err as { message: string }).message : String(err);
      throw new MetricsSourceError(this.name, `cannot read the DCGM metrics file ${this.path} (${reason}); check metrics.file and that the file is mounted`, {
        cause: err,
      });
    }
    const parsed = this.parser.parse(text, { scrapedAtMs: mtimeMs, ...(this.opts.node ? { node: this.opts.node } : {}) });
    const problems = [...parsed.problems];
    if (parsed.gpus.length === 0) problems.push(`${this.path} holds no DCGM GPU series; give it a dcgm-exporter dump (curl http://<exporter>:9400/metrics)`);
    return { gpus: parsed.gpus, nodes: {}, source: this.name, fetchedAtMs: nowMs, skippedLines: parsed.skippedLines, problems };
  }
}

export interface ExporterTarget {
  /** Full /metrics URL of one dcgm-exporter, e.g. http://10.0.3.7:9400/metrics. */
  url: string;
  /** The node the exporter runs on, when known. It beats the exporter's host label. */
  node?: string;
}

export interface ExporterMetricsSourceOptions {
  targets: readonly ExporterTarget[];
  /** Limit of each scrape. */
  timeoutMs: number;
  /** Scrapes in flight at once (default 64). */
  maxConcurrent?: number;
}

/**
 * dcgm-exporter pods scraped directly, all at once, each under its own timeout. A target
 * that fails becomes a problem entry; the others are unaffected.
 */
export class ExporterMetricsSource implements MetricsSource {
  readonly name = 'exporters';
  /** One parser per target: each remembers the label blocks of its own exporter. */
  private readonly parsers = new Map<string, DcgmTextParser>();

  constructor(private readonly opts: ExporterMetricsSourceOptions) {}

  async fetch(nowMs: number, signal?: AbortSignal): Promise<GpuInventory> {
    const targets = this.opts.targets;
    if (targets.length === 0) {
      return { gpus: [], nodes: {}, source: 'exporters:0/0', fetchedAtMs: nowMs, skippedLines: 0, problems: ['no dcgm-exporter targets to scrape; list metrics.exporterUrls or check exporter discovery'] };
    }
    const results = new Array<TargetResult>(targets.length);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < targets.length) {
        const i = next++;
        results[i] = await this.scrape(targets[i] as ExporterTarget, nowMs, signal);
      }
    };
    const workers = Math.max(1, Math.min(this.opts.maxConcurrent ?? 64, targets.length));
    await Promise.all(Array.from({ length: workers }, worker));
    rethrowIfCallerAborted(signal);

    const gpus: GpuSample[] = [];
    const seen = new Map<string, string>();
    const problems: string[] = [];
    let skippedLines = 0;
    let succeeded = 0;
    results.forEach((r, i) => {
      const url = (targets[i] as ExporterTarget).url;
      if (r.ok) succeeded++;
      skippedLines += r.skippedLines;
      problems.push(...r.problems.map((p) => `${url}: ${p}`));
      for (const gpu of r.gpus) {
        const first = seen.get(gpu.uuid);
        if (first !== undefined) {
          problems.push(`${url}: GPU ${gpu.uuid} was already reported by ${first}; kept the first. Check for two targets pointing at one exporter`);
          continue;
        }
        seen.set(gpu.uuid, url);
        gpus.push(gpu);
      }
    });
    gpus.sort(compareGpus);
    return { gpus, nodes: {}, source: `exporters:${succeeded}/${targets.length}`, fetchedAtMs: nowMs, skippedLines, problems };
  }

  private async scrape(target: ExporterTarget, nowMs: number, signal?: AbortSignal): Promise<TargetResult> {
    const failed = (problem: string): TargetResult => ({ ok: false, gpus: [], skippedLines: 0, problems: [problem] });
    let text: string;
    try {
      const res = await fetch(target.url, { signal: withTimeout(this.opts.timeoutMs, signal), headers: { accept: 'text/plain' } });
      if (!res.ok) {
        await res.body?.cancel().catch(() => undefined);
        return failed(`HTTP ${res.status} ${res.statusText}; check that dcgm-exporter is healthy on this pod (kubectl logs) and that the URL ends in /metrics`);
      }
      text = await res.text();
    } catch (err) {
      if (signal?.aborted) return failed('scrape aborted');
      return failed(describeFetchFailure(err, this.opts.timeoutMs, 'the dcgm-exporter pod'));
    }
    let parser = this.parsers.get(target.url);
    if (parser === undefined) this.parsers.set(target.url, (parser = new DcgmTextParser()));
    const parsed = parser.parse(text, { scrapedAtMs: nowMs, ...(target.node ? { node: target.node } : {}) });
    const problems = [...parsed.problems];
    if (parsed.gpus.length === 0) problems.push('answered, but with no DCGM GPU series; check that the URL is a dcgm-exporter /metrics endpoint');
    return { ok: true, gpus: parsed.gpus, skippedLines: parsed.skippedLines, problems };
  }
}

interface TargetResult {
  ok: boolean;
  gpus: GpuSample[];
  skippedLines: number;
  problems: string[];
}

export interface PrometheusMetricsSourceOptions {
  /** Base URL of the Prometheus HTTP API, e.g. http://prometheus.monitoring:9090 (a path prefix is kept). */
  baseUrl: string;
  timeoutMs: number;
  /** How far back a series' last sample may lie (default 120 s). Older series are absent, hence stale. */
  lookbackSeconds?: number;
  /** Labels that name the node, most trusted first (default: kubernetes_node, node, Hostname, hostname). */
  nodeLabels?: readonly string[];
}

/** DCGM series read from Prometheus with one instant query. */
export class PrometheusMetricsSource implements MetricsSource {
  readonly name: string;
  private readonly queryUrl: URL;

  constructor(private readonly opts: PrometheusMetricsSourceOptions) {
    this.name = `prometheus:${opts.baseUrl}`;
    const base = opts.baseUrl.endsWith('/') ? opts.baseUrl : `${opts.baseUrl}/`;
    let url: URL;
    try {
      url = new URL('api/v1/query', base);
    } catch {
      throw new MetricsSourceError(this.name, `"${opts.baseUrl}" is not a URL; set metrics.prometheusUrl to the Prometheus base URL, e.g. http://prometheus.monitoring:9090`);
    }
    url.searchParams.set('query', dcgmPromQl(opts.lookbackSeconds ?? 120));
    this.queryUrl = url;
  }

  async fetch(nowMs: number, signal?: AbortSignal): Promise<GpuInventory> {
    const url = this.queryUrl.toString();
    let status: number;
    let text: string;
    try {
      const res = await fetch(url, { signal: withTimeout(this.opts.timeoutMs, signal), headers: { accept: 'application/json' } });
      status = res.status;
      text = await res.text();
    } catch (err) {
      rethrowIfCallerAborted(signal);
      throw new MetricsSourceError(this.name, `querying Prometheus at ${this.opts.baseUrl}: ${describeFetchFailure(err, this.opts.timeoutMs, 'Prometheus')}`, { cause: err });
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new MetricsSourceError(
        this.name,
        `Prometheus at ${this.opts.baseUrl} answered HTTP ${status} with a body that is not JSON; check that metrics.prometheusUrl is the Prometheus base URL`,
      );
    }
    const parsed = parsePrometheusQuery(body, { queriedAtMs: nowMs, ...(this.opts.nodeLabels ? { nodeLabels: this.opts.nodeLabels } : {}) });
    if (!parsed.ok) throw new MetricsSourceError(this.name, `querying Prometheus at ${this.opts.baseUrl} (HTTP ${status}): ${parsed.message}`);
    const problems = [...parsed.problems];
    if (parsed.gpus.length === 0) {
      problems.push(`Prometheus at ${this.opts.baseUrl} holds no DCGM GPU series of the last ${this.opts.lookbackSeconds ?? 120} s; check that it scrapes dcgm-exporter`);
    }
    return { gpus: parsed.gpus, nodes: {}, source: this.name, fetchedAtMs: nowMs, skippedLines: parsed.skippedSeries, problems };
  }
}
