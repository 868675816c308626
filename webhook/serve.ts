/**
 * Process wiring for `mps-injector serve`: metrics refresher, reservation ledger, optional
 * cluster integration, the HTTPS server, and graceful shutdown.
 */
import { pino } from 'pino';
import type { Logger } from 'pino';
import type { AdmitContext } from '../admission/admitPod.js';
import type { Config } from '../config/schema.js';
import { ConfigError } from '../config/schema.js';
import type { GpuInventory } from '../domain/inventory.js';
import { MetricsRefresher } from '../dcgm/metricsRefresher.js';
import type { MetricsSource } from '../dcgm/sources.js';
import { ExporterMetricsSource, FileMetricsSource, PrometheusMetricsSource } from '../dcgm/sources.js';
import { ReservationLedger } from '../reservations/ledger.js';
import type { ReservationStore } from '../reservations/reservationStore.js';
import { LocalReservationStore } from '../reservations/reservationStore.js';
import type { GpuPreference } from '../domain/slot.js';
import { createWebhookApp } from './createApp.js';
import { mergedInventory } from '../dcgm/mergedInventory.js';
import { metricsReadiness } from './metricsReadiness.js';
import type { RunningServer } from './startServer.js';
import { startHttpsServer } from './startServer.js';
import { sweepExpiredReservations } from '../reservations/sweepExpiredReservations.js';
import { createWebhookMetrics } from './webhookMetrics.js';
import type { WebhookMetrics } from './webhookMetrics.js';
import { loadDecisionKeyRing } from './decisionKeys.js';
import { reviewScreenPoolFor } from './reviewScreenPool.js';
import type { DecisionKeyRing } from '../domain/decisionRecord.js';

export interface ServeHandle {
  port: number;
  logger: Logger;
  ledger: ReservationLedger;
  /**
   * Begin graceful shutdown: readiness fails; for server.drainDelaySeconds (unless `immediate`) the
   * server keeps accepting and answers with Connection: close; then requests finish and everything stops.
   */
  shutdown(reason: string, opts?: { immediate?: boolean }): Promise<void>;
}

/** The DCGM source the configuration names (discovery comes from the cluster integration). */
export function metricsSourceFor(config: Config, discovered: MetricsSource | null): MetricsSource {
  const m = config.metrics;
  switch (m.source) {
    case 'file':
      if (m.file === '') throw new ConfigError('metrics.source is "file" but metrics.file is empty: set metrics.file to a dcgm-exporter dump');
      return new FileMetricsSource(m.file, { sampleTime: m.fileSampleTime, maxBytes: m.maxBodyBytes });
    case 'exporters':
      if (m.exporterUrls.length === 0) throw new ConfigError('metrics.source is "exporters" but metrics.exporterUrls is empty: list the dcgm-exporter /metrics URLs');
      return new ExporterMetricsSource({
        targets: m.exporterUrls.map((url, i) => ({ url, ...(m.exporterNodes[i] ? { node: m.exporterNodes[i] } : {}) })),
        timeoutMs: m.timeoutMs,
        maxBodyBytes: m.maxBodyBytes,
      });
    case 'prometheus':
      if (m.prometheusUrl === '') throw new ConfigError('metrics.source is "prometheus" but metrics.prometheusUrl is empty: set the Prometheus base URL');
      return new PrometheusMetricsSource({ baseUrl: m.prometheusUrl, timeoutMs: m.timeoutMs, maxBodyBytes: m.prometheusMaxBodyBytes });
    case 'discovery':
      if (discovered === null) {
        throw new ConfigError('metrics.source is "discovery" but cluster.enabled is false: enable the cluster integration, or choose metrics.source file, exporters or prometheus');
      }
      return discovered;
  }
}

