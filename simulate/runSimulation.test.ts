import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { defaultConfig } from '../config/schema.js';
import { buildCluster } from './cluster.js';
import type { ClusterSpec } from './cluster.js';
import { TRACE_KINDS } from './generateTrace.js';
import { percentile } from './percentile.js';
import { defaultSimulationSettings, placementConfigFor, runSimulation } from './runSimulation.js';
import type { SimulationResult, SimulationSettings, StrategyRun } from './runSimulation.js';
import { STRATEGY_NAMES } from './strategies/placementStrategy.js';
import type { StrategyName } from './strategies/placementStrategy.js';
import { buildTrace, parseTraceText } from './trace.js';
import type { Trace, TracePod } from './trace.js';

const H100_MIB = 81559;
/** Pods that run the moment they are created (the hand-made traces time their pods to the second). */
const NO_START_LATENCY = { medianS: 0.001, sigma: 0, minS: 0, maxS: 0 };

function shippedTrace(kind: string): Trace {
  const file = fileURLToPath(new URL(`./traces/${kind}.json`, import.meta.url));
  return parseTraceText(readFileSync(file, 'utf8'), file);
}

const cluster4x8: ClusterSpec = buildCluster(JSON.parse(readFileSync(fileURLToPath(new URL('./clusters/h100-4x8.json', import.meta.url)), 'utf8')));
const oneGpu: ClusterSpec = buildCluster({ name: 'one', nodes: [{ name: 'solo', gpus: 1, model: 'NVIDIA H100 80GB HBM3', memoryMiB: H100_MIB }] });

/** A clock that advances 1 µs per read: decisions then "take" exactly 1 µs and runs repeat exactly. */
function steppingClock(): () => number {
  let ms = 0;
  return () => (ms += 0.001);
}

function settings(overrides: Partial<SimulationSettings> = {}): SimulationSettings {
  return { ...defaultSimulationSettings(), clock: steppingClock(), ...overrides };
}

function runOf(result: SimulationResult, name: StrategyName): StrategyRun {
  const run = result.runs.find((r) => r.strategy === name);
  if (run === undefined) throw new Error(`no run for ${name}`);
  return run;
}

function pod(id: string, arrivalS: number, durationS: number, memoryGiB: number, computePercent: number, priority: 'high' | 'low' = 'high'): TracePod {
  return { id, arrivalS, durationS, memoryMiB: memoryGiB * 1024, computePercent, priority, workload: 'test', gpuModel: null };
}

const handTrace = (pods: TracePod[]): Trace => buildTrace({ name: 'hand', pods });

describe('runSimulation: determinism', () => {
  it('two runs with the same seed are deep-equal; another seed changes the noise', () => {
    const trace = shippedTrace('burst');
    const first = runSimulation(trace, cluster4x8, settings());
    const second = runSimulation(trace, cluster4x8, settings());
    expect(second).toEqual(first);
    const reseeded = runSimulation(trace, cluster4x8, settings({ seed: 2 }));
    expect(runOf(reseeded, 'mps-injector').slowdowns).not.toEqual(runOf(first, 'mps-injector').slowdowns);
  });
});

