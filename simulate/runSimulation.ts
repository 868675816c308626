/**
 * The simulation engine: replays a trace against a simulated cluster once per strategy and
 * measures what happens. Pure apart from the wall clock read to time placement decisions
 * (injectable for tests).
 *
 * Time moves through three sorted streams: departures, sampling steps and arrivals (in that
 * order at equal times, so capacity freed at t is free for a pod arriving at t). Per GPU the
 * compute rates are piecewise constant: they change when a pod arrives or leaves and at every
 * step (noise is redrawn per step), and each pod's demand and supply are integrated between
 * changes. Memory only grows between departures (ramps), so checking a GPU at every step,
 * after every arrival and before and after every departure sees every transition into
 * over-commit (at most one step after it begins). The model is documented in
 * docs/simulation.md and docs/adr/0007-simulator.md.
 */
import { burstWindow } from './burstWindow.js';
import type { BurstWindow } from './burstWindow.js';
import { defaultConfig } from '../config/schema.js';
import type { PlacementConfig, PlacementPolicy, Priority } from '../domain/slot.js';
import { expandCluster } from './cluster.js';
import type { ClusterSpec, SimGpu } from './cluster.js';
import { mpsSupply, timeSlicedSupply } from './interference.js';
import { podComputeDemand, podMemoryMiB } from './podUsage.js';
import type { UsageModel } from './podUsage.js';
import { SimulatedExporter } from './simulatedExporter.js';
import type { GpuActivity } from './simulatedExporter.js';
import { podRequests, requestStretch } from './requestModel.js';
import { createStrategy } from './strategies/createStrategy.js';
import { ObserveRule, Sharing, STRATEGY_NAMES } from './strategies/placementStrategy.js';
import { hashUniform, normalFromUniforms } from './seededRandom.js';
import type { PlacementStrategy, StrategyName } from './strategies/placementStrategy.js';
import { traceEndS } from './trace.js';
import type { Trace, TracePod } from './trace.js';

/** Simulation time 0 as epoch ms (a Monday, 00:00 UTC), so samples carry plausible timestamps. */
export const SIMULATION_EPOCH_MS = Date.UTC(2025, 0, 6);

/** A pod that got no compute at all over its life counts as this slowdown. */
export const MAX_SLOWDOWN = 100;

/** Namespace of the simulated pods (pod keys are "sim/<trace pod id>"). */
export const SIM_NAMESPACE = 'sim';

export interface SimulationSettings {
  policy: PlacementPolicy;
  /** Seeds the compute noise and the exporters' phases (the trace has its own seed). */
  seed: number;
  /** dcgm-exporter sampling interval, s. */
  metricsIntervalS: number;
  /** From a sample being taken to placement seeing it, s. */
  scrapeDelayS: number;
  /** A pod's memory grows linearly from 0 to its need over this many seconds after start. */
  memoryRampS: number;
  /** Standard deviation of the multiplicative compute noise. */
  computeNoise: number;
  /** Sampling step: compute rates and noise are updated, GPUs checked, once per step, s. */
  stepS: number;
  /** Replicas per GPU of equal-split and time-slicing. */
  replicasPerGpu: number;
  /** Share of GPU time lost to context switches when two or more pods time-slice a GPU. */
  timeSliceOverhead: number;
  strategies: readonly StrategyName[];
  /**
   * From a pod's creation to its containers running (scheduling, a multi-GB image pull, then
   * the runtime starting): log-normal with this median and sigma, clamped to [minS, maxS].
   * Memory then ramps over memoryRampS (the model load). docs/simulation.md.
   */
  startLatency: { medianS: number; sigma: number; minS: number; maxS: number };
  /** Memory every GPU carries for processes no strategy placed (a monitoring agent, a device-plugin pod), MiB. */
  unmanagedMiB: number;
  /** How mps-injector takes a reservation as visible in a sample ('legacy': the rule before the warm-up). */
  observeRule: ObserveRule;
  /** Documented overrides of defaultConfig().placement (policy and metrics age are set from the fields above). */
  placementOverrides: Partial<PlacementConfig>;
  /** Wall clock for timing decisions, ms (performance.now by default). */
  clock: () => number;
}

