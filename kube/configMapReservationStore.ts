/**
 * ReservationStore against the API server: one ConfigMap per GPU holds the reservations
 * granted on it, and every grant is a compare-and-swap on that ConfigMap's resourceVersion
 * (docs/adr/0005-multi-replica-reservations.md).
 *
 * The invariant that makes a successful write safe: the ledger a reservation was chosen
 * against held everything the ConfigMap held at the resourceVersion the write sends. So
 * - foreign state enters the ledger only through `apply` (load, refresh, garbage collection);
 *   when it adds reservations to a GPU, local reservations on that GPU still in flight were
 *   chosen without them and are answered 'conflict' without a request ("tainted");
 * - writes to one GPU's ConfigMap are serialised in this process, and each successful write
 *   advances the remembered resourceVersion: local reservations in flight were chosen with
 *   each other in view (the ledger is synchronous), so they may follow one another;
 * - a 409 (someone else wrote) marks the GPU stale: commits against it answer 'conflict'
 *   until refresh() has read it again.
 */
import type { Logger } from 'pino';
import type { ReservationLedger } from '../placement/ledger.js';
import { CommitOutcome } from '../placement/reservationStore.js';
import type { ReservationStore } from '../placement/reservationStore.js';
import { ReservationState } from '../placement/types.js';
import type { Reservation } from '../placement/types.js';
import {
  DURABLE_LABEL_SELECTOR,
  DurableRecordError,
  decodeDurableRecord,
  durableObjectName,
  encodeDurableRecord,
  entryFromReservation,
  isEntryDead,
  reservationFromEntry,
} from './durableReservations.js';
import type { ConfigMapLike, DurableEntry, DurableGpuRecord, EntryLiveness } from './durableReservations.js';
import { ApiFailureKind, KubeApiError, classifyApiError, describeApiFailure, withTransientRetry } from './kubeApis.js';
import type { KubeApis } from './kubeApis.js';

export interface StoreLiveness extends EntryLiveness {
  /** True once the pod informer has listed: before that, nothing is judged dead. */
  synced(): boolean;
}

export interface ConfigMapReservationStoreOptions {
  apis: KubeApis;
  /** Namespace of the ConfigMaps (the webhook's own). */
  namespace: string;
  ledger: ReservationLedger;
  liveness: StoreLiveness;
  now: () => number;
  logger: Logger;
  /** Extra tries of a request that met a network failure or a 5xx (default 2). */
  transientRetries?: number;
  /** Tries of a garbage-collection or release write that meets a conflict (default 3). */
  maintenanceAttempts?: number;
}

export interface ReservationStoreStats {
  commits: number;
  conflicts: number;
  /** Conflicts answered without a request (the ledger already showed the change). */
  conflictsWithoutRequest: number;
  refreshedObjects: number;
  collectedEntries: number;
  /** GPUs with a durable object known now. */
  objects: number;
}

const CONFLICT_KINDS = new Set<string>([ApiFailureKind.Conflict, ApiFailureKind.AlreadyExists, ApiFailureKind.NotFound]);

export class ConfigMapReservationStore implements ReservationStore {
  private readonly records = new Map<string, DurableGpuRecord>();
  private readonly stale = new Set<string>();
  private readonly tainted = new Set<string>();
  /** Reservations dropped by release(): dead for garbage collection even before their expiry. */
  private readonly abandoned = new Set<string>();
  private readonly locks = new Map<string, Promise<void>>();
  private conflictsSinceRefresh = 0;
  private readonly opts: ConfigMapReservationStoreOptions;
  private readonly liveness: EntryLiveness;
  readonly stats: ReservationStoreStats = { commits: 0, conflicts: 0, conflictsWithoutRequest: 0, refreshedObjects: 0, collectedEntries: 0, objects: 0 };

  constructor(opts: ConfigMapReservationStoreOptions) {
    this.opts = opts;
    this.liveness = {
      hasLivePod: (id) => opts.liveness.hasLivePod(id),
      hasEnded: (id) => this.abandoned.has(id) || opts.liveness.hasEnded(id),
    };
  }

