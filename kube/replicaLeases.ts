/**
 * Each replica holds a Lease of its own, renewed while it runs: the live replicas (Lease
 * renewed within its duration) share the GPUs between them (kube/liveReplicas.ts). With
 * self-managed certificates the Lease also reports which CA signed the certificate the
 * replica serves: a CA rotation keeps the old CA trusted until every live replica reports the
 * new one. Dead replicas' Leases lapse and are deleted.
 */
import type { Logger } from 'pino';
import { V1MicroTime } from '@kubernetes/client-node';
import type { V1Lease } from '@kubernetes/client-node';
import { ApiFailureKind, classifyApiError, describeApiFailure } from './kubeApis.js';
import type { KubeApis } from './kubeApis.js';

export const ReplicaLeaseLabel = { ManagedBy: 'app.kubernetes.io/managed-by', Role: 'mps-injector.io/role' } as const;
export const REPLICA_LEASE_SELECTOR = `${ReplicaLeaseLabel.ManagedBy}=mps-injector,${ReplicaLeaseLabel.Role}=replica`;
export const ReplicaLeaseAnnotation = {
  /** SHA-256 fingerprint of the CA that signed the certificate the replica serves. */
  ServingCa: 'mps-injector.io/serving-ca',
  /** Serial of that certificate. */
  ServingSerial: 'mps-injector.io/serving-serial',
} as const;

export interface ReplicaReport {
  replica: string;
  servingCa: string | null;
  servingSerial: string | null;
  renewedAtMs: number;
  /** Renewed within its lease duration. */
  live: boolean;
}

/** Lease name of a replica: a DNS label derived from its name (the pod name). */
export function replicaLeaseName(replica: string): string {
  const slug = replica
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '');
  return `mps-injector-replica-${slug}`.slice(0, 253).replace(/-+$/, '');
}

function timeMs(value: unknown): number | null {
  if (value instanceof Date) return value.getTime();
  if (typeof value === 'string') {
    const ms = Date.parse(value);
    return Number.isFinite(ms) ? ms : null;
  }
  return null;
}

/** Read a Lease as a replica report at nowMs. */
export function replicaReportOf(lease: V1Lease, nowMs: number): ReplicaReport {
  const renewedAtMs = timeMs(lease.spec?.renewTime) ?? 0;
  const durationMs = (lease.spec?.leaseDurationSeconds ?? 0) * 1000;
  return {
    replica: lease.spec?.holderIdentity ?? lease.metadata?.name ?? '',
    servingCa: lease.metadata?.annotations?.[ReplicaLeaseAnnotation.ServingCa] ?? null,
    servingSerial: lease.metadata?.annotations?.[ReplicaLeaseAnnotation.ServingSerial] ?? null,
    renewedAtMs,
    live: renewedAtMs + durationMs > nowMs,
  };
}

export interface ReplicaLeasesOptions {
  apis: KubeApis;
  namespace: string;
  replica: string;
  leaseDurationSeconds: number;
  now: () => number;
  logger: Logger;
}

export interface ServingReport {
  caFingerprint: string;
  serialHex: string;
}

export class ReplicaLeases {
  private resourceVersion: string | null = null;
  private serving: ServingReport | null = null;
  /** Writes of this Lease go out one at a time (the membership loop and the certificate check share it). */
  private writing: Promise<void> = Promise.resolve();
  private readonly opts: ReplicaLeasesOptions;
  readonly leaseName: string;

  constructor(opts: ReplicaLeasesOptions) {
    this.opts = opts;
    this.leaseName = replicaLeaseName(opts.replica);
  }

  /** Renew this replica's Lease with what it serves (create it on first use). */
  report(serving: ServingReport, signal?: AbortSignal): Promise<void> {
    this.serving = serving;
    return this.renew(signal);
  }

  /** Renew this replica's Lease (create it on first use), keeping what it last reported serving. */
  renew(signal?: AbortSignal): Promise<void> {
    const write = this.writing.catch(() => undefined).then(() => this.write(signal));
    this.writing = write;
    return write;
  }