export function defaultSimulationSettings(): SimulationSettings {
  return {
    policy: 'binpack',
    seed: 1,
    metricsIntervalS: 30,
    scrapeDelayS: 15,
    memoryRampS: 60,
    computeNoise: 0.1,
    stepS: 5,
    replicasPerGpu: 4,
    timeSliceOverhead: 0.05,
    strategies: STRATEGY_NAMES,
    startLatency: { medianS: 45, sigma: 0.7, minS: 5, maxS: 600 },
    observeRule: ObserveRule.Running,
    unmanagedMiB: 0,
    placementOverrides: {},
    clock: () => performance.now(),
  };
}

/**
 * The placement configuration mps-injector runs with: the product defaults, the chosen policy,
 * and a metrics age limit that a sample of the configured lag can meet (the default 90 s, or
 * twice the worst-case age when interval + delay exceed it).
 */
export function placementConfigFor(settings: Pick<SimulationSettings, 'policy' | 'metricsIntervalS' | 'scrapeDelayS' | 'placementOverrides'>): PlacementConfig {
  const base = defaultConfig().placement;
  const worstAgeS = settings.metricsIntervalS + settings.scrapeDelayS;
  const maxMetricsAgeSeconds = worstAgeS < base.maxMetricsAgeSeconds ? base.maxMetricsAgeSeconds : Math.ceil(2 * worstAgeS);
  return { ...base, policy: settings.policy, maxMetricsAgeSeconds, ...settings.placementOverrides };
}

export interface PlacementRecord {
  podId: string;
  gpuUuid: string;
  node: string;
  startS: number;
  endS: number;
  threadPercent: number | null;
  memoryLimitMiB: number | null;
}

export interface OvercommitEvent {
  atS: number;
  node: string;
  gpuUuid: string;
  usedMiB: number;
  totalMiB: number;
  pods: number;
}

export interface SlowdownFigures {
  mean: number;
  p95: number;
  meanHigh: number;
  p95High: number;
}

export interface StrategyRun {
  strategy: StrategyName;
  admitted: number;
  refused: number;
  refusedByCode: Record<string, number>;
  overcommitEvents: OvercommitEvent[];
  /** Pods that were on a GPU while it was over-committed. */
  overcommitPods: number;
  gpuHours: number;
  admittedPodHours: number;
  peakGpusInUse: number;
  /** Per admitted pod: its total demand over its life divided by its total supply. */
  slowdowns: { podId: string; priority: Priority; slowdown: number }[];
  /** Wall-clock time of each placement decision, microseconds. */
  placeTimesUs: number[];
  /** Sampled every seriesStepS: GPUs hosting at least one pod, over-commit events so far, pods refused so far. */
  series: SimulationSeries;
  /** The same, sampled every step within the trace's burst (SimulationResult.burst); null without one. */
  burstSeries: SimulationSeries | null;
  placements: PlacementRecord[];
  /** After the last departure: pods still on GPUs and slots the strategy still holds (both 0 when capacity is released). */
  leftover: { residentPods: number; heldSlots: number };
  /** Compute supplied on GPUs in use, integrated exactly: percent x ms (divide by 100 x GPU-ms in use for the mean SM utilisation). */
  smPercentMs: number;
  /** Memory really used / total of GPUs in use, sampled at every step and weighted by the step: sum of fraction x ms, and the ms. */
  memoryFractionMs: number;
  memorySampledMs: number;
  /** Requests of the admitted pods under the request model (simulate/requestModel.ts). */
  requests: { offered: number; served: number; responseSeconds: number };
  /** From time 0 to the end of the run, s (the same for every strategy of a run). */
  spanS: number;
}

export interface SimulationSeries {
  tS: number[];
  gpusInUse: number[];
  overcommitEvents: number[];
  refused: number[];
}

export interface SimulationResult {
  trace: string;
  /** The burst of arrivals worth a zoomed chart, or null (simulate/burstWindow.ts). */
  burst: BurstWindow | null;
  cluster: string;
  pods: number;
  gpus: number;
  seriesStepS: number;
  settings: Omit<SimulationSettings, 'clock' | 'placementOverrides'>;
  placement: PlacementConfig;
  runs: StrategyRun[];
}

export class SimulationInvariantError extends Error {
  override readonly name = 'SimulationInvariantError';
}

interface Resident {
  pod: TracePod;
  ordinal: number;
  podKey: string;
  startMs: number;
  endMs: number;
  threadPercent: number | null;
  memoryLimitMiB: number | null;
  highClient: boolean;
  demand: number;
  supply: number;
  demandIntegral: number;
  supplyIntegral: number;
  /** ∫ demand x request stretch dt, for the request model's response times. */
  stretchIntegral: number;
}

