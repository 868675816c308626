/**
 * The webhook's HTTP app on plain HTTP on a loopback port, over a fixed inventory and ledger
 * with a local reservation store: what the large-review tests and the huge-review bench serve.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { DecisionKeyRing } from '../domain/decisionRecord.js';
import type { GpuInventory } from '../domain/inventory.js';
import type { ReservationLedger } from '../reservations/ledger.js';
import { LocalReservationStore } from '../reservations/reservationStore.js';
import { createWebhookApp } from '../webhook/createApp.js';
import type { ReviewScreenPool } from '../webhook/reviewScreenPool.js';
import { createWebhookMetrics } from '../webhook/webhookMetrics.js';
import type { WebhookMetrics } from '../webhook/webhookMetrics.js';

export interface LocalWebhookOptions {
  config: Config;
  inventory: GpuInventory;
  ledger: ReservationLedger;
  logger: Logger;
  keys: DecisionKeyRing;
  /** The clock of every admission and of the metrics. */
  now: () => number;
  store?: LocalReservationStore;
  reviewScreens?: ReviewScreenPool;
}

export interface LocalWebhook {
  port: number;
  metrics: WebhookMetrics;
  /** Ends the worker threads and the server. */
  close(): Promise<void>;
}

export async function listenLocalWebhook(opts: LocalWebhookOptions): Promise<LocalWebhook> {
  const { config, inventory, ledger, keys, now, reviewScreens } = opts;
  const metrics = createWebhookMetrics({ inventory: () => inventory, ledger, now, placement: config.placement }, { processMetrics: false });
  const { app } = createWebhookApp({
    config,
    logger: opts.logger,
    metrics,
    store: opts.store ?? new LocalReservationStore(),
    admitContext: () => ({ config, inventory, ledger, nowMs: now(), keys }),
    readiness: () => ({ ready: true, reason: '' }),
    draining: () => false,
    ...(reviewScreens === undefined ? {} : { reviewScreens }),
  });
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    metrics,
    close: async () => {
      await reviewScreens?.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