  /** Read every durable object and bring the ledger up to date (start-up, and periodic resync). */
  async load(signal?: AbortSignal): Promise<void> {
    const { apis, namespace } = this.opts;
    let listed: ConfigMapLike[];
    try {
      const list = await withTransientRetry(
        () => apis.core.listNamespacedConfigMap({ namespace, labelSelector: DURABLE_LABEL_SELECTOR }, apis.callOptions(signal)),
        { signal, retries: this.opts.transientRetries ?? 2 },
      );
      listed = list.items;
    } catch (err) {
      throw describeApiFailure(`reading the durable reservations (ConfigMaps in ${namespace} labelled ${DURABLE_LABEL_SELECTOR})`, classifyApiError(err), apis.server);
    }
    const found = new Map<string, DurableGpuRecord>();
    for (const cm of listed) {
      const record = this.decode(cm);
      if (record !== null) found.set(record.gpuUuid, record);
    }
    const gpus = new Set([...this.records.keys(), ...found.keys()]);
    await Promise.all(
      [...gpus].map((gpu) =>
        this.withLock(gpu, async () => {
          this.apply(gpu, found.get(gpu) ?? null);
          this.stale.delete(gpu);
        }),
      ),
    );
  }

  async commit(reservation: Reservation, signal: AbortSignal): Promise<CommitOutcome> {
    const action = `recording reservation ${reservation.id} for ${reservation.podKey} on node ${reservation.node} GPU ${reservation.gpuUuid}`;
    if (signal.aborted) throw describeApiFailure(action, { kind: ApiFailureKind.Aborted, status: null, detail: 'deadline passed' }, this.opts.apis.server);
    return this.withLock(reservation.gpuUuid, async () => {
      if (signal.aborted) throw describeApiFailure(action, { kind: ApiFailureKind.Aborted, status: null, detail: 'deadline passed' }, this.opts.apis.server);
      if (this.tainted.delete(reservation.id) || this.stale.has(reservation.gpuUuid)) {
        this.stats.conflicts++;
        this.stats.conflictsWithoutRequest++;
        this.conflictsSinceRefresh++;
        return CommitOutcome.Conflict;
      }
      const current = this.records.get(reservation.gpuUuid);
      const entries = this.liveEntries(current);
      entries.set(reservation.id, entryFromReservation(reservation));
      const next: DurableGpuRecord = {
        name: durableObjectName(reservation.gpuUuid),
        gpuUuid: reservation.gpuUuid,
        node: reservation.node,
        resourceVersion: current?.resourceVersion ?? null,
        entries,
      };
      let resourceVersion: string;
      try {
        resourceVersion = await this.write(next, signal);
      } catch (err) {
        const failure = classifyApiError(err);
        if (CONFLICT_KINDS.has(failure.kind)) {
          this.stale.add(reservation.gpuUuid);
          this.stats.conflicts++;
          this.conflictsSinceRefresh++;
          return CommitOutcome.Conflict;
        }
        throw describeApiFailure(action, failure, this.opts.apis.server);
      }
      this.setRecord({ ...next, resourceVersion });
      this.stats.commits++;
      return CommitOutcome.Committed;
    });
  }

  /** Reload the GPUs another writer changed; with none known, reload everything (unless the ledger already shows the change). */
  async refresh(signal: AbortSignal): Promise<void> {
    this.pruneTainted();
    const gpus = [...this.stale];
    if (gpus.length === 0) {
      if (this.conflictsSinceRefresh > 0) {
        this.conflictsSinceRefresh = 0;
        return;
      }
      await this.load(signal);
      return;
    }
    this.conflictsSinceRefresh = 0;
    await Promise.all(
      gpus.map((gpu) =>
        this.withLock(gpu, async () => {
          if (!this.stale.has(gpu)) return;
          const record = await this.read(gpu, signal);
          this.apply(gpu, record);
          this.stale.delete(gpu);
          this.stats.refreshedObjects++;
        }),
      ),
    );
  }

