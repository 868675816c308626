/**
 * Choose a slot and hold it in the ledger in one synchronous step. Nothing can run between
 * the choice and the reservation (no await, no callback), so two admissions handled by one
 * process never see the same free capacity: the second one already reads the first one's
 * reservation. Across replicas the ReservationStore commit guards the same capacity.
 */
import { chooseSlot } from '../placement/chooseSlot.js';
import { withThreadCeiling } from '../placement/threadCeiling.js';
import type { ReservationLedger } from './ledger.js';
import { ReservationState } from '../domain/slot.js';
import type { GpuPreference, PlacementConfig, Reservation, SlotDecision, SlotRequest } from '../domain/slot.js';
import type { GpuInventory } from '../domain/inventory.js';

export function reserveSlot(
  inventory: GpuInventory,
  ledger: ReservationLedger,
  request: SlotRequest,
  config: PlacementConfig,
  nowMs: number,
  opts: { dryRun: boolean; preference?: GpuPreference | null },
): { decision: SlotDecision; reservation: Reservation | null; superseded: Reservation[] } {
  // A pod name exists once: a repeated admission of the same named pod (a retry, a replay, a
  // direct call to /mutate) replaces the pending reservation of the earlier one rather than
  // holding a second. Confirmed ones belong to a pod that exists and are never touched here.
  const superseded: Reservation[] = [];
  if (!opts.dryRun && request.podNamed) {
    for (const held of ledger.onPod(request.podKey)) {
      if (held.state === ReservationState.Pending && ledger.release(held.id) !== null) superseded.push(held);
    }
  }
  // The budgets inside chooseSlot count the reserved share; the ceiling above it is added after.
  const decision = withThreadCeiling(chooseSlot(inventory, ledger, request, config, nowMs, opts.preference ?? null), request, config);
  if (!decision.ok || opts.dryRun) {
    // Nothing granted: what the earlier admission held stays held.
    for (const r of superseded) ledger.restore(r);
    return { decision, reservation: null, superseded: [] };
  }
  const reservation = ledger.reserve(
    {
      podKey: request.podKey,
      node: decision.node,
      gpuUuid: decision.gpuUuid,
      memoryMiB: decision.memoryLimitMiB,
      threadPercent: decision.threadPercent,
      threadCeilingPercent: decision.threadCeilingPercent,
      priority: decision.priority,
    },
    nowMs,
  );
  return { decision, reservation, superseded };
}
