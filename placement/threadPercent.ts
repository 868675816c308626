/**
 * The compute share (CUDA_MPS_ACTIVE_THREAD_PERCENTAGE) granted to a pod on one GPU.
 * Pure arithmetic; see docs/adr/0002-placement.md for the formula and why.
 */
import type { PlacementConfig } from './types.js';

/** Which bound decided a granted percentage, for the decision sentence. */
export const ThreadBasis = {
  Asked: 'asked',
  AskedRaised: 'asked-raised',
  AskedLowered: 'asked-lowered',
  MemoryShare: 'memory-share',
  Maximum: 'maximum',
  Headroom: 'headroom',
  Budget: 'budget',
  Minimum: 'minimum',
} as const;
export type ThreadBasis = (typeof ThreadBasis)[keyof typeof ThreadBasis];

type ThreadBounds = Pick<PlacementConfig, 'minThreadPercent' | 'maxThreadPercent' | 'maxThreadPercentSum'>;

/** An asked percentage brought within [minThreadPercent, maxThreadPercent]. */
export function clampAskedThreadPercent(asked: number, config: ThreadBounds): number {
  return Math.min(config.maxThreadPercent, Math.max(config.minThreadPercent, asked));
}

/** The memory share scaled to the oversubscription bound: a GPU full of memory is then also full of compute budget. */
function memoryShare(memoryMiB: number, gpuTotalMiB: number, config: ThreadBounds): number {
  if (gpuTotalMiB <= 0) return config.maxThreadPercent;
  return Math.ceil((config.maxThreadPercentSum * memoryMiB) / gpuTotalMiB);
}

/** Idle share of the GPU as last observed (100 when utilisation is unknown). */
function observedHeadroom(utilPercent: number | null): number {
  return utilPercent === null ? 100 : Math.floor(100 - utilPercent);
}

/**
 * Derived share: the memory share, capped by the configured maximum, the GPU's observed
 * headroom and the compute budget left on it, then raised to the configured minimum.
 * A result above `budgetLeft` means the GPU has no compute room for this pod.
 */
export function deriveThreadPercent(memoryMiB: number, gpuTotalMiB: number, utilPercent: number | null, budgetLeft: number, config: ThreadBounds): number {
  const capped = Math.min(memoryShare(memoryMiB, gpuTotalMiB, config), config.maxThreadPercent, observedHeadroom(utilPercent), budgetLeft);
  return Math.max(config.minThreadPercent, capped);
}

/** Why a grant has the value it has (computed once, for the chosen GPU only). */
export function explainThreadPercent(
  asked: number | null,
  memoryMiB: number,
  gpuTotalMiB: number,
  utilPercent: number | null,
  budgetLeft: number,
  config: ThreadBounds,
): ThreadBasis {
  if (asked !== null) {
    const granted = clampAskedThreadPercent(asked, config);
    if (granted > asked) return ThreadBasis.AskedRaised;
    if (granted < asked) return ThreadBasis.AskedLowered;
    return ThreadBasis.Asked;
  }
  const share = memoryShare(memoryMiB, gpuTotalMiB, config);
  const headroom = observedHeadroom(utilPercent);
  const capped = Math.min(share, config.maxThreadPercent, headroom, budgetLeft);
  if (capped < config.minThreadPercent) return ThreadBasis.Minimum;
  if (capped === share) return ThreadBasis.MemoryShare;
  if (capped === config.maxThreadPercent) return ThreadBasis.Maximum;
  if (capped === headroom) return ThreadBasis.Headroom;
  return ThreadBasis.Budget;
}
