/**
 * The one entry point the server calls when `cluster.enabled`: informers for injected pods
 * (confirm, release, rebuild reservations), nodes (schedulable, labels) and MPS control-daemon
 * pods (which nodes have a Ready one), the durable
 * reservation store shared by replicas, dcgm-exporter discovery, and self-managed
 * certificates. Everything that talks to the API server is behind this call.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { KubeConfig } from '@kubernetes/client-node';
import type { V1Node, V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { NodeState } from '../domain/inventory.js';
import type { MetricsSource } from '../dcgm/sources.js';
import type { PemPair } from '../certs/issue.js';
import type { ReservationLedger } from '../reservations/ledger.js';
import type { ReservationStore } from '../reservations/reservationStore.js';
import type { GpuPreference } from '../domain/slot.js';
import { Label } from '../domain/names.js';
import { ConfigMapReservationStore } from '../reservations/configMapReservationStore.js';
import type { ReservationStoreStats } from '../reservations/configMapReservationStore.js';
import { DiscoveredExporterSource, exporterPodOf, exporterUrl } from '../dcgm/exporterDiscovery.js';
import type { ExporterPod } from '../dcgm/exporterDiscovery.js';
import { createKubeApis } from './kubeApis.js';
import { LiveReplicas } from './liveReplicas.js';
import { MpsDaemonTable, isMpsDaemonPodReady } from './mpsDaemons.js';
import { NodeStateTable } from './nodeStates.js';
import { PodReservationTracker, isPodFinished } from '../reservations/podReservations.js';
import { EXPIRY_REPORT_MS, EXPIRY_SWEEP_MS, sweepExpiredReservations } from '../reservations/sweepExpiredReservations.js';
import { ReplicaLeases } from './replicaLeases.js';
import { ApiFailureKind, classifyApiError } from './kubeApis.js';
import { ResilientInformer } from './resilientInformer.js';
import { SelfManagedCertificates } from '../certs/selfManagedCertificates.js';
import { DecisionKeySecret } from './decisionKeySecret.js';
import type { DecisionKeyRing } from '../domain/decisionRecord.js';
import { storedPodKey } from '../domain/decisionRecord.js';

export interface ClusterIntegrationDeps {
  ledger: ReservationLedger;
  logger: Logger;
  /** Where the API server is; default: in-cluster service account, else $KUBECONFIG / ~/.kube/config. */
  kubeConfig?: KubeConfig;
  /** Clock of the ledger (epoch ms); the admission path must use the same. */
  now?: () => number;
  /** This replica's name; default $POD_NAME, else the host name (a pod's host name is its name). */
  replicaName?: string;
  /** Metrics URL of an exporter pod; default http://<pod IP>:<metrics.discovery.port><path>. */
  exporterUrlFor?: (pod: ExporterPod) => string;
  /** The certificate the server serves now (self-managed mode reports its CA per replica). */
  servedCertificatePem?: () => string | null;
  /** Called after self-managed certificates were written to the TLS files. */
  onCertificatesWritten?: (pair: PemPair) => void;
  /** Told after each change the integration has applied (logs, metrics, tests). */
  onChange?: (change: ClusterChange) => void;
  /** Background periods; defaults suit production. */
  intervals?: {
    /**
     * Drop unconfirmed reservations past their expiry (default EXPIRY_SWEEP_MS, 50 ms). Frequent on purpose: a
     * reservation that is due but still in the ledger makes every placement pass over its GPU
     * recompute that GPU's totals, and the sweep itself only visits pending reservations.
     */
    expireMs?: number;
    /** Remove ended reservations from durable objects (default 30 s). */
    collectGarbageMs?: number;
    /** Reread the decision key Secret (default 60 s). */
    keyCheckMs?: number;
    /** Check again that pods which left the watch's selection still exist (default 30 s). */
    podCheckMs?: number;
    /** Reread every durable object (default 5 min). */
    resyncMs?: number;
    /** Self-managed certificate check (default 60 s). */
    certificateCheckSeconds?: number;
    /** Duration of this replica's Lease (default 30 s); it is renewed, and the live replicas listed, every third of it. */
    replicaLeaseSeconds?: number;
    /** A watch cut off this long makes isHealthy() false (default 60 s). */
    unhealthyAfterMs?: number;
  };
}

