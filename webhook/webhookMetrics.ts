/**
 * The webhook's own Prometheus metrics (prom-client). Histograms are in seconds.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { GpuInventory } from '../dcgm/inventory.js';
import type { ReservationLedger } from '../placement/ledger.js';

export interface WebhookMetrics {
  registry: Registry;
  requests: Counter<'outcome'>;
  duration: Histogram<'outcome'>;
  decisions: Counter<'result' | 'reason'>;
  commitConflicts: Counter;
}

export interface MetricsSources {
  inventory: () => GpuInventory;
  ledger: ReservationLedger;
  now: () => number;
}

export function createWebhookMetrics(sources: MetricsSources, opts: { processMetrics: boolean } = { processMetrics: true }): WebhookMetrics {
  const registry = new Registry();
  if (opts.processMetrics) collectDefaultMetrics({ register: registry, prefix: 'mps_injector_' });

  const requests = new Counter({
    name: 'mps_injector_admission_requests_total',
    help: 'AdmissionReview requests by outcome (mutated, skipped, allowed-unmutated, refused, bad-request, error).',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'mps_injector_admission_duration_seconds',
    help: 'Time to answer an AdmissionReview, in seconds.',
    labelNames: ['outcome'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const decisions = new Counter({
    name: 'mps_injector_decisions_total',
    help: 'Placement decisions: result granted or refused, reason the policy (granted) or the refusal kind (refused).',
    labelNames: ['result', 'reason'] as const,
    registers: [registry],
  });
  const commitConflicts = new Counter({
    name: 'mps_injector_reservation_commit_conflicts_total',
    help: 'Reservation commits that lost a race to another writer and were retried.',
    registers: [registry],
  });
  new Gauge({
    name: 'mps_injector_metrics_age_seconds',
    help: 'Age of the newest DCGM sample the webhook decides on, in seconds (-1 before the first load).',
    registers: [registry],
    collect() {
      const inv = sources.inventory();
      const newest = inv.gpus.reduce((m, g) => Math.max(m, g.sampledAtMs), 0);
      this.set(newest === 0 ? -1 : (sources.now() - newest) / 1000);
    },
  });
  new Gauge({
    name: 'mps_injector_metrics_gpus',
    help: 'GPUs in the current DCGM inventory.',
    registers: [registry],
    collect() {
      this.set(sources.inventory().gpus.length);
    },
  });
  new Gauge({
    name: 'mps_injector_metrics_skipped_lines',
    help: 'Malformed lines or series skipped while building the current DCGM inventory.',
    registers: [registry],
    collect() {
      this.set(sources.inventory().skippedLines);
    },
  });
  new Gauge({
    name: 'mps_injector_reservations',
    help: 'Live reservations in the ledger by state (pending, confirmed).',
    labelNames: ['state'] as const,
    registers: [registry],
    collect() {
      const counts = { pending: 0, confirmed: 0 };
      for (const r of sources.ledger.list(sources.now())) counts[r.state] += 1;
      this.set({ state: 'pending' }, counts.pending);
      this.set({ state: 'confirmed' }, counts.confirmed);
    },
  });
  return { registry, requests, duration, decisions, commitConflicts };
}
