import { once } from 'node:events';
import { noIngestionFaults, type GpuInventory, type GpuSample } from '../domain/inventory.js';
import { carryForwardMissingGpus, MetricsRefresher, type RefreshReport, type RefreshScheduler } from './metricsRefresher.js';
import { MetricsSourceError, type MetricsSource } from './sources.js';
import { h100 } from '../testing/gpuSamples.js';

const T = 1_767_000_000_000;

/** Timers that fire only when the test says so. */
class ManualScheduler implements RefreshScheduler {
  readonly timers = new Map<number, { run: () => void; ms: number }>();
  private nextId = 1;
  private scheduled: Array<() => void> = [];

  setTimeout(run: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.set(id, { run, ms });
    for (const resolve of this.scheduled.splice(0)) resolve();
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }
  /** Resolves when the next timer is set. */
  whenScheduled(): Promise<void> {
    return new Promise((resolve) => this.scheduled.push(resolve));
  }
  /** Fire the only pending timer and return its delay. */
  fire(): number {
    const [entry, ...rest] = [...this.timers.entries()];
    if (entry === undefined || rest.length > 0) throw new Error(`expected one pending timer, found ${this.timers.size}`);
    this.timers.delete(entry[0]);
    entry[1].run();
    return entry[1].ms;
  }
}

type Step = (nowMs: number, signal: AbortSignal | undefined) => Promise<GpuInventory>;

/** A source that answers each fetch with the next scripted step. */
class ScriptedSource implements MetricsSource {
  readonly name = 'scripted';
  readonly calls: Array<{ nowMs: number; signal: AbortSignal | undefined }> = [];
  constructor(private readonly steps: Step[]) {}
  fetch(nowMs: number, signal?: AbortSignal): Promise<GpuInventory> {
    this.calls.push({ nowMs, signal });
    const step = this.steps.shift();
    if (step === undefined) return Promise.reject(new Error('no more scripted fetches'));
    return step(nowMs, signal);
  }
}

const inventory = (gpus: GpuSample[], fetchedAtMs: number, problems: string[] = []): GpuInventory => ({
  gpus,
  nodes: {},
  source: 'scripted',
  fetchedAtMs,
  skippedLines: 0,
  problems,
});
const answer =
  (gpus: (nowMs: number) => GpuSample[]): Step =>
  (nowMs) =>
    Promise.resolve(inventory(gpus(nowMs), nowMs));
const fail =
  (message: string): Step =>
  () =>
    Promise.reject(new MetricsSourceError('scripted', message));

function setup(steps: Step[], opts: { retainMissingSeconds?: number; fetchDeadlineSeconds?: number } = {}) {
  let now = T;
  const clock = { now: () => now, set: (ms: number) => (now = ms) };
  const scheduler = new ManualScheduler();
  const source = new ScriptedSource(steps);
  const refresher = new MetricsRefresher(source, { refreshSeconds: 15, clock: clock.now, scheduler, ...opts });
  return { clock, scheduler, source, refresher };
}