  /** Drop a reservation locally and, best effort, from its durable object (else it lapses at its expiry). */
  async release(reservation: Reservation, signal: AbortSignal): Promise<void> {
    this.opts.ledger.release(reservation.id);
    this.abandoned.add(reservation.id);
    try {
      await this.rewrite(reservation.gpuUuid, signal);
    } catch (err) {
      this.opts.logger.warn(
        { reservation: reservation.id, gpu: reservation.gpuUuid, err: (err as Error).message },
        'could not remove a released reservation from its durable object; it lapses at its expiry',
      );
    }
  }

  /**
   * Remove dead entries (pods ended, or never appeared before the expiry) from every durable
   * object that holds some. Returns how many were removed. Failures are logged, not thrown:
   * the next round retries.
   */
  async collectGarbage(signal?: AbortSignal): Promise<number> {
    if (!this.opts.liveness.synced()) return 0;
    const nowMs = this.opts.now();
    const gpus = [...this.records.values()].filter((r) => [...r.entries.values()].some((e) => isEntryDead(e, this.liveness, nowMs))).map((r) => r.gpuUuid);
    let removed = 0;
    for (const gpu of gpus) {
      try {
        removed += await this.rewrite(gpu, signal);
      } catch (err) {
        this.opts.logger.warn({ gpu, err: (err as Error).message }, 'could not remove ended reservations from their durable object; retrying on the next round');
      }
    }
    this.stats.collectedEntries += removed;
    for (const id of this.abandoned) {
      if (![...this.records.values()].some((r) => r.entries.has(id))) this.abandoned.delete(id);
    }
    return removed;
  }

  /** The durable record of a GPU as last seen (tests and diagnostics). */
  recordOf(gpuUuid: string): DurableGpuRecord | null {
    return this.records.get(gpuUuid) ?? null;
  }

  // ---- internals ----