describe('runSimulation: metrics lag', () => {
  const burst = shippedTrace('burst');
  const metricsOnly = (overrides: Partial<SimulationSettings>) => runOf(runSimulation(burst, cluster4x8, settings({ strategies: ['metrics-only'], ...overrides })), 'metrics-only');

  it('with the default lag, metrics-only over-commits GPUs in the burst', () => {
    const run = metricsOnly({});
    expect(run.overcommitEvents.length).toBeGreaterThan(0);
    expect(run.overcommitPods).toBeGreaterThan(0);
  });

  it('the snapshot lag alone (no memory ramp) is enough to over-commit', () => {
    expect(metricsOnly({ memoryRampS: 0 }).overcommitEvents.length).toBeGreaterThan(0);
  });

  it('without lag (tiny interval, no scrape delay, no ramp, no start latency) metrics-only never over-commits', () => {
    const run = metricsOnly({ metricsIntervalS: 1e-7, scrapeDelayS: 0, memoryRampS: 0, startLatency: NO_START_LATENCY });
    expect(run.overcommitEvents).toEqual([]);
    expect(run.overcommitPods).toBe(0);
    expect(run.admitted + run.refused).toBe(burst.pods.length);
  });

  it('mps-injector never over-commits, lag or not, on every shipped trace', () => {
    for (const kind of TRACE_KINDS) {
      const run = runOf(runSimulation(shippedTrace(kind), cluster4x8, settings({ strategies: ['mps-injector'] })), 'mps-injector');
      expect({ kind, events: run.overcommitEvents.length }).toEqual({ kind, events: 0 });
    }
  });

  it('pods start after a start latency: the simulator sees what a pod that exists but does not run does to the old rule', () => {
    // 20 GiB on every GPU that no strategy placed; pods run 5 s to 10 min after creation.
    const withForeignUse = { strategies: ['mps-injector' as const], unmanagedMiB: 20 * 1024 };
    const current = runOf(runSimulation(shippedTrace('burst'), cluster4x8, settings(withForeignUse)), 'mps-injector');
    const legacy = runOf(runSimulation(shippedTrace('burst'), cluster4x8, settings({ ...withForeignUse, observeRule: 'legacy' })), 'mps-injector');
    expect(current.overcommitEvents).toEqual([]);
    expect(legacy.overcommitEvents.length).toBeGreaterThan(0);
    // Every placement starts running after its admission, by the drawn latency.
    expect(current.placements.every((p) => p.startS >= 0)).toBe(true);
  });
});

describe('runSimulation: invariants of every strategy on every shipped trace', () => {
  let results: { kind: string; trace: Trace; result: SimulationResult }[] = [];
  const placement = placementConfigFor(defaultSimulationSettings());
  beforeAll(() => {
    results = TRACE_KINDS.map((kind) => ({ kind, trace: shippedTrace(kind), result: runSimulation(shippedTrace(kind), cluster4x8, settings()) }));
  });

  it('runs every strategy', () => {
    expect(results).toHaveLength(TRACE_KINDS.length);
    for (const { result } of results) expect(result.runs.map((r) => r.strategy)).toEqual([...STRATEGY_NAMES]);
  });

  it('admitted + refused is the trace size, and each admitted pod is placed exactly once', () => {
    for (const { trace, result } of results) {
      const ids = new Set(trace.pods.map((p) => p.id));
      for (const run of result.runs) {
        expect(run.admitted + run.refused).toBe(trace.pods.length);
        expect(run.placements).toHaveLength(run.admitted);
        const placed = run.placements.map((p) => p.podId);
        expect(new Set(placed).size).toBe(placed.length);
        for (const id of placed) expect(ids.has(id)).toBe(true);
        expect(run.slowdowns).toHaveLength(run.admitted);
      }
    }
  });

  it('departures release capacity: after the last one every GPU is empty and no slot is held', () => {
    for (const { result } of results) {
      for (const run of result.runs) {
        expect({ strategy: run.strategy, ...run.leftover }).toEqual({ strategy: run.strategy, residentPods: 0, heldSlots: 0 });
        expect(run.series.gpusInUse[run.series.gpusInUse.length - 1]).toBe(0);
      }
    }
  });

  it('no GPU ever holds more than the strategy allows', () => {
    for (const { trace, result } of results) {
      const priorityOf = new Map(trace.pods.map((p) => [p.id, p.priority]));
      for (const run of result.runs) {
        const byGpu = new Map<string, typeof run.placements>();
        for (const p of run.placements) byGpu.set(p.gpuUuid, [...(byGpu.get(p.gpuUuid) ?? []), p]);
        for (const placements of byGpu.values()) {
          // Sweep: ends before starts at equal times (a departure frees room for an arrival at that instant).
          const events = placements.flatMap((p) => [
            { t: p.startS, sign: 1, p },
            { t: p.endS, sign: -1, p },
          ]);
          events.sort((a, b) => a.t - b.t || a.sign - b.sign);
          let pods = 0;
          let memoryMiB = 0;
          let threads = 0;
          let highThreads = 0;
          for (const e of events) {
            pods += e.sign;
            memoryMiB += e.sign * (e.p.memoryLimitMiB ?? 0);
            threads += e.sign * (e.p.threadPercent ?? 0);
            if (priorityOf.get(e.p.podId) === 'high') highThreads += e.sign * (e.p.threadPercent ?? 0);
            if (run.strategy === 'equal-split' || run.strategy === 'time-slicing') expect(pods).toBeLessThanOrEqual(4);
            if (run.strategy === 'mps-injector') {
              expect(pods).toBeLessThanOrEqual(placement.maxClientsPerGpu);
              expect(threads).toBeLessThanOrEqual(placement.maxThreadPercentSum);
              expect(highThreads).toBeLessThanOrEqual(placement.maxHighThreadPercentSum);
              expect(memoryMiB).toBeLessThanOrEqual(H100_MIB - placement.memorySafetyMarginMiB);
            }
          }
          expect(pods).toBe(0);
        }
      }
    }
  });

  it('sharing never speeds a pod up: every slowdown is at least 1', () => {
    for (const { result } of results) {
      for (const run of result.runs) for (const s of run.slowdowns) expect(s.slowdown).toBeGreaterThanOrEqual(1 - 1e-9);
    }
  });
});