/** A change the integration applied. */
export type ClusterChange =
  | { kind: 'pod'; key: string; deleted: boolean }
  | { kind: 'node'; name: string; deleted: boolean }
  /** An MPS control-daemon pod changed: `ready` says whether it is Ready now (false once deleted). */
  | { kind: 'mps-daemon'; key: string; node: string; ready: boolean; deleted: boolean }
  | { kind: 'exporter'; key: string; deleted: boolean }
  | { kind: 'expired'; reservationIds: string[] }
  /** A pod carried a decision the webhook did not issue (reported once per pod). */
  | { kind: 'forged'; key: string }
  /** A pod holding capacity left the watch's selection; it is checked by GET until it ends. */
  | { kind: 'pod-unwatched'; key: string }
  | { kind: 'garbage-collected'; entries: number }
  | { kind: 'replicas'; replicas: readonly string[] };

export interface ClusterHealth {
  ready: boolean;
  informers: Record<string, { healthy: boolean; lastError: string | null }>;
  certificates: { passes: number; lastError: string | null } | null;
  reservations: ReservationStoreStats;
  trackedPods: number;
  /** Pods seen carrying a decision the webhook did not issue. */
  forgedPods: number;
  /** The live replicas this one shares the GPUs with (itself included), from their Leases. */
  replicas: readonly string[];
}

export interface ClusterIntegration {
  /** Commits reservations through the API server (compare-and-swap per GPU). */
  store: ReservationStore;
  /** The GPUs this replica fills first, shared with the live replicas (null: it is the only one). Cheap: changes only with the replicas. */
  preference(): GpuPreference | null;
  /** Node facts by name for the inventory (a frozen snapshot; cheap). */
  nodes(): Readonly<Record<string, NodeState>>;
  /** Exporter discovery when metrics.source is `discovery`, else null. */
  metricsSource: MetricsSource | null;
  /** Resolves once pods and nodes are listed, the ledger is rebuilt, and (self-managed) certificates are in place. */
  ready: Promise<void>;
  /** Resolves once the TLS files hold the self-managed pair (at once in `files` mode): start the HTTPS server after it. */
  certificatesReady: Promise<void>;
  /** Resolves once the shared decision keys are loaded (or created): start the HTTPS server after it. */
  keysReady: Promise<void>;
  /** The decision keys the replicas share, as last read from their Secret. */
  decisionKeys(): DecisionKeyRing;
  /** Ready, and no watch cut off from the API server for more than a minute. */
  isHealthy(): boolean;
  health(): ClusterHealth;
  stop(): Promise<void>;
}

/** Pods the injector labelled; the cluster-wide pod watch selects only these. */
export const INJECTED_POD_SELECTOR = `${Label.Injected}=true`;

const SERVICE_ACCOUNT_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

/** The webhook's namespace: configured, else $POD_NAMESPACE, the service account's, the kubeconfig context's, or "default". */
export function resolveNamespace(config: Config, kubeConfig: KubeConfig): string {
  if (config.cluster.namespace !== '') return config.cluster.namespace;
  const fromEnv = process.env.POD_NAMESPACE?.trim();
  if (fromEnv) return fromEnv;
  try {
    const fromFile = readFileSync(SERVICE_ACCOUNT_NAMESPACE_FILE, 'utf8').trim();
    if (fromFile) return fromFile;
  } catch {
    // not in a pod
  }
  const context = kubeConfig.getContextObject(kubeConfig.getCurrentContext());
  return context?.namespace || 'default';
}

function loadDefaultKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromDefault();
  return kc;
}