  private async write(signal?: AbortSignal): Promise<void> {
    const { apis, namespace } = this.opts;
    const serving = this.serving;
    for (let attempt = 1; attempt <= 3; attempt++) {
      const body: V1Lease = {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: {
          name: this.leaseName,
          namespace,
          ...(this.resourceVersion !== null ? { resourceVersion: this.resourceVersion } : {}),
          labels: { [ReplicaLeaseLabel.ManagedBy]: 'mps-injector', [ReplicaLeaseLabel.Role]: 'replica' },
          ...(serving !== null ? { annotations: { [ReplicaLeaseAnnotation.ServingCa]: serving.caFingerprint, [ReplicaLeaseAnnotation.ServingSerial]: serving.serialHex } } : {}),
        },
        spec: {
          holderIdentity: this.opts.replica,
          leaseDurationSeconds: this.opts.leaseDurationSeconds,
          renewTime: new V1MicroTime(this.opts.now()),
        },
      };
      try {
        const written =
          this.resourceVersion === null
            ? await apis.coordination.createNamespacedLease({ namespace, body }, apis.callOptions(signal))
            : await apis.coordination.replaceNamespacedLease({ name: this.leaseName, namespace, body }, apis.callOptions(signal));
        this.resourceVersion = written.metadata?.resourceVersion ?? null;
        return;
      } catch (err) {
        const failure = classifyApiError(err);
        if (failure.kind === ApiFailureKind.AlreadyExists || failure.kind === ApiFailureKind.Conflict) {
          const current = await apis.coordination.readNamespacedLease({ name: this.leaseName, namespace }, apis.callOptions(signal)).catch(() => null);
          this.resourceVersion = current?.metadata?.resourceVersion ?? null;
          continue;
        }
        if (failure.kind === ApiFailureKind.NotFound) {
          this.resourceVersion = null;
          continue;
        }
        throw describeApiFailure(`renewing the replica Lease ${namespace}/${this.leaseName}`, failure, apis.server);
      }
    }
  }

  /** Every replica's report; Leases that lapsed long ago (10 durations) are deleted on the way. */
  async list(signal?: AbortSignal): Promise<ReplicaReport[]> {
    const { apis, namespace } = this.opts;
    let leases: V1Lease[];
    try {
      leases = (await apis.coordination.listNamespacedLease({ namespace, labelSelector: REPLICA_LEASE_SELECTOR }, apis.callOptions(signal))).items;
    } catch (err) {
      throw describeApiFailure(`listing the replica Leases in ${namespace}`, classifyApiError(err), apis.server);
    }
    const nowMs = this.opts.now();
    const reports: ReplicaReport[] = [];
    for (const lease of leases) {
      const report = replicaReportOf(lease, nowMs);
      const longGone = report.renewedAtMs + 10 * (lease.spec?.leaseDurationSeconds ?? 0) * 1000 < nowMs;
      if (longGone && lease.metadata?.name !== undefined && lease.metadata.name !== this.leaseName) {
        await apis.coordination.deleteNamespacedLease({ name: lease.metadata.name, namespace }, apis.callOptions(signal)).catch((err: unknown) => {
          this.opts.logger.debug({ lease: lease.metadata?.name, err: classifyApiError(err).detail }, 'could not delete a lapsed replica Lease');
        });
        continue;
      }
      reports.push(report);
    }
    return reports;
  }

  /** Delete this replica's Lease (clean shutdown): a rotation need not wait for it to lapse. */
  remove(signal?: AbortSignal): Promise<void> {
    const removal = this.writing.catch(() => undefined).then(() => this.delete(signal));
    this.writing = removal;
    return removal;
  }

  private async delete(signal?: AbortSignal): Promise<void> {
    const { apis, namespace } = this.opts;
    try {
      await apis.coordination.deleteNamespacedLease({ name: this.leaseName, namespace }, apis.callOptions(signal));
    } catch (err) {
      const failure = classifyApiError(err);
      if (failure.kind !== ApiFailureKind.NotFound) this.opts.logger.debug({ lease: this.leaseName, err: failure.detail }, 'could not delete the replica Lease; it lapses on its own');
    }
    this.resourceVersion = null;
  }
}