interface GpuTrack {
  gpu: SimGpu;
  residents: Resident[];
  /** Recently departed pods, kept while a visible sample may still show them. */
  past: Resident[];
  lastUpdateMs: number;
  overcommitted: boolean;
  inUseSinceMs: number;
}

/** Run every configured strategy over the trace. */
export function runSimulation(trace: Trace, cluster: ClusterSpec, settings: SimulationSettings): SimulationResult {
  validateSettings(settings);
  const gpus = expandCluster(cluster);
  const placement = placementConfigFor(settings);
  const endS = traceEndS(trace);
  const stepS = settings.stepS;
  const seriesEvery = Math.max(1, Math.ceil(endS / 400 / stepS));
  const burst = burstWindow(trace.pods.map((p) => p.arrivalS), endS);
  const runs = settings.strategies.map((name) => {
    const strategy = createStrategy(name, { gpus, placement, replicasPerGpu: settings.replicasPerGpu, reservationTtlMs: defaultConfig().reservations.ttlSeconds * 1000, observeRule: settings.observeRule });
    return simulateStrategy(strategy, trace, gpus, settings, seriesEvery, burst);
  });
  const { clock: _clock, placementOverrides: _overrides, ...plain } = settings;
  return { trace: trace.name, burst, cluster: cluster.name, pods: trace.pods.length, gpus: gpus.length, seriesStepS: seriesEvery * stepS, settings: { ...plain, strategies: [...settings.strategies] }, placement, runs };
}

function validateSettings(settings: SimulationSettings): void {
  const problems: string[] = [];
  if (!(settings.metricsIntervalS > 0)) problems.push(`metricsIntervalS must be above 0 (got ${settings.metricsIntervalS}); use a tiny value such as 0.000001 for metrics without lag`);
  if (!(settings.scrapeDelayS >= 0)) problems.push(`scrapeDelayS must be 0 or more (got ${settings.scrapeDelayS})`);
  const lat = settings.startLatency;
  if (!(lat.medianS > 0 && lat.sigma >= 0 && lat.minS >= 0 && lat.maxS >= lat.minS)) problems.push(`startLatency needs medianS > 0, sigma >= 0 and 0 <= minS <= maxS (got ${JSON.stringify(lat)})`);
  if (!(settings.memoryRampS >= 0)) problems.push(`memoryRampS must be 0 or more (got ${settings.memoryRampS})`);
  if (!(settings.stepS > 0)) problems.push(`stepS must be above 0 (got ${settings.stepS})`);
  if (!(settings.computeNoise >= 0)) problems.push(`computeNoise must be 0 or more (got ${settings.computeNoise})`);
  if (!(settings.timeSliceOverhead >= 0 && settings.timeSliceOverhead < 1)) problems.push(`timeSliceOverhead must be in [0, 1) (got ${settings.timeSliceOverhead})`);
  if (!Number.isInteger(settings.seed)) problems.push(`seed must be an integer (got ${settings.seed})`);
  if (settings.strategies.length === 0) problems.push(`strategies must name at least one of ${STRATEGY_NAMES.join(', ')}`);
  if (problems.length > 0) throw new RangeError(`invalid simulation settings:\n  - ${problems.join('\n  - ')}`);
}

/** A pod's start latency in ms: the same for every strategy (it depends on the pod, not on where it goes). */
export function startLatencyMs(settings: Pick<SimulationSettings, 'seed' | 'startLatency'>, ordinal: number): number {
  const { medianS, sigma, minS, maxS } = settings.startLatency;
  const z = normalFromUniforms(hashUniform(settings.seed, ordinal, 0, 3), hashUniform(settings.seed, ordinal, 0, 4));
  return Math.round(Math.min(maxS, Math.max(minS, medianS * Math.exp(sigma * z))) * 1000);
}

