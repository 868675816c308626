/**
 * What a simulated pod really uses, as a function of time. Pure and order-independent: a
 * value depends only on the pod, the time and the seed, so every strategy sees the same pod
 * behave the same way.
 *
 * - Memory ramps linearly from 0 at start to the pod's need over `memoryRampMs` (loading
 *   weights and warming up), then stays there. A ramp of 0 means the full need at once.
 * - Compute demand is the asked share times a noise factor 1 + sd * z (z standard normal,
 *   drawn per pod per simulation step), clamped to [0.5, 1.5] times the share and to 100.
 */
import { hashUniform, normalFromUniforms } from './seededRandom.js';

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
