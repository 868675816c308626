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
import { AdmissionOutcome, admitPod } from './admitPod.js';

export interface CommitOptions {
  store: ReservationStore;
  maxAttempts: number;
  signal: AbortSignal;
}

export interface CommittedAdmission {
  admission: PodAdmission;
  /** How many times a slot was chosen (1 unless another writer won a race). */
  attempts: number;
}

export async function admitAndCommit(req: AdmitRequest, context: () => AdmitContext, opts: CommitOptions): Promise<CommittedAdmission> {
  for (let attempt = 1; attempt <= opts.maxAttempts; attempt++) {
    const ctx = context();
    const admission = admitPod(req, ctx);
    if (admission.outcome !== AdmissionOutcome.Mutated || admission.reservation === null) return { admission, attempts: attempt };

    const reservation = admission.reservation;
    let outcome: CommitOutcome;
    try {
      outcome = await opts.store.commit(reservation, opts.signal);
    } catch (err) {
      ctx.ledger.release(reservation.id);
      for (const old of admission.superseded ?? []) ctx.ledger.restore(old);
      return {
        admission: {
          outcome: AdmissionOutcome.Refused,
          reason: 'commit-failed',
          message: `mps-injector could not record the reservation for ${reservation.podKey} on ${reservation.node} GPU ${admission.choice.gpuIndex}: ${(err as Error).message}. Nothing was granted; retry the pod once the API server is reachable.`,
        },
        attempts: attempt,
      };
    }
    const superseded = admission.superseded ?? [];
    if (outcome === CommitOutcome.Committed) {
      // The earlier admission of this pod name no longer holds capacity anywhere.
      for (const old of superseded) await opts.store.release(old, opts.signal).catch(() => undefined);
      return { admission, attempts: attempt };
    }

    ctx.ledger.release(reservation.id);
    for (const old of superseded) ctx.ledger.restore(old);
    await opts.store.refresh(opts.signal);
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
