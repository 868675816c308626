/**
 * Expiry of unconfirmed reservations when the webhook runs without the cluster integration
 * (which expires reservations and their durable records itself).
 */
import type { Logger } from 'pino';
import type { Reservation } from '../domain/slot.js';
import type { ReservationLedger } from './ledger.js';

/** How often expired reservations leave the ledger. */
export const EXPIRY_SWEEP_MS = 50;
/** How often the released ones are logged: one line for all released since the previous line. */
export const EXPIRY_REPORT_MS = 5000;

export interface ExpirySweep {
  /** Stop sweeping and log what was released since the last line. */
  stop(): void;
}

/**
 * Drop unconfirmed reservations past their TTL from the ledger every `sweepMs`, and log them
 * every `reportMs`. The sweep is frequent because a reservation that is due but still in the
 * ledger makes every placement pass recompute its GPU's totals: with a sweep every few
 * seconds, a busy webhook spent most of each admission on that. Sweeping costs nothing while
 * no reservation is due.
 */
export function sweepExpiredReservations(
  ledger: ReservationLedger,
  logger: Logger,
  now: () => number,
  intervals: { sweepMs: number; reportMs: number } = { sweepMs: EXPIRY_SWEEP_MS, reportMs: EXPIRY_REPORT_MS },
  /** Told of the reservations each sweep released (the expired-unconfirmed counter, the cluster's change feed). */
  onExpired?: (expired: readonly Reservation[]) => void,
): ExpirySweep {
  let released: { id: string; pod: string }[] = [];
  let reportedAtMs = now();
  const report = (): void => {
    if (released.length > 0) logger.info({ expired: released }, 'released unconfirmed reservations past their TTL');
    released = [];
  };
  const timer = setInterval(() => {
    const nowMs = now();
    const expired = ledger.expire(nowMs);
    for (const r of expired) released.push({ id: r.id, pod: r.podKey });
    if (expired.length > 0) onExpired?.(expired);
    if (nowMs - reportedAtMs < intervals.reportMs) return;
    reportedAtMs = nowMs;
    report();
  }, intervals.sweepMs);
  timer.unref();
  return {
    stop: () => {
      clearInterval(timer);
      report();
    },
  };
}
