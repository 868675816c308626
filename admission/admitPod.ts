/**
 * The pure admission pipeline shared by the webhook, the `inject` CLI and the benchmarks:
 * read what the pod asks for, choose and reserve a slot, inject, diff.
 * Synchronous on purpose: choosing and reserving happen with no await in between, so
 * concurrent admissions in one process never grant the same capacity twice.
 */
import type { Operation } from 'fast-json-patch';
import type { Pod } from 'kubernetes-types/core/v1.js';
import type { Config } from '../config/schema.js';
import type { GpuInventory } from '../domain/inventory.js';
import type { ReservationLedger } from '../reservations/ledger.js';
import { reserveSlot } from '../reservations/reserveSlot.js';
import type { GpuPreference, Reservation, SlotChoice, SlotRequest } from '../domain/slot.js';
import { annotationLimitProblem, gpuContainerLimitProblem, podAnnotationLimitProblem } from '../injector/apiLimits.js';
import { buildPatch } from '../injector/buildPatch.js';
import { injectPod } from '../injector/injectPod.js';
import { enforceMpsAccess } from '../injector/mpsAccess.js';
import { podShapeProblem } from '../injector/podShape.js';
import { InvalidPodError, readSlotRequest } from '../injector/readSlotRequest.js';
import type { PodIntent, RecordedDecision } from '../injector/readSlotRequest.js';
import { DRY_RUN_RESERVATION, RECORD_ANNOTATIONS, podIdentityOf, sealDecision } from '../domain/decisionRecord.js';
import type { DecisionKeyRing, PodIdentity } from '../domain/decisionRecord.js';
import { Label } from '../domain/names.js';
import { ReservationState } from '../domain/slot.js';

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
  | {
      outcome: 'mutated';
      patch: Operation[];
      mutated: Pod;
      warnings: string[];
      choice: SlotChoice;
      reservation: Reservation | null;
      reinjected: boolean;
      /** Pending reservations of an earlier admission of the same named pod that this one replaced. */
      superseded?: Reservation[];
    }
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
  /** Keys that seal new decisions and verify recorded ones (shared by every replica). */
  keys: DecisionKeyRing;
  /** Several replicas: the GPUs this one fills first (placement/replicaPreference.ts). */
  preference?: GpuPreference | null;
}

export { DRY_RUN_RESERVATION };

export const refusedAsInvalid = (message: string): PodAdmission => ({ outcome: AdmissionOutcome.Refused, reason: 'invalid-pod', message });

/**
 * The steps of admitPod before anything is placed: the pod's shape, what it asks for, MPS
 * access, the cap on GPU containers and the size of its annotations. Pure and independent of
 * the inventory and the ledger, so a worker thread can run it on a large pod. Either the answer
 * (skipped, or refused as an invalid pod) or what placement starts from.
 */
export type PodScreening =
  | { kind: 'answered'; admission: PodAdmission }
  | {
      kind: 'place';
      intent: Exclude<PodIntent, { kind: 'skip' }>;
      /** The pod after the MPS access check, and its warnings. */
      access: { pod: Pod; warnings: readonly string[] };
    };

export function screenPod(req: AdmitRequest, ctx: Pick<AdmitContext, 'config' | 'keys'>): PodScreening {
  const { config } = ctx;
  const answered = (admission: PodAdmission): PodScreening => ({ kind: 'answered', admission });
  const shapeProblem = podShapeProblem(req.pod);
  if (shapeProblem !== null) return answered(refusedAsInvalid(`mps-injector: ${shapeProblem}`));
  let intent: PodIntent;
  try {
    intent = readSlotRequest(req.pod, { namespace: req.namespace, requestUid: req.requestUid, config, keys: ctx.keys });
  } catch (err) {
    if (err instanceof InvalidPodError) return answered(refusedAsInvalid(err.message));
    throw err;
  }

  // MPS access only through the injector: checked before anything is reserved.
  const selected = intent.kind === 'skip' ? [] : intent.kind === 'reinject' ? intent.recorded.containers : intent.containers;
  const access = enforceMpsAccess(req.pod, selected, config.injection, { injecting: intent.kind !== 'skip' });
  if (!access.ok) return answered({ outcome: AdmissionOutcome.Refused, reason: 'invalid-pod', message: access.message });

  if (intent.kind === 'skip') return answered({ outcome: AdmissionOutcome.Skipped, reason: intent.reason });

  const tooMany = gpuContainerLimitProblem(selected, config.injection.maxGpuContainers);
  if (tooMany !== null) return answered(refusedAsInvalid(tooMany));
  // Past the API server's limit already: refused before a GPU is chosen and held for it.
  const tooLarge = podAnnotationLimitProblem(req.pod);
  if (tooLarge !== null) return answered(refusedAsInvalid(tooLarge));
  return { kind: 'place', intent, access: { pod: access.pod, warnings: access.warnings } };
}

