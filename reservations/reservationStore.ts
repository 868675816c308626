/**
 * Where reservations become durable. The admission path chooses a slot against the
 * local ledger, then commits the reservation through a store before answering.
 * A single process needs nothing more than the ledger (LocalReservationStore);
 * several replicas commit through the API server with optimistic concurrency.
 */
import type { Reservation } from '../domain/slot.js';

export const CommitOutcome = { Committed: 'committed', Conflict: 'conflict' } as const;
export type CommitOutcome = (typeof CommitOutcome)[keyof typeof CommitOutcome];

export interface ReservationStore {
  /**
   * Make a locally chosen reservation durable and exclusive.
   * 'conflict': another writer changed that capacity first; refresh and choose again.
   * Throws (with a user-facing message) when the durable store cannot be reached.
   */
  commit(reservation: Reservation, signal: AbortSignal): Promise<CommitOutcome>;
  /** Bring the local ledger up to date with the durable state (after a conflict). */
  refresh(signal: AbortSignal): Promise<void>;
  /** Drop a reservation from the durable state (pod gone, or admission abandoned). */
  release(reservation: Reservation, signal: AbortSignal): Promise<void>;
}

/** One process, no API server: the in-memory ledger is the whole truth. */
export class LocalReservationStore implements ReservationStore {
  async commit(): Promise<CommitOutcome> {
    return CommitOutcome.Committed;
  }
  async refresh(): Promise<void> {}
  async release(): Promise<void> {}
}
