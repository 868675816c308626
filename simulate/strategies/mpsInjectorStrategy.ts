/**
 * The product itself: the real placement engine (chooseSlot through reserveSlot, which adds the
 * MPS limit above the reserved share) and the real ReservationLedger, fed with the simulated
 * exporter's lagging snapshots.
 * Reserve at admission, confirm when the pod starts, release when it ends.
 */
import { ReservationLedger } from '../../reservations/ledger.js';
import { reserveSlot } from '../../reservations/reserveSlot.js';
import { Priority } from '../../domain/slot.js';
import type { PlacementConfig, SlotRequest } from '../../domain/slot.js';
import { ObserveRule, Sharing, StrategyName } from './placementStrategy.js';
import type { PlacementInput, PlacementStrategy, StrategyDecision } from './placementStrategy.js';

export class MpsInjectorStrategy implements PlacementStrategy {
  readonly name = StrategyName.MpsInjector;
  readonly sharing = Sharing.Mps;
  readonly readsMetrics = true;
  private readonly ledger: ReservationLedger;
  private readonly reservationByPod = new Map<string, string>();

  constructor(
    private readonly config: PlacementConfig,
    reservationTtlMs: number,
    /**
     * 'running' (the product): a reservation counts as inside a sample once its pod ran for the
     * warm-up. 'legacy': the rule before the warm-up, which took a created pod as already using
     * its memory (kept to show that the simulator catches what it got wrong).
     */
    private readonly observeRule: ObserveRule = ObserveRule.Running,
  ) {
    if (observeRule === ObserveRule.Legacy) this.config = { ...config, observeAfterRunningSeconds: 0 };
    let next = 0;
    this.ledger = new ReservationLedger({ ttlMs: reservationTtlMs, newId: () => `sim-${++next}` });
  }

  place(input: PlacementInput): StrategyDecision {
    if (input.observed === null) throw new Error('mps-injector strategy needs the observed inventory; the simulator must pass one');
    const request: SlotRequest = {
      podKey: input.podKey,
      memoryMiB: input.pod.memoryMiB,
      threadPercent: input.pod.computePercent,
      priority: input.pod.priority,
      gpuModel: input.pod.gpuModel,
      pinnedNode: null,
    };
    const { decision, reservation } = reserveSlot(input.observed, this.ledger, request, this.config, input.nowMs, { dryRun: false });
    if (!decision.ok) return { ok: false, code: decision.code, reason: decision.reason };
    if (reservation === null) throw new Error(`reserveSlot granted ${input.podKey} a slot without a reservation; the ledger must hold every grant`);
    this.reservationByPod.set(input.podKey, reservation.id);
    return {
      ok: true,
      gpuUuid: decision.gpuUuid,
      // The MPS limit the product injects (at or above the reserved share the budgets count).
      threadPercent: decision.threadCeilingPercent ?? decision.threadPercent,
      memoryLimitMiB: decision.memoryLimitMiB,
      highPriorityClient: decision.priority === Priority.High,
    };
  }

  /** The pod watch sees the pod object: confirmed (and, under the legacy rule, taken as using its memory). */
  created(podKey: string, nowMs: number): void {
    const id = this.reservationByPod.get(podKey);
    if (id === undefined || !this.ledger.confirm(id, nowMs)) {
      throw new Error(`reservation of ${podKey} could not be confirmed when its pod was created (expired or unknown); raise reservations.ttlSeconds above the admission-to-creation delay`);
    }
    if (this.observeRule === ObserveRule.Legacy) this.ledger.markRunning(id, nowMs);
  }

  /** The pod's containers run: the warm-up starts. */
  started(podKey: string, nowMs: number): void {
    const id = this.reservationByPod.get(podKey);
    if (id === undefined) throw new Error(`pod ${podKey} started without a reservation`);
    if (this.ledger.get(id)?.state !== 'confirmed') this.created(podKey, nowMs);
    if (this.observeRule === ObserveRule.Running) this.ledger.markRunning(id, nowMs);
  }

  departed(podKey: string): void {
    const id = this.reservationByPod.get(podKey);
    if (id === undefined) return;
    this.ledger.release(id);
    this.reservationByPod.delete(podKey);
  }

  heldSlots(nowMs: number): number {
    return this.ledger.list(nowMs).length;
  }
}
