/**
 * The state the webhook decides from, read once from a live cluster for the operator's
 * commands (status, explain, doctor, inject --cluster). Read-only: nothing is created or
 * written, not even the decision key Secret.
 *
 * The ledger is built the way a webhook replica rebuilds its own at start
 * (kube/startClusterIntegration.ts): every pod labelled as injected goes through the same
 * PodReservationTracker, which counts only decisions whose seal verifies under the keys in the
 * decision key Secret, then the durable reservation ConfigMaps are applied through the same
 * ConfigMapReservationStore.load(). Metrics come from the configured source (exporter
 * discovery through the API, a file, exporter URLs or Prometheus) or from --metrics, and node
 * states are laid over them as the webhook lays its node table over its metrics.
 */
import { KubeConfig } from '@kubernetes/client-node';
import type { V1Node, V1Pod } from '@kubernetes/client-node';
import { pino } from 'pino';
import type { Config } from '../config/schema.js';
import { ConfigError, buildConfig, parseConfigText } from '../config/schema.js';
import type { GpuInventory, NodeState } from '../domain/inventory.js';
import type { MetricsSource } from '../dcgm/sources.js';
import { ExporterMetricsSource, MetricsSourceError, PrometheusMetricsSource } from '../dcgm/sources.js';
import type { DecisionKeyRing } from '../domain/decisionRecord.js';
import { randomKeyRing } from '../domain/decisionRecord.js';
import { ConfigMapReservationStore } from '../reservations/configMapReservationStore.js';
import { readDecisionKeySecret } from '../kube/decisionKeySecret.js';
import { DiscoveredExporterSource, exporterPodOf, exporterUrl } from '../dcgm/exporterDiscovery.js';
import type { ExporterPod } from '../dcgm/exporterDiscovery.js';
import { KubeApiError, classifyApiError, createKubeApis, describeApiFailure } from '../kube/kubeApis.js';
import type { KubeApis } from '../kube/kubeApis.js';
import { NodeStateTable } from '../kube/nodeStates.js';
import { PodReservationTracker } from '../reservations/podReservations.js';
import { INJECTED_POD_SELECTOR } from '../kube/startClusterIntegration.js';
import { ReservationLedger } from '../reservations/ledger.js';
import { mergedInventory } from '../dcgm/mergedInventory.js';
import { metricsSourceFor } from '../webhook/serve.js';
import { CliError, ExitCode, inputError } from './cliError.js';
import { loadConfigFile } from './loadConfigFile.js';

/** Namespace the chart is installed in by the README's commands. */
export const DEFAULT_WEBHOOK_NAMESPACE = 'mps-injector';
/** Label of the chart's webhook objects (its ConfigMap, Deployment pods, Service). */
export const WEBHOOK_COMPONENT_SELECTOR = 'app.kubernetes.io/component=webhook';
/** Data key of the chart's configuration ConfigMap. */
export const CONFIG_DATA_KEY = 'config.yaml';

/** Where to find the cluster and the webhook in it: the flags every cluster command takes. */
export interface ClusterFlags {
  kubeconfig?: string;
  context?: string;
  /** The webhook's namespace. */
  webhookNamespace?: string;
  /** A configuration file to use instead of the one the webhook runs with. */
  config?: string;
}

/** The cluster and the webhook configuration the commands read with. */
export interface ClusterTarget {
  kubeConfig: KubeConfig;
  apis: KubeApis;
  /** The webhook's namespace: its Secret, reservation ConfigMaps, pods and Service live there. */
  namespace: string;
  config: Config;
  /** Where the configuration came from, for messages: a file, a ConfigMap, or the defaults. */
  configOrigin: string;
}

/** A kubeconfig from the flags: --kubeconfig, else $KUBECONFIG or ~/.kube/config, else the in-cluster service account. */
export function loadKubeConfig(flags: Pick<ClusterFlags, 'kubeconfig' | 'context'>): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (flags.kubeconfig !== undefined) kc.loadFromFile(flags.kubeconfig);
    else kc.loadFromDefault();
  } catch (err) {
    throw inputError(`cannot load the kubeconfig ${flags.kubeconfig ?? '($KUBECONFIG or ~/.kube/config)'}: ${(err as Error).message}`);
  }
  if (flags.context !== undefined) {
    if (kc.getContextObject(flags.context) === null) {
      throw new CliError(`--context ${flags.context} is not in the kubeconfig; contexts: ${kc.getContexts().map((c) => c.name).join(', ') || '(none)'}`);
    }
    kc.setCurrentContext(flags.context);
  }
  if (kc.getCurrentCluster() === null) {
    throw inputError('no Kubernetes cluster is configured: point --kubeconfig or $KUBECONFIG at a kubeconfig with a current context, or run inside a pod with a service account');
  }
  return kc;
}

