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
 *   each other in view (the ledger is synchronous), so they may follow one another, and
 *   commits that queue up behind a write go out together in the next one (group commit);
 * - a 409 (someone else wrote) marks the GPU stale: commits against it answer 'conflict'
 *   until refresh() has read it again. When this replica's view of that GPU was old (not read
 *   or written for a while), its view of other GPUs it does not write is likely as old:
 *   refresh() then rereads every object in one list rather than walking them one 409 at a time.
 */
import type { Logger } from 'pino';
import type { ReservationLedger } from './ledger.js';
import { CommitOutcome } from './reservationStore.js';
import type { ReservationStore } from './reservationStore.js';
import { ReservationState } from '../domain/slot.js';
import type { Reservation } from '../domain/slot.js';
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
import { ApiFailureKind, KubeApiError, abortableDelay, classifyApiError, describeApiFailure, withTransientRetry } from '../kube/kubeApis.js';
import type { KubeApis } from '../kube/kubeApis.js';

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
  /**
   * Largest backoff before rereading a GPU after the second race lost on it in a row, ms
   * (random below it); doubles per further race lost, up to 64 (default 16; 0: none). After the
   * first, the next choice goes to another GPU (contendedGpus), so there is nothing to wait for.
   */
  conflictBackoffMs?: number;
  /** Source of the backoff jitter (default Math.random). */
  random?: () => number;
  /** How long a GPU counts as contended after a race lost on it or another replica's grant on it, ms (default 2000): see contendedGpus. */
  contendedForMs?: number;
  /** A view of a GPU older than this is old, ms (default 1000): a 409 on it rereads every object (at most once per this period). */
  oldViewMs?: number;
}

interface QueuedCommit {
  reservation: Reservation;
  signal: AbortSignal;
  settled: boolean;
  resolve: (outcome: CommitOutcome) => void;
  reject: (err: Error) => void;
  detach?: () => void;
}

export interface ReservationStoreStats {
  /** Reservations committed. */
  commits: number;
  /** Successful commit writes (one write may carry several commits). */
  writes: number;
  conflicts: number;
  /** Conflicts answered without a request (the ledger already showed the change). */
  conflictsWithoutRequest: number;
  refreshedObjects: number;
  collectedEntries: number;
  /** GPUs with a durable object known now. */
  objects: number;
}

const NO_GPUS: readonly string[] = Object.freeze([]);
const CONFLICT_KINDS = new Set<string>([ApiFailureKind.Conflict, ApiFailureKind.AlreadyExists, ApiFailureKind.NotFound]);

export class ConfigMapReservationStore implements ReservationStore {
  private readonly records = new Map<string, DurableGpuRecord>();
  /** GPUs another writer changed (a 409), each with the count of marks when it was marked. */
  private readonly stale = new Map<string, number>();
  private staleMarks = 0;
  private readonly tainted = new Set<string>();
  /** Reservations dropped by release(): dead for garbage collection even before their expiry. */
  private readonly abandoned = new Set<string>();
  private readonly locks = new Map<string, Promise<void>>();
  /** Bumped whenever a GPU's record changes here, so a slower list cannot overwrite a newer record. */
  private readonly epochs = new Map<string, number>();
  /** Lost races in a row per GPU, for the refresh backoff. */
  private readonly conflictStreak = new Map<string, number>();
  /** When a GPU was last found contended (epoch ms), for contendedGpus. */
  private readonly contendedAtMs = new Map<string, number>();
  /** When each GPU's object was last read or written (epoch ms); GPUs not in it are as old as the last list. */
  private readonly syncedAtMs = new Map<string, number>();
  /** When the last list of every object was asked for (epoch ms). */
  private listedAtMs = -Infinity;
  /** A list of every object in flight for refresh(), shared by the admissions that wait on it. */
  private relisting: Promise<void> | null = null;
  /** 409s since the last list on GPUs this replica has not read or written since it (typically ones with no object then): others are opening GPUs it has not seen. */
  private unseenConflicts = 0;
  private readonly random: () => number;
  /** Commits waiting for the next write to their GPU's object. */
  private readonly queues = new Map<string, QueuedCommit[]>();
  private readonly opts: ConfigMapReservationStoreOptions;
  private readonly liveness: EntryLiveness;
  readonly stats: ReservationStoreStats = { commits: 0, writes: 0, conflicts: 0, conflictsWithoutRequest: 0, refreshedObjects: 0, collectedEntries: 0, objects: 0 };

  constructor(opts: ConfigMapReservationStoreOptions) {
    this.opts = opts;
    this.random = opts.random ?? Math.random;
    this.liveness = {
      hasLivePod: (id) => opts.liveness.hasLivePod(id),
      hasEnded: (id) => this.abandoned.has(id) || opts.liveness.hasEnded(id),
    };
  }

