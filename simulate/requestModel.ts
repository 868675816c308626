/**
 * The per-pod request model behind the simulator's served requests per second and mean
 * response time. Pure. docs/simulation.md states it in words; every figure here is an
 * assumption of the model, not a measurement.
 *
 * A pod is an inference server. When it gets all the compute it demands, a request takes
 * `serviceS` seconds and `concurrency` requests are in flight, so at its mean load (demand =
 * its asked share) it receives concurrency / serviceS requests per second (Little's law).
 * Its requests follow its demand d(t): the rate at time t is that mean rate x d(t) / share
 * (noise and bursts are load). With s(t) <= d(t) the compute it is supplied:
 *
 * - it serves requests at rate x s(t) / d(t): what it cannot serve waits beyond the moment;
 * - a request arriving at t takes serviceS x d(t) / s(t) (its work runs at s / d of the speed
 *   it needs), at most MAX_SLOWDOWN x serviceS.
 *
 * So over a pod's life: offered = k ∫ d dt, served = k ∫ s dt, and the sum of response times
 * = k serviceS ∫ d min(MAX, d / s) dt, with k = rate / share. The model stretches requests
 * but builds no queue: for a pod short of compute for long, the response times are a lower
 * bound. A refused pod serves nothing.
 */

/** How one class of pod serves requests. */
export interface RequestProfile {
  /** Seconds one request takes when the pod gets all the compute it demands. */
  serviceS: number;
  /** Requests in flight at the pod's mean load (continuous batching for LLM servers). */
  concurrency: number;
}

/**
 * Per workload class of the shipped traces. Vision servers: tens of milliseconds per image at
 * a few in flight. LLM servers: a reply of about 256 tokens at 7-13 ms per output token
 * (single-stream decode of Llama-3.1-8B runs at about 75 tokens/s on an A100 40GB and
 * batching to 8 in flight costs little latency, johnmusgrave.com "vLLM throughput-latency
 * sweep on NVIDIA A100", 2025; an H100 is about twice as fast, Lambda "vLLM benchmark",
 * 2024), longer for larger models.
 */
export const REQUEST_PROFILES: Readonly<Record<string, RequestProfile>> = Object.freeze({
  'vision-small': { serviceS: 0.05, concurrency: 4 },
  'llm-medium': { serviceS: 3, concurrency: 8 },
  'llm-large': { serviceS: 8, concurrency: 16 },
  'chat-deployment': { serviceS: 2, concurrency: 4 },
  'llm-8b': { serviceS: 2.5, concurrency: 8 },
  'llm-14b': { serviceS: 4, concurrency: 8 },
  'llm-70b-int4': { serviceS: 8, concurrency: 16 },
});

/** Pods of a workload class not listed above (traces of your own making). */
export const DEFAULT_REQUEST_PROFILE: RequestProfile = Object.freeze({ serviceS: 1, concurrency: 1 });

/** A request is stretched at most this much (a pod that got nothing is counted at this). */
export const MAX_STRETCH = 100;

export function requestProfileOf(workload: string): RequestProfile {
  return Object.hasOwn(REQUEST_PROFILES, workload) ? (REQUEST_PROFILES[workload] ?? DEFAULT_REQUEST_PROFILE) : DEFAULT_REQUEST_PROFILE;
}

/** Requests per second and per percent of asked share, at the pod's mean load. */
export function requestsPerSharePercentSecond(profile: RequestProfile, sharePercent: number): number {
  return sharePercent > 0 ? profile.concurrency / profile.serviceS / sharePercent : 0;
}

/** The stretch of a request arriving while the pod demands d and is supplied s (d > 0). */
export function requestStretch(demand: number, supply: number): number {
  if (!(supply > 0)) return MAX_STRETCH;
  const stretch = demand / supply;
  return stretch < 1 ? 1 : stretch > MAX_STRETCH ? MAX_STRETCH : stretch;
}

/** Requests of one pod over its life, from the integrals of its demand, supply and stretch-weighted demand (percent x ms). */
export interface PodRequests {
  offered: number;
  served: number;
  /** Sum of the response times of the offered requests, seconds. */
  responseSeconds: number;
}

export function podRequests(workload: string, sharePercent: number, integrals: { demand: number; supply: number; stretchedDemand: number }): PodRequests {
  const profile = requestProfileOf(workload);
  const perPercentMs = requestsPerSharePercentSecond(profile, sharePercent) / 1000;
  return {
    offered: perPercentMs * integrals.demand,
    served: perPercentMs * integrals.supply,
    responseSeconds: perPercentMs * profile.serviceS * integrals.stretchedDemand,
  };
}
