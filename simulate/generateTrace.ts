/**
 * The seeded trace generator. Same kind + seed + version: the same trace, byte for byte.
 *
 * Arrivals are Poisson processes (exponential gaps); the diurnal trace thins a Poisson
 * process of the peak rate down to a rate that follows the time of day (Lewis and Shedler's
 * thinning). Each pod is drawn from a small workload catalogue (WORKLOADS below). The
 * uniform source is mulberry32(seed). Times are rounded to microseconds and kept distinct.
 * docs/simulation.md describes every trace in words.
 */
import { Priority } from '../domain/slot.js';
import { RandomDraws, mulberry32 } from './seededRandom.js';
import type { Trace, TracePod } from './trace.js';

export const GENERATOR_VERSION = 1;

export const TraceKind = { Steady: 'steady', Burst: 'burst', Diurnal: 'diurnal', Llm: 'llm' } as const;
export type TraceKind = (typeof TraceKind)[keyof typeof TraceKind];
export const TRACE_KINDS: readonly TraceKind[] = Object.values(TraceKind);

const MIB_PER_GIB = 1024;
const MINUTE_S = 60;
const HOUR_S = 3600;

/** A class of inference pod: ranges its requests are drawn from (uniform over the steps). */
interface WorkloadClass {
  memoryGiB: { min: number; max: number; step: number };
  computePercent: { min: number; max: number; step: number };
  /** Probability that a pod of this class is `high` priority. */
  highShare: number;
  /** Run time: exponential with this mean, clamped; or uniform between the bounds. */
  duration: { shape: 'exponential' | 'uniform'; meanS: number; minS: number; maxS: number };
}

export const WORKLOADS = {
  /** Image classification / detection servers: a few GiB, a small compute share. */
  'vision-small': {
    memoryGiB: { min: 2, max: 6, step: 0.5 },
    computePercent: { min: 5, max: 20, step: 5 },
    highShare: 0.4,
    duration: { shape: 'exponential', meanS: 20 * MINUTE_S, minS: 2 * MINUTE_S, maxS: 2 * HOUR_S },
  },
  /** 7B-13B language models, quantised or not. */
  'llm-medium': {
    memoryGiB: { min: 14, max: 24, step: 1 },
    computePercent: { min: 20, max: 50, step: 5 },
    highShare: 0.7,
    duration: { shape: 'exponential', meanS: 45 * MINUTE_S, minS: 5 * MINUTE_S, maxS: 4 * HOUR_S },
  },
  /** Large language models that take most of an 80 GB GPU. */
  'llm-large': {
    memoryGiB: { min: 40, max: 70, step: 2 },
    computePercent: { min: 50, max: 100, step: 10 },
    highShare: 1,
    duration: { shape: 'uniform', meanS: 2 * HOUR_S, minS: 1 * HOUR_S, maxS: 3 * HOUR_S },
  },
} as const satisfies Record<string, WorkloadClass>;
export type WorkloadName = keyof typeof WORKLOADS;

function stepped(draws: RandomDraws, range: { min: number; max: number; step: number }): number {
  const steps = Math.round((range.max - range.min) / range.step);
  return range.min + range.step * draws.integer(0, steps);
}

function drawDuration(draws: RandomDraws, duration: WorkloadClass['duration']): number {
  if (duration.shape === 'uniform') return draws.between(duration.minS, duration.maxS);
  return Math.min(duration.maxS, Math.max(duration.minS, draws.exponential(1 / duration.meanS)));
}

const roundMicro = (seconds: number): number => Math.round(seconds * 1e6) / 1e6;

interface PodDraft {
  arrivalS: number;
  durationS: number;
  memoryMiB: number;
  computePercent: number;
  priority: Priority;
  workload: string;
  kvCacheMiB?: number;
  kvGrowthS?: number;
  burst?: { windowS: number; share: number; factor: number };
}

