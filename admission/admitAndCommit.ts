/**
 * The admission pipeline with a durable reservation: choose and reserve locally (pure,
 * synchronous), then commit the reservation through the ReservationStore before the pod
 * is answered. On a conflict (another replica took the capacity first) the local
 * reservation is dropped, the ledger refreshed from the durable state, and the choice made
 * again, a bounded number of times.
 */
import type { ReservationStore } from '../reservations/reservationStore.js';
import { CommitOutcome } from '../reservations/reservationStore.js';
import type { AdmitContext, AdmitRequest, PodAdmission } from './admitPod.js';
import { AdmissionOutcome, admitPod, releasePlacement } from './admitPod.js';
import type { Reservation } from '../domain/slot.js';
import type { ReservationLedger } from '../reservations/ledger.js';

export interface CommitOptions {
  store: ReservationStore;
  maxAttempts: number;
  signal: AbortSignal;
  /** The number of this first attempt: above 1 when earlier ones were made elsewhere and lost. Default 1. */
  firstAttempt?: number;
}

export interface CommittedAdmission {
  admission: PodAdmission;
  /** How many times a slot was chosen (1 unless another writer won a race). */
  attempts: number;
}

/** One commit of a held reservation: recorded, lost to another writer (choose again), or refused. */
export type CommitStep = { kind: 'committed' } | { kind: 'conflict' } | { kind: 'refused'; admission: PodAdmission };

/**
 * Commit a placement's reservation through the store. Committed: the reservations it replaced
 * are released there too. On a conflict or a failure the placement is given back to the ledger;
 * on a conflict the ledger is refreshed from the durable state, so the next choice sees the
 * capacity the other writer took.
 */
export async function commitPlacement(
  ledger: ReservationLedger,
  placed: { reservation: Reservation; superseded?: Reservation[]; choice: { gpuIndex: number } },
  opts: Pick<CommitOptions, 'store' | 'signal'>,
): Promise<CommitStep> {
  const { reservation } = placed;
  const superseded = placed.superseded ?? [];
  let outcome: CommitOutcome;
  try {
    outcome = await opts.store.commit(reservation, opts.signal);
  } catch (err) {
    releasePlacement(ledger, { reservation, superseded });
    return {
      kind: 'refused',
      admission: {
        outcome: AdmissionOutcome.Refused,
        reason: 'commit-failed',
        message: `mps-injector could not record the reservation for ${reservation.podKey} on ${reservation.node} GPU ${placed.choice.gpuIndex}: ${(err as Error).message}. Nothing was granted; retry the pod once the API server is reachable.`,
      },
    };
  }
  if (outcome === CommitOutcome.Committed) {
    // The earlier admission of this pod name no longer holds capacity anywhere.
    for (const old of superseded) await opts.store.release(old, opts.signal).catch(() => undefined);
    return { kind: 'committed' };
  }
  releasePlacement(ledger, { reservation, superseded });
  await opts.store.refresh(opts.signal);
  return { kind: 'conflict' };
}

export async function admitAndCommit(req: AdmitRequest, context: () => AdmitContext, opts: CommitOptions): Promise<CommittedAdmission> {
  for (let attempt = opts.firstAttempt ?? 1; attempt <= opts.maxAttempts; attempt++) {
    const ctx = context();
    const admission = admitPod(req, ctx);
    if (admission.outcome !== AdmissionOutcome.Mutated || admission.reservation === null) return { admission, attempts: attempt };
    const step = await commitPlacement(ctx.ledger, { ...admission, reservation: admission.reservation }, opts);
    if (step.kind === 'committed') return { admission, attempts: attempt };
    if (step.kind === 'refused') return { admission: step.admission, attempts: attempt };
  }
  return {
    admission: {
      outcome: AdmissionOutcome.Refused,
      reason: 'contention',
      message: `mps-injector could not commit a reservation after ${opts.maxAttempts} attempts: other replicas kept taking the same GPU capacity at the same moment. Retry the pod; if this persists, raise cluster.maxCommitAttempts.`,
    },
    attempts: opts.maxAttempts,
  };
}