function simulateStrategy(strategy: PlacementStrategy, trace: Trace, gpus: readonly SimGpu[], settings: SimulationSettings, seriesEvery: number, burst: BurstWindow | null): StrategyRun {
  const stepMs = settings.stepS * 1000;
  const usage: UsageModel = { memoryRampMs: settings.memoryRampS * 1000, computeNoise: settings.computeNoise, stepMs, seed: settings.seed };
  const tracks = new Map<string, GpuTrack>(gpus.map((gpu) => [gpu.uuid, { gpu, residents: [], past: [], lastUpdateMs: 0, overcommitted: false, inUseSinceMs: 0 }]));
  const active = new Set<GpuTrack>();
  const podGpu = new Map<string, GpuTrack>();
  const exporter = new SimulatedExporter(
    gpus,
    { intervalMs: settings.metricsIntervalS * 1000, scrapeDelayMs: settings.scrapeDelayS * 1000, seed: settings.seed },
    (gpu, atMs) => activityAt(tracks.get(gpu.uuid), atMs),
    SIMULATION_EPOCH_MS,
  );
  const historyMs = exporter.worstAgeMs + stepMs;

  const run: StrategyRun = {
    strategy: strategy.name,
    admitted: 0,
    refused: 0,
    refusedByCode: {},
    overcommitEvents: [],
    overcommitPods: 0,
    gpuHours: 0,
    admittedPodHours: 0,
    peakGpusInUse: 0,
    slowdowns: [],
    placeTimesUs: [],
    series: { tS: [], gpusInUse: [], overcommitEvents: [], refused: [] },
    burstSeries: burst === null ? null : { tS: [], gpusInUse: [], overcommitEvents: [], refused: [] },
    placements: [],
    leftover: { residentPods: 0, heldSlots: 0 },
    smPercentMs: 0,
    memoryFractionMs: 0,
    memorySampledMs: 0,
    requests: { offered: 0, served: 0, responseSeconds: 0 },
    spanS: 0,
  };
  const affected = new Set<string>();
  let gpuBusyMs = 0;
  const latencies = trace.pods.map((_pod, ordinal) => startLatencyMs(settings, ordinal));
  /** Pods admitted and not yet running, by the time they start (ties: trace order). */
  const starts: { key: string; atMs: number; ordinal: number }[] = [];
  const insertStart = (entry: { key: string; atMs: number; ordinal: number }): void => {
    let lo = 0;
    let hi = starts.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const other = starts[mid]!;
      if (other.atMs < entry.atMs || (other.atMs === entry.atMs && other.ordinal < entry.ordinal)) lo = mid + 1;
      else hi = mid;
    }
    starts.splice(lo, 0, entry);
  };

  function suppliesOf(residents: readonly Resident[], demands: readonly number[]): number[] {
    if (strategy.sharing === Sharing.TimeSlicing) return timeSlicedSupply(demands, settings.timeSliceOverhead);
    return mpsSupply(
      residents.map((r, i) => ({ demand: demands[i] ?? 0, threadPercent: r.threadPercent ?? 100, high: r.highClient })),
      true,
    );
  }

  function activityAt(track: GpuTrack | undefined, atMs: number): GpuActivity {
    if (track === undefined) return { usedMiB: settings.unmanagedMiB, utilPercent: 0, podKeys: [] };
    const present = [...track.past, ...track.residents].filter((r) => r.startMs <= atMs && atMs < r.endMs);
    let usedMiB = settings.unmanagedMiB;
    for (const r of present) usedMiB += podMemoryMiB(r.pod, r.startMs, atMs, usage);
    const demands = present.map((r) => podComputeDemand(r.pod, r.ordinal, atMs, usage));
    const utilPercent = suppliesOf(present, demands).reduce((sum, s) => sum + s, 0);
    return { usedMiB, utilPercent, podKeys: present.map((r) => r.podKey) };
  }

  function integrate(track: GpuTrack, nowMs: number): void {
    const dt = nowMs - track.lastUpdateMs;
    if (dt > 0) {
      for (const r of track.residents) {
        r.demandIntegral += r.demand * dt;
        r.supplyIntegral += r.supply * dt;
        if (r.demand > 0) r.stretchIntegral += r.demand * requestStretch(r.demand, r.supply) * dt;
        run.smPercentMs += r.supply * dt;
      }
    }
    track.lastUpdateMs = nowMs;
  }

  function refreshRates(track: GpuTrack, nowMs: number): void {
    // A pod that is not running yet (pulling, starting) asks for no compute.
    const demands = track.residents.map((r) => (nowMs < r.startMs ? 0 : podComputeDemand(r.pod, r.ordinal, nowMs, usage)));
    const supplies = suppliesOf(track.residents, demands);
    track.residents.forEach((r, i) => {
      r.demand = demands[i] ?? 0;
      r.supply = supplies[i] ?? 0;
    });
  }

  function usedMiBOf(track: GpuTrack, nowMs: number): number {
    let usedMiB = settings.unmanagedMiB;
    for (const r of track.residents) usedMiB += podMemoryMiB(r.pod, r.startMs, nowMs, usage);
    return usedMiB;
  }

  /** Counts a transition into memory over-commit; returns the memory really used on the GPU. */
  function checkOvercommit(track: GpuTrack, nowMs: number): number {
    const usedMiB = usedMiBOf(track, nowMs);
    const over = usedMiB > track.gpu.memoryMiB;
    if (over) {
      if (!track.overcommitted) {
        run.overcommitEvents.push({
          atS: nowMs / 1000,
          node: track.gpu.node,
          gpuUuid: track.gpu.uuid,
          usedMiB: Math.round(usedMiB),
          totalMiB: track.gpu.memoryMiB,
          pods: track.residents.length,
        });
      }
      for (const r of track.residents) affected.add(r.podKey);
    }
    track.overcommitted = over;
    return usedMiB;
  }

  function arrive(pod: TracePod, ordinal: number, nowMs: number): void {
    const podKey = `${SIM_NAMESPACE}/${pod.id}`;
    if (podGpu.has(podKey)) throw new SimulationInvariantError(`${strategy.name}: pod ${podKey} arrived while already placed; trace pod ids must be unique`);
    const observed = strategy.readsMetrics ? exporter.inventoryAt(nowMs) : null;
    const started = settings.clock();
    const decision = strategy.place({ pod, podKey, nowMs: SIMULATION_EPOCH_MS + nowMs, observed });
    run.placeTimesUs.push((settings.clock() - started) * 1000);
    if (!decision.ok) {
      run.refused++;
      run.refusedByCode[decision.code] = (run.refusedByCode[decision.code] ?? 0) + 1;
      return;
    }
    const track = tracks.get(decision.gpuUuid);
    if (track === undefined) throw new SimulationInvariantError(`${strategy.name} placed ${podKey} on unknown GPU ${decision.gpuUuid}`);
    integrate(track, nowMs);
    const runningAtMs = nowMs + (latencies[ordinal] ?? 0);
    const resident: Resident = {
      pod,
      ordinal,
      podKey,
      startMs: runningAtMs,
      endMs: runningAtMs + pod.durationS * 1000,
      threadPercent: decision.threadPercent,
      memoryLimitMiB: decision.memoryLimitMiB,
      highClient: decision.highPriorityClient,
      demand: 0,
      supply: 0,
      demandIntegral: 0,
      supplyIntegral: 0,
      stretchIntegral: 0,
    };
    if (track.residents.length === 0) {
      track.inUseSinceMs = nowMs;
      active.add(track);
      run.peakGpusInUse = Math.max(run.peakGpusInUse, active.size);
    }
    track.residents.push(resident);
    podGpu.set(podKey, track);
    run.admitted++;
    run.placements.push({
      podId: pod.id,
      gpuUuid: track.gpu.uuid,
      node: track.gpu.node,
      startS: runningAtMs / 1000,
      endS: resident.endMs / 1000,
      threadPercent: decision.threadPercent,
      memoryLimitMiB: decision.memoryLimitMiB,
    });
    // The API server creates the pod right after admission: the pod watch sees it; it runs later.
    strategy.created?.(podKey, SIMULATION_EPOCH_MS + nowMs);
    insertStart({ key: podKey, atMs: runningAtMs, ordinal });
    refreshRates(track, nowMs);
    checkOvercommit(track, nowMs);
  }

  function start(podKey: string, nowMs: number): void {
    const track = podGpu.get(podKey);
    if (track === undefined) return;
    integrate(track, nowMs);
    strategy.started(podKey, SIMULATION_EPOCH_MS + nowMs);
    refreshRates(track, nowMs);
    checkOvercommit(track, nowMs);
  }

  function depart(podKey: string, nowMs: number): void {
    const track = podGpu.get(podKey);
    if (track === undefined) return;
    integrate(track, nowMs);
    checkOvercommit(track, nowMs);
    const at = track.residents.findIndex((r) => r.podKey === podKey);
    const [resident] = track.residents.splice(at, 1);
    if (resident === undefined) throw new SimulationInvariantError(`${strategy.name}: ${podKey} left a GPU it was not on`);
    podGpu.delete(podKey);
    track.past.push(resident);
    track.past = track.past.filter((r) => r.endMs > nowMs - historyMs);
    const slowdown = resident.supplyIntegral > 0 ? Math.min(MAX_SLOWDOWN, resident.demandIntegral / resident.supplyIntegral) : MAX_SLOWDOWN;
    run.slowdowns.push({ podId: resident.pod.id, priority: resident.pod.priority, slowdown });
    const requests = podRequests(resident.pod.workload, resident.pod.computePercent, {
      demand: resident.demandIntegral,
      supply: resident.supplyIntegral,
      stretchedDemand: resident.stretchIntegral,
    });
    run.requests.offered += requests.offered;
    run.requests.served += requests.served;
    run.requests.responseSeconds += requests.responseSeconds;
    strategy.departed(podKey, SIMULATION_EPOCH_MS + nowMs);
    if (track.residents.length === 0) {
      gpuBusyMs += nowMs - track.inUseSinceMs;
      active.delete(track);
    }
    refreshRates(track, nowMs);
    checkOvercommit(track, nowMs);
  }

  function step(nowMs: number, index: number): void {
    for (const track of active) {
      integrate(track, nowMs);
      refreshRates(track, nowMs);
      const usedMiB = checkOvercommit(track, nowMs);
      run.memoryFractionMs += (usedMiB < track.gpu.memoryMiB ? usedMiB / track.gpu.memoryMiB : 1) * stepMs;
      run.memorySampledMs += stepMs;
    }
    if (index % seriesEvery === 0) sample(run.series, nowMs);
    if (run.burstSeries !== null && burst !== null && nowMs >= burst.fromS * 1000 && nowMs <= burst.toS * 1000) sample(run.burstSeries, nowMs);
  }

  function sample(series: SimulationSeries, nowMs: number): void {
    series.tS.push(nowMs / 1000);
    series.gpusInUse.push(active.size);
    series.overcommitEvents.push(run.overcommitEvents.length);
    series.refused.push(run.refused);
  }

  // Departures in time order (ties: trace order); pods never admitted are skipped.
  const departures = trace.pods.map((pod, ordinal) => ({ key: `${SIM_NAMESPACE}/${pod.id}`, atMs: pod.arrivalS * 1000 + (latencies[ordinal] ?? 0) + pod.durationS * 1000, ordinal }));
  departures.sort((a, b) => a.atMs - b.atMs || a.ordinal - b.ordinal);

  let nextArrival = 0;
  let nextDeparture = 0;
  let stepIndex = 0;
  for (;;) {
    const arrival = trace.pods[nextArrival];
    const arrivalMs = arrival === undefined ? Infinity : arrival.arrivalS * 1000;
    const departure = departures[nextDeparture];
    const departureMs = departure === undefined ? Infinity : departure.atMs;
    const pendingStart = starts[0];
    const startAtMs = pendingStart === undefined ? Infinity : pendingStart.atMs;
    if (arrival === undefined && departure === undefined) break;
    const stepMsNow = stepIndex * stepMs;
    if (departure !== undefined && departureMs <= arrivalMs && departureMs <= stepMsNow && departureMs <= startAtMs) {
      depart(departure.key, departureMs);
      nextDeparture++;
    } else if (pendingStart !== undefined && startAtMs <= arrivalMs && startAtMs <= stepMsNow) {
      starts.shift();
      start(pendingStart.key, startAtMs);
    } else if (stepMsNow <= arrivalMs) {
      step(stepMsNow, stepIndex);
      stepIndex++;
    } else if (arrival !== undefined) {
      arrive(arrival, nextArrival, arrivalMs);
      nextArrival++;
    }
  }
  const finalMs = stepIndex * stepMs;
  sample(run.series, finalMs);

  run.spanS = finalMs / 1000;
  run.overcommitPods = affected.size;
  run.gpuHours = gpuBusyMs / 3_600_000;
  run.admittedPodHours = run.placements.reduce((sum, p) => sum + (p.endS - p.startS), 0) / 3600;
  let residentPods = 0;
  for (const track of tracks.values()) residentPods += track.residents.length;
  run.leftover = { residentPods, heldSlots: strategy.heldSlots(SIMULATION_EPOCH_MS + finalMs) };
  return run;
}
