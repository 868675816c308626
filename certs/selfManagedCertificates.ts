/**
 * Self-managed certificates (certificates.mode: self-managed): the CA and serving pair live in
 * a Secret shared by the replicas; each replica writes the serving pair to the TLS files it
 * serves (the server reloads them on change), keeps the MutatingWebhookConfiguration's
 * caBundle equal to the Secret's bundle, renews the serving certificate before it expires,
 * and rotates the CA without a window in which the API server distrusts a replica.
 *
 * One reconcile pass, repeated on a timer:
 *  1. read the Secret, or create it (a 409 on create: another replica won; read its Secret);
 *  2. renew or rotate when due, by compare-and-swap replace (a 409: reread and decide again);
 *  3. patch caBundle into every webhook of the configuration whose bundle differs;
 *  4. write tls.crt/tls.key when they differ from the Secret's pair (after step 3, so the
 *     API server trusts a new CA before any replica serves a certificate signed by it);
 *  5. renew this replica's Lease with the CA of the certificate it serves;
 *  6. during a CA rotation: once every live replica reports the new CA, drop the old one
 *     from the Secret and the caBundle.
 */
import { X509Certificate, randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import type { V1MutatingWebhookConfiguration, V1Secret } from '@kubernetes/client-node';
import type { Config } from '../config/schema.js';
import type { PemPair } from './issue.js';
import { ApiFailureKind, KubeApiError, classifyApiError, describeApiFailure, withTransientRetry } from '../kube/kubeApis.js';
import type { KubeApis } from '../kube/kubeApis.js';
import {
  CertificateAction,
  applyCertificatePlan,
  caBundleOf,
  decodeCertificateSecret,
  encodeCertificateSecretData,
  fingerprintOf,
  freshCertificates,
  planCertificates,
} from './certificateSecret.js';
import type { CertificateSettings, CertificateState } from './certificateSecret.js';
import { ReplicaLeases } from '../kube/replicaLeases.js';

export interface SelfManagedCertificatesOptions {
  apis: KubeApis;
  namespace: string;
  certificates: Config['certificates'];
  tlsCertFile: string;
  tlsKeyFile: string;
  /** This replica's name (its pod name). */
  replica: string;
  /** This replica's Lease, when something else renews it too (default: one of its own). */
  leases?: ReplicaLeases;
  logger: Logger;
  now?: () => Date;
  /** Seconds between reconcile passes (default 60). */
  checkIntervalSeconds?: number;
  /** Replica Lease duration (default 3 check intervals; unused when `leases` is given). */
  leaseDurationSeconds?: number;
  /** The PEM the server serves now, when it can tell (else what was last written is reported). */
  servedCertificatePem?: () => string | null;
  /** Called after new TLS files were written. */
  onFilesWritten?: (pair: PemPair) => void;
}

export interface ReconcileReport {
  /** What was done to the Secret: created, renewed, rotated, regenerated, finished rotation, or nothing. */
  secret: 'created' | 'adopted' | 'unchanged' | 'renewed-leaf' | 'rotated-ca' | 'regenerated' | 'retired-previous-ca';
  caBundlePatched: boolean;
  filesWritten: boolean;
  /** A CA rotation is waiting for these replicas to serve the new CA. */
  waitingFor: string[];
}

async function writeFileAtomically(path: string, content: string, mode: number): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temporary = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await writeFile(temporary, content, { mode, flag: 'wx' });
    await chmod(temporary, mode);
    await rename(temporary, path);
  } catch (err) {
    await rm(temporary, { force: true }).catch(() => undefined);
    throw new Error(`cannot write ${path}: ${(err as Error).message}; mount a writable volume (an emptyDir) at ${dirname(path)} in self-managed mode`, { cause: err });
  }
}

export class SelfManagedCertificates {
  private readonly opts: SelfManagedCertificatesOptions;
  private readonly leases: ReplicaLeases;
  private readonly settings: CertificateSettings;
  private readonly now: () => Date;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> = Promise.resolve();
  private stopped = false;
  private lastWrittenCertPem: string | null = null;
  /** Successful passes; readiness needs one. */
  passes = 0;
  lastError: string | null = null;

