/**
 * The contention model: how much compute each pod on one GPU actually gets.
 * Pure arithmetic. Units: percent of one GPU's compute (100 = the whole GPU).
 *
 * A pod's demand d is the compute it would use alone. Its supply s is what it gets while
 * sharing; its slowdown is d / s (1 = unaffected). Capacity is split max-min fairly
 * ("water-filling"): every pod gets min(its cap, the fair level), where the level is raised
 * until the capacity is used up or every pod is at its cap. With n pods that all want more
 * than capacity / n, each gets exactly capacity / n.
 *
 * - MPS (mps-injector, metrics-only, equal-split): pods run concurrently; a pod's cap is
 *   min(d, its CUDA_MPS_ACTIVE_THREAD_PERCENTAGE). With client priorities (only mps-injector
 *   sets CUDA_MPS_CLIENT_PRIORITY), high-priority pods are served first and low-priority
 *   pods share what is left.
 * - Time-slicing: pods take turns owning the GPU; with n >= 2 pods a share `overhead` of the
 *   time is lost to context switches, so capacity is 100 * (1 - overhead), split max-min
 *   fairly by demand (each gets 1/n of the time when all are busy). No thread caps.
 */

// Bound once: global lookups are slow inside Node vm contexts (where Jest runs the tests).
const { max, min } = Math;

/** Max-min fair split of `capacity` among `caps` (each pod gets at most its cap). */
export function waterFill(capacity: number, caps: readonly number[]): number[] {
  const shares = caps.map(() => 0);
  const order = caps.map((cap, index) => ({ cap: max(0, cap), index })).sort((a, b) => a.cap - b.cap || a.index - b.index);
  let left = max(0, capacity);
  let remaining = order.length;
  for (const { cap, index } of order) {
    const fair = left / remaining;
    const share = cap < fair ? cap : fair;
    shares[index] = share;
    left -= share;
    remaining--;
  }
  return shares;
}

/** One pod's inputs to the MPS model. */
export interface MpsClient {
  demand: number;
  /** Thread percentage granted (the MPS cap), 1..100. */
  threadPercent: number;
  /** True when the pod runs as a high-priority MPS client. */
  high: boolean;
}

/** Compute supplied to each MPS client of one GPU. */
export function mpsSupply(clients: readonly MpsClient[], usePriority: boolean): number[] {
  const caps = clients.map((c) => min(c.demand, c.threadPercent));
  if (!usePriority) return waterFill(100, caps);
  const supply = clients.map(() => 0);
  const highIndex: number[] = [];
  const lowIndex: number[] = [];
  clients.forEach((c, i) => (c.high ? highIndex : lowIndex).push(i));
  const highShares = waterFill(
    100,
    highIndex.map((i) => caps[i] ?? 0),
  );
  let used = 0;
  highIndex.forEach((i, k) => {
    supply[i] = highShares[k] ?? 0;
    used += supply[i] ?? 0;
  });
  const lowShares = waterFill(
    100 - used,
    lowIndex.map((i) => caps[i] ?? 0),
  );
  lowIndex.forEach((i, k) => (supply[i] = lowShares[k] ?? 0));
  return supply;
}

/** Compute supplied to each pod of one time-sliced GPU. */
export function timeSlicedSupply(demands: readonly number[], overhead: number): number[] {
  const active = demands.filter((d) => d > 0).length;
  const capacity = active >= 2 ? 100 * (1 - overhead) : 100;
  return waterFill(capacity, demands);
}
