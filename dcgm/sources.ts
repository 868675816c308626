/**
 * Where DCGM metrics come from: thin I/O edges around the pure parsers. Each source turns
 * one fetch into a GpuInventory whose GPUs carry the time of their own sample.
 *
 * What comes from outside is bounded and distrusted: bodies and files are read in pieces
 * up to a byte limit (never buffered whole past it), and no sample time may lie after the
 * moment its data arrived (`receivedAtMs`: when the answer began to arrive, or the file
 * was opened). See ADR 0003.
 */
import { open } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { addIngestionFaults, GpuExclusion, noIngestionFaults, type GpuInventory, type GpuSample, type IngestionFaults } from '../domain/inventory.js';
import { compareGpus, describeExclusions } from './collectGpuSamples.js';
import { quoteExcerpt } from './gpuIdentity.js';
import { DEFAULT_MAX_BODY_BYTES, DEFAULT_PROMETHEUS_MAX_BODY_BYTES, describeBytes, FileSampleTime } from './ingestionLimits.js';
import { DcgmTextParser, type DcgmTextScrape } from './parseDcgmText.js';
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

/** A body or file larger than its limit; nothing past the limit was read. */
class TooLargeError extends Error {
  override readonly name = 'TooLargeError';
  constructor(
    readonly limitBytes: number,
    readonly declaredBytes: number | null,
  ) {
    super(`larger than ${describeBytes(limitBytes)}`);
  }
}

const isTooLarge = (err: unknown): err is TooLargeError => (err as { name?: unknown } | null)?.name === 'TooLargeError';

/**
 * Read a response body as text, piece by piece, into `onText`. Past `maxBytes` (declared
 * or counted) the body is cancelled, which closes the connection: nothing beyond `maxBytes`
 * plus one network read is ever read.
 */
async function readBodyText(res: Response, maxBytes: number, onText: (piece: string) => void): Promise<void> {
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (declared > maxBytes) {
    await res.body?.cancel().catch(() => undefined);
    throw new TooLargeError(maxBytes, declared);
  }
  if (res.body === null) return;
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let bytes = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    bytes += value.byteLength;
    if (bytes > maxBytes) {
      await reader.cancel().catch(() => undefined);
      throw new TooLargeError(maxBytes, null);
    }
    onText(decoder.decode(value, { stream: true }));
  }
  const rest = decoder.decode();
  if (rest !== '') onText(rest);
}

/** Epoch ms now on the caller's clock: its `nowMs` at `startedPerfMs`, plus the time since. */
const elapsedSince = (nowMs: number, startedPerfMs: number): number => nowMs + Math.max(0, performance.now() - startedPerfMs);

const FILE_READ_BYTES = 1024 * 1024;

export interface FileMetricsSourceOptions {
  /** The node of every series (beats the host label). */
  node?: string;
  /** When the samples count as taken (default: when the file is read). See FileSampleTime. */
  sampleTime?: FileSampleTime;
  /** Files larger than this are refused (default DEFAULT_MAX_BODY_BYTES). */
  maxBytes?: number;
}

/**
 * A dcgm-exporter /metrics dump on disk, read in pieces. Its sample time is when it is read,
 * or its modification time (`sampleTime`); a series' own timestamp beats either. The webhook
 * (`serve`, metrics.source file) and the `inject` command both read dumps through it.
 */
export class FileMetricsSource implements MetricsSource {
  readonly name: string;
  private readonly parser = new DcgmTextParser();
  private readonly maxBytes: number;
  private readonly sampleTime: FileSampleTime;

  constructor(
    readonly path: string,
    private readonly opts: FileMetricsSourceOptions = {},
  ) {
    this.name = `file:${path}`;
    this.maxBytes = opts.maxBytes ?? DEFAULT_MAX_BODY_BYTES;
    this.sampleTime = opts.sampleTime ?? FileSampleTime.Read;
  }