describe('MetricsRefresher', () => {
  test('fetches at start, then every refreshSeconds between fetch starts', async () => {
    const { clock, scheduler, source, refresher } = setup([
      answer((t) => [h100('n1', 0, t)]),
      (nowMs) => {
        // This fetch takes 2 s: the next one is due 13 s after it ends.
        clock.set(nowMs + 2_000);
        return Promise.resolve(inventory([h100('n1', 0, nowMs)], nowMs));
      },
      answer((t) => [h100('n1', 0, t)]),
    ]);
    let scheduled = scheduler.whenScheduled();
    refresher.start();
    await scheduled;
    expect(source.calls.map((c) => c.nowMs)).toEqual([T]);
    expect([...scheduler.timers.values()].map((t) => t.ms)).toEqual([15_000]);

    clock.set(T + 15_000);
    scheduled = scheduler.whenScheduled();
    scheduler.fire();
    await scheduled;
    expect(source.calls.map((c) => c.nowMs)).toEqual([T, T + 15_000]);
    expect([...scheduler.timers.values()].map((t) => t.ms)).toEqual([13_000]);
    expect(refresher.current().gpus.map((g) => g.sampledAtMs)).toEqual([T + 15_000]);
    refresher.stop();
    expect(scheduler.timers.size).toBe(0);
  });

  test('is loaded only once a fetch produced a GPU; whenLoaded waits for that', async () => {
    const { refresher } = setup([answer(() => []), answer((t) => [h100('n1', 0, t)])]);
    let loaded = false;
    const waiting = refresher.whenLoaded().then(() => (loaded = true));
    expect(refresher.current().gpus).toEqual([]);

    await refresher.refreshNow();
    await new Promise((r) => setImmediate(r));
    expect(refresher.hasLoaded()).toBe(false);
    expect(loaded).toBe(false);

    await refresher.refreshNow();
    await waiting;
    expect(refresher.hasLoaded()).toBe(true);
    await expect(refresher.whenLoaded()).resolves.toBeUndefined();
  });

  test('whenLoaded gives up when its signal aborts', async () => {
    const { refresher } = setup([]);
    const abort = new AbortController();
    const waiting = refresher.whenLoaded(abort.signal);
    abort.abort(new Error('shutting down'));
    await expect(waiting).rejects.toThrow('shutting down');
  });

  test('a failed fetch keeps the last GPUs with their original sample time, so they go stale', async () => {
    const { clock, refresher } = setup([answer((t) => [h100('n1', 0, t), h100('n1', 1, t)]), fail('exporter at http://10.0.0.1:9400/metrics: HTTP 500')]);
    await refresher.refreshNow();

    clock.set(T + 60_000);
    const reported = once(refresher, 'refresh') as Promise<[GpuInventory, RefreshReport]>;
    const after = await refresher.refreshNow();
    const [emitted, report] = await reported;

    expect(emitted).toBe(after);
    expect(after.gpus.map((g) => [g.index, g.sampledAtMs])).toEqual([
      [0, T],
      [1, T],
    ]);
    expect(after.fetchedAtMs).toBe(T);
    expect(after.problems.join('\n')).toMatch(/fetching DCGM metrics from scripted failed: exporter at http:\/\/10.0.0.1:9400\/metrics: HTTP 500/);
    expect(after.problems.join('\n')).toMatch(/2 GPU\(s\) on n1 missing from the latest fetch are kept with their last sample \(oldest 60 s old\)/);
    expect(report).toMatchObject({ ok: false, gpuCount: 2, retainedGpuCount: 2, newestSampleAgeSeconds: 60, oldestSampleAgeSeconds: 60 });
    expect(report.error).toMatch(/HTTP 500/);
    expect(refresher.hasLoaded()).toBe(true);
  });

  test('a GPU missing from a fetch is kept stale, then dropped after the retention time', async () => {
    const { clock, refresher } = setup(
      [
        answer((t) => [h100('n1', 0, t), h100('n2', 0, t)]),
        answer((t) => [h100('n1', 0, t)]),
        answer((t) => [h100('n1', 0, t)]),
      ],
      { retainMissingSeconds: 100 },
    );
    await refresher.refreshNow();

    clock.set(T + 30_000);
    const second = await refresher.refreshNow();
    expect(second.gpus.map((g) => [g.node, g.sampledAtMs])).toEqual([
      ['n1', T + 30_000],
      ['n2', T],
    ]);

    clock.set(T + 101_000);
    const third = await refresher.refreshNow();
    expect(third.gpus.map((g) => g.node)).toEqual(['n1']);
    expect(third.problems).toEqual([]);
  });

  test('refreshNow joins a fetch already under way', async () => {
    let release: (inv: GpuInventory) => void = () => undefined;
    const { source, refresher } = setup([() => new Promise<GpuInventory>((resolve) => (release = resolve))]);
    const a = refresher.refreshNow();
    const b = refresher.refreshNow();
    release(inventory([h100('n1', 0, T)], T));
    const [first, second] = await Promise.all([a, b]);
    expect(source.calls).toHaveLength(1);
    expect(first).toBe(second);
  });

  test('stop aborts the fetch under way and schedules nothing more', async () => {
    const { scheduler, source, refresher } = setup([
      (_nowMs, signal) =>
        new Promise<GpuInventory>((_resolve, reject) => {
          signal?.addEventListener('abort', () => reject(signal.reason));
        }),
    ]);
    let refreshed = false;
    refresher.on('refresh', () => (refreshed = true));
    refresher.start();
    const inFlight = refresher.refreshNow();
    refresher.stop();
    await inFlight;
    expect(source.calls[0]?.signal?.aborted).toBe(true);
    expect(scheduler.timers.size).toBe(0);
    expect(refreshed).toBe(false);
    expect(refresher.current().gpus).toEqual([]);
  });

  test('a listener that throws does not stop the polling', async () => {
    const { scheduler, refresher } = setup([answer((t) => [h100('n1', 0, t)])]);
    refresher.on('refresh', () => {
      throw new Error('listener bug');
    });
    const scheduled = scheduler.whenScheduled();
    refresher.start();
    await scheduled;
    expect(scheduler.timers.size).toBe(1);
    refresher.stop();
  });

  test('a source that stamps its samples a year ahead and then stops answering goes stale on schedule', async () => {
    const yearMs = 365 * 86_400_000;
    // A source that does not clamp: the refresher does.
    const { clock, refresher } = setup([answer((t) => [h100('n1', 0, t + yearMs)]), fail('exporter down')]);
    const reported = once(refresher, 'refresh') as Promise<[GpuInventory, RefreshReport]>;
    await refresher.refreshNow();
    const [, report] = await reported;
    expect(refresher.current().gpus.map((g) => g.sampledAtMs)).toEqual([T]);
    expect(report).toMatchObject({ clockSkewedGpuCount: 1, maxClockSkewSeconds: yearMs / 1000 });
    expect(refresher.current().problems.join('\n')).toMatch(/1 GPU\(s\) carry sample times up to 31536000 s ahead/);

    // placement.maxMetricsAgeSeconds defaults to 90: past it, the kept sample is stale.
    clock.set(T + 91_000);
    const after = await refresher.refreshNow();
    expect(after.gpus.map((g) => (T + 91_000 - g.sampledAtMs) / 1000)).toEqual([91]);
  });

  test('a fetch that never settles is given up at the deadline, and the GPUs age meanwhile', async () => {
    const { clock, refresher } = setup([answer((t) => [h100('n1', 0, t)]), () => new Promise<GpuInventory>(() => undefined)], { fetchDeadlineSeconds: 0.05 });
    await refresher.refreshNow();
    clock.set(T + 120_000);
    const reported = once(refresher, 'refresh') as Promise<[GpuInventory, RefreshReport]>;
    const hung = Symbol('hung');
    const outcome = await Promise.race([refresher.refreshNow(), new Promise((r) => setTimeout(() => r(hung), 5_000))]);
    expect(outcome).not.toBe(hung);
    const [inventoryAfter, report] = await reported;
    expect(report.ok).toBe(false);
    expect(report.error).toMatch(/no answer within 0.05 s/);
    expect(inventoryAfter.gpus.map((g) => g.sampledAtMs)).toEqual([T]);
  });

  test('a GPU the latest fetch distrusts is not stood in for by its last sample; the report counts it', async () => {
    const distrusted = h100('n1', 1, T);
    const { clock, refresher } = setup([
      answer((t) => [h100('n1', 0, t), h100('n1', 1, t)]),
      (nowMs) =>
        Promise.resolve({
          ...inventory([h100('n1', 0, nowMs)], nowMs),
          faults: { ...noIngestionFaults(), excludedGpus: { ...noIngestionFaults().excludedGpus, 'conflicting-series': 1 }, excludedUuids: [distrusted.uuid] },
        }),
    ]);
    await refresher.refreshNow();
    clock.set(T + 15_000);
    const reported = once(refresher, 'refresh') as Promise<[GpuInventory, RefreshReport]>;
    const after = await refresher.refreshNow();
    const [, report] = await reported;
    expect(after.gpus.map((g) => g.uuid)).toEqual([h100('n1', 0, T).uuid]);
    expect(report).toMatchObject({ excludedGpuCount: 1, retainedGpuCount: 0 });
    expect(report.excludedGpus['conflicting-series']).toBe(1);
  });

  test('refuses a refresh interval that is not positive', () => {
    expect(() => new MetricsRefresher(new ScriptedSource([]), { refreshSeconds: 0 })).toThrow(/refreshSeconds must be positive/);
  });
});

describe('carryForwardMissingGpus', () => {
  const previous = inventory([h100('n1', 0, T), h100('n1', 1, T), h100('n2', 0, T - 500_000)], T);

  test('adds the GPUs the fresh inventory lacks, in node/ordinal order, with their old time', () => {
    const fresh = inventory([h100('n1', 1, T + 10_000)], T + 10_000);
    const { inventory: merged, retained } = carryForwardMissingGpus(previous, fresh, T + 10_000, 600_000);
    expect(merged.gpus.map((g) => [g.node, g.index, g.sampledAtMs])).toEqual([
      ['n1', 0, T],
      ['n1', 1, T + 10_000],
      ['n2', 0, T - 500_000],
    ]);
    expect(retained.map((g) => `${g.node}/${g.index}`)).toEqual(['n1/0', 'n2/0']);
    expect(merged.fetchedAtMs).toBe(T + 10_000);
  });

  test('returns the fresh inventory untouched when nothing is missing or all missing are too old', () => {
    const fresh = inventory([h100('n1', 0, T + 10_000), h100('n1', 1, T + 10_000)], T + 10_000);
    expect(carryForwardMissingGpus(previous, fresh, T + 10_000, 100_000).inventory).toBe(fresh);
  });
});
