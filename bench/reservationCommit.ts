/**
 * `node dist/bench/reservationCommit.js`: what a durable reservation adds to an admission.
 *
 * Runs the admission path's reservation step (reserveSlot, then commit; on a conflict
 * release, refresh and choose again) against the in-process stand-in API server over HTTPS
 * with the real Kubernetes client, and prints:
 * - p50/p99 of the added latency (commit, plus refresh and retries when another replica won),
 * - API calls per admission,
 * - conflicts per admission,
 * for one replica (sequential admissions) and two replicas sharing the API server
 * (concurrent admissions, binpack: the worst case for contention).
 *
 * Options: --admissions N (default 2000), --concurrency N per replica (default 16),
 * --api-latency-ms N (simulated API server latency, default 0), --backoff-ms N (first backoff after a
 * lost race, default 16 as in the store; 0 turns it off), --attempts N (tries per admission, default
 * cluster.maxCommitAttempts), --json.
 */
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { generateCertificates } from '../certs/issue.js';
import { defaultConfig } from '../config/schema.js';
import type { GpuInventory } from '../dcgm/inventory.js';
import { ReservationLedger } from '../placement/ledger.js';
import { CommitOutcome } from '../placement/reservationStore.js';
import { reserveSlot } from '../placement/reserveSlot.js';
import type { PlacementConfig } from '../placement/types.js';
import { ConfigMapReservationStore } from '../kube/configMapReservationStore.js';
import { createKubeApis } from '../kube/kubeApis.js';
import type { KubeApis } from '../kube/kubeApis.js';
import { idleInventory } from '../kube/testing/gpuFixtures.js';
import { StandInApiServer } from '../kube/testing/standInApiServer.js';

const { values: args } = parseArgs({
  options: {
    admissions: { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '16' },
    'api-latency-ms': { type: 'string', default: '0' },
    'backoff-ms': { type: 'string', default: '16' },
    attempts: { type: 'string', default: String(defaultConfig().cluster.maxCommitAttempts) },
    json: { type: 'boolean', default: false },
  },
});
const ADMISSIONS = Number(args.admissions);
const CONCURRENCY = Number(args.concurrency);
const API_LATENCY_MS = Number(args['api-latency-ms']);
const BACKOFF_MS = Number(args['backoff-ms']);
const NAMESPACE = 'mps-system';
const MAX_ATTEMPTS = Number(args.attempts);
const logger = pino({ level: 'silent' });

interface Replica {
  ledger: ReservationLedger;
  store: ConfigMapReservationStore;
  apis: KubeApis;
}

interface Sample {
  addedMs: number;
  attempts: number;
  outcome: 'granted' | 'no-fit' | 'contention';
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}

async function newReplica(standIn: StandInApiServer): Promise<Replica> {
  const ledger = new ReservationLedger({ ttlMs: 120_000 });
  const apis = createKubeApis(standIn.kubeConfig());
  const store = new ConfigMapReservationStore({
    apis,
    namespace: NAMESPACE,
    ledger,
    liveness: { hasLivePod: () => false, hasEnded: () => false, synced: () => true },
    now: Date.now,
    logger,
    conflictBackoffMs: BACKOFF_MS,
  });
  await store.load();
  return { ledger, store, apis };
}

/** One admission's reservation step; the time spent outside the synchronous choice is what the API adds. */
async function admit(replica: Replica, inventory: GpuInventory, placement: PlacementConfig, podKey: string): Promise<Sample> {
  const signal = AbortSignal.timeout(4000);
  let addedMs = 0;
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    const { reservation } = reserveSlot(
      inventory,
      replica.ledger,
      { podKey, memoryMiB: 8192, threadPercent: 20, priority: 'low', gpuModel: null, pinnedNode: null },
      placement,
      Date.now(),
      { dryRun: false },
    );
    if (reservation === null) return { addedMs, attempts: attempt, outcome: 'no-fit' };
    const started = performance.now();
    const outcome = await replica.store.commit(reservation, signal);
    if (outcome === CommitOutcome.Committed) {
      addedMs += performance.now() - started;
      return { addedMs, attempts: attempt, outcome: 'granted' };
    }
    replica.ledger.release(reservation.id);
    await replica.store.refresh(signal);
    addedMs += performance.now() - started;
  }
  return { addedMs, attempts: MAX_ATTEMPTS, outcome: 'contention' };
}

interface ScenarioResult {
  scenario: string;
  admissions: number;
  granted: number;
  p50Ms: number;
  p99Ms: number;
  apiCallsPerAdmission: number;
  conflictsPerAdmission: number;
  overGrantedGpus: number;
}