describe('runSimulation: the contention and usage model on hand-made traces', () => {
  const exact = (overrides: Partial<SimulationSettings> = {}) => settings({ startLatency: NO_START_LATENCY,  computeNoise: 0, memoryRampS: 0, ...overrides });

  it('counts GPU-hours as the time a GPU hosts at least one pod', () => {
    const trace = handTrace([pod('a', 0, 3600, 4, 10), pod('b', 1800, 3600, 4, 10)]);
    const result = runSimulation(trace, oneGpu, exact());
    for (const run of result.runs) {
      expect(run.admitted).toBe(2);
      expect(run.gpuHours).toBeCloseTo(1.5, 9);
      expect(run.admittedPodHours).toBeCloseTo(2, 9);
    }
  });

  it('applies each sharing model to two pods of 60% on one GPU', () => {
    // Low priority: two high-priority pods of 60% would not share a GPU under the high-priority budget.
    const trace = handTrace([pod('a', 0, 600, 4, 60, 'low'), pod('b', 0.5, 599.5, 4, 60, 'low')]);
    const result = runSimulation(trace, oneGpu, exact({ timeSliceOverhead: 0.1 }));
    const slowdownOf = (name: StrategyName) => runOf(result, name).slowdowns.find((s) => s.podId === 'b')?.slowdown;
    // MPS, both within their 60% caps: 50 each -> 60 / 50.
    expect(slowdownOf('mps-injector')).toBeCloseTo(1.2, 6);
    // equal-split with 4 replicas caps each pod at 25%.
    expect(slowdownOf('equal-split')).toBeCloseTo(60 / 25, 6);
    // Time-slicing: 90% of the time left after switches, 45 each.
    expect(slowdownOf('time-slicing')).toBeCloseTo(60 / 45, 6);
  });

  it('lets high-priority MPS clients of mps-injector run ahead of low ones', () => {
    const trace = handTrace([pod('high', 0, 600, 4, 80, 'high'), pod('low', 0.5, 599.5, 4, 80, 'low')]);
    const run = runOf(runSimulation(trace, oneGpu, exact({ strategies: ['mps-injector'] })), 'mps-injector');
    const of = (id: string) => run.slowdowns.find((s) => s.podId === id)?.slowdown ?? Number.NaN;
    expect(of('high')).toBeCloseTo(1, 6);
    expect(of('low')).toBeCloseTo(80 / 20, 6);
  });

  it('counts transitions into memory over-commit and the pods they hit', () => {
    const trace = handTrace([
      pod('a', 0, 600, 50, 10),
      pod('b', 10, 100, 50, 10), // over-commits with a from t=10 to t=110
      pod('c', 200, 100, 50, 10), // again from t=200 to t=300
    ]);
    const run = runOf(runSimulation(trace, oneGpu, exact({ strategies: ['time-slicing'] })), 'time-slicing');
    expect(run.overcommitEvents.map((e) => e.atS)).toEqual([10, 200]);
    expect(run.overcommitPods).toBe(3);
  });

  it('measures SM and memory utilisation of the GPUs in use, and requests by the request model', () => {
    // Two pods of 60% and 40 GiB for an hour on one GPU; the hand-made workload serves 1 request/s at its share, 1 s each.
    const trace = handTrace([pod('a', 0, 3600, 40, 60, 'low'), pod('b', 0, 3600, 20, 60, 'low')]);
    const result = runSimulation(trace, oneGpu, exact({ timeSliceOverhead: 0.1 }));
    const mps = runOf(result, 'mps-injector');
    // MPS: 100% of the GPU supplied, 50 each of the 60 demanded.
    expect(mps.smPercentMs / (100 * mps.gpuHours * 3_600_000)).toBeCloseTo(1, 6);
    expect(mps.memoryFractionMs / mps.memorySampledMs).toBeCloseTo((60 * 1024) / H100_MIB, 6);
    expect(mps.requests.offered).toBeCloseTo(7200, 6);
    expect(mps.requests.served).toBeCloseTo((7200 * 50) / 60, 6);
    expect(mps.requests.responseSeconds / mps.requests.offered).toBeCloseTo(60 / 50, 6);
    const sliced = runOf(result, 'time-slicing');
    // Time-slicing: 90 of 100 left after switches, 45 each.
    expect(sliced.smPercentMs / (100 * sliced.gpuHours * 3_600_000)).toBeCloseTo(0.9, 6);
    expect(sliced.requests.served).toBeCloseTo((7200 * 45) / 60, 6);
    expect(sliced.requests.responseSeconds / sliced.requests.offered).toBeCloseTo(60 / 45, 6);
    expect(mps.spanS).toBe(sliced.spanS);
  });

  it('an LLM server fills its KV cache after loading, and a memory over-commit that only the cache causes is seen', () => {
    const server = (id: string, arrivalS: number): TracePod => ({ ...pod(id, arrivalS, 3600, 40, 30), kvCacheMiB: 10 * 1024, kvGrowthS: 600 });
    const run = runOf(runSimulation(handTrace([server('a', 0), server('b', 1)]), oneGpu, exact({ strategies: ['time-slicing'] })), 'time-slicing');
    // Weights 30 GiB each at once; the caches (10 GiB each) fill over 600 s: 60 GiB + 20 GiB x f passes 81559 MiB at f = 0.98, about t = 589 s.
    expect(run.overcommitEvents).toHaveLength(1);
    expect(run.overcommitEvents[0]!.atS).toBeGreaterThan(580);
    expect(run.overcommitEvents[0]!.atS).toBeLessThanOrEqual(595);
  });

  it('sees an over-commit that only builds up while memory ramps', () => {
    const trace = handTrace([pod('a', 0, 600, 50, 10), pod('b', 1, 600, 50, 10)]);
    const run = runOf(runSimulation(trace, oneGpu, settings({ startLatency: NO_START_LATENCY,  strategies: ['time-slicing'], memoryRampS: 60, stepS: 5 })), 'time-slicing');
    expect(run.overcommitEvents).toHaveLength(1);
    // 50 GiB + 50 GiB ramping from t=1 passes 81559 MiB at t = 48.3 s (51200 (2t - 1) / 60 > 81559); seen at the next 5 s step.
    expect(run.overcommitEvents[0]!.atS).toBe(50);
  });
});

