/**
 * The stretch of a trace worth a zoomed chart: the densest minute of arrivals, when it is a
 * burst (far above the trace's mean rate), with some time before it and the ten minutes after
 * it in which the metrics catch up. Pure.
 */

/** Seconds of the zoomed window before the densest minute starts. */
const LEAD_S = 60;
/** Seconds of the zoomed window after it starts. */
const TAIL_S = 600;

export interface BurstWindow {
  fromS: number;
  toS: number;
  /** Pods arriving within the densest minute. */
  pods: number;
}

/** The burst of arrivals (sorted, seconds), or null when no minute holds 10x the mean rate and at least 20 pods. */
export function burstWindow(arrivalsS: readonly number[], endS: number, windowS = 60): BurstWindow | null {
  const n = arrivalsS.length;
  if (n === 0 || endS <= 0) return null;
  let best = 0;
  let bestStart = 0;
  let lo = 0;
  for (let hi = 0; hi < n; hi++) {
    const at = arrivalsS[hi] as number;
    while ((arrivalsS[lo] as number) < at - windowS) lo++;
    if (hi - lo + 1 > best) {
      best = hi - lo + 1;
      bestStart = arrivalsS[lo] as number;
    }
  }
  const meanPerWindow = (n / Math.max(endS, windowS)) * windowS;
  if (best < 20 || best < 10 * meanPerWindow) return null;
  return { fromS: Math.max(0, bestStart - LEAD_S), toS: bestStart + TAIL_S, pods: best };
}