function summarise(scenario: string, samples: Sample[], apiCalls: number, conflicts: number, overGrantedGpus: number): ScenarioResult {
  const granted = samples.filter((s) => s.outcome === 'granted');
  const latencies = granted.map((s) => s.addedMs);
  return {
    scenario,
    admissions: samples.length,
    granted: granted.length,
    p50Ms: Number(percentile(latencies, 50).toFixed(3)),
    p99Ms: Number(percentile(latencies, 99).toFixed(3)),
    apiCallsPerAdmission: Number((apiCalls / samples.length).toFixed(3)),
    conflictsPerAdmission: Number((conflicts / samples.length).toFixed(3)),
    overGrantedGpus,
  };
}

/** GPUs whose durable object holds more 8 GiB grants than fit (must be 0). */
function overGranted(standIn: StandInApiServer, placement: PlacementConfig, totalMiB: number): number {
  const fit = Math.floor((totalMiB - placement.memorySafetyMarginMiB) / 8192);
  let over = 0;
  for (const cm of standIn.list('configmaps', NAMESPACE).filter((c) => !(c.metadata.name ?? '').endsWith('-warm'))) {
    const text = (cm.data as Record<string, string> | undefined)?.['reservations.json'] ?? '{"reservations":{}}';
    if (Object.keys((JSON.parse(text) as { reservations: object }).reservations).length > fit) over++;
  }
  return over;
}

async function runScenario(name: string, replicas: number, concurrency: number, standIn: StandInApiServer): Promise<ScenarioResult> {
  const placement = defaultConfig().placement;
  // Room for every admission: 9 grants of 8 GiB per H100.
  const gpusNeeded = Math.ceil(ADMISSIONS / 9) + 8;
  const inventory = idleInventory(Math.ceil(gpusNeeded / 8), 8, Date.now());
  const members = await Promise.all(Array.from({ length: replicas }, () => newReplica(standIn)));
  // Warm-up (connections, JIT) on GPUs of their own, not counted.
  const warmUp = idleInventory(1, 8, Date.now());
  for (const m of members) for (let i = 0; i < 50; i++) await admit(m, { ...warmUp, gpus: warmUp.gpus.map((g) => ({ ...g, uuid: `${g.uuid}-warm` })) }, placement, `bench/warm-${i}`);
  const requestsBefore = standIn.requests.length;
  const samples: Sample[] = [];
  let next = 0;
  const worker = async (replica: Replica): Promise<void> => {
    while (next < ADMISSIONS) {
      const i = next++;
      samples.push(await admit(replica, inventory, placement, `bench/pod-${i}`));
    }
  };
  await Promise.all(members.flatMap((m) => Array.from({ length: concurrency }, () => worker(m))));
  const apiCalls = standIn.requests.length - requestsBefore;
  const conflicts = members.reduce((sum, m) => sum + m.store.stats.conflicts, 0);
  for (const m of members) m.apis.close();
  return summarise(name, samples, apiCalls, conflicts, overGranted(standIn, placement, inventory.gpus[0]?.memory?.totalMiB ?? 0));
}

async function main(): Promise<void> {
  const tls = generateCertificates({ service: 'stand-in', namespace: 'bench', extraSans: ['127.0.0.1'] });
  const startStandIn = (): Promise<StandInApiServer> =>
    StandInApiServer.start({ tls: { certPem: tls.serving.certPem, keyPem: tls.serving.keyPem, caPem: tls.ca.certPem }, responseDelayMs: API_LATENCY_MS });

  const results: ScenarioResult[] = [];
  for (const [name, replicas, concurrency] of [
    ['1 replica, sequential', 1, 1],
    [`1 replica, ${CONCURRENCY} concurrent`, 1, CONCURRENCY],
    [`2 replicas, ${CONCURRENCY} concurrent each`, 2, CONCURRENCY],
  ] as const) {
    const standIn = await startStandIn();
    try {
      results.push(await runScenario(name, replicas, concurrency, standIn));
    } finally {
      await standIn.stop();
    }
  }

  if (args.json) {
    console.log(JSON.stringify({ admissions: ADMISSIONS, apiLatencyMs: API_LATENCY_MS, results }, null, 2));
    return;
  }
  console.log(`Reservation commit through the API server (stand-in over HTTPS, real client; ${ADMISSIONS} admissions; simulated API latency ${API_LATENCY_MS} ms)`);
  console.log('scenario                               granted   p50 ms   p99 ms   API calls/admission   conflicts/admission   over-granted GPUs');
  for (const r of results) {
    console.log(
      `${r.scenario.padEnd(38)} ${String(r.granted).padStart(7)} ${r.p50Ms.toFixed(2).padStart(8)} ${r.p99Ms.toFixed(2).padStart(8)} ${r.apiCallsPerAdmission.toFixed(2).padStart(21)} ${r.conflictsPerAdmission.toFixed(2).padStart(21)} ${String(r.overGrantedGpus).padStart(19)}`,
    );
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
