/**
 * The durable form of reservations: one ConfigMap per GPU that holds the reservations
 * granted on it, written with compare-and-swap on its resourceVersion (docs/adr/0005).
 * Pure: naming, encoding, decoding and liveness; the store does the I/O.
 */
import { z } from 'zod';
import { Priority, ReservationState } from '../domain/slot.js';
import type { Reservation } from '../domain/slot.js';

export const DURABLE_DATA_KEY = 'reservations.json';
export const DurableLabel = {
  ManagedBy: 'app.kubernetes.io/managed-by',
  Store: 'mps-injector.io/store',
} as const;
export const DURABLE_LABEL_SELECTOR = `${DurableLabel.ManagedBy}=mps-injector,${DurableLabel.Store}=reservations`;
export const DurableAnnotation = {
  GpuUuid: 'mps-injector.io/gpu-uuid',
  Node: 'mps-injector.io/node',
} as const;

/**
 * One reservation as stored: the ledger's reservation without its state (a stored entry is
 * live until its pod ends or, with expiresAtMs set, until it lapses unconfirmed).
 */
export type DurableEntry = Omit<Reservation, 'state'>;

const entrySchema = z.object({
  podKey: z.string().min(1),
  node: z.string().min(1),
  memoryMiB: z.number().nonnegative(),
  threadPercent: z.number().nonnegative(),
  /** MPS limit above threadPercent (absent in entries written before limits, and when equal). */
  threadCeilingPercent: z.number().nonnegative().optional(),
  priority: z.enum([Priority.High, Priority.Low]),
  createdAtMs: z.number(),
  expiresAtMs: z.number().nullable(),
});

const documentSchema = z.object({
  version: z.literal(1),
  gpuUuid: z.string().min(1),
  reservations: z.record(z.string().min(1), entrySchema),
});

/** The durable reservations of one GPU, as last read or written. */
export interface DurableGpuRecord {
  /** ConfigMap name. */
  name: string;
  gpuUuid: string;
  node: string;
  /** resourceVersion of the stored object; null when it does not exist yet. */
  resourceVersion: string | null;
  entries: ReadonlyMap<string, DurableEntry>;
}

/** ConfigMap name for a GPU: a DNS subdomain derived from its UUID. */
export function durableObjectName(gpuUuid: string): string {
  const slug = gpuUuid
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '');
  return `mps-injector-res-${slug}`.slice(0, 253).replace(/-+$/, '');
}

export function entryFromReservation(r: Reservation): DurableEntry {
  return {
    id: r.id,
    podKey: r.podKey,
    node: r.node,
    gpuUuid: r.gpuUuid,
    memoryMiB: r.memoryMiB,
    threadPercent: r.threadPercent,
    ...(r.threadCeilingPercent !== undefined ? { threadCeilingPercent: r.threadCeilingPercent } : {}),
    priority: r.priority,
    createdAtMs: r.createdAtMs,
    expiresAtMs: r.expiresAtMs,
  };
}

/** The ledger form of a stored entry: confirmed when a live pod carries it, else pending until its expiry. */
export function reservationFromEntry(entry: DurableEntry, podIsLive: boolean): Reservation {
  return {
    id: entry.id,
    podKey: entry.podKey,
    node: entry.node,
    gpuUuid: entry.gpuUuid,
    memoryMiB: entry.memoryMiB,
    threadPercent: entry.threadPercent,
    ...(entry.threadCeilingPercent !== undefined ? { threadCeilingPercent: entry.threadCeilingPercent } : {}),
    priority: entry.priority,
    state: podIsLive || entry.expiresAtMs === null ? ReservationState.Confirmed : ReservationState.Pending,
    createdAtMs: entry.createdAtMs,
    expiresAtMs: podIsLive ? null : entry.expiresAtMs,
  };
}

/** What decides whether a stored entry still holds capacity. */
export interface EntryLiveness {
  /** A pod that has not ended carries the reservation. */
  hasLivePod(id: string): boolean;
  /** A pod carrying it was seen to end, and none carries it now. */
  hasEnded(id: string): boolean;
}

