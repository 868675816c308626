import { ReservationState } from '../domain/slot.js';
import type { Reservation } from '../domain/slot.js';
import {
  DURABLE_DATA_KEY,
  DurableRecordError,
  decodeDurableRecord,
  durableObjectName,
  encodeDurableRecord,
  entryFromReservation,
  isEntryDead,
  reservationFromEntry,
} from './durableReservations.js';

const reservation: Reservation = {
  id: '7d1e0c3a-1',
  podKey: 'ml/web-*uid',
  node: 'node-a',
  gpuUuid: 'GPU-c4529c8d-69c4-b61d-e0bc-7b2460096005',
  memoryMiB: 8192,
  threadPercent: 30,
  priority: 'high',
  state: ReservationState.Pending,
  createdAtMs: 1000,
  expiresAtMs: 121_000,
};

describe('durable reservation records', () => {
  test('the object name is a DNS name derived from the GPU UUID', () => {
    expect(durableObjectName('GPU-c4529c8d-69c4-b61d-e0bc-7b2460096005')).toBe('mps-injector-res-gpu-c4529c8d-69c4-b61d-e0bc-7b2460096005');
    expect(durableObjectName('MIG_GPU/0:1')).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
  });

  test('encode then decode gives the entries back, with the resourceVersion for compare-and-swap', () => {
    const entries = new Map([[reservation.id, entryFromReservation(reservation)]]);
    const body = encodeDurableRecord({ name: 'x', gpuUuid: reservation.gpuUuid, node: 'node-a', resourceVersion: '42', entries }, 'mps');
    expect(body.metadata).toEqual(expect.objectContaining({ name: 'x', namespace: 'mps', resourceVersion: '42' }));
    const decoded = decodeDurableRecord(body);
    expect(decoded.resourceVersion).toBe('42');
    expect(decoded.node).toBe('node-a');
    expect([...decoded.entries.values()]).toEqual([entryFromReservation(reservation)]);
  });

  test('an MPS limit above the share survives encode, decode and the way back to the ledger; an entry without one reads without one', () => {
    const limited: Reservation = { ...reservation, id: '7d1e0c3a-2', threadCeilingPercent: 60 };
    const entries = new Map([
      [reservation.id, entryFromReservation(reservation)],
      [limited.id, entryFromReservation(limited)],
    ]);
    const decoded = decodeDurableRecord(encodeDurableRecord({ name: 'x', gpuUuid: reservation.gpuUuid, node: 'node-a', resourceVersion: null, entries }, 'mps'));
    const back = (id: string) => reservationFromEntry(decoded.entries.get(id)!, true);
    expect(back(limited.id)).toMatchObject({ threadPercent: 30, threadCeilingPercent: 60 });
    expect(back(reservation.id)).not.toHaveProperty('threadCeilingPercent');
  });

  test('a new record is sent without a resourceVersion', () => {
    const body = encodeDurableRecord({ name: 'x', gpuUuid: 'g', node: 'n', resourceVersion: null, entries: new Map() }, 'mps');
    expect(body.metadata.resourceVersion).toBeUndefined();
  });

  test('unreadable content is a DurableRecordError naming the object and the fix', () => {
    expect(() => decodeDurableRecord({ metadata: { name: 'broken' }, data: { [DURABLE_DATA_KEY]: '{"version":2}' } })).toThrow(DurableRecordError);
    expect(() => decodeDurableRecord({ metadata: { name: 'broken' }, data: {} })).toThrow(/kubectl delete configmap broken/);
  });

  test('an entry is dead once its pod ended, or unconfirmed past its expiry; a live pod keeps it', () => {
    const entry = entryFromReservation(reservation);
    const none = { hasLivePod: () => false, hasEnded: () => false };
    expect(isEntryDead(entry, none, 120_999)).toBe(false);
    expect(isEntryDead(entry, none, 121_000)).toBe(true);
    expect(isEntryDead(entry, { hasLivePod: () => true, hasEnded: () => false }, 10_000_000)).toBe(false);
    expect(isEntryDead(entry, { hasLivePod: () => false, hasEnded: () => true }, 2000)).toBe(true);
  });

  test('a stored entry returns to the ledger confirmed when its pod is live, else pending', () => {
    const entry = entryFromReservation(reservation);
    expect(reservationFromEntry(entry, true)).toEqual({ ...reservation, state: ReservationState.Confirmed, expiresAtMs: null });
    expect(reservationFromEntry(entry, false)).toEqual(reservation);
  });
});
