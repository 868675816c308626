/**
 * The webhook's own Prometheus metrics (prom-client). Histograms are in seconds.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { GpuInventory } from '../domain/inventory.js';
import type { ReservationLedger } from '../reservations/ledger.js';
import { accountGpus } from '../placement/memoryAccounting.js';
import type { GpuAccountRow } from '../placement/memoryAccounting.js';
import type { PlacementConfig } from '../domain/slot.js';

export interface WebhookMetrics {
  registry: Registry;
  requests: Counter<'outcome'>;
  duration: Histogram<'outcome'>;
  decisions: Counter<'result' | 'reason'>;
  commitConflicts: Counter;
  /** Reservations that expired because their pod never appeared (abandoned admissions, or direct calls to /mutate). */
  expiredUnconfirmed: Counter;
  /** Pods seen carrying decision annotations or the injected label the webhook did not issue. */
  forgedPods: Counter;
  /**
   * Check every GPU for over-commit (granted memory + unreserved use above its total); counts and
   * reports each GPU that has newly become over-committed. Runs on every scrape; call it after
   * each metrics refresh too.
   */
  checkOvercommit(): GpuAccountRow[];
}

export interface MetricsSources {
  inventory: () => GpuInventory;
  ledger: ReservationLedger;
  now: () => number;
  /** The accounting settings (warm-up, safety margin). */
  placement: Pick<PlacementConfig, 'observeAfterRunningSeconds' | 'memorySafetyMarginMiB'>;
  /** Told of each GPU that has newly become over-committed. */
  onOvercommit?: (row: GpuAccountRow) => void;
}

const MIB = 1024 * 1024;

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
  const expiredUnconfirmed = new Counter({
    name: 'mps_injector_reservations_expired_unconfirmed_total',
    help: 'Reservations released because their pod never appeared within reservations.ttlSeconds (an admission the API server abandoned, or a direct call to /mutate).',
    registers: [registry],
  });
  const forgedPods = new Counter({
    name: 'mps_injector_forged_decisions_total',
    help: 'Pods seen carrying decision annotations or the injected label the webhook did not issue; they hold no capacity.',
    registers: [registry],
  });

  const overcommitDetected = new Counter({
    name: 'mps_injector_gpu_overcommit_detected_total',
    help: 'Times a GPU was found over-committed: granted memory plus the observed use of what the webhook did not place above its total.',
    labelNames: ['node', 'gpu_uuid'] as const,
    registers: [registry],
  });
  const overcommitted = new Set<string>();
  const accountNow = (): GpuAccountRow[] => accountGpus(sources.inventory().gpus, sources.ledger, sources.placement, sources.now());
  /** Counts the GPUs of `rows` that have newly become over-committed (one accounting pass serves the gauges too). */
  const checkOvercommit = (rows: GpuAccountRow[] = accountNow()): GpuAccountRow[] => {
    const fresh: GpuAccountRow[] = [];
    const now = new Set<string>();
    for (const row of rows) {
      if (row.account === null || row.account.committedMiB <= row.account.totalMiB) continue;
      now.add(row.uuid);
      if (overcommitted.has(row.uuid)) continue;
      overcommitDetected.inc({ node: row.node, gpu_uuid: row.uuid });
      fresh.push(row);
      sources.onOvercommit?.(row);
    }
    overcommitted.clear();
    for (const uuid of now) overcommitted.add(uuid);
    return fresh;
  };


  // One pass over the GPUs per scrape sets every per-GPU gauge. prom-client collects metrics in
  // registration order, so this gauge (registered first) fills the per-GPU ones before they are read.
  const gpuGauges: Array<{ gauge: Gauge<'node' | 'gpu_uuid' | 'gpu_index'>; pick: (row: GpuAccountRow) => number | undefined }> = [];
  new Gauge({
    name: 'mps_injector_gpu_accounted',
    help: 'GPUs accounted in the per-GPU memory gauges (those with memory series).',
    registers: [registry],
    collect() {
      const rows = accountNow();
      let accounted = 0;
      for (const { gauge } of gpuGauges) gauge.reset();
      for (const row of rows) {
        if (row.account === null) continue;
        accounted++;
        const labels = { node: row.node, gpu_uuid: row.uuid, gpu_index: String(row.index) };
        for (const { gauge, pick } of gpuGauges) {
          const value = pick(row);
          if (value !== undefined) gauge.set(labels, value * MIB);
        }
      }
      this.set(accounted);
      checkOvercommit(rows);
    },
  });
  const perGpu = (name: string, help: string, pick: (row: GpuAccountRow) => number | undefined): void => {
    gpuGauges.push({ gauge: new Gauge({ name, help, labelNames: ['node', 'gpu_uuid', 'gpu_index'] as const, registers: [registry] }), pick });
  };
  perGpu('mps_injector_gpu_memory_total_bytes', 'GPU memory in total (free + used + reserved, as dcgm-exporter reports it).', (r) => r.account?.totalMiB);
  perGpu('mps_injector_gpu_memory_granted_bytes', 'Sum of the pinned memory limits the webhook granted on the GPU (live reservations).', (r) => r.account?.grantedMiB);
  perGpu('mps_injector_gpu_memory_observed_used_bytes', 'GPU memory in use in the newest sample.', (r) => r.account?.observedUsedMiB);
  perGpu(
    'mps_injector_gpu_memory_unreserved_used_bytes',
    'Observed use of what the webhook did not place: observed use minus the grants the sample can show (pods running past the warm-up).',
    (r) => r.account?.unreservedUsedMiB,
  );
  const perGpuCount = (name: string, help: string, pick: (row: GpuAccountRow) => number): void => {
    gpuGauges.push({ gauge: new Gauge({ name, help, labelNames: ['node', 'gpu_uuid', 'gpu_index'] as const, registers: [registry] }), pick: (row) => pick(row) / MIB });
  };
  perGpuCount('mps_injector_gpu_clients', 'MPS clients the webhook granted on the GPU (live reservations).', (r) => r.reservations.length);
  perGpuCount('mps_injector_gpu_granted_thread_percent', 'Sum of the CUDA_MPS_ACTIVE_THREAD_PERCENTAGE values granted on the GPU.', (r) => r.threadPercent);
  perGpu('mps_injector_gpu_memory_free_bytes', 'Room placement sees: total - (unreserved use + granted) - safety margin; negative when over-committed.', (r) => r.account?.freeMiB);
  return { registry, requests, duration, decisions, commitConflicts, expiredUnconfirmed, forgedPods, checkOvercommit };
}