function drawPod(draws: RandomDraws, workload: WorkloadName, arrivalS: number): PodDraft {
  const spec: WorkloadClass = WORKLOADS[workload];
  return {
    arrivalS,
    memoryMiB: Math.round(stepped(draws, spec.memoryGiB) * MIB_PER_GIB),
    computePercent: stepped(draws, spec.computePercent),
    priority: draws.chance(spec.highShare) ? Priority.High : Priority.Low,
    durationS: drawDuration(draws, spec.duration),
    workload,
  };
}

function finish(kind: TraceKind, seed: number, description: string, drafts: PodDraft[]): Trace {
  drafts.sort((a, b) => a.arrivalS - b.arrivalS);
  const pods: TracePod[] = [];
  let previous = -1;
  for (const draft of drafts) {
    // Distinct arrival times, so "who was admitted first" never depends on a tie.
    const arrivalS = Math.max(roundMicro(draft.arrivalS), roundMicro(previous + 1e-6));
    previous = arrivalS;
    pods.push({
      id: `${draft.workload}-${String(pods.length + 1).padStart(4, '0')}`,
      arrivalS,
      durationS: roundMicro(Math.max(1, draft.durationS)),
      memoryMiB: draft.memoryMiB,
      computePercent: draft.computePercent,
      priority: draft.priority,
      workload: draft.workload,
      gpuModel: null,
      ...(draft.kvCacheMiB === undefined ? {} : { kvCacheMiB: draft.kvCacheMiB, kvGrowthS: roundMicro(draft.kvGrowthS ?? 0) }),
      ...(draft.burst === undefined ? {} : { burst: draft.burst }),
    });
  }
  return { name: kind, description, generator: { kind, seed, version: GENERATOR_VERSION }, pods };
}

/** Poisson arrival times of a given rate over [fromS, toS). */
function poissonArrivals(draws: RandomDraws, ratePerS: number, fromS: number, toS: number): number[] {
  const times: number[] = [];
  for (let t = fromS + draws.exponential(ratePerS); t < toS; t += draws.exponential(ratePerS)) times.push(t);
  return times;
}

type Mix = readonly { item: WorkloadName; weight: number }[];

/** Steady: 6 hours of Poisson arrivals, one pod per 30 s on average, a mixed catalogue. */
function generateSteady(draws: RandomDraws, seed: number): Trace {
  const mix: Mix = [
    { item: 'vision-small', weight: 0.7 },
    { item: 'llm-medium', weight: 0.25 },
    { item: 'llm-large', weight: 0.05 },
  ];
  const drafts = poissonArrivals(draws, 1 / 30, 0, 6 * HOUR_S).map((t) => drawPod(draws, draws.weighted(mix), t));
  return finish(TraceKind.Steady, seed, 'Poisson arrivals (mean gap 30 s) for 6 h; 70% vision-small, 25% llm-medium, 5% llm-large.', drafts);
}

/** The Deployment scaled up in the burst trace. */
export const BURST = { replicas: 200, startS: 600, windowS: 10, memoryMiB: 8 * MIB_PER_GIB, computePercent: 20, scaleDownAtS: 3000, scaleDownWindowS: 60 } as const;

/**
 * Burst: a background of 48 pods (arriving at uniformly random times over the first 9 minutes,
 * 80% vision-small, 20% llm-medium, each running 1-2 h), then one Deployment scaled to 200 replicas whose pods are
 * created within 10 s at t = 600 s (8 GiB, 20%, high) and deleted within a minute at t = 3000 s.
 */