describe('placementConfigFor', () => {
  it('keeps the product defaults and raises the metrics age limit only when the lag needs it', () => {
    const base = defaultConfig().placement;
    expect(placementConfigFor(defaultSimulationSettings())).toEqual({ ...base, policy: 'binpack' });
    const slow = placementConfigFor({ ...defaultSimulationSettings(), metricsIntervalS: 60, scrapeDelayS: 60 });
    expect(slow.maxMetricsAgeSeconds).toBe(240);
    expect(placementConfigFor({ ...defaultSimulationSettings(), placementOverrides: { maxThreadPercentSum: 100 } }).maxThreadPercentSum).toBe(100);
  });

  it('mps-injector never refuses for stale metrics under a long lag', () => {
    const run = runOf(
      runSimulation(shippedTrace('burst'), cluster4x8, settings({ strategies: ['mps-injector'], metricsIntervalS: 120, scrapeDelayS: 60 })),
      'mps-injector',
    );
    expect(run.refusedByCode['no-metrics']).toBeUndefined();
    expect(run.admitted).toBeGreaterThan(0);
  });
});

describe('runSimulation: settings', () => {
  it('rejects unusable settings with a message naming the field', () => {
    expect(() => runSimulation(handTrace([pod('a', 0, 10, 1, 10)]), oneGpu, settings({ metricsIntervalS: 0 }))).toThrow(/metricsIntervalS must be above 0/);
    expect(() => runSimulation(handTrace([pod('a', 0, 10, 1, 10)]), oneGpu, settings({ strategies: [] }))).toThrow(/strategies must name/);
  });
});