/** Dead: its pod ended, or it was never confirmed and its expiry has passed with no pod carrying it. */
export function isEntryDead(entry: DurableEntry, liveness: EntryLiveness, nowMs: number): boolean {
  if (liveness.hasLivePod(entry.id)) return false;
  if (liveness.hasEnded(entry.id)) return true;
  return entry.expiresAtMs !== null && entry.expiresAtMs <= nowMs;
}

export interface ConfigMapLike {
  metadata?: {
    name?: string;
    resourceVersion?: string;
    annotations?: Record<string, string>;
  };
  data?: Record<string, string>;
}

/** A problem reading a stored object; the message names it and what to do. */
export class DurableRecordError extends Error {
  override readonly name = 'DurableRecordError';
}

/** Read a stored ConfigMap. Throws DurableRecordError for one that is not in the expected form. */
export function decodeDurableRecord(configMap: ConfigMapLike): DurableGpuRecord {
  const name = configMap.metadata?.name ?? '';
  const text = configMap.data?.[DURABLE_DATA_KEY];
  if (text === undefined) {
    throw new DurableRecordError(`ConfigMap ${name} has no ${DURABLE_DATA_KEY} key; delete it (kubectl delete configmap ${name}) and the webhook recreates it`);
  }
  let parsed: z.infer<typeof documentSchema>;
  try {
    parsed = documentSchema.parse(JSON.parse(text));
  } catch (err) {
    throw new DurableRecordError(
      `ConfigMap ${name} holds unreadable reservations (${(err as Error).message.split('\n')[0]}); delete it (kubectl delete configmap ${name}): pods' annotations restore confirmed reservations`,
    );
  }
  const entries = new Map<string, DurableEntry>();
  for (const [id, e] of Object.entries(parsed.reservations)) entries.set(id, { id, gpuUuid: parsed.gpuUuid, ...e });
  return {
    name,
    gpuUuid: parsed.gpuUuid,
    node: configMap.metadata?.annotations?.[DurableAnnotation.Node] ?? [...entries.values()][0]?.node ?? '',
    resourceVersion: configMap.metadata?.resourceVersion ?? null,
    entries,
  };
}

/** The ConfigMap body for a record; carries its resourceVersion so a replace is a compare-and-swap. */
export function encodeDurableRecord(record: DurableGpuRecord, namespace: string): {
  apiVersion: 'v1';
  kind: 'ConfigMap';
  metadata: { name: string; namespace: string; resourceVersion?: string; labels: Record<string, string>; annotations: Record<string, string> };
  data: Record<string, string>;
} {
  const reservations: Record<string, Omit<DurableEntry, 'id' | 'gpuUuid'>> = {};
  for (const e of [...record.entries.values()].sort((a, b) => a.createdAtMs - b.createdAtMs || a.id.localeCompare(b.id))) {
    reservations[e.id] = {
      podKey: e.podKey,
      node: e.node,
      memoryMiB: e.memoryMiB,
      threadPercent: e.threadPercent,
      ...(e.threadCeilingPercent !== undefined ? { threadCeilingPercent: e.threadCeilingPercent } : {}),
      priority: e.priority,
      createdAtMs: e.createdAtMs,
      expiresAtMs: e.expiresAtMs,
    };
  }
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: record.name,
      namespace,
      ...(record.resourceVersion !== null ? { resourceVersion: record.resourceVersion } : {}),
      labels: { [DurableLabel.ManagedBy]: 'mps-injector', [DurableLabel.Store]: 'reservations' },
      annotations: { [DurableAnnotation.GpuUuid]: record.gpuUuid, [DurableAnnotation.Node]: record.node },
    },
    data: { [DURABLE_DATA_KEY]: JSON.stringify({ version: 1, gpuUuid: record.gpuUuid, reservations }) },
  };
}