function generateBurst(draws: RandomDraws, seed: number): Trace {
  const mix: Mix = [
    { item: 'vision-small', weight: 0.8 },
    { item: 'llm-medium', weight: 0.2 },
  ];
  const background: PodDraft[] = [];
  for (let i = 0; i < 48; i++) {
    const arrivalS = draws.between(0, 540);
    const pod = drawPod(draws, draws.weighted(mix), arrivalS);
    background.push({ ...pod, durationS: draws.between(1 * HOUR_S, 2 * HOUR_S) });
  }
  const burst: PodDraft[] = [];
  for (let i = 0; i < BURST.replicas; i++) {
    const arrivalS = BURST.startS + draws.between(0, BURST.windowS);
    const departS = BURST.scaleDownAtS + draws.between(0, BURST.scaleDownWindowS);
    burst.push({
      arrivalS,
      durationS: departS - arrivalS,
      memoryMiB: BURST.memoryMiB,
      computePercent: BURST.computePercent,
      priority: Priority.High,
      workload: 'chat-deployment',
    });
  }
  return finish(
    TraceKind.Burst,
    seed,
    '48 background pods arriving over the first 9 min, then a Deployment scale-up of 200 pods (8 GiB, 20%, high) within 10 s at t=600 s, scaled down at t=3000 s.',
    [...background, ...burst],
  );
}

/** Diurnal: 24 h; arrival rate (mean one per 45 s) follows the day, 1 - 0.7 cos(2 pi t / 24 h): lowest at midnight, 5.7x higher at noon. */
function generateDiurnal(draws: RandomDraws, seed: number): Trace {
  const meanRate = 1 / 45;
  const swing = 0.7;
  const peakRate = meanRate * (1 + swing);
  const mix: Mix = [
    { item: 'vision-small', weight: 0.92 },
    { item: 'llm-large', weight: 0.08 },
  ];
  const drafts: PodDraft[] = [];
  for (const t of poissonArrivals(draws, peakRate, 0, 24 * HOUR_S)) {
    const rate = meanRate * (1 - swing * Math.cos((2 * Math.PI * t) / (24 * HOUR_S)));
    if (draws.next() * peakRate < rate) drafts.push(drawPod(draws, draws.weighted(mix), t));
  }
  return finish(TraceKind.Diurnal, seed, 'Diurnal Poisson arrivals over 24 h (mean gap 45 s, peak at noon); 92% vision-small, 8% llm-large.', drafts);
}

/**
 * LLM servers of the llm trace, sized from each model's published configuration (its
 * Hugging Face config.json): weights = parameters x bytes per parameter; KV cache per token =
 * 2 (K and V) x layers x KV heads x head dimension x 2 bytes (BF16).
 */
export const LLM_WORKLOADS = {
  /** Llama-3.1-8B-Instruct, BF16: 8.03e9 x 2 B = 16.1 GB (15.0 GiB); KV 2 x 32 x 8 x 128 x 2 B = 128 KiB per token. */
  'llm-8b': { weightsGiB: 15, kvKiBPerToken: 128, computePercent: { min: 25, max: 45, step: 5 }, highShare: 0.6 },
  /** Qwen2.5-14B-Instruct, BF16: 14.7e9 x 2 B = 29.4 GB (27.4 GiB); KV 2 x 48 x 8 x 128 x 2 B = 192 KiB per token. */
  'llm-14b': { weightsGiB: 27.4, kvKiBPerToken: 192, computePercent: { min: 35, max: 60, step: 5 }, highShare: 0.6 },
  /**
   * Llama-3.1-70B-Instruct, 4-bit AWQ: 68.5e9 linear weights x 0.5 B + embeddings and head in
   * BF16 (2 x 128256 x 8192 x 2 B) + group-128 scales = about 39.7 GB (37.0 GiB); KV
   * 2 x 80 x 8 x 128 x 2 B = 320 KiB per token.
   */
  'llm-70b-int4': { weightsGiB: 37, kvKiBPerToken: 320, computePercent: { min: 60, max: 90, step: 10 }, highShare: 1 },
} as const;
export type LlmWorkloadName = keyof typeof LLM_WORKLOADS;