  async fetch(nowMs: number, signal?: AbortSignal): Promise<GpuInventory> {
    const startedPerfMs = performance.now();
    let scrape: DcgmTextScrape | null = null;
    let handle;
    try {
      handle = await open(this.path, 'r');
      const info = await handle.stat();
      if (info.size > this.maxBytes) throw new TooLargeError(this.maxBytes, info.size);
      // Nothing in the file can have been sampled after it was opened.
      const receivedAtMs = elapsedSince(nowMs, startedPerfMs);
      const scrapedAtMs = this.sampleTime === FileSampleTime.Modified ? Math.floor(info.mtimeMs) : nowMs;
      scrape = this.parser.begin({ scrapedAtMs, receivedAtMs, ...(this.opts.node ? { node: this.opts.node } : {}) });
      const buffer = Buffer.allocUnsafe(Math.min(FILE_READ_BYTES, this.maxBytes + 1));
      const decoder = new TextDecoder();
      let bytes = 0;
      for (;;) {
        rethrowIfCallerAborted(signal);
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
        if (bytesRead === 0) break;
        bytes += bytesRead;
        // The file may have grown since it was measured.
        if (bytes > this.maxBytes) throw new TooLargeError(this.maxBytes, null);
        scrape.write(decoder.decode(buffer.subarray(0, bytesRead), { stream: true }));
      }
      scrape.write(decoder.decode());
    } catch (err) {
      scrape?.end();
      rethrowIfCallerAborted(signal);
      if (isTooLarge(err)) {
        throw new MetricsSourceError(
          this.name,
          `the DCGM metrics file ${this.path} is ${err.declaredBytes !== null ? describeBytes(err.declaredBytes) : err.message}, above metrics.maxBodyBytes (${describeBytes(this.maxBytes)}); give a dump of fewer nodes, or raise metrics.maxBodyBytes`,
        );
      }
      const reason = typeof (err as { message?: unknown })?.message === 'string' ? (err as { message: string }).message : String(err);
      throw new MetricsSourceError(this.name, `cannot read the DCGM metrics file ${this.path} (${reason}); check metrics.file and that the file is mounted`, {
        cause: err,
      });
    } finally {
      await handle?.close().catch(() => undefined);
    }
    const parsed = scrape.end();
    const problems = [...parsed.problems];
    if (parsed.gpus.length === 0) problems.push(`${this.path} holds no DCGM GPU series; give it a dcgm-exporter dump (curl http://<exporter>:9400/metrics)`);
    return { gpus: parsed.gpus, nodes: {}, source: this.name, fetchedAtMs: nowMs, skippedLines: parsed.skippedLines, problems, faults: parsed.faults };
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
  /** A scrape whose body is larger is refused (default DEFAULT_MAX_BODY_BYTES). */
  maxBodyBytes?: number;
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
    const seen = new Map<string, { url: string; node: string }>();
    const problems: string[] = [];
    let faults = noIngestionFaults();
    let skippedLines = 0;
    let succeeded = 0;
    // A GPU that one exporter distrusts, or that two exporters place on two nodes, is left out everywhere.
    const distrusted = new Set<string>(results.flatMap((r) => r.faults.excludedUuids));
    const conflicting = new Map<string, string>();
    results.forEach((r, i) => {
      const url = (targets[i] as ExporterTarget).url;
      if (r.ok) succeeded++;
      skippedLines += r.skippedLines;
      faults = addIngestionFaults(faults, r.faults);
      problems.push(...r.problems.map((p) => `${url}: ${p}`));
      for (const gpu of r.gpus) {
        const first = seen.get(gpu.uuid);
        if (first === undefined) {
          seen.set(gpu.uuid, { url, node: gpu.node });
          gpus.push(gpu);
        } else if (first.node !== gpu.node) {
          if (!conflicting.has(gpu.uuid)) conflicting.set(gpu.uuid, `${gpu.uuid} on node ${quoteExcerpt(first.node)} by ${first.url} and on node ${quoteExcerpt(gpu.node)} by ${url}`);
        } else {
          problems.push(`${url}: GPU ${gpu.uuid} was already reported by ${first.url}; kept the first. Check for two targets pointing at one exporter`);
        }
      }
    });
    const kept = gpus.filter((g) => !conflicting.has(g.uuid) && !distrusted.has(g.uuid));
    if (conflicting.size > 0) {
      const counts = noIngestionFaults().excludedGpus;
      counts[GpuExclusion.ConflictingSeries] = conflicting.size;
      const [first] = conflicting.values();
      problems.push(...describeExclusions(counts, new Map(first === undefined ? [] : [[GpuExclusion.ConflictingSeries, first]])));
      faults = addIngestionFaults(faults, { ...noIngestionFaults(), excludedGpus: counts, excludedUuids: [...conflicting.keys()] });
    }
    kept.sort(compareGpus);
    return { gpus: kept, nodes: {}, source: `exporters:${succeeded}/${targets.length}`, fetchedAtMs: nowMs, skippedLines, problems, faults };
  }