/** API failures and unreachable sources are input/I-O errors (exit 3) with their message. */
export function asInputError(err: unknown): unknown {
  if (err instanceof KubeApiError || err instanceof MetricsSourceError || err instanceof ConfigError) return inputError(err.message);
  return err;
}

/**
 * The webhook's configuration: --config when given; else the chart's ConfigMap in the webhook
 * namespace (labelled app.kubernetes.io/component=webhook, key config.yaml); else the defaults
 * with the cluster integration on, as the chart runs it.
 */
async function webhookConfig(apis: KubeApis, namespace: string, flags: ClusterFlags): Promise<{ config: Config; origin: string }> {
  if (flags.config !== undefined) return { config: await loadConfigFile(flags.config), origin: flags.config };
  let items: { metadata?: { name?: string }; data?: Record<string, string> }[];
  try {
    items = (await apis.core.listNamespacedConfigMap({ namespace, labelSelector: WEBHOOK_COMPONENT_SELECTOR }, apis.callOptions())).items;
  } catch (err) {
    throw describeApiFailure(`reading the webhook configuration (ConfigMaps in ${namespace} labelled ${WEBHOOK_COMPONENT_SELECTOR})`, classifyApiError(err), apis.server);
  }
  const found = items.find((cm) => cm.data?.[CONFIG_DATA_KEY] !== undefined);
  const text = found?.data?.[CONFIG_DATA_KEY];
  if (found === undefined || text === undefined) {
    return { config: buildConfig({ cluster: { enabled: true, namespace } }), origin: `defaults (no ConfigMap in ${namespace} labelled ${WEBHOOK_COMPONENT_SELECTOR} holds ${CONFIG_DATA_KEY})` };
  }
  const origin = `ConfigMap ${namespace}/${found.metadata?.name ?? ''}`;
  return { config: parseConfigText(text, origin), origin };
}

/** Connect to the cluster and find the webhook's configuration. */
export async function resolveClusterTarget(flags: ClusterFlags, kubeConfig: KubeConfig = loadKubeConfig(flags)): Promise<ClusterTarget> {
  const apis = createKubeApis(kubeConfig);
  const fromFile = flags.config !== undefined ? await loadConfigFile(flags.config) : null;
  const namespace = flags.webhookNamespace ?? (fromFile !== null && fromFile.cluster.namespace !== '' ? fromFile.cluster.namespace : DEFAULT_WEBHOOK_NAMESPACE);
  const { config, origin } = fromFile !== null ? { config: fromFile, origin: flags.config ?? '' } : await webhookConfig(apis, namespace, flags);
  return { kubeConfig, apis, namespace, config, configOrigin: origin };
}

/**
 * A metrics source from a --metrics argument: an http(s) URL whose path ends in /metrics is a
 * dcgm-exporter; any other http(s) URL is the base URL of Prometheus. Null for anything else
 * (a file: the caller reads it).
 */
