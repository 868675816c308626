/**
 * The pure admission pipeline shared by the webhook, the `inject` CLI and the benchmarks:
 * read what the pod asks for, choose and reserve a slot, inject, diff.
 * Synchronous on purpose: choosing and reserving happen with no await in between, so
 * concurrent admissions in one process never grant the same capacity twice.
 */
import type { Operation } from 'fast-json-patch';
import type { Pod } from 'kubernetes-types/core/v1.js';
import type { Config } from '../config/schema.js';
import type { GpuInventory } from '../dcgm/inventory.js';
import type { ReservationLedger } from '../placement/ledger.js';
import { reserveSlot } from '../placement/reserveSlot.js';
import type { GpuPreference, Reservation, SlotChoice } from '../placement/types.js';
import { buildPatch } from '../injector/buildPatch.js';
import { injectPod } from '../injector/injectPod.js';
import { InvalidPodError, readSlotRequest } from '../injector/readSlotRequest.js';

export const AdmissionOutcome = {
  /** Allowed with a patch (possibly empty for an already-injected pod). */
  Mutated: 'mutated',
  /** Allowed untouched: not for us (opted out, asks nvidia.com/gpu itself, ...). */
  Skipped: 'skipped',
  /** Allowed untouched with a warning, because failure policy says allow. */
  AllowedUnmutated: 'allowed-unmutated',
  /** Rejected with a reason. */
  Refused: 'refused',
} as const;
export type AdmissionOutcome = (typeof AdmissionOutcome)[keyof typeof AdmissionOutcome];

export type RefusalKind = 'no-fit' | 'no-metrics' | 'invalid-pod' | 'commit-failed' | 'contention';

export type PodAdmission =
  | { outcome: 'mutated'; patch: Operation[]; mutated: Pod; warnings: string[]; choice: SlotChoice; reservation: Reservation | null; reinjected: boolean }
  | { outcome: 'skipped'; reason: string }
  | { outcome: 'allowed-unmutated'; reason: RefusalKind; warning: string }
  | { outcome: 'refused'; reason: RefusalKind; message: string };

export interface AdmitRequest {
  pod: Pod;
  namespace: string;
  requestUid: string;
  dryRun: boolean;
}

export interface AdmitContext {
  config: Config;
  inventory: GpuInventory;
  ledger: ReservationLedger;
  nowMs: number;
  /** Several replicas: the GPUs this one fills first (placement/replicaPreference.ts). */
  preference?: GpuPreference | null;
}

/** Reservation id written on dry-run admissions, where nothing is reserved. */
export const DRY_RUN_RESERVATION = 'dry-run';

export function admitPod(req: AdmitRequest, ctx: AdmitContext): PodAdmission {
  const { config } = ctx;
  let intent;
  try {
    intent = readSlotRequest(req.pod, { namespace: req.namespace, requestUid: req.requestUid, config });
  } catch (err) {
    if (err instanceof InvalidPodError) return { outcome: AdmissionOutcome.Refused, reason: 'invalid-pod', message: err.message };
    throw err;
  }

  if (intent.kind === 'skip') return { outcome: AdmissionOutcome.Skipped, reason: intent.reason };

  if (intent.kind === 'reinject') {
    const { choice, reservationId, containers } = intent.recorded;
    const injected = injectPod(req.pod, choice, reservationId, containers, config.injection);
    return {
      outcome: AdmissionOutcome.Mutated,
      patch: buildPatch(req.pod, injected.pod),
      mutated: injected.pod,
      warnings: injected.warnings,
      choice,
      reservation: null,
      reinjected: true,
    };
  }

  const { decision, reservation } = reserveSlot(ctx.inventory, ctx.ledger, intent.request, config.placement, ctx.nowMs, { dryRun: req.dryRun, preference: ctx.preference ?? null });
  if (!decision.ok) {
    const policy = decision.code === 'no-metrics' ? config.failure.onNoMetrics : config.failure.onNoFit;
    if (policy === 'allow') {
      return {
        outcome: AdmissionOutcome.AllowedUnmutated,
        reason: decision.code,
        warning: `mps-injector did not place this pod and let it through without MPS (failure policy "allow"): ${decision.reason}`,
      };
    }
    return { outcome: AdmissionOutcome.Refused, reason: decision.code, message: `mps-injector: ${decision.reason}` };
  }

  const reservationId = reservation?.id ?? DRY_RUN_RESERVATION;
  const injected = injectPod(req.pod, decision, reservationId, intent.containers, config.injection);
  return {
    outcome: AdmissionOutcome.Mutated,
    patch: buildPatch(req.pod, injected.pod),
    mutated: injected.pod,
    warnings: injected.warnings,
    choice: decision,
    reservation,
    reinjected: false,
  };
}