export function admitPod(req: AdmitRequest, ctx: AdmitContext): PodAdmission {
  const { config } = ctx;
  const screening = screenPod(req, ctx);
  if (screening.kind === 'answered') return screening.admission;
  const { access } = screening;
  const pod = access.pod;
  let intent: PodIntent = screening.intent;

  const warnings: string[] = [];
  if (intent.kind === 'reinject') {
    const { choice, reservationId, containers, issuedAtMs } = intent.recorded;
    const replay = replayedDecision(intent.recorded, ctx);
    if (replay === null) {
      const injected = injectPlacement(req.pod, access, { choice, reservationId, containers, seal: undefined }, config);
      if (!injected.ok) return refusedAsInvalid(injected.message);
      return { outcome: AdmissionOutcome.Mutated, patch: injected.patch, mutated: injected.mutated, warnings: injected.warnings, choice, reservation: null, reinjected: true };
    }
    warnings.push(`mps-injector placed this pod afresh: its sealed decision (reservation ${reservationId}, issued ${new Date(issuedAtMs).toISOString()}) ${replay}`);
    try {
      intent = readSlotRequest(withoutRecord(pod), { namespace: req.namespace, requestUid: req.requestUid, config, keys: ctx.keys });
    } catch (err) {
      if (err instanceof InvalidPodError) return refusedAsInvalid(err.message);
      throw err;
    }
    if (intent.kind !== 'place') return { outcome: AdmissionOutcome.Skipped, reason: intent.kind === 'skip' ? intent.reason : 'already injected' };
  } else if (intent.forged !== null) {
    warnings.push(`mps-injector ignored the decision this pod claimed and placed it afresh, replacing those annotations: ${intent.forged}. Only the webhook records decisions; remove them from the pod template.`);
  }

  const placement = placePod(placementRequestOf(req, intent), ctx);
  if (!placement.ok) return placement.admission;
  const { placed } = placement;
  const injected = injectPlacement(req.pod, access, placed, config);
  if (!injected.ok) {
    // Refused after the choice (the annotations record it): give the capacity back at once.
    releasePlacement(ctx.ledger, placed);
    return refusedAsInvalid(injected.message);
  }
  return {
    outcome: AdmissionOutcome.Mutated,
    patch: injected.patch,
    mutated: injected.mutated,
    warnings: [...warnings, ...injected.warnings],
    choice: placed.choice,
    reservation: placed.reservation,
    reinjected: false,
    superseded: placed.superseded,
  };
}

/** A slot chosen and held for a pod, sealed, before anything is injected. */
export interface PlacedSlot {
  choice: SlotChoice;
  /** Null on a dry run: nothing is held. */
  reservation: Reservation | null;
  /** Pending reservations of an earlier admission of the same named pod that this one replaced. */
  superseded: Reservation[];
  /** The reservation's id, or the dry-run marker. */
  reservationId: string;
  /** The seal annotation's value; absent on a dry run. */
  seal: string | undefined;
  containers: string[];
}

/** What placement needs of a screened pod: who it is and what it asks for. */
export interface PlacementRequest {
  identity: PodIdentity;
  dryRun: boolean;
  request: SlotRequest;
  containers: string[];
}

/** What placement needs of an admission request and the slot request read from its pod. */
export function placementRequestOf(req: AdmitRequest, intent: Pick<PlacementRequest, 'request' | 'containers'>): PlacementRequest {
  return { identity: podIdentityOf(req.pod, req.namespace), dryRun: req.dryRun, request: intent.request, containers: intent.containers };
}

/**
 * The step of admitPod that needs the inventory, the ledger and the keys: choose and reserve a
 * slot (or refuse, as the failure policy says), and seal the decision. The webhook runs it on
 * the event loop, which owns the ledger, for a pod screened on a worker thread.
 */