describe('runSimulation: the MPS limit above the reserved share', () => {
  const exact = (overrides: Partial<SimulationSettings> = {}) => settings({ startLatency: NO_START_LATENCY, computeNoise: 0, memoryRampS: 0, strategies: ['mps-injector'], ...overrides });
  /** A server asking 20% whose load is 2.5x its mean one window in five (0.625x otherwise). */
  const bursty = (id: string, priority: 'high' | 'low'): TracePod => ({ ...pod(id, 0, 3600, 8, 20, priority), burst: { windowS: 60, share: 0.2, factor: 2.5 } });

  it('caps each pod at min(demand, limit): a burst above the reserved share is clipped at a limit of 1x and served at 2.5x', () => {
    const trace = handTrace([bursty('a', 'high')]);
    const clipped = runOf(runSimulation(trace, oneGpu, exact()), 'mps-injector');
    const free = runOf(runSimulation(trace, oneGpu, exact({ placementOverrides: { threadCeilingFactor: { high: 2.5, low: 1 } } })), 'mps-injector');
    expect(clipped.slowdowns[0]?.slowdown).toBeGreaterThan(1.2);
    expect(free.slowdowns[0]?.slowdown).toBeCloseTo(1, 9);
    expect(free.smPercentMs).toBeGreaterThan(clipped.smPercentMs);
  });

  it('client priority keeps a bursting low pod from taking what a high pod demands', () => {
    const trace = handTrace([pod('high', 0, 3600, 8, 90, 'high'), bursty('low', 'low')]);
    const run = runOf(runSimulation(trace, oneGpu, exact({ placementOverrides: { threadCeilingFactor: { high: 1, low: 5 } } })), 'mps-injector');
    expect(run.slowdowns.find((s) => s.podId === 'high')?.slowdown).toBeCloseTo(1, 9);
    expect(run.slowdowns.find((s) => s.podId === 'low')?.slowdown).toBeGreaterThan(1);
  });

  it('on the shipped burst trace a high-priority limit of 1.5x brings the high-priority p95 slowdown down', () => {
    const burst = shippedTrace('burst');
    const p95High = (factor: number) => {
      const run = runOf(runSimulation(burst, cluster4x8, settings({ strategies: ['mps-injector'], placementOverrides: { threadCeilingFactor: { high: factor, low: 1 } } })), 'mps-injector');
      return percentile(run.slowdowns.filter((s) => s.priority === 'high').map((s) => s.slowdown), 95);
    };
    const atShare = p95High(1);
    const atLimit = p95High(1.5);
    expect(atShare).toBeGreaterThan(1.03);
    expect(atLimit).toBeLessThan(atShare - 0.02);
  });
});
