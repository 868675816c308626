/**
 * The flags every command that reads a live cluster takes, and the work they share:
 * connect, find the webhook's configuration, read its state.
 */
import type { Command } from 'commander';
import type { ExporterPod } from '../dcgm/exporterDiscovery.js';
import type { ClusterFlags, ClusterState, ClusterTarget } from './clusterState.js';
import { asInputError, metricsSourceFromUrl, readClusterState, resolveClusterTarget } from './clusterState.js';
import { FileMetricsSource } from '../dcgm/sources.js';

export interface ClusterCommandFlags extends ClusterFlags {
  /** Metrics to read instead of the configured source: a dump file, an exporter URL or a Prometheus URL. */
  metrics?: string;
}

/** What tests substitute: the kubeconfig, the clock, and where discovered exporters answer. */
export interface ClusterCommandDeps {
  kubeConfig?: ClusterTarget['kubeConfig'];
  now?: () => number;
  exporterUrlFor?: (pod: ExporterPod) => string;
}

export function addClusterFlags(command: Command, opts: { metrics: boolean } = { metrics: true }): Command {
  command
    .option('--kubeconfig <path>', 'kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or the in-cluster service account)')
    .option('--context <name>', 'kubeconfig context to use')
    .option('--webhook-namespace <namespace>', "the webhook's namespace (default: the --config file's cluster.namespace, else mps-injector)")
    .option('--config <path>', "webhook configuration YAML to use instead of the one the webhook runs with (its ConfigMap in the webhook's namespace)");
  if (opts.metrics) command.option('--metrics <file-or-url>', 'read GPU metrics from a dcgm-exporter dump, an exporter /metrics URL or a Prometheus URL instead of the configured source');
  return command;
}

/** Connect, find the configuration, and read the state, all errors as CLI errors. */
export async function clusterStateFor(flags: ClusterCommandFlags, deps: ClusterCommandDeps = {}): Promise<ClusterState> {
  let target: ClusterTarget;
  try {
    target = await resolveClusterTarget(flags, deps.kubeConfig);
  } catch (err) {
    throw asInputError(err);
  }
  const metrics = flags.metrics === undefined ? undefined : (metricsSourceFromUrl(flags.metrics, target.config.metrics.timeoutMs) ?? new FileMetricsSource(flags.metrics));
  return readClusterState(target, {
    ...(deps.now ? { now: deps.now } : {}),
    ...(metrics ? { metrics } : {}),
    ...(deps.exporterUrlFor ? { exporterUrlFor: deps.exporterUrlFor } : {}),
  });
}