export function metricsSourceFromUrl(argument: string, timeoutMs: number): MetricsSource | null {
  if (!/^https?:\/\//i.test(argument)) return null;
  let url: URL;
  try {
    url = new URL(argument);
  } catch {
    throw new CliError(`--metrics ${argument} is not a URL; give a dcgm-exporter URL (http://<exporter>:9400/metrics), a Prometheus base URL, or a file`);
  }
  if (url.pathname.endsWith('/metrics')) return new ExporterMetricsSource({ targets: [{ url: argument }], timeoutMs });
  return new PrometheusMetricsSource({ baseUrl: argument, timeoutMs });
}

/** What the commands read from the cluster, as of `nowMs`. */
export interface ClusterState {
  target: ClusterTarget;
  nowMs: number;
  /** The ring in the decision key Secret; null when the Secret does not exist (no replica started). */
  keys: DecisionKeyRing | null;
  /** Rebuilt as a replica rebuilds its own: genuine pod decisions, then the durable reservations. */
  ledger: ReservationLedger;
  /** Metrics with the cluster's node states laid over them: what placement decides on. */
  inventory: GpuInventory;
  /** Pods labelled as injected (the webhook's pod watch selection). */
  injectedPods: V1Pod[];
  nodes: V1Node[];
  nodeStates: Readonly<Record<string, NodeState>>;
  /** dcgm-exporter pods found by discovery; null when metrics do not come from discovery. */
  exporterPods: V1Pod[] | null;
  /** Pods whose decision the webhook did not issue, by namespace/name, with why. */
  forged: Map<string, string>;
  /** Where the metrics came from. */
  metricsSource: string;
  /** Things the reader could not do, or found wrong, in sentences. */
  problems: string[];
}

export interface ReadClusterStateOptions {
  now?: () => number;
  /** Metrics to use instead of the configured source (--metrics). */
  metrics?: MetricsSource;
  /** Metrics URL of a discovered exporter pod (tests point it at a stand-in exporter). */
  exporterUrlFor?: (pod: ExporterPod) => string;
  signal?: AbortSignal;
}

const quiet = pino({ level: 'silent' });

async function listOrFail<T>(what: string, apis: KubeApis, call: () => Promise<{ items: T[] }>): Promise<T[]> {
  try {
    return (await call()).items;
  } catch (err) {
    throw describeApiFailure(what, classifyApiError(err), apis.server);
  }
}

/** Read the webhook's state from the cluster. Throws CliError (exit 3) when the API server cannot be read. */
export async function readClusterState(target: ClusterTarget, opts: ReadClusterStateOptions = {}): Promise<ClusterState> {
  try {
    return await readState(target, opts);
  } catch (err) {
    throw asInputError(err);
  }
}

async function readState(target: ClusterTarget, opts: ReadClusterStateOptions): Promise<ClusterState> {
  const { apis, namespace, config } = target;
  const now = opts.now ?? Date.now;
  const signal = opts.signal;
  const problems: string[] = [];
  const discovery = config.metrics.discovery;
  const fromDiscovery = opts.metrics === undefined && config.metrics.source === 'discovery';

  const [keys, injectedPods, nodes, exporterPods] = await Promise.all([
    readDecisionKeySecret(apis, namespace, config.decisions.keySecretName, signal),
    listOrFail(`listing the injected pods (label ${INJECTED_POD_SELECTOR})`, apis, () => apis.core.listPodForAllNamespaces({ labelSelector: INJECTED_POD_SELECTOR }, apis.callOptions(signal))),
    listOrFail('listing the nodes', apis, () => apis.core.listNode({}, apis.callOptions(signal))),
    fromDiscovery
      ? listOrFail(`listing the dcgm-exporter pods (${discovery.namespace}, ${discovery.labelSelector})`, apis, () =>
          apis.core.listNamespacedPod({ namespace: discovery.namespace, labelSelector: discovery.labelSelector }, apis.callOptions(signal)),
        )
      : Promise.resolve(null),
  ]);

  const nowMs = now();
  const ledger = new ReservationLedger({ ttlMs: config.reservations.ttlSeconds * 1000 });
  const forged = new Map<string, string>();
  if (keys === null) {
    problems.push(
      `the decision key Secret ${namespace}/${config.decisions.keySecretName} does not exist, so no pod's decision can be verified and only the durable reservations are counted; the webhook creates it when its first replica starts (check \`kubectl -n ${namespace} get pods -l ${WEBHOOK_COMPONENT_SELECTOR}\`)`,
    );
  }
  const tracker = new PodReservationTracker({
    ledger,
    now: () => nowMs,
    keys: () => keys ?? randomKeyRing(),
    logger: quiet,
    events: { onForged: (key, reason) => forged.set(key, reason) },
  });
  if (keys !== null) for (const pod of injectedPods) tracker.upsert(pod);
  const store = new ConfigMapReservationStore({
    apis,
    namespace,
    ledger,
    liveness: { hasLivePod: (id) => tracker.hasLivePod(id), hasEnded: (id) => tracker.hasEnded(id), synced: () => true },
    now: () => nowMs,
    logger: quiet,
  });
  await store.load(signal);

  const nodeTable = new NodeStateTable();
  for (const node of nodes) nodeTable.upsert(node);
  const nodeStates = nodeTable.snapshot();

  const discovered = fromDiscovery
    ? new DiscoveredExporterSource({
        namespace: discovery.namespace,
        labelSelector: discovery.labelSelector,
        pods: () => (exporterPods ?? []).map(exporterPodOf),
        nodes: () => nodeStates,
        urlFor: opts.exporterUrlFor ?? ((pod) => exporterUrl(pod, discovery.port, discovery.path)),
        timeoutMs: config.metrics.timeoutMs,
      })
    : null;
  let source: MetricsSource;
  try {
    source = opts.metrics ?? metricsSourceFor(config, discovered);
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(`${err.message} (configuration from ${target.configOrigin}); or give --metrics`, ExitCode.Input);
    throw err;
  }
  const metrics = await source.fetch(nowMs, signal);
  problems.push(...metrics.problems);
  const inventory = mergedInventory(() => metrics, () => nodeStates)();
  return { target, nowMs, keys, ledger, inventory, injectedPods, nodes, nodeStates, exporterPods, forged, metricsSource: metrics.source, problems };
}
