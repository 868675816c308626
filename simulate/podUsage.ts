/**
 * What a simulated pod really uses, as a function of time. Pure and order-independent: a
 * value depends only on the pod, the time and the seed, so every strategy sees the same pod
 * behave the same way.
 *
 * - Memory ramps linearly from 0 at start to the pod's need over `memoryRampMs` (loading
 *   weights and warming up), then stays there. A ramp of 0 means the full need at once.
 * - Compute demand is the asked share times a noise factor 1 + sd * z (z standard normal,
 *   drawn per pod per simulation step), clamped to [0.5, 1.5] times the share and to 100.
 * - An LLM server (podMemoryMiB): its weights ramp as above, then its KV cache fills
 *   linearly over kvGrowthS. A bursty pod (podComputeDemand): each window of burst.windowS is
 *   a burst with probability burst.share (a counter-based draw per pod and window) and
 *   carries burst.factor times the load; the others carry (1 - share x factor) / (1 - share)
 *   of it, so the mean stays the asked share.
 */
import { hashUniform, normalFromUniforms } from './seededRandom.js';
import type { TracePod } from './trace.js';

// Bound once: global lookups are slow inside Node vm contexts (where Jest runs the tests).
const { floor, min, max } = Math;

export interface UsageModel {
  memoryRampMs: number;
  /** Standard deviation of the multiplicative compute noise (0.1 = 10%). */
  computeNoise: number;
  /** Noise is redrawn once per step. */
  stepMs: number;
  seed: number;
}

/** Device memory a pod holds at `atMs`, MiB (0 before it starts). */
export function memoryUsedMiB(needMiB: number, startMs: number, atMs: number, model: UsageModel): number {
  if (atMs < startMs) return 0;
  if (model.memoryRampMs <= 0) return needMiB;
  const fraction = (atMs - startMs) / model.memoryRampMs;
  return fraction >= 1 ? needMiB : needMiB * fraction;
}

/** Compute the pod would use alone at `atMs`, percent of one GPU. */
export function computeDemand(computePercent: number, podOrdinal: number, atMs: number, model: UsageModel): number {
  if (model.computeNoise <= 0) return computePercent;
  const step = floor(atMs / model.stepMs);
  const z = normalFromUniforms(hashUniform(model.seed, podOrdinal, step, 1), hashUniform(model.seed, podOrdinal, step, 2));
  const factor = min(1.5, max(0.5, 1 + model.computeNoise * z));
  return min(100, computePercent * factor);
}

/** The parts of a trace pod its usage depends on. */
export type PodUsageShape = Pick<TracePod, 'memoryMiB' | 'computePercent' | 'kvCacheMiB' | 'kvGrowthS' | 'burst'>;

/** Device memory a pod holds at `atMs`, MiB: its weights ramp, then its KV cache (if any) fills. */
export function podMemoryMiB(pod: PodUsageShape, startMs: number, atMs: number, model: UsageModel): number {
  const kvMiB = pod.kvCacheMiB ?? 0;
  if (kvMiB <= 0) return memoryUsedMiB(pod.memoryMiB, startMs, atMs, model);
  const weightsMiB = memoryUsedMiB(pod.memoryMiB - kvMiB, startMs, atMs, model);
  const growthFromMs = startMs + (model.memoryRampMs > 0 ? model.memoryRampMs : 0);
  if (atMs < growthFromMs) return weightsMiB;
  const growthMs = (pod.kvGrowthS ?? 0) * 1000;
  const fraction = growthMs <= 0 ? 1 : min(1, (atMs - growthFromMs) / growthMs);
  return weightsMiB + kvMiB * fraction;
}

/** The load factor of a bursty pod at `atMs` (1 for a pod without bursts); its mean over windows is 1. */
export function burstFactor(burst: PodUsageShape['burst'], podOrdinal: number, atMs: number, seed: number): number {
  if (burst === undefined) return 1;
  const window = floor(atMs / (burst.windowS * 1000));
  if (hashUniform(seed, podOrdinal, window, 5) < burst.share) return burst.factor;
  return (1 - burst.share * burst.factor) / (1 - burst.share);
}

/** Compute a pod would use alone at `atMs`, percent of one GPU: noise, then bursts, at most 100. */
export function podComputeDemand(pod: PodUsageShape, podOrdinal: number, atMs: number, model: UsageModel): number {
  const demand = computeDemand(pod.computePercent, podOrdinal, atMs, model);
  if (pod.burst === undefined) return demand;
  return min(100, demand * burstFactor(pod.burst, podOrdinal, atMs, model.seed));
}
