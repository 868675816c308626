/**
 * The compute share (CUDA_MPS_ACTIVE_THREAD_PERCENTAGE) granted to a pod on one GPU.
 * Pure arithmetic; see docs/adr/0002-placement.md for the formula and why.
 */
import type { PlacementConfig } from '../domain/slot.js';

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
export function memoryShare(memoryMiB: number, gpuTotalMiB: number, maxThreadPercentSum: number): number {
  if (gpuTotalMiB <= 0) return maxThreadPercentSum;
  return Math.ceil((maxThreadPercentSum * memoryMiB) / gpuTotalMiB);
}

/** Idle share of the GPU as last observed (100 when utilisation is unknown). */
function observedHeadroom(utilPercent: number | null): number {
  return utilPercent === null ? 100 : Math.floor(100 - utilPercent);
}

/**
 * Derived share: the memory share (see memoryShare), capped by the configured maximum, the
 * GPU's observed headroom and the compute budget left on it, then raised to the configured
 * minimum. A result above `budgetLeft` means the GPU has no compute room for this pod.
 * Runs once per candidate GPU, hence plain numbers and no Math.min/max over arguments.
 */
export function deriveThreadPercent(share: number, utilPercent: number | null, budgetLeft: number, minThreadPercent: number, maxThreadPercent: number): number {
  let granted = share < maxThreadPercent ? share : maxThreadPercent;
  const headroom = observedHeadroom(utilPercent);
  if (headroom < granted) granted = headroom;
  if (budgetLeft < granted) granted = budgetLeft;
  return granted < minThreadPercent ? minThreadPercent : granted;
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
  const share = memoryShare(memoryMiB, gpuTotalMiB, config.maxThreadPercentSum);
  const headroom = observedHeadroom(utilPercent);
  const capped = Math.min(share, config.maxThreadPercent, headroom, budgetLeft);
  if (capped < config.minThreadPercent) return ThreadBasis.Minimum;
  if (capped === share) return ThreadBasis.MemoryShare;
  if (capped === config.maxThreadPercent) return ThreadBasis.Maximum;
  if (capped === headroom) return ThreadBasis.Headroom;
  return ThreadBasis.Budget;
}