  private async scrape(target: ExporterTarget, nowMs: number, signal?: AbortSignal): Promise<TargetResult> {
    const failed = (problem: string): TargetResult => ({ ok: false, gpus: [], skippedLines: 0, problems: [problem], faults: noIngestionFaults() });
    const maxBytes = this.opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    let parser = this.parsers.get(target.url);
    if (parser === undefined) this.parsers.set(target.url, (parser = new DcgmTextParser()));
    const startedPerfMs = performance.now();
    let scrape: DcgmTextScrape | null = null;
    try {
      const res = await fetch(target.url, { signal: withTimeout(this.opts.timeoutMs, signal), headers: { accept: 'text/plain' } });
      if (!res.ok) {
        await res.body?.cancel().catch(() => undefined);
        return failed(`HTTP ${res.status} ${res.statusText}; check that dcgm-exporter is healthy on this pod (kubectl logs) and that the URL ends in /metrics`);
      }
      // The exporter wrote its samples before it began to answer.
      const receivedAtMs = elapsedSince(nowMs, startedPerfMs);
      const reading = parser.begin({ scrapedAtMs: nowMs, receivedAtMs, ...(target.node ? { node: target.node } : {}) });
      scrape = reading;
      await readBodyText(res, maxBytes, (piece) => reading.write(piece));
    } catch (err) {
      scrape?.end();
      if (signal?.aborted) return failed('scrape aborted');
      if (isTooLarge(err)) {
        return failed(
          `answered ${err.declaredBytes !== null ? `${describeBytes(err.declaredBytes)}` : `more than ${describeBytes(maxBytes)}`}, above metrics.maxBodyBytes (${describeBytes(maxBytes)}); the scrape was cut off and its GPUs go stale. Check what this exporter publishes, or raise metrics.maxBodyBytes`,
        );
      }
      return failed(describeFetchFailure(err, this.opts.timeoutMs, 'the dcgm-exporter pod'));
    }
    const parsed = scrape.end();
    const problems = [...parsed.problems];
    if (parsed.gpus.length === 0) problems.push('answered, but with no DCGM GPU series; check that the URL is a dcgm-exporter /metrics endpoint');
    return { ok: true, gpus: parsed.gpus, skippedLines: parsed.skippedLines, problems, faults: parsed.faults };
  }
}

interface TargetResult {
  ok: boolean;
  gpus: GpuSample[];
  skippedLines: number;
  problems: string[];
  faults: IngestionFaults;
}

export interface PrometheusMetricsSourceOptions {
  /** Base URL of the Prometheus HTTP API, e.g. http://prometheus.monitoring:9090 (a path prefix is kept). */
  baseUrl: string;
  timeoutMs: number;
  /** How far back a series' last sample may lie (default 120 s). Older series are absent, hence stale. */
  lookbackSeconds?: number;
  /** Labels that name the node, most trusted first (default: kubernetes_node, node, Hostname, hostname). */
  nodeLabels?: readonly string[];
  /** An answer larger than this is refused (default DEFAULT_PROMETHEUS_MAX_BODY_BYTES). */
  maxBodyBytes?: number;
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
    const maxBytes = this.opts.maxBodyBytes ?? DEFAULT_PROMETHEUS_MAX_BODY_BYTES;
    const startedPerfMs = performance.now();
    let status: number;
    let text: string;
    let receivedAtMs: number;
    try {
      const res = await fetch(url, { signal: withTimeout(this.opts.timeoutMs, signal), headers: { accept: 'application/json' } });
      status = res.status;
      // Prometheus evaluated the query before it began to answer.
      receivedAtMs = elapsedSince(nowMs, startedPerfMs);
      const pieces: string[] = [];
      await readBodyText(res, maxBytes, (piece) => pieces.push(piece));
      text = pieces.join('');
    } catch (err) {
      rethrowIfCallerAborted(signal);
      if (isTooLarge(err)) {
        throw new MetricsSourceError(
          this.name,
          `Prometheus at ${this.opts.baseUrl} answered ${err.declaredBytes !== null ? describeBytes(err.declaredBytes) : `more than ${describeBytes(maxBytes)}`}, above metrics.prometheusMaxBodyBytes (${describeBytes(maxBytes)}); raise it for a cluster this large`,
        );
      }
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
    const parsed = parsePrometheusQuery(body, { queriedAtMs: nowMs, receivedAtMs, ...(this.opts.nodeLabels ? { nodeLabels: this.opts.nodeLabels } : {}) });
    if (!parsed.ok) throw new MetricsSourceError(this.name, `querying Prometheus at ${this.opts.baseUrl} (HTTP ${status}): ${parsed.message}`);
    const problems = [...parsed.problems];
    if (parsed.gpus.length === 0) {
      problems.push(`Prometheus at ${this.opts.baseUrl} holds no DCGM GPU series of the last ${this.opts.lookbackSeconds ?? 120} s; check that it scrapes dcgm-exporter`);
    }
    return { gpus: parsed.gpus, nodes: {}, source: this.name, fetchedAtMs: nowMs, skippedLines: parsed.skippedSeries, problems, faults: parsed.faults };
  }
}