/** The llm trace's shape: arrivals, lifetimes, cache and bursts (docs/simulation.md says where each number comes from). */
export const LLM_TRACE = {
  hours: 12,
  meanGapS: 4 * MINUTE_S,
  lifetime: { meanS: 3 * HOUR_S, minS: 30 * MINUTE_S, maxS: 8 * HOUR_S },
  /** CUDA context, activations and CUDA graphs on top of weights and cache. */
  runtimeGiB: 2,
  /** Tokens the KV cache is sized for: sequences in flight x context. */
  kvTokens: { min: 32768, max: 65536, step: 16384 },
  /** The cache fills over this many seconds once the weights are loaded (a server that allocates cache blocks on demand). */
  kvGrowthS: { min: 10 * MINUTE_S, max: 30 * MINUTE_S },
  /** One minute in five carries 2.5x the mean load (the other four 0.625x). */
  burst: { windowS: 60, share: 0.2, factor: 2.5 },
  mix: [
    { item: 'llm-8b', weight: 0.5 },
    { item: 'llm-14b', weight: 0.35 },
    { item: 'llm-70b-int4', weight: 0.15 },
  ],
} as const;

/**
 * LLM serving: 12 h of Poisson arrivals of model servers (mean gap 4 min, lifetimes
 * exponential with mean 3 h, 30 min-8 h); each server's memory is its weights, a KV cache
 * that fills after loading, and a runtime share; its requests come in bursts.
 */
function generateLlm(draws: RandomDraws, seed: number): Trace {
  const drafts = poissonArrivals(draws, 1 / LLM_TRACE.meanGapS, 0, LLM_TRACE.hours * HOUR_S).map((arrivalS): PodDraft => {
    const workload = draws.weighted(LLM_TRACE.mix);
    const spec = LLM_WORKLOADS[workload];
    const tokens = stepped(draws, LLM_TRACE.kvTokens);
    const kvCacheMiB = Math.round((tokens * spec.kvKiBPerToken) / 1024);
    const weightsMiB = Math.round((spec.weightsGiB + LLM_TRACE.runtimeGiB) * MIB_PER_GIB);
    return {
      arrivalS,
      memoryMiB: weightsMiB + kvCacheMiB,
      computePercent: stepped(draws, spec.computePercent),
      priority: draws.chance(spec.highShare) ? Priority.High : Priority.Low,
      durationS: Math.min(LLM_TRACE.lifetime.maxS, Math.max(LLM_TRACE.lifetime.minS, draws.exponential(1 / LLM_TRACE.lifetime.meanS))),
      workload,
      kvCacheMiB,
      kvGrowthS: draws.between(LLM_TRACE.kvGrowthS.min, LLM_TRACE.kvGrowthS.max),
      burst: { ...LLM_TRACE.burst },
    };
  });
  return finish(
    TraceKind.Llm,
    seed,
    'LLM serving: Poisson arrivals of model servers (mean gap 4 min) for 12 h, lifetimes 30 min-8 h (mean 3 h); 50% Llama-3.1-8B, 35% Qwen2.5-14B, 15% Llama-3.1-70B 4-bit; KV cache filling over 10-30 min; one minute in five at 2.5x the mean load.',
    drafts,
  );
}

/** Make a trace of the given kind from a seed (an integer; it is taken modulo 2^32). */
export function generateTrace(kind: TraceKind, seed: number): Trace {
  if (!Number.isInteger(seed)) throw new RangeError(`trace seed must be an integer, got ${seed}; pass --seed with a whole number`);
  const draws = new RandomDraws(mulberry32(seed));
  switch (kind) {
    case TraceKind.Steady:
      return generateSteady(draws, seed);
    case TraceKind.Burst:
      return generateBurst(draws, seed);
    case TraceKind.Diurnal:
      return generateDiurnal(draws, seed);
    case TraceKind.Llm:
      return generateLlm(draws, seed);
  }
}

export function isTraceKind(text: string): text is TraceKind {
  return (TRACE_KINDS as readonly string[]).includes(text);
}
