/**
 * Keeps a GpuInventory up to date in the background, so that admissions never wait on a
 * scrape. GPUs that a fetch no longer reports (their exporter failed, Prometheus lost them)
 * are kept with their original sample time: they age into staleness, and placement
 * excludes them as stale, instead of vanishing or looking fresh. A fetch that never settles
 * is given up at a deadline, and no sample time is later than the fetch's end, so a source
 * that stops answering goes stale on schedule. See ADR 0003.
 */
import { EventEmitter } from 'node:events';
import { CLOCK_SKEW_TOLERANCE_MS, compareGpus, describeClockSkew } from './collectGpuSamples.js';
import { addIngestionFaults, emptyInventory, excludedGpuCount, noIngestionFaults, type GpuExclusion, type GpuInventory, type GpuSample } from '../domain/inventory.js';
import type { MetricsSource } from './sources.js';

/** Timer functions, injectable so that tests drive time themselves. */
export interface RefreshScheduler {
  setTimeout(run: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Real timers that do not keep the process alive. */
export const realScheduler: RefreshScheduler = {
  setTimeout(run, ms) {
    const handle = setTimeout(run, ms);
    handle.unref();
    return handle;
  },
  clearTimeout(handle) {
    clearTimeout(handle as ReturnType<typeof setTimeout>);
  },
};

export interface MetricsRefresherOptions {
  /** Time between the starts of two fetches. */
  refreshSeconds: number;
  /** A GPU missing from fetches is dropped once its last sample is older than this (default: the larger of 10 min and 10 refreshes). */
  retainMissingSeconds?: number;
  /** A fetch still unsettled after this long counts as failed, and polling goes on (default: the larger of 60 s and 4 refreshes). */
  fetchDeadlineSeconds?: number;
  /** Epoch ms now (default Date.now). */
  clock?: () => number;
  scheduler?: RefreshScheduler;
}

/** What one refresh did, for logs and metrics. */
export interface RefreshReport {
  /** false when the source failed as a whole (the previous GPUs were kept). */
  ok: boolean;
  /** The failure, when not ok. */
  error: string | null;
  durationSeconds: number;
  /** GPUs in the inventory now, fresh and retained. */
  gpuCount: number;
  /** GPUs kept from earlier fetches because this one did not report them. */
  retainedGpuCount: number;
  /** Age of the newest / oldest GPU sample now, seconds; null without GPUs. */
  newestSampleAgeSeconds: number | null;
  oldestSampleAgeSeconds: number | null;
  /** GPUs this fetch left out as untrustworthy (invalid UUID or node, conflicting series, implausible memory). */
  excludedGpuCount: number;
  /** The same, by reason (a label for a gauge). */
  excludedGpus: Record<GpuExclusion, number>;
  /** GPUs whose sample time lay ahead of the data's arrival by more than a second (clamped to it). */
  clockSkewedGpuCount: number;
  /** The largest such lead, seconds (0 when none). */
  maxClockSkewSeconds: number;
  problems: string[];
}

export interface MetricsRefresherEvents {
  refresh: [inventory: GpuInventory, report: RefreshReport];
}

/**
 * Merge a fresh inventory with the previous one: GPUs the fresh one lacks are kept, with
 * their old sample, while that sample is younger than retainMs. Pure.
 */
export function carryForwardMissingGpus(
  previous: GpuInventory,
  fresh: GpuInventory,
  nowMs: number,
  retainMs: number,
): { inventory: GpuInventory; retained: GpuSample[] } {
  const present = new Set(fresh.gpus.map((g) => g.uuid));
  // A GPU the fresh data distrusts is not stood in for by its last trusted sample.
  for (const uuid of fresh.faults?.excludedUuids ?? []) present.add(uuid);
  const retained = previous.gpus.filter((g) => !present.has(g.uuid) && nowMs - g.sampledAtMs <= retainMs);
  if (retained.length === 0) return { inventory: fresh, retained };
  const nodes = [...new Set(retained.map((g) => g.node))];
  const oldestAgeSeconds = Math.round((nowMs - sampleTimeRange(retained).oldest) / 1000);
  const problem =
    `${retained.length} GPU(s) on ${nodes.slice(0, 5).join(', ')}${nodes.length > 5 ? ', ...' : ''} missing from the latest fetch are kept ` +
    `with their last sample (oldest ${oldestAgeSeconds} s old), so placement sees them as stale; check their exporters`;
  return {
    inventory: { ...fresh, gpus: [...fresh.gpus, ...retained].sort(compareGpus), problems: [...fresh.problems, problem] },
    retained,
  };
}

function sampleTimeRange(gpus: readonly GpuSample[]): { oldest: number; newest: number } {
  let oldest = Infinity;
  let newest = -Infinity;
  for (const g of gpus) {
    if (g.sampledAtMs < oldest) oldest = g.sampledAtMs;
    if (g.sampledAtMs > newest) newest = g.sampledAtMs;
  }
  return { oldest, newest };
}

/**
 * The last line of defence for time from outside: a sample time after `receivedAtMs` (the
 * end of the fetch) becomes `receivedAtMs`, counted in the inventory's faults. Sources clamp
 * to the moment their data arrived already; this catches one that does not. Pure.
 */
export function clampFutureSamples(inventory: GpuInventory, receivedAtMs: number): GpuInventory {
  let skewed = 0;
  let maxAheadMs = 0;
  let first = '';
  const gpus = inventory.gpus.map((g) => {
    if (!(g.sampledAtMs > receivedAtMs)) return g;
    const aheadMs = g.sampledAtMs - receivedAtMs;
    if (aheadMs > CLOCK_SKEW_TOLERANCE_MS) {
      if (skewed++ === 0) first = `node ${g.node} GPU ${g.index} (${g.uuid})`;
      maxAheadMs = Math.max(maxAheadMs, aheadMs);
    }
    return { ...g, sampledAtMs: receivedAtMs };
  });
  if (gpus.every((g, i) => g === inventory.gpus[i])) return inventory;
  if (skewed === 0) return { ...inventory, gpus };
  const faults = addIngestionFaults(inventory.faults ?? noIngestionFaults(), { ...noIngestionFaults(), clockSkewedGpus: skewed, maxClockSkewSeconds: maxAheadMs / 1000 });
  return { ...inventory, gpus, faults, problems: [...inventory.problems, describeClockSkew(skewed, maxAheadMs / 1000, first)] };
}

function errorText(err: unknown): string {
  // Duck-typed: an error may come from another realm.
  const message = (err as { message?: unknown } | null)?.message;
  return typeof message === 'string' ? message : String(err);
}

export class MetricsRefresher extends EventEmitter<MetricsRefresherEvents> {
  private readonly clock: () => number;
  private readonly scheduler: RefreshScheduler;
  private readonly refreshMs: number;
  private readonly retainMs: number;
  private readonly deadlineMs: number;
  private inventory: GpuInventory;
  private loaded = false;
  private readonly loadedWaiters: Array<() => void> = [];
  private running = false;
  /** Bumped by start(): a poll loop from before a stop() must not schedule again. */
  private generation = 0;
  private timer: unknown = null;
  private inFlight: Promise<GpuInventory> | null = null;
  private abort: AbortController | null = null;

  constructor(
    private readonly source: MetricsSource,
    opts: MetricsRefresherOptions,
  ) {
    super();
    if (!(opts.refreshSeconds > 0)) throw new RangeError(`refreshSeconds must be positive, got ${opts.refreshSeconds}; set metrics.refreshSeconds`);
    this.clock = opts.clock ?? Date.now;
    this.scheduler = opts.scheduler ?? realScheduler;
    this.refreshMs = opts.refreshSeconds * 1000;
    this.retainMs = (opts.retainMissingSeconds ?? Math.max(600, 10 * opts.refreshSeconds)) * 1000;
    this.deadlineMs = (opts.fetchDeadlineSeconds ?? Math.max(60, 4 * opts.refreshSeconds)) * 1000;
    this.inventory = emptyInventory(this.clock(), source.name);
  }

  /** The latest inventory (empty before the first fetch). Never waits. */
  current(): GpuInventory {
    return this.inventory;
  }

  /** True once a fetch has produced at least one GPU. */
  hasLoaded(): boolean {
    return this.loaded;
  }

  /** Resolves once hasLoaded() is true; rejects if `signal` aborts first. */
  whenLoaded(signal?: AbortSignal): Promise<void> {
    if (this.loaded) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const onAbort = (): void => {
        const i = this.loadedWaiters.indexOf(done);
        if (i !== -1) this.loadedWaiters.splice(i, 1);
        reject(signal?.reason);
      };
      const done = (): void => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      this.loadedWaiters.push(done);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Fetch now (joining a fetch already under way) and return the resulting inventory. */
  refreshNow(): Promise<GpuInventory> {
    if (this.inFlight === null) {
      this.inFlight = this.refresh().finally(() => {
        this.inFlight = null;
      });
    }
    return this.inFlight;
  }

  /** Fetch now, then every refreshSeconds, until stop(). */
  start(): void {
    if (this.running) return;
    this.running = true;
    void this.tick(++this.generation);
  }

  /** Stop polling and abort a fetch under way. The last inventory stays readable. */
  stop(): void {
    this.running = false;
    if (this.timer !== null) {
      this.scheduler.clearTimeout(this.timer);
      this.timer = null;
    }
    this.abort?.abort(new Error('metrics refresher stopped'));
  }

  private async tick(generation: number): Promise<void> {
    this.timer = null;
    const startedMs = this.clock();
    await this.refreshNow();
    if (!this.running || generation !== this.generation) return;
    const delay = Math.max(0, this.refreshMs - (this.clock() - startedMs));
    this.timer = this.scheduler.setTimeout(() => void this.tick(generation), delay);
  }

  private async refresh(): Promise<GpuInventory> {
    const abort = new AbortController();
    this.abort = abort;
    const startedMs = this.clock();
    let fresh: GpuInventory | null = null;
    let error: string | null = null;
    let deadlineTimer: unknown = null;
    let missedDeadline = false;
    try {
      // A source that ignores its signal must not hold up polling for ever. Real time: this
      // guards against a promise that never settles, whatever clock the samples are on.
      const deadline = new Promise<never>((_, reject) => {
        deadlineTimer = realScheduler.setTimeout(() => {
          missedDeadline = true;
          abort.abort(new Error('fetch deadline'));
          reject(new Error(`no answer within ${this.deadlineMs / 1000} s; the source is hung: check it, or raise metrics.timeoutMs if it is merely slow`));
        }, this.deadlineMs);
      });
      fresh = await Promise.race([this.source.fetch(startedMs, abort.signal), deadline]);
    } catch (err) {
      // Stopped mid-fetch: nothing to report, the inventory stays as it was.
      if (abort.signal.aborted && !missedDeadline) return this.inventory;
      error = errorText(err);
    } finally {
      if (deadlineTimer !== null) realScheduler.clearTimeout(deadlineTimer);
      if (this.abort === abort) this.abort = null;
    }
    const nowMs = this.clock();
    const previous = this.inventory;
    const base: GpuInventory = fresh !== null ? clampFutureSamples(fresh, nowMs) : {
      ...emptyInventory(previous.fetchedAtMs, this.source.name),
      source: previous.source,
      problems: [`fetching DCGM metrics from ${this.source.name} failed: ${error}`],
    };
    const { inventory, retained } = carryForwardMissingGpus(previous, base, nowMs, this.retainMs);
    this.inventory = inventory;
    if (fresh !== null && fresh.gpus.length > 0) this.markLoaded();

    const range = sampleTimeRange(inventory.gpus);
    const hasGpus = inventory.gpus.length > 0;
    const report: RefreshReport = {
      ok: fresh !== null,
      error,
      durationSeconds: Math.max(0, nowMs - startedMs) / 1000,
      gpuCount: inventory.gpus.length,
      retainedGpuCount: retained.length,
      newestSampleAgeSeconds: hasGpus ? Math.max(0, nowMs - range.newest) / 1000 : null,
      oldestSampleAgeSeconds: hasGpus ? Math.max(0, nowMs - range.oldest) / 1000 : null,
      excludedGpuCount: excludedGpuCount(base.faults),
      excludedGpus: (base.faults ?? noIngestionFaults()).excludedGpus,
      clockSkewedGpuCount: base.faults?.clockSkewedGpus ?? 0,
      maxClockSkewSeconds: base.faults?.maxClockSkewSeconds ?? 0,
      problems: inventory.problems,
    };
    try {
      this.emit('refresh', inventory, report);
    } catch {
      // A listener's failure must not stop the polling; listeners log on their own.
    }
    return inventory;
  }

  private markLoaded(): void {
    if (this.loaded) return;
    this.loaded = true;
    for (const resolve of this.loadedWaiters.splice(0)) resolve();
  }
}
