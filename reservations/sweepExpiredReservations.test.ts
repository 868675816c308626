import { afterEach, beforeEach, expect, jest, test } from '@jest/globals';
import type { Logger } from 'pino';
import { ReservationLedger } from './ledger.js';
import { sweepExpiredReservations } from './sweepExpiredReservations.js';

let clock = 0;
const now = (): number => clock;
/** Advance the clock the sweep reads together with the fake timers that drive it. */
const advance = (ms: number): void => {
  for (let step = 0; step < ms; step += 10) {
    clock += 10;
    jest.advanceTimersByTime(10);
  }
};

const loggerSpy = (): { logger: Logger; lines: { fields: unknown; message: string }[] } => {
  const lines: { fields: unknown; message: string }[] = [];
  const logger = { info: (fields: unknown, message: string) => lines.push({ fields, message }) } as unknown as Logger;
  return { logger, lines };
};

const reserve = (ledger: ReservationLedger, pod: string): string =>
  ledger.reserve({ podKey: `ns/${pod}`, node: 'a', gpuUuid: 'GPU-1', memoryMiB: 512, threadPercent: 10, priority: 'low' }, clock).id;

beforeEach(() => {
  clock = 0;
  jest.useFakeTimers();
});
afterEach(() => {
  jest.useRealTimers();
});

test('expired reservations leave the ledger within one sweep interval, not one report interval', () => {
  const ledger = new ReservationLedger({ ttlMs: 1000 });
  const { logger, lines } = loggerSpy();
  const id = reserve(ledger, 'p');
  const sweep = sweepExpiredReservations(ledger, logger, now, { sweepMs: 50, reportMs: 5000 });
  advance(990);
  expect(ledger.get(id)).not.toBeNull();
  advance(60);
  expect(ledger.get(id)).toBeNull();
  expect(lines).toEqual([]);
  sweep.stop();
});

test('released reservations are logged together once per report interval', () => {
  const ledger = new ReservationLedger({ ttlMs: 1000 });
  const { logger, lines } = loggerSpy();
  const first = reserve(ledger, 'p1');
  advance(200);
  const second = reserve(ledger, 'p2');
  const sweep = sweepExpiredReservations(ledger, logger, now, { sweepMs: 50, reportMs: 5000 });
  advance(4990);
  expect(lines).toEqual([]);
  advance(20);
  expect(lines).toEqual([
    {
      fields: { expired: [{ id: first, pod: 'ns/p1' }, { id: second, pod: 'ns/p2' }] },
      message: 'released unconfirmed reservations past their TTL',
    },
  ]);
  advance(10_000);
  expect(lines).toHaveLength(1);
  sweep.stop();
});

test('stop logs what was released since the last line and sweeps no more', () => {
  const ledger = new ReservationLedger({ ttlMs: 100 });
  const { logger, lines } = loggerSpy();
  const id = reserve(ledger, 'p');
  const sweep = sweepExpiredReservations(ledger, logger, now, { sweepMs: 50, reportMs: 5000 });
  advance(200);
  sweep.stop();
  expect(lines).toEqual([{ fields: { expired: [{ id, pod: 'ns/p' }] }, message: 'released unconfirmed reservations past their TTL' }]);
  const later = reserve(ledger, 'q');
  advance(1000);
  expect(ledger.get(later)).not.toBeNull();
});

test('each sweep reports how many unconfirmed reservations expired, for the expired-unconfirmed counter', () => {
  const ledger = new ReservationLedger({ ttlMs: 1000 });
  const { logger } = loggerSpy();
  const counts: number[] = [];
  reserve(ledger, 'a');
  reserve(ledger, 'b');
  const sweep = sweepExpiredReservations(ledger, logger, now, { sweepMs: 50, reportMs: 5000 }, (expired) => counts.push(expired.length));
  advance(1100);
  sweep.stop();
  expect(counts).toEqual([2]);
});