  constructor(opts: SelfManagedCertificatesOptions) {
    this.opts = opts;
    this.now = opts.now ?? (() => new Date());
    const interval = opts.checkIntervalSeconds ?? 60;
    this.leases =
      opts.leases ??
      new ReplicaLeases({
        apis: opts.apis,
        namespace: opts.namespace,
        replica: opts.replica,
        leaseDurationSeconds: opts.leaseDurationSeconds ?? Math.max(15, Math.ceil(interval * 3)),
        now: () => this.now().getTime(),
        logger: opts.logger,
      });
    this.settings = {
      service: opts.certificates.serviceName,
      namespace: opts.namespace,
      caValidityDays: opts.certificates.caValidityDays,
      leafValidityDays: opts.certificates.leafValidityDays,
      renewAtFraction: opts.certificates.renewAtFraction,
    };
  }

  /** First pass (throws when it fails: the server cannot serve without certificates), then a pass per interval. */
  async start(signal?: AbortSignal): Promise<ReconcileReport> {
    const report = await this.reconcile(signal);
    this.schedule();
    return report;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running.catch(() => undefined);
    await this.leases.remove(AbortSignal.timeout(2000));
  }

  /** One pass; passes never overlap. */
  reconcile(signal?: AbortSignal): Promise<ReconcileReport> {
    const pass = this.running.catch(() => undefined).then(() => this.reconcileOnce(signal));
    this.running = pass;
    return pass;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.reconcile()
        .catch((err: unknown) => {
          this.lastError = (err as Error).message;
          this.opts.logger.error({ err: this.lastError }, 'certificate check failed; serving the current certificate and retrying at the next check');
        })
        .finally(() => this.schedule());
    }, (this.opts.checkIntervalSeconds ?? 60) * 1000);
    this.timer.unref();
  }

  private async reconcileOnce(signal?: AbortSignal): Promise<ReconcileReport> {
    const { state, outcome } = await this.settleSecret(signal);
    let secret = outcome;
    let current = state.state;
    const caBundlePatched = await this.ensureCaBundle(caBundleOf(current), signal);
    const filesWritten = await this.ensureFiles(current.serving);
    await this.reportServing(current, signal);

    let waitingFor: string[] = [];
    if (current.previousCaCertPem !== null) {
      const newCa = fingerprintOf(current.ca.certPem);
      const reports = (await this.leases.list(signal)).filter((r) => r.live);
      waitingFor = reports.filter((r) => r.servingCa !== newCa).map((r) => r.replica);
      if (waitingFor.length === 0) {
        const retired = await this.retirePreviousCa(state, signal);
        if (retired !== null) {
          current = retired;
          secret = 'retired-previous-ca';
          await this.ensureCaBundle(caBundleOf(current), signal);
        }
      } else {
        this.opts.logger.info({ waitingFor }, 'CA rotation: the previous CA stays trusted until these replicas serve a certificate from the new CA');
      }
    }
    this.passes++;
    this.lastError = null;
    return { secret, caBundlePatched, filesWritten, waitingFor };
  }

  private secretBody(state: CertificateState, resourceVersion: string | null): V1Secret {
    return {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'kubernetes.io/tls',
      metadata: {
        name: this.opts.certificates.secretName,
        namespace: this.opts.namespace,
        ...(resourceVersion !== null ? { resourceVersion } : {}),
        labels: { 'app.kubernetes.io/managed-by': 'mps-injector' },
      },
      data: encodeCertificateSecretData(state),
    };
  }

  private secretAction(what: string): string {
    return `${what} the certificate Secret ${this.opts.namespace}/${this.opts.certificates.secretName}`;
  }

  /** Read the Secret, or null when it does not exist. */
  private async readSecret(signal?: AbortSignal): Promise<{ state: CertificateState | null; resourceVersion: string } | null> {
    const { apis } = this.opts;
    try {
      const secret = await withTransientRetry(
        () => apis.core.readNamespacedSecret({ name: this.opts.certificates.secretName, namespace: this.opts.namespace }, apis.callOptions(signal)),
        { signal, retries: 2 },
      );
      return { state: decodeCertificateSecret(secret.data), resourceVersion: secret.metadata?.resourceVersion ?? '' };
    } catch (err) {
      const failure = classifyApiError(err);
      if (failure.kind === ApiFailureKind.NotFound) return null;
      throw describeApiFailure(this.secretAction('reading'), failure, apis.server);
    }
  }

  /** Steps 1 and 2: a current Secret, created or renewed as needed. */
  private async settleSecret(signal?: AbortSignal): Promise<{ state: { state: CertificateState; resourceVersion: string }; outcome: ReconcileReport['secret'] }> {
    const { apis } = this.opts;
    let adopted = false;
    for (let attempt = 1; attempt <= 5; attempt++) {
      const now = this.now();
      const read = await this.readSecret(signal);
      if (read === null) {
        const fresh = freshCertificates(this.settings, now);
        try {
          const created = await apis.core.createNamespacedSecret({ namespace: this.opts.namespace, body: this.secretBody(fresh, null) }, apis.callOptions(signal));
          this.opts.logger.info({ secret: this.opts.certificates.secretName }, 'created the webhook CA and serving certificate');
          return { state: { state: fresh, resourceVersion: created.metadata?.resourceVersion ?? '' }, outcome: 'created' };
        } catch (err) {
          const failure = classifyApiError(err);
          if (failure.kind === ApiFailureKind.AlreadyExists) {
            adopted = true;
            continue; // another replica created it first: use theirs
          }
          throw describeApiFailure(this.secretAction('creating'), failure, apis.server);
        }
      }
      const plan =
        read.state === null ? { action: CertificateAction.Regenerate, reason: 'the Secret lacks tls.crt, tls.key, ca.crt or ca.key' } : planCertificates(read.state, this.settings, now);
      if (plan.action === CertificateAction.None && read.state !== null) {
        return { state: { state: read.state, resourceVersion: read.resourceVersion }, outcome: adopted ? 'adopted' : 'unchanged' };
      }
      const next = read.state === null ? freshCertificates(this.settings, now) : applyCertificatePlan(read.state, plan, this.settings, now);
      try {
        const replaced = await apis.core.replaceNamespacedSecret(
          { name: this.opts.certificates.secretName, namespace: this.opts.namespace, body: this.secretBody(next, read.resourceVersion) },
          apis.callOptions(signal),
        );
        this.opts.logger.info({ secret: this.opts.certificates.secretName, action: plan.action, reason: plan.reason }, 'updated the webhook certificates');
        const outcome = plan.action === CertificateAction.RenewLeaf ? 'renewed-leaf' : plan.action === CertificateAction.RotateCa ? 'rotated-ca' : 'regenerated';
        return { state: { state: next, resourceVersion: replaced.metadata?.resourceVersion ?? '' }, outcome };
      } catch (err) {
        const failure = classifyApiError(err);
        if (failure.kind === ApiFailureKind.Conflict || failure.kind === ApiFailureKind.NotFound) continue; // another replica renewed first: decide again on theirs
        throw describeApiFailure(this.secretAction('updating'), failure, apis.server);
      }
    }
    throw new KubeApiError(
      `${this.secretAction('settling')} failed: it kept changing under this replica (5 tries); check for another controller writing it`,
      { kind: ApiFailureKind.Conflict, status: 409, detail: 'repeated conflicts' },
    );
  }

  /** Step 3: patch every webhook whose caBundle differs. True when a patch was sent. */
  private async ensureCaBundle(bundlePem: string, signal?: AbortSignal): Promise<boolean> {
    const { apis } = this.opts;
    const name = this.opts.certificates.mutatingWebhookConfigurationName;
    const wanted = Buffer.from(bundlePem, 'utf8').toString('base64');
    let configuration: V1MutatingWebhookConfiguration;
    try {
      configuration = await withTransientRetry(() => apis.admissionRegistration.readMutatingWebhookConfiguration({ name }, apis.callOptions(signal)), { signal, retries: 2 });
    } catch (err) {
      const failure = classifyApiError(err);
      if (failure.kind === ApiFailureKind.NotFound) {
        this.opts.logger.warn(
          { mutatingWebhookConfiguration: name },
          `MutatingWebhookConfiguration ${name} not found, so its caBundle cannot be set; install it (the Helm chart does) or set certificates.mutatingWebhookConfigurationName`,
        );
        return false;
      }
      throw describeApiFailure(`reading MutatingWebhookConfiguration ${name}`, failure, apis.server);
    }
    const patch: object[] = [];
    (configuration.webhooks ?? []).forEach((webhook, index) => {
      if (webhook.clientConfig?.caBundle === wanted) return;
      patch.push({ op: 'test', path: `/webhooks/${index}/name`, value: webhook.name });
      patch.push({ op: 'add', path: `/webhooks/${index}/clientConfig/caBundle`, value: wanted });
    });
    if (patch.length === 0) return false;
    try {
      await apis.admissionRegistration.patchMutatingWebhookConfiguration({ name, body: patch }, apis.callOptions(signal, 'application/json-patch+json'));
    } catch (err) {
      throw describeApiFailure(`setting caBundle in MutatingWebhookConfiguration ${name}`, classifyApiError(err), apis.server);
    }
    this.opts.logger.info({ mutatingWebhookConfiguration: name, webhooks: patch.length / 2 }, 'caBundle updated in the webhook configuration');
    return true;
  }

  /** Step 4: write the serving pair when the files differ. */
  private async ensureFiles(serving: PemPair): Promise<boolean> {
    const onDisk = await readFile(this.opts.tlsCertFile, 'utf8').catch(() => null);
    const keyOnDisk = await readFile(this.opts.tlsKeyFile, 'utf8').catch(() => null);
    if (onDisk === serving.certPem && keyOnDisk === serving.keyPem) {
      this.lastWrittenCertPem = serving.certPem;
      return false;
    }
    // Key first: a reader that reacts to the certificate finds its key in place.
    await writeFileAtomically(this.opts.tlsKeyFile, serving.keyPem, 0o600);
    await writeFileAtomically(this.opts.tlsCertFile, serving.certPem, 0o644);
    this.lastWrittenCertPem = serving.certPem;
    this.opts.logger.info({ certFile: this.opts.tlsCertFile, serial: new X509Certificate(serving.certPem).serialNumber.toLowerCase() }, 'serving certificate written');
    this.opts.onFilesWritten?.(serving);
    return true;
  }

  /** Step 5: report the CA of the certificate served (or, if the server cannot tell, written). */
  private async reportServing(state: CertificateState, signal?: AbortSignal): Promise<void> {
    const served = this.opts.servedCertificatePem?.() ?? this.lastWrittenCertPem ?? state.serving.certPem;
    const leaf = new X509Certificate(served);
    const candidates = [state.ca.certPem, ...(state.previousCaCertPem !== null ? [state.previousCaCertPem] : [])];
    const issuer = candidates.find((ca) => {
      const caX509 = new X509Certificate(ca);
      return leaf.checkIssued(caX509) && leaf.verify(caX509.publicKey);
    });
    await this.leases.report({ caFingerprint: issuer !== undefined ? fingerprintOf(issuer) : 'unknown', serialHex: leaf.serialNumber.toLowerCase() }, signal);
  }

  /** Step 6: drop the previous CA (compare-and-swap; a conflict leaves it for the next pass). */
  private async retirePreviousCa(read: { state: CertificateState; resourceVersion: string }, signal?: AbortSignal): Promise<CertificateState | null> {
    const { apis } = this.opts;
    const next: CertificateState = { ...read.state, previousCaCertPem: null };
    try {
      await apis.core.replaceNamespacedSecret(
        { name: this.opts.certificates.secretName, namespace: this.opts.namespace, body: this.secretBody(next, read.resourceVersion) },
        apis.callOptions(signal),
      );
    } catch (err) {
      const failure = classifyApiError(err);
      if (failure.kind === ApiFailureKind.Conflict) return null;
      throw describeApiFailure(this.secretAction('retiring the previous CA in'), failure, apis.server);
    }
    this.opts.logger.info({ secret: this.opts.certificates.secretName }, 'CA rotation finished: every replica serves the new CA; the previous CA is no longer trusted');
    return next;
  }
}