  /** Read every durable object and bring the ledger up to date (start-up, periodic resync, and after a 409 on an old view). */
  async load(signal?: AbortSignal): Promise<void> {
    const { apis, namespace } = this.opts;
    const epochsAtList = new Map(this.epochs);
    const listedAtMs = this.opts.now();
    const unseenConflicts = this.unseenConflicts;
    const staleMarksAtList = this.staleMarks;
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
          // Written or reread since the list was taken: the list is older than what is known.
          if ((this.epochs.get(gpu) ?? 0) !== (epochsAtList.get(gpu) ?? 0)) return;
          this.apply(gpu, found.get(gpu) ?? null);
          // A GPU found changed after the list was asked for stays stale: the list may predate the change.
          if ((this.stale.get(gpu) ?? 0) <= staleMarksAtList) this.stale.delete(gpu);
        }),
      ),
    );
    this.listedAtMs = Math.max(this.listedAtMs, listedAtMs);
    this.unseenConflicts = Math.max(0, this.unseenConflicts - unseenConflicts);
  }

  /**
   * Commits to one GPU queue up while a write to it is in flight and go out together in the
   * next write (group commit): one compare-and-swap for the batch, one request for many grants.
   */
  commit(reservation: Reservation, signal: AbortSignal): Promise<CommitOutcome> {
    const gpu = reservation.gpuUuid;
    if (signal.aborted) return Promise.reject(this.abandonedError(reservation));
    return new Promise<CommitOutcome>((resolve, reject) => {
      const queued: QueuedCommit = { reservation, signal, settled: false, resolve, reject };
      const onAbort = (): void => {
        // The admission gave up; if the write still lands, the entry is dead and collected.
        this.abandoned.add(reservation.id);
        this.settle(queued, this.abandonedError(reservation));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      queued.detach = () => signal.removeEventListener('abort', onAbort);
      const queue = this.queues.get(gpu);
      if (queue !== undefined) {
        queue.push(queued);
        return;
      }
      this.queues.set(gpu, [queued]);
      void this.withLock(gpu, () => this.flush(gpu));
    });
  }

  private abandonedError(reservation: Reservation): Error {
    return describeApiFailure(
      `recording reservation ${reservation.id} for ${reservation.podKey} on node ${reservation.node} GPU ${reservation.gpuUuid}`,
      { kind: ApiFailureKind.Aborted, status: null, detail: 'deadline passed' },
      this.opts.apis.server,
    );
  }

  private settle(queued: QueuedCommit, outcome: CommitOutcome | Error): void {
    if (queued.settled) return;
    queued.settled = true;
    queued.detach?.();
    if (outcome instanceof Error) queued.reject(outcome);
    else queued.resolve(outcome);
  }

  private conflict(queued: QueuedCommit, withoutRequest: boolean): void {
    this.stats.conflicts++;
    if (withoutRequest) this.stats.conflictsWithoutRequest++;
    this.settle(queued, CommitOutcome.Conflict);
  }

  /** Write every commit queued for a GPU in one compare-and-swap (runs under the GPU's lock). */
  private async flush(gpu: string): Promise<void> {
    const queued = this.queues.get(gpu) ?? [];
    this.queues.delete(gpu);
    try {
      await this.flushBatch(gpu, queued);
    } catch (err) {
      // Never leave an admission waiting on a commit that cannot finish.
      for (const q of queued) this.settle(q, err instanceof Error ? err : new Error(String(err)));
    }
  }

  private async flushBatch(gpu: string, queued: QueuedCommit[]): Promise<void> {
    const batch: QueuedCommit[] = [];
    for (const q of queued) {
      if (q.settled) continue;
      if (this.tainted.delete(q.reservation.id) || this.stale.has(gpu)) this.conflict(q, true);
      else batch.push(q);
    }
    const first = batch[0];
    if (first === undefined) return;

    const current = this.records.get(gpu);
    const entries = this.liveEntries(current);
    for (const q of batch) entries.set(q.reservation.id, entryFromReservation(q.reservation));
    const next: DurableGpuRecord = {
      name: durableObjectName(gpu),
      gpuUuid: gpu,
      node: first.reservation.node,
      resourceVersion: current?.resourceVersion ?? null,
      entries,
    };
    // The write is abandoned only when every admission in the batch has given up.
    const writeAbort = new AbortController();
    let waiting = batch.length;
    for (const q of batch) {
      const done = (): void => {
        if (--waiting === 0) writeAbort.abort();
      };
      if (q.signal.aborted) done();
      else q.signal.addEventListener('abort', done, { once: true });
    }
    let resourceVersion: string;
    try {
      resourceVersion = await this.write(next, writeAbort.signal);
    } catch (err) {
      const failure = classifyApiError(err);
      if (CONFLICT_KINDS.has(failure.kind)) {
        // A race lost on a GPU this replica had in view (not an old view catching up): choose elsewhere for a while.
        if (!this.viewIsOld(gpu)) this.contendedAtMs.set(gpu, this.opts.now());
        if ((this.syncedAtMs.get(gpu) ?? -Infinity) <= this.listedAtMs) this.unseenConflicts++;
        this.stale.set(gpu, ++this.staleMarks);
        this.conflictStreak.set(gpu, (this.conflictStreak.get(gpu) ?? 0) + 1);
        for (const q of batch) this.conflict(q, false);
        return;
      }
      for (const q of batch) {
        this.settle(
          q,
          describeApiFailure(`recording reservation ${q.reservation.id} for ${q.reservation.podKey} on node ${q.reservation.node} GPU ${gpu}`, failure, this.opts.apis.server),
        );
      }
      return;
    }
    this.setRecord({ ...next, resourceVersion });
    this.conflictStreak.delete(gpu);
    this.stats.commits += batch.length;
    this.stats.writes++;
    for (const q of batch) this.settle(q, CommitOutcome.Committed);
  }

  /**
   * Reload the GPUs another writer is known to have changed (a write of ours met a 409). With
   * none, there is nothing to do: a conflict answered without a request means the ledger
   * already shows the change. `load()` rereads everything.
   */
  async refresh(signal: AbortSignal): Promise<void> {
    this.pruneTainted();
    if (this.stale.size === 0) return;
    // List again when the view of a changed GPU is old (at most once per oldViewMs), or when two
    // 409s since the last list were on GPUs not seen since: the others are opening GPUs this
    // replica has not seen, and finding them one 409 at a time would use up its attempts.
    const oldView = [...this.stale.keys()].some((gpu) => this.viewIsOld(gpu)) && this.opts.now() - this.listedAtMs > this.oldViewMs();
    if (this.relisting !== null || oldView || this.unseenConflicts >= 2) {
      this.relisting ??= this.load(signal).finally(() => {
        this.relisting = null;
      });
      await this.relisting;
    }
    const gpus = [...this.stale.keys()];
    if (gpus.length === 0) return;
    await Promise.all(
      gpus.map((gpu) =>
        this.withLock(gpu, async () => {
          if (!this.stale.has(gpu)) return;
          // Back off (randomly, longer after each lost race in a row) so two replicas racing
          // for the same GPU fall out of step instead of invalidating each other's writes.
          const streak = this.conflictStreak.get(gpu) ?? 0;
          const backoffMs = this.opts.conflictBackoffMs ?? 16;
          if (streak > 1 && backoffMs > 0) await abortableDelay(this.random() * Math.min(64, backoffMs * 2 ** (streak - 2)), signal);
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

  /**
   * The GPUs other replicas are filling now, as far as this one can tell: within the last
   * contendedForMs a commit to them lost a race while this replica had them in view, or another
   * replica granted on them (read with the grant's time). The replica preference ranks them
   * lower, so the next choice goes to a GPU no one else is filling instead of racing for the same
   * one again, or being drawn to another replica's GPU in use by packing.
   */
  contendedGpus(): readonly string[] {
    if (this.contendedAtMs.size === 0) return NO_GPUS;
    const since = this.opts.now() - this.contendedForMs();
    for (const [gpu, at] of this.contendedAtMs) if (at <= since) this.contendedAtMs.delete(gpu);
    return [...this.contendedAtMs.keys()];
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
    this.syncedAtMs.set(record.gpuUuid, this.opts.now());
    this.epochs.set(record.gpuUuid, (this.epochs.get(record.gpuUuid) ?? 0) + 1);
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
      // Another replica's grant (this one's are in the ledger already): a recent one means it is filling this GPU.
      if (entry.createdAtMs > nowMs - this.contendedForMs() && entry.createdAtMs > (this.contendedAtMs.get(gpuUuid) ?? -Infinity)) this.contendedAtMs.set(gpuUuid, entry.createdAtMs);
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
      this.syncedAtMs.set(gpuUuid, this.opts.now());
      this.epochs.set(gpuUuid, (this.epochs.get(gpuUuid) ?? 0) + 1);
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
          this.stale.set(gpuUuid, ++this.staleMarks);
        }
      }
      return 0;
    });
  }

  /** This replica has not read or written the GPU's object lately. */
  private viewIsOld(gpuUuid: string): boolean {
    return this.opts.now() - (this.syncedAtMs.get(gpuUuid) ?? this.listedAtMs) > this.oldViewMs();
  }

  private contendedForMs(): number {
    return this.opts.contendedForMs ?? 2000;
  }

  private oldViewMs(): number {
    return this.opts.oldViewMs ?? 1000;
  }

  private pruneTainted(): void {
    for (const id of this.tainted) if (this.opts.ledger.get(id) === null) this.tainted.delete(id);
  }
}