export async function serve(config: Config, opts: { logger?: Logger; handleSignals?: boolean } = {}): Promise<ServeHandle> {
  const logger = opts.logger ?? pino({ level: config.server.logLevel, base: { app: 'mps-injector' } });
  const ledger = new ReservationLedger({ ttlMs: config.reservations.ttlSeconds * 1000 });
  const now = (): number => Date.now();

  if (config.metrics.source === 'discovery' && !config.cluster.enabled) metricsSourceFor(config, null);

  let store: ReservationStore = new LocalReservationStore();
  // One object for "no cluster nodes", so the merged inventory is not rebuilt for every admission.
  const noClusterNodes: GpuInventory['nodes'] = Object.freeze({});
  let clusterNodes: () => GpuInventory['nodes'] = () => noClusterNodes;
  let clusterReady: () => boolean = () => true;
  let clusterPreference: () => GpuPreference | null = () => null;
  let stopCluster: () => Promise<void> = async () => {};
  let certificatesReady: Promise<void> = Promise.resolve();
  let decisionKeys: () => DecisionKeyRing;
  let discovered: MetricsSource | null = null;
  let server: RunningServer | undefined;
  // Counters the cluster integration reports into; set once the metrics exist.
  const late: { metrics?: WebhookMetrics } = {};
  if (config.cluster.enabled) {
    // Loaded only in cluster mode: the Kubernetes client stays out of offline runs.
    const { startClusterIntegration } = await import('../kube/startClusterIntegration.js');
    const cluster = await startClusterIntegration(config, {
      ledger,
      logger,
      now,
      servedCertificatePem: () => server?.servedCertificatePem() ?? null,
      onChange: (change) => {
        if (change.kind === 'expired') late.metrics?.expiredUnconfirmed.inc(change.reservationIds.length);
        else if (change.kind === 'forged') late.metrics?.forgedPods.inc();
      },
    });
    certificatesReady = Promise.all([cluster.certificatesReady, cluster.keysReady]).then(() => undefined);
    decisionKeys = () => cluster.decisionKeys();
    store = cluster.store;
    clusterNodes = () => cluster.nodes();
    clusterPreference = () => cluster.preference();
    let ready = false;
    cluster.ready.then(
      () => {
        ready = true;
        logger.info('cluster state loaded: reservation ledger rebuilt from pod annotations');
      },
      (err: unknown) => logger.error({ err }, 'cluster state failed to load; readiness stays false'),
    );
    clusterReady = () => ready && cluster.isHealthy();
    stopCluster = () => cluster.stop();
    discovered = cluster.metricsSource;
  } else {
    const ring = await loadDecisionKeyRing(config);
    decisionKeys = () => ring;
  }

  const refresher = new MetricsRefresher(metricsSourceFor(config, discovered), { refreshSeconds: config.metrics.refreshSeconds });
  refresher.on('refresh', (inv, report) => {
    if (!report.ok) logger.warn({ source: inv.source, error: report.error, keptGpus: report.gpuCount }, 'DCGM metrics refresh failed; deciding on the previous samples until they go stale');
    else if (report.problems.length > 0) {
      logger.warn(
        { source: inv.source, problems: report.problems, gpus: report.gpuCount, excludedGpus: report.excludedGpus, clockSkewedGpus: report.clockSkewedGpuCount, maxClockSkewSeconds: report.maxClockSkewSeconds },
        'DCGM metrics refreshed with problems',
      );
    }
    else logger.debug({ source: inv.source, gpus: report.gpuCount, newestAgeSeconds: report.newestSampleAgeSeconds }, 'DCGM metrics refreshed');
  });
  refresher.start();

  const inventory = mergedInventory(() => refresher.current(), () => clusterNodes());
  // In cluster mode the integration expires reservations (and their durable records) itself.
  const expiry = config.cluster.enabled ? undefined : sweepExpiredReservations(ledger, logger, now, undefined, (expired) => late.metrics?.expiredUnconfirmed.inc(expired.length));

  const metrics = createWebhookMetrics({
    inventory,
    ledger,
    now,
    placement: config.placement,
    onOvercommit: (row) =>
      logger.error(
        {
          node: row.node,
          gpu: row.uuid,
          index: row.index,
          account: row.account,
          reservations: row.reservations.map((r) => ({ id: r.id, pod: r.podKey, memoryMiB: r.memoryMiB, state: r.state, runningSinceMs: r.runningSinceMs ?? null })),
        },
        'GPU over-committed: granted memory plus the use of what the webhook did not place exceeds its total; check for processes outside MPS on it, or raise placement.memorySafetyMarginMiB',
      ),
  });
  late.metrics = metrics;
  refresher.on('refresh', () => metrics.checkOvercommit());
  let draining = false;
  // Large bodies are parsed on worker threads; half the admission's deadline is left to parse one here if a worker fails.
  const reviewScreens =
    config.server.offloadWorkers > 0
      ? reviewScreenPoolFor(config)
      : undefined;
  // Every body goes to a worker by default: started now, so the first admissions do not wait for one to load.
  if (config.server.offloadBodyBytes === 0) reviewScreens?.prestart();
  const webhook = createWebhookApp({
    reviewScreens,
    config,
    logger,
    metrics,
    store,
    admitContext: (): AdmitContext => ({ config, inventory: inventory(), ledger, nowMs: now(), keys: decisionKeys(), preference: clusterPreference() }),
    readiness: () => {
      if (!refresher.hasLoaded()) return { ready: false, reason: `no DCGM metrics loaded yet from ${config.metrics.source}` };
      if (!clusterReady()) return { ready: false, reason: 'cluster state (pods, nodes, reservations) not loaded yet' };
      const fresh = metricsReadiness(inventory(), now(), config.placement.maxMetricsAgeSeconds);
      if (fresh.ready || config.failure.onNoMetrics === 'reject') return fresh;
      // The webhook still answers as configured (pods let through without MPS): stay in rotation, and say so.
      return { ready: true, reason: `degraded: ${fresh.reason}; pods are admitted without MPS (failure.onNoMetrics: allow)` };
    },
    draining: () => draining,
  });

  let running: RunningServer;
  try {
    // Self-managed certificates must be on disk before the listener loads them, and the decision keys loaded before admissions.
    await certificatesReady;
    running = await startHttpsServer(webhook, {
      host: config.server.host,
      port: config.server.port,
      certFile: config.server.tlsCertFile,
      keyFile: config.server.tlsKeyFile,
      logger,
      tls: { minVersion: config.server.tlsMinVersion, ciphers: config.server.tlsCiphers },
      clientCaFile: config.server.clientCAFile,
    });
    server = running;
  } catch (err) {
    refresher.stop();
    expiry?.stop();
    await reviewScreens?.close();
    await stopCluster();
    throw err;
  }
  logger.info({ port: running.port, metricsSource: config.metrics.source, policy: config.placement.policy, cluster: config.cluster.enabled }, 'mps-injector webhook listening (HTTPS)');

  let shuttingDown: Promise<void> | null = null;
  const shutdown = (reason: string, shutdownOpts: { immediate?: boolean } = {}): Promise<void> => {
    shuttingDown ??= (async () => {
      const delayMs = shutdownOpts.immediate ? 0 : config.server.drainDelaySeconds * 1000;
      logger.info({ reason, inFlight: webhook.inFlight(), drainDelayMs: delayMs }, 'shutting down: readiness fails; accepting with Connection: close until the drain delay is over, then draining in-flight requests');
      draining = true;
      await running.drain({ delayMs, graceMs: config.server.shutdownGraceSeconds * 1000 });
      await reviewScreens?.close();
      refresher.stop();
      expiry?.stop();
      await stopCluster();
      logger.info('shutdown complete');
    })();
    return shuttingDown;
  };
  if (opts.handleSignals) {
    // SIGTERM (Kubernetes, systemd) drains with the delay; SIGINT (Ctrl-C at a terminal) without it.
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      process.once(signal, () => {
        void shutdown(signal, { immediate: signal === 'SIGINT' }).then(() => process.exit(0));
      });
    }
  }
  return { port: running.port, logger, ledger, shutdown };
}