  private async withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(key) ?? Promise.resolve();
    let unlock!: () => void;
    const mine = new Promise<void>((resolve) => {
      unlock = resolve;
    });
    const tail = previous.then(() => mine);
    this.locks.set(key, tail);
    await previous;
    try {
      return await fn();
    } finally {
      unlock();
      if (this.locks.get(key) === tail) this.locks.delete(key);
    }
  }

  private liveEntries(record: DurableGpuRecord | undefined): Map<string, DurableEntry> {
    const entries = new Map(record?.entries ?? []);
    if (!this.opts.liveness.synced()) return entries;
    const nowMs = this.opts.now();
    for (const e of record?.entries.values() ?? []) if (isEntryDead(e, this.liveness, nowMs)) entries.delete(e.id);
    return entries;
  }

  /** Create or compare-and-swap replace; returns the new resourceVersion. */
  private async write(record: DurableGpuRecord, signal?: AbortSignal): Promise<string> {
    const { apis, namespace } = this.opts;
    const body = encodeDurableRecord(record, namespace);
    const options = apis.callOptions(signal);
    const written = await withTransientRetry(
      () =>
        record.resourceVersion === null
          ? apis.core.createNamespacedConfigMap({ namespace, body }, options)
          : apis.core.replaceNamespacedConfigMap({ name: record.name, namespace, body }, options),
      { signal, retries: this.opts.transientRetries ?? 2 },
    );
    const resourceVersion = written.metadata?.resourceVersion;
    if (resourceVersion === undefined) throw new KubeApiError('the API server answered a write without a resourceVersion', { kind: ApiFailureKind.Rejected, status: null, detail: 'no resourceVersion' });
    return resourceVersion;
  }

  private async read(gpuUuid: string, signal?: AbortSignal): Promise<DurableGpuRecord | null> {
    const { apis, namespace } = this.opts;
    const name = durableObjectName(gpuUuid);
    try {
      const cm = await withTransientRetry(() => apis.core.readNamespacedConfigMap({ name, namespace }, apis.callOptions(signal)), {
        signal,
        retries: this.opts.transientRetries ?? 2,
      });
      return this.decode(cm);
    } catch (err) {
      const failure = classifyApiError(err);
      if (failure.kind === ApiFailureKind.NotFound) return null;
      throw describeApiFailure(`reading the durable reservations of GPU ${gpuUuid} (ConfigMap ${namespace}/${name})`, failure, apis.server);
    }
  }

  private decode(cm: ConfigMapLike): DurableGpuRecord | null {
    try {
      return decodeDurableRecord(cm);
    } catch (err) {
      if (!(err instanceof DurableRecordError)) throw err;
      this.opts.logger.error({ configMap: cm.metadata?.name }, err.message);
      const gpuUuid = cm.metadata?.annotations?.['mps-injector.io/gpu-uuid'];
      if (gpuUuid === undefined || cm.metadata?.resourceVersion === undefined) return null;
      // Keep its version so the next grant overwrites it with readable content.
      return { name: cm.metadata.name ?? durableObjectName(gpuUuid), gpuUuid, node: '', resourceVersion: cm.metadata.resourceVersion, entries: new Map() };
    }
  }

  private setRecord(record: DurableGpuRecord): void {
    this.records.set(record.gpuUuid, record);
    this.stats.objects = this.records.size;
  }

  /** Bring the ledger in line with a GPU's durable record as just read (null: no object). */
  private apply(gpuUuid: string, record: DurableGpuRecord | null): void {
    const { ledger } = this.opts;
    const nowMs = this.opts.now();
    const previous = this.records.get(gpuUuid);
    const entries = record?.entries ?? new Map<string, DurableEntry>();
    let added = false;
    for (const entry of entries.values()) {
      if (ledger.get(entry.id) !== null || isEntryDead(entry, this.liveness, nowMs)) continue;
      ledger.restore(reservationFromEntry(entry, this.liveness.hasLivePod(entry.id)));
      added = true;
    }
    for (const id of previous?.entries.keys() ?? []) {
      if (entries.has(id)) continue;
      const held = ledger.get(id);
      // Confirmed ones are backed by their pods; a pending one gone from the store was released elsewhere.
      if (held !== null && held.state === ReservationState.Pending && !this.liveness.hasLivePod(id)) ledger.release(id);
    }
    if (added) {
      for (const r of ledger.onGpu(gpuUuid, nowMs)) {
        if (r.state === ReservationState.Pending && !entries.has(r.id)) this.tainted.add(r.id);
      }
    }
    if (record === null) {
      this.records.delete(gpuUuid);
      this.stats.objects = this.records.size;
    } else {
      this.setRecord(record);
    }
  }

  /** Rewrite a GPU's object without its dead entries, rereading it after a conflict. Returns entries removed. */
  private async rewrite(gpuUuid: string, signal?: AbortSignal): Promise<number> {
    const attempts = this.opts.maintenanceAttempts ?? 3;
    return this.withLock(gpuUuid, async () => {
      for (let attempt = 1; attempt <= attempts; attempt++) {
        if (this.stale.has(gpuUuid)) {
          this.apply(gpuUuid, await this.read(gpuUuid, signal));
          this.stale.delete(gpuUuid);
        }
        const current = this.records.get(gpuUuid);
        if (current === undefined) return 0;
        const kept = this.liveEntries(current);
        const removed = current.entries.size - kept.size;
        if (removed === 0) return 0;
        const next: DurableGpuRecord = { ...current, entries: kept };
        try {
          const resourceVersion = await this.write(next, signal);
          this.setRecord({ ...next, resourceVersion });
          return removed;
        } catch (err) {
          const failure = classifyApiError(err);
          if (!CONFLICT_KINDS.has(failure.kind)) throw describeApiFailure(`removing ended reservations of GPU ${gpuUuid}`, failure, this.opts.apis.server);
          this.stale.add(gpuUuid);
        }
      }
      return 0;
    });
  }

  private pruneTainted(): void {
    for (const id of this.tainted) if (this.opts.ledger.get(id) === null) this.tainted.delete(id);
  }
}