export function placePod(req: PlacementRequest, ctx: AdmitContext): { ok: true; placed: PlacedSlot } | { ok: false; admission: PodAdmission } {
  const { config } = ctx;
  const { decision, reservation, superseded } = reserveSlot(ctx.inventory, ctx.ledger, req.request, config.placement, ctx.nowMs, { dryRun: req.dryRun, preference: ctx.preference ?? null });
  if (!decision.ok) {
    const policy = decision.code === 'no-metrics' ? config.failure.onNoMetrics : config.failure.onNoFit;
    if (policy === 'allow') {
      return {
        ok: false,
        admission: {
          outcome: AdmissionOutcome.AllowedUnmutated,
          reason: decision.code,
          warning: `mps-injector did not place this pod and let it through without MPS (failure policy "allow"): ${decision.reason}`,
        },
      };
    }
    return { ok: false, admission: { outcome: AdmissionOutcome.Refused, reason: decision.code, message: `mps-injector: ${decision.reason}` } };
  }

  const reservationId = reservation?.id ?? DRY_RUN_RESERVATION;
  const seal =
    reservation === null
      ? undefined
      : sealDecision(
          {
            pod: req.identity,
            reservationId,
            node: decision.node,
            gpuUuid: decision.gpuUuid,
            gpuIndex: decision.gpuIndex,
            threadPercent: decision.threadPercent,
            threadCeilingPercent: decision.threadCeilingPercent,
            memoryLimitMiB: decision.memoryLimitMiB,
            priority: decision.priority,
            containers: req.containers,
            issuedAtMs: ctx.nowMs,
          },
          ctx.keys,
        );
  return { ok: true, placed: { choice: decision, reservation, superseded, reservationId, seal, containers: req.containers } };
}

/** Give back what a placement holds: its reservation, and the earlier ones it replaced. */
export function releasePlacement(ledger: ReservationLedger, placed: Pick<PlacedSlot, 'reservation' | 'superseded'>): void {
  if (placed.reservation !== null) ledger.release(placed.reservation.id);
  for (const old of placed.superseded) ledger.restore(old);
}

/** What injection needs of a placement (the reservations themselves stay with the ledger). */
export type PlacementToInject = Pick<PlacedSlot, 'choice' | 'reservationId' | 'containers' | 'seal'>;

export type InjectedPlacement = { ok: true; patch: Operation[]; mutated: Pod; warnings: string[] } | { ok: false; message: string };

/**
 * The step of admitPod after the slot is held: inject it, check the API server's annotation
 * limit, and diff. Pure and independent of the ledger, so a worker thread can run it on the pod
 * it screened. `original` is the pod as sent; `access` the pod after the MPS access check and
 * its warnings (screenPod). A refusal here must release the placement (releasePlacement).
 */
export function injectPlacement(
  original: Pod,
  access: { pod: Pod; warnings: readonly string[] },
  placed: PlacementToInject,
  config: Pick<Config, 'injection'>,
): InjectedPlacement {
  const injected = injectPod(access.pod, placed.choice, placed.reservationId, placed.containers, config.injection, placed.seal);
  const tooLarge = annotationLimitProblem(original, injected.pod);
  if (tooLarge !== null) return { ok: false, message: tooLarge };
  return { ok: true, patch: buildPatch(original, injected.pod), mutated: injected.pod, warnings: withAccessWarnings(access.warnings, injected.warnings) };
}

/**
 * Why a verified decision on a pod being created must not be honoured as a reinvocation, or
 * null when it may. A reinvocation comes within the same API request, seconds after the
 * decision was issued; a sealed decision that is older, or whose reservation is already held
 * by a pod the API server created, was copied onto this pod.
 */
function replayedDecision(recorded: RecordedDecision, ctx: AdmitContext): string | null {
  const ageS = (ctx.nowMs - recorded.issuedAtMs) / 1000;
  const windowS = ctx.config.decisions.reinvocationWindowSeconds;
  if (ageS > windowS) return `is ${Math.round(ageS)}s old, beyond the ${windowS}s in which a reinvocation comes, so it was copied from another pod`;
  if (ageS < -windowS) return `was issued ${Math.round(-ageS)}s in the future`;
  const held = ctx.ledger.get(recorded.reservationId);
  if (held !== null && held.state === ReservationState.Confirmed) return `belongs to pod ${held.podKey}, which already exists`;
  return null;
}

/** The pod without the record annotations and the injected label, to place afresh. */
function withoutRecord(pod: Pod): Pod {
  const annotations = { ...(pod.metadata?.annotations ?? {}) };
  for (const name of RECORD_ANNOTATIONS) delete annotations[name];
  const labels = { ...(pod.metadata?.labels ?? {}) };
  delete labels[Label.Injected];
  return { ...pod, metadata: { ...pod.metadata, annotations, labels } };
}

function withAccessWarnings(access: readonly string[], injection: string[]): string[] {
  return access.length === 0 ? injection : [...access, ...injection];
}