export async function startClusterIntegration(config: Config, deps: ClusterIntegrationDeps): Promise<ClusterIntegration> {
  const logger = deps.logger.child({ component: 'cluster' });
  const kubeConfig = deps.kubeConfig ?? loadDefaultKubeConfig();
  const apis = createKubeApis(kubeConfig);
  const namespace = resolveNamespace(config, kubeConfig);
  const now = deps.now ?? Date.now;
  const replica = deps.replicaName ?? (process.env.POD_NAME?.trim() || hostname());
  const ttlMs = config.reservations.ttlSeconds * 1000;
  const { ledger } = deps;
  const notify = deps.onChange ?? (() => undefined);
  const unhealthyAfterMs = deps.intervals?.unhealthyAfterMs ?? 60_000;

  const keySecret = new DecisionKeySecret({ apis, namespace, secretName: config.decisions.keySecretName, logger });

  // Pods carrying decisions (labelled by the injector, so only they are listed and held):
  // confirm, release and rebuild reservations. Only sealed decisions count.
  const tracker = new PodReservationTracker({ ledger, now, logger, keys: () => keySecret.ring(), events: { onForged: (key) => notify({ kind: 'forged', key }) } });
  /**
   * A label-selected watch reports a pod that leaves the selection (its injected label
   * removed) as deleted, and a relist reports it with its old labels: so a deletion of a pod
   * that holds capacity is checked with a GET before its reservation is released. A pod that
   * still exists is checked again every `podCheckMs` until it really ends.
   */
  const unwatched = new Map<string, { namespace: string; name: string }>();
  const checkPodGone = async (uid: string, where: { namespace: string; name: string }): Promise<void> => {
    let gone: boolean;
    try {
      const live = await apis.core.readNamespacedPod({ name: where.name, namespace: where.namespace }, apis.callOptions(stopController.signal));
      gone = live.metadata?.uid !== uid || isPodFinished(live);
    } catch (err) {
      const failure = classifyApiError(err);
      if (failure.kind !== ApiFailureKind.NotFound) {
        unwatched.set(uid, where);
        logger.warn({ pod: `${where.namespace}/${where.name}`, err: failure.detail }, 'could not check whether a pod holding GPU capacity still exists; its reservation stays until a check succeeds');
        return;
      }
      gone = true;
    }
    const key = `${where.namespace}/${where.name}`;
    if (gone) {
      unwatched.delete(uid);
      tracker.remove({ metadata: { uid, namespace: where.namespace, name: where.name } });
      notify({ kind: 'pod', key, deleted: true });
    } else if (!unwatched.has(uid)) {
      unwatched.set(uid, where);
      logger.warn({ pod: key, uid }, `pod left the ${INJECTED_POD_SELECTOR} selection while it still runs (its label was removed); it keeps its reservation until it ends`);
      notify({ kind: 'pod-unwatched', key });
    }
  };
  const podInformer = new ResilientInformer<V1Pod>({
    name: 'pods',
    kubeConfig,
    path: '/api/v1/pods',
    labelSelector: INJECTED_POD_SELECTOR,
    list: () => apis.core.listPodForAllNamespaces({ labelSelector: INJECTED_POD_SELECTOR }),
    handlers: {
      onUpsert: (pod) => {
        if (pod.metadata?.uid !== undefined) unwatched.delete(pod.metadata.uid);
        tracker.upsert(pod);
        notify({ kind: 'pod', key: storedPodKey(pod), deleted: false });
      },
      onDelete: (pod) => {
        const uid = pod.metadata?.uid;
        if (uid === undefined || tracker.boundPodKey(uid) === null || isPodFinished(pod)) {
          tracker.remove(pod);
          notify({ kind: 'pod', key: storedPodKey(pod), deleted: true });
          return;
        }
        void checkPodGone(uid, { namespace: pod.metadata?.namespace ?? '', name: pod.metadata?.name ?? '' });
      },
    },
    logger,
  });
  let podsSynced = false;

  // Nodes: schedulable (cordoned, NotReady) and labels.
  const nodeTable = new NodeStateTable();
  const nodeInformer = new ResilientInformer<V1Node>({
    name: 'nodes',
    kubeConfig,
    path: '/api/v1/nodes',
    list: () => apis.core.listNode(),
    handlers: {
      onUpsert: (node) => {
        nodeTable.upsert(node);
        notify({ kind: 'node', name: node.metadata?.name ?? '', deleted: false });
      },
      onDelete: (node) => {
        nodeTable.remove(node);
        notify({ kind: 'node', name: node.metadata?.name ?? '', deleted: true });
      },
    },
    logger,
  });

  // MPS control-daemon pods: a node without a Ready one gets no pods (cluster.mpsDaemon).
  const daemonWatch = config.cluster.mpsDaemon;
  const daemonNamespace = daemonWatch.namespace !== '' ? daemonWatch.namespace : namespace;
  const daemons = new MpsDaemonTable();
  const daemonChanged = (pod: V1Pod, deleted: boolean): void => {
    if (deleted ? daemons.remove(pod) : daemons.upsert(pod)) nodeTable.setMpsDaemonNodes(daemons.readyNodes());
    notify({ kind: 'mps-daemon', key: storedPodKey(pod), node: pod.spec?.nodeName ?? '', ready: !deleted && isMpsDaemonPodReady(pod), deleted });
  };
  const daemonInformer = daemonWatch.required
    ? new ResilientInformer<V1Pod>({
        name: `MPS daemon pods (${daemonNamespace}, ${daemonWatch.labelSelector})`,
        kubeConfig,
        path: `/api/v1/namespaces/${encodeURIComponent(daemonNamespace)}/pods`,
        list: () => apis.core.listNamespacedPod({ namespace: daemonNamespace, labelSelector: daemonWatch.labelSelector }),
        labelSelector: daemonWatch.labelSelector,
        handlers: {
          onUpsert: (pod) => daemonChanged(pod, false),
          onDelete: (pod) => daemonChanged(pod, true),
        },
        logger,
      })
    : null;
  // Until the first list, no node counts as having a daemon (placement waits for `ready` anyway).
  if (daemonInformer !== null) nodeTable.setMpsDaemonNodes(daemons.readyNodes());

  // dcgm-exporter pods, when metrics come from discovery.
  const discovery = config.metrics.discovery;
  const exporterInformer =
    config.metrics.source === 'discovery'
      ? new ResilientInformer<V1Pod>({
          name: `dcgm-exporter pods (${discovery.namespace}, ${discovery.labelSelector})`,
          kubeConfig,
          path: `/api/v1/namespaces/${encodeURIComponent(discovery.namespace)}/pods`,
          list: () => apis.core.listNamespacedPod({ namespace: discovery.namespace, labelSelector: discovery.labelSelector }),
          labelSelector: discovery.labelSelector,
          handlers: {
            onUpsert: (pod) => notify({ kind: 'exporter', key: storedPodKey(pod), deleted: false }),
            onDelete: (pod) => notify({ kind: 'exporter', key: storedPodKey(pod), deleted: true }),
          },
          logger,
        })
      : null;
  const metricsSource =
    exporterInformer === null
      ? null
      : new DiscoveredExporterSource({
          namespace: discovery.namespace,
          labelSelector: discovery.labelSelector,
          pods: () => exporterInformer.list().map(exporterPodOf),
          nodes: () => nodeTable.snapshot(),
          urlFor: deps.exporterUrlFor ?? ((pod) => exporterUrl(pod, discovery.port, discovery.path)),
          timeoutMs: config.metrics.timeoutMs,
          maxBodyBytes: config.metrics.maxBodyBytes,
        });

  const store = new ConfigMapReservationStore({
    apis,
    namespace,
    ledger,
    liveness: { hasLivePod: (id) => tracker.hasLivePod(id), hasEnded: (id) => tracker.hasEnded(id), synced: () => podsSynced },
    now,
    logger,
  });

  // This replica's Lease: who is alive to share the GPUs with, and (self-managed) which CA it serves.
  const leaseSeconds = deps.intervals?.replicaLeaseSeconds ?? 30;
  const leases = new ReplicaLeases({ apis, namespace, replica, leaseDurationSeconds: leaseSeconds, now, logger });
  const liveReplicas = new LiveReplicas({
    leases,
    replica,
    renewEveryMs: (leaseSeconds * 1000) / 3,
    logger,
    contendedGpus: () => store.contendedGpus(),
    onChange: (replicas) => notify({ kind: 'replicas', replicas }),
  });

  const certificates =
    config.certificates.mode === 'self-managed'
      ? new SelfManagedCertificates({
          apis,
          namespace,
          leases,
          certificates: config.certificates,
          tlsCertFile: config.server.tlsCertFile,
          tlsKeyFile: config.server.tlsKeyFile,
          replica,
          logger,
          ...(deps.intervals?.certificateCheckSeconds !== undefined ? { checkIntervalSeconds: deps.intervals.certificateCheckSeconds } : {}),
          ...(deps.servedCertificatePem ? { servedCertificatePem: deps.servedCertificatePem } : {}),
          ...(deps.onCertificatesWritten ? { onFilesWritten: deps.onCertificatesWritten } : {}),
        })
      : null;

  const timers: NodeJS.Timeout[] = [];
  let stopped = false;
  let isReady = false;
  const stopController = new AbortController();

  const every = (ms: number, task: () => Promise<unknown> | void): void => {
    let busy = false;
    const timer = setInterval(() => {
      if (busy || stopped) return;
      busy = true;
      Promise.resolve()
        .then(task)
        .catch((err: unknown) => logger.warn({ err: (err as Error).message }, 'background cluster task failed; retrying at its next round'))
        .finally(() => {
          busy = false;
        });
    }, ms);
    timer.unref();
    timers.push(timer);
  };

  /** Retry a start-up step until it succeeds or the integration stops. */
  const untilDone = async <T>(what: string, step: () => Promise<T>): Promise<T> => {
    for (let attempt = 1; ; attempt++) {
      if (stopped) throw new Error(`cluster integration stopped before ${what} finished`);
      try {
        return await step();
      } catch (err) {
        const delay = Math.min(10_000, 250 * 2 ** Math.min(attempt - 1, 6));
        logger.warn({ err: (err as Error).message, attempt, retryInMs: delay }, `${what} failed; retrying`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, delay);
          stopController.signal.addEventListener('abort', () => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
    }
  };

  // Certificates do not wait for the informers: the server needs its TLS files to start at all.
  const certificatesReady = certificates === null ? Promise.resolve() : untilDone('setting up the webhook certificates', () => certificates.start(stopController.signal)).then(() => undefined);
  const keysReady = untilDone('loading the decision keys', () => keySecret.load(stopController.signal)).then(() => undefined);
  keysReady.catch(() => undefined);
  const reservationsReady = (async () => {
    // Exporter discovery does not hold readiness back: until it lists, the metrics report no exporters.
    // Pods are verified against the decision keys: load them first.
    await keysReady;
    await Promise.all([podInformer.start(), nodeInformer.start(), exporterInformer?.start(), daemonInformer?.start()]);
    await Promise.all([podInformer.synced, nodeInformer.synced, daemonInformer?.synced]);
    podsSynced = true;
    // Ledger rebuilt: pods' annotations (informer) first, then the durable grants not yet confirmed.
    await untilDone('reading the durable reservations', () => store.load(stopController.signal));
  })();
  // This replica's Lease from the start (it says the replica is alive, also to a CA rotation), and
  // the replicas to share GPUs with (a failure only leaves this one alone until the next period).
  const replicasListed = liveReplicas.start(stopController.signal);
  const ready = (async () => {
    await Promise.all([certificatesReady, keysReady, reservationsReady, replicasListed]);
    isReady = true;
    logger.info(
      {
        namespace,
        replica,
        trackedPods: tracker.trackedPods,
        reservations: ledger.size(now()),
        nodes: Object.keys(nodeTable.snapshot()).length,
        ...(daemonInformer !== null ? { nodesWithMpsDaemon: daemons.readyNodes().size } : {}),
      },
      'cluster integration ready: reservations rebuilt from pods and durable records',
    );
  })();
  // A rejection surfaces through `ready`; keep it from being reported as unhandled meanwhile.
  ready.catch(() => undefined);
  certificatesReady.catch(() => undefined);

  // The one expiry path (the same sweep serves a webhook outside the cluster).
  const expirySweep = sweepExpiredReservations(ledger, logger, now, { sweepMs: deps.intervals?.expireMs ?? EXPIRY_SWEEP_MS, reportMs: EXPIRY_REPORT_MS }, (expired) =>
    notify({ kind: 'expired', reservationIds: expired.map((r) => r.id) }),
  );
  every(deps.intervals?.collectGarbageMs ?? 30_000, async () => {
    if (!isReady) return;
    const entries = await store.collectGarbage(stopController.signal);
    tracker.pruneEnded(now() - 10 * ttlMs);
    if (entries > 0) notify({ kind: 'garbage-collected', entries });
  });
  // A rotation (a new first key in the Secret) reaches every replica within this period.
  every(deps.intervals?.keyCheckMs ?? 60_000, async () => {
    if (isReady) await keySecret.load(stopController.signal);
  });
  every(deps.intervals?.podCheckMs ?? 30_000, async () => {
    for (const [uid, where] of [...unwatched]) await checkPodGone(uid, where);
  });
  every(deps.intervals?.resyncMs ?? 300_000, async () => {
    if (isReady) await store.load(stopController.signal);
  });

  const informers = {
    pods: podInformer,
    nodes: nodeInformer,
    ...(exporterInformer !== null ? { exporters: exporterInformer } : {}),
    ...(daemonInformer !== null ? { mpsDaemons: daemonInformer } : {}),
  };

  return {
    store,
    preference: () => liveReplicas.preference(),
    nodes: () => nodeTable.snapshot(),
    metricsSource,
    ready,
    certificatesReady,
    keysReady,
    decisionKeys: () => keySecret.ring(),
    isHealthy: () => isReady && Object.values(informers).every((i) => i.isHealthy(Date.now(), unhealthyAfterMs)),
    health: () => ({
      ready: isReady,
      informers: Object.fromEntries(Object.entries(informers).map(([name, i]) => [name, { healthy: i.isHealthy(Date.now(), unhealthyAfterMs), lastError: i.lastError }])),
      certificates: certificates === null ? null : { passes: certificates.passes, lastError: certificates.lastError },
      reservations: { ...store.stats },
      trackedPods: tracker.trackedPods,
      forgedPods: tracker.forgedPods,
      replicas: liveReplicas.replicas(),
    }),
    async stop(): Promise<void> {
      stopped = true;
      stopController.abort();
      for (const timer of timers) clearInterval(timer);
      expirySweep.stop();
      await liveReplicas.stop(AbortSignal.timeout(2000));
      await Promise.all([podInformer.stop(), nodeInformer.stop(), exporterInformer?.stop(), daemonInformer?.stop(), certificates?.stop()]);
      apis.close();
    },
  };
}
