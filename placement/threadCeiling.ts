/**
 * The MPS limit a pod runs under (CUDA_MPS_ACTIVE_THREAD_PERCENTAGE), next to the share it
 * reserves. The reserved share is what the compute budgets count (a request, in Kubernetes
 * terms); the limit is a ceiling at or above it (a limit), so a pod may burst into SMs its
 * neighbours leave idle while CUDA_MPS_CLIENT_PRIORITY keeps `high` pods first. MPS itself
 * treats the percentage as a ceiling on the SMs a client may use, not as a reservation.
 * Pure; see docs/adr/0002-placement.md.
 */
import type { PlacementConfig, SlotDecision, SlotRequest } from '../domain/slot.js';
import { describeCeiling } from './describeDecision.js';

type CeilingRequest = Pick<SlotRequest, 'priority' | 'threadPercentLimit'>;
type CeilingConfig = Pick<PlacementConfig, 'threadCeilingFactor'>;

/**
 * The limit for a grant: the pod's own gpu-percent-limit when it gives one, else the grant times
 * its priority's placement.threadCeilingFactor, rounded up; never below the grant, never above 100.
 */
export function threadCeilingPercent(granted: number, request: CeilingRequest, config: CeilingConfig): number {
  // Rounded to a thousandth first, so 30 x 1.1 is 33, not 34 (33.000000000000004 rounded up).
  const wanted = request.threadPercentLimit ?? Math.ceil(Math.round(granted * config.threadCeilingFactor[request.priority] * 1000) / 1000);
  return Math.min(100, Math.max(granted, wanted));
}

/**
 * A decision with its ceiling: a choice whose limit is above its grant carries
 * `threadCeilingPercent` and says so in its reason; any other decision is returned as it is.
 */
export function withThreadCeiling(decision: SlotDecision, request: CeilingRequest, config: CeilingConfig): SlotDecision {
  if (!decision.ok) return decision;
  const ceiling = threadCeilingPercent(decision.threadPercent, request, config);
  if (ceiling <= decision.threadPercent) return decision;
  const source = request.threadPercentLimit !== undefined ? 'pod-limit' : 'factor';
  return {
    ...decision,
    threadCeilingPercent: ceiling,
    reason: `${decision.reason}${describeCeiling(ceiling, source, config.threadCeilingFactor[request.priority], request.priority)}`,
  };
}
