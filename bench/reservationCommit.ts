/**
 * `npm run bench:replicas`: what a durable reservation adds to an admission,
 * with one replica and with several sharing the API server.
 *
 * Each replica runs in a worker thread of its own (its own event loop, ledger, store and
 * connections, as replicas are processes of their own), the stand-in API server in the main
 * thread, over HTTPS with the real Kubernetes client. Each replica runs the webhook's admission
 * path (admitAndCommit: choose and reserve, commit; on a conflict release, refresh and choose
 * again) whole on its event loop, as the webhook does with server.offloadWorkers 0 and on its
 * fallbacks (by default the webhook injects and diffs on worker threads, ADR 0010), finds the
 * others through their Leases and fills its own GPUs first
 * (docs/adr/0005-multi-replica-reservations.md). Prints, per scenario:
 * - p50/p99 of the added latency (commit, plus refresh and retries when another replica won),
 * - API calls per admission (every request during the run, Lease renewals included),
 * - conflicts per admission,
 * - refusals by reason (a refusal for contention is a failure: there is room for every pod),
 * - GPUs in use at the end, against one replica's count + (replicas - 1),
 * - how busy the busiest replica's event loop and the API server's were (near 100%: the figures
 *   are bound by the CPU the threads share, not by the API),
 * then the targets and whether each held. Scenarios, per API latency: one replica one
 * admission at a time, then 1..N replicas with --concurrency admissions in flight each (all
 * binpacking onto one fleet: the worst case for contention).
 *
 * With --runs N every scenario runs N times: latency, API calls and conflicts are the medians
 * of the runs; granted is the fewest, refusals, GPUs in use and over-granted GPUs the most.
 *
 * Options: --admissions N (default 2000), --concurrency N per replica (default 16),
 * --replicas LIST (default 1,2,3), --api-latency-ms LIST (simulated API server latency, default
 * 0,2), --runs N (default 1), --backoff-ms N (backoff after the second race lost in a row on a
 * GPU, default 16 as in the store; 0 turns it off), --attempts N (tries per admission, default
 * cluster.maxCommitAttempts), --warm-up N (admissions per replica before each measured run, at its
 * concurrency, on GPUs of the replica's own and not counted, default 6000: a replica in service
 * runs compiled code, so a cold one would measure V8's start), --markdown (also print the README
 * table rows), --write-readme (rewrite the README's Several replicas table with them), --json.
 */
import { randomKeyRing } from '../domain/decisionRecord.js';
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import type { MessagePort } from 'node:worker_threads';
import { KubeConfig } from '@kubernetes/client-node';
import type { Pod } from 'kubernetes-types/core/v1.js';
import pino from 'pino';
import { admitAndCommit } from '../admission/admitAndCommit.js';
import { admissionDeadline } from '../webhook/admissionDeadline.js';
import { writeReadmeSection } from './readmeSection.js';
import type { AdmitContext } from '../admission/admitPod.js';
import { generateCertificates } from '../certs/issue.js';
import { defaultConfig } from '../config/schema.js';
import type { Config } from '../config/schema.js';
import type { GpuInventory } from '../domain/inventory.js';
import { Annotation } from '../domain/names.js';
import { ReservationLedger } from '../reservations/ledger.js';
import type { ReservationStore } from '../reservations/reservationStore.js';
import { ConfigMapReservationStore } from '../reservations/configMapReservationStore.js';
import { DURABLE_DATA_KEY } from '../reservations/durableReservations.js';
import { createKubeApis } from '../kube/kubeApis.js';
import { LiveReplicas } from '../kube/liveReplicas.js';
import { ReplicaLeases } from '../kube/replicaLeases.js';
import { H100_TOTAL_MIB, idleInventory } from '../testing/gpuFixtures.js';
import { StandInApiServer } from '../testing/standInApiServer.js';

/** Decisions sealed in this process only (the bench never re-reads them). */
const keys = randomKeyRing();
const NAMESPACE = 'mps-system';
const MEMORY_MIB = 8192;

/** The README's Several replicas table. */
const README_SECTION = { name: 'bench:replicas', writtenBy: 'npm run bench:replicas -- --runs 3 --write-readme' } as const;

/** Targets for two replicas and more. */
const Target = { p50Ms: 5, p99Ms: 25, p99RatioAtLatency: 2.5, conflictsPerAdmission: 0.05 } as const;

interface Sample {
  addedMs: number;
  outcome: 'granted' | 'refused';
  reason: string;
  message: string;
}

// ---- one replica (a worker thread) ----

interface ReplicaSetup {
  kubeConfig: string;
  name: string;
  backoffMs: number;
  attempts: number;
  admissions: number;
  concurrency: number;
  /** The fleet: nodes of 8 idle H100s, sampled at this time (the same inventory on every replica). */
  nodes: number;
  sampledAtMs: number;
  warmSuffix: string;
  /** Admissions before the measured run, at its concurrency, on GPUs of this replica's own. */
  warmUp: number;
  /** Next admission to run, shared by all replicas (Int32Array over it). */
  counter: SharedArrayBuffer;
}

type Command = 'refresh' | 'warm' | 'run' | 'stop';
interface RunReport {
  samples: Sample[];
  conflicts: number;
  /** Share of the run this replica's event loop was busy (not waiting for I/O), 0..1. */
  busy: number;
}

/** Nodes of 8 H100s with room for every admission: 9 grants of 8 GiB per H100, and a node to spare. */
function fleetNodes(admissions: number): number {
  return Math.ceil((Math.ceil(admissions / 9) + 8) / 8);
}

function benchPod(name: string): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'bench', annotations: { [Annotation.GpuMemory]: `${MEMORY_MIB}Mi`, [Annotation.GpuPercent]: '20' } },
    spec: { containers: [{ name: 'server', image: 'vllm/vllm-openai:latest' }] },
  };
}

/** The store as one admission sees it: time spent in it is the latency the durable reservation adds. */
function timedStore(store: ReservationStore, sample: { addedMs: number }): ReservationStore {
  const timed = async <T>(work: () => Promise<T>): Promise<T> => {
    const started = performance.now();
    try {
      return await work();
    } finally {
      sample.addedMs += performance.now() - started;
    }
  };
  return {
    commit: (reservation, signal) => timed(() => store.commit(reservation, signal)),
    refresh: (signal) => timed(() => store.refresh(signal)),
    release: (reservation, signal) => timed(() => store.release(reservation, signal)),
  };
}

async function runReplica(setup: ReplicaSetup, port: MessagePort): Promise<void> {
  const logger = pino({ level: 'silent' });
  const config: Config = { ...defaultConfig(), cluster: { ...defaultConfig().cluster, maxCommitAttempts: setup.attempts } };
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromString(setup.kubeConfig);
  const apis = createKubeApis(kubeConfig);
  const storeIn = (namespace: string, ledger: ReservationLedger): ConfigMapReservationStore =>
    new ConfigMapReservationStore({
      apis,
      namespace,
      ledger,
      liveness: { hasLivePod: () => false, hasEnded: () => false, synced: () => true },
      now: Date.now,
      logger,
      conflictBackoffMs: setup.backoffMs,
    });
  // The warm-up grants go to a ledger and a namespace of their own, so the measured run starts
  // from an empty store (a re-list reads only the run's objects) with code V8 has compiled.
  const warmLedger = new ReservationLedger({ ttlMs: 120_000 });
  const warmStore = storeIn(`${NAMESPACE}-warm`, warmLedger);
  const ledger = new ReservationLedger({ ttlMs: 120_000 });
  const store = storeIn(NAMESPACE, ledger);
  const leases = new ReplicaLeases({ apis, namespace: NAMESPACE, replica: setup.name, leaseDurationSeconds: 30, now: Date.now, logger });
  const live = new LiveReplicas({ leases, replica: setup.name, renewEveryMs: 10_000, logger, contendedGpus: () => store.contendedGpus() });
  await warmStore.load();
  await store.load();
  await live.start();

  const inventory = idleInventory(setup.nodes, 8, setup.sampledAtMs);
  const warmUp = idleInventory(fleetNodes(setup.warmUp), 8, setup.sampledAtMs);
  const warmInventory: GpuInventory = { ...warmUp, gpus: warmUp.gpus.map((g) => ({ ...g, uuid: `${g.uuid}-${setup.warmSuffix}` })) };
  const counter = new Int32Array(setup.counter);

  const admit = async (fleet: GpuInventory, name: string, into: { ledger: ReservationLedger; store: ReservationStore } = { ledger, store }): Promise<Sample> => {
    const timing = { addedMs: 0 };
    // The webhook's deadline (its timer is cleared once the admission is answered).
    const deadline = admissionDeadline(config.server.admissionTimeoutMs);
    const { admission } = await admitAndCommit(
      { pod: benchPod(name), namespace: 'bench', requestUid: name, dryRun: false },
      (): AdmitContext => ({ config, inventory: fleet, ledger: into.ledger, nowMs: Date.now(), keys, preference: live.preference() }),
      { store: timedStore(into.store, timing), maxAttempts: config.cluster.maxCommitAttempts, signal: deadline.signal },
    ).finally(deadline.clear);
    if (admission.outcome === 'mutated') return { addedMs: timing.addedMs, outcome: 'granted', reason: '', message: '' };
    if (admission.outcome === 'refused') return { addedMs: timing.addedMs, outcome: 'refused', reason: admission.reason, message: admission.message };
    return { addedMs: timing.addedMs, outcome: 'refused', reason: admission.outcome, message: admission.outcome === 'skipped' ? admission.reason : admission.warning };
  };

  port.on('message', (command: Command) => {
    void (async () => {
      if (command === 'refresh') {
        await live.refresh();
        port.postMessage('refreshed');
      } else if (command === 'warm') {
        // Connections and JIT, on GPUs of this replica's own; not counted. A replica in service has
        // admitted pods before: without this the run measures V8 compiling the admission path.
        let next = 0;
        const warmer = async (): Promise<void> => {
          for (let i = next++; i < setup.warmUp; i = next++) await admit(warmInventory, `warm-${setup.name}-${i}`, { ledger: warmLedger, store: warmStore });
        };
        await Promise.all(Array.from({ length: setup.concurrency }, warmer));
        port.postMessage('warm');
      } else if (command === 'run') {
        const conflictsBefore = store.stats.conflicts;
        const loopBefore = performance.eventLoopUtilization();
        const samples: Sample[] = [];
        const worker = async (): Promise<void> => {
          for (let i = Atomics.add(counter, 0, 1); i < setup.admissions; i = Atomics.add(counter, 0, 1)) samples.push(await admit(inventory, `pod-${i}`));
        };
        await Promise.all(Array.from({ length: setup.concurrency }, worker));
        const busy = performance.eventLoopUtilization(loopBefore).utilization;
        port.postMessage({ samples, conflicts: store.stats.conflicts - conflictsBefore, busy } satisfies RunReport);
      } else {
        await live.stop();
        apis.close();
        port.postMessage('stopped');
        port.close();
      }
    })().catch((err: unknown) => {
      console.error(err);
      process.exit(1);
    });
  });
  port.postMessage('ready');
}

// ---- the scenarios (main thread) ----

interface ScenarioResult {
  scenario: string;
  replicas: number;
  concurrency: number;
  apiLatencyMs: number;
  admissions: number;
  granted: number;
  p50Ms: number;
  p99Ms: number;
  apiCallsPerAdmission: number;
  conflictsPerAdmission: number;
  /** Refusals by reason, with the first message of each. */
  refusals: Record<string, { count: number; example: string }>;
  gpusInUse: number;
  overGrantedGpus: number;
  seconds: number;
  /** Busiest replica's event loop and the API server's, share of the run (CPU-bound when near 1). */
  replicaBusy: number;
  serverBusy: number;
  runs: number;
}

interface Options {
  admissions: number;
  concurrency: number;
  backoffMs: number;
  attempts: number;
  warmUp: number;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}

/** Entries per GPU object of the measured run (the warm-up writes to a namespace of its own). */
function durableCounts(standIn: StandInApiServer): number[] {
  return standIn
    .list('configmaps', NAMESPACE)
    .map((cm) => {
      const text = (cm.data as Record<string, string> | undefined)?.[DURABLE_DATA_KEY] ?? '{"reservations":{}}';
      return Object.keys((JSON.parse(text) as { reservations: object }).reservations).length;
    });
}

/** Send a command to every replica and wait for each one's answer. */
async function ask<T>(workers: Worker[], command: Command): Promise<T[]> {
  return Promise.all(
    workers.map(async (w) => {
      const answer = once(w, 'message') as Promise<[T]>;
      w.postMessage(command);
      return (await answer)[0];
    }),
  );
}

async function runScenario(replicaCount: number, concurrency: number, apiLatencyMs: number, standIn: StandInApiServer, opts: Options): Promise<ScenarioResult> {
  const nodes = fleetNodes(opts.admissions);
  const counter = new SharedArrayBuffer(4);
  const sampledAtMs = Date.now();
  const workers: Worker[] = [];
  try {
    for (let k = 0; k < replicaCount; k++) {
      const setup: ReplicaSetup = {
        kubeConfig: standIn.kubeConfig().exportConfig(),
        name: `mps-injector-bench-${k}`,
        backoffMs: opts.backoffMs,
        attempts: opts.attempts,
        admissions: opts.admissions,
        concurrency,
        nodes,
        sampledAtMs,
        warmSuffix: `${replicaCount}-${concurrency}-${k}-warm`,
        warmUp: opts.warmUp,
        counter,
      };
      const worker = new Worker(new URL(import.meta.url), { workerData: setup });
      workers.push(worker);
      const [ready] = (await once(worker, 'message')) as [string];
      if (ready !== 'ready') throw new Error(`replica ${k} did not start: ${ready}`);
    }
    // Every replica sees every other's Lease before the run.
    await ask(workers, 'refresh');
    await ask(workers, 'warm');

    const requestsBefore = standIn.requests.length;
    const started = performance.now();
    const serverLoopBefore = performance.eventLoopUtilization();
    const reports = await ask<RunReport>(workers, 'run');
    const serverBusy = performance.eventLoopUtilization(serverLoopBefore).utilization;
    const seconds = (performance.now() - started) / 1000;
    const apiCalls = standIn.requests.length - requestsBefore;
    await ask(workers, 'stop');

    const samples = reports.flatMap((r) => r.samples);
    const conflicts = reports.reduce((sum, r) => sum + r.conflicts, 0);
    const granted = samples.filter((s) => s.outcome === 'granted');
    const latencies = granted.map((s) => s.addedMs);
    const refusals: ScenarioResult['refusals'] = {};
    for (const s of samples) {
      if (s.outcome !== 'refused') continue;
      const entry = (refusals[s.reason] ??= { count: 0, example: s.message });
      entry.count++;
    }
    const fit = Math.floor((H100_TOTAL_MIB - defaultConfig().placement.memorySafetyMarginMiB) / MEMORY_MIB);
    const counts = durableCounts(standIn);
    const scenario =
      replicaCount === 1 && concurrency === 1 ? '1 replica, one admission at a time' : `${replicaCount} replica${replicaCount > 1 ? 's' : ''}, ${concurrency} concurrent${replicaCount > 1 ? ' each' : ''}`;
    return {
      scenario,
      replicas: replicaCount,
      concurrency,
      apiLatencyMs,
      admissions: samples.length,
      granted: granted.length,
      p50Ms: Number(percentile(latencies, 50).toFixed(3)),
      p99Ms: Number(percentile(latencies, 99).toFixed(3)),
      apiCallsPerAdmission: Number((apiCalls / samples.length).toFixed(3)),
      conflictsPerAdmission: Number((conflicts / samples.length).toFixed(3)),
      refusals,
      gpusInUse: counts.filter((n) => n > 0).length,
      overGrantedGpus: counts.filter((n) => n > fit).length,
      seconds: Number(seconds.toFixed(2)),
      replicaBusy: Number(Math.max(...reports.map((r) => r.busy)).toFixed(2)),
      serverBusy: Number(serverBusy.toFixed(2)),
      runs: 1,
    };
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[middle] ?? NaN) : ((sorted[middle - 1] ?? NaN) + (sorted[middle] ?? NaN)) / 2;
}

/** Runs of one scenario as one result: medians of the figures, the worst of the outcomes. */
function combine(runs: ScenarioResult[]): ScenarioResult {
  const first = runs[0];
  if (first === undefined) throw new Error('no runs to combine');
  const refusals: ScenarioResult['refusals'] = {};
  for (const run of runs) {
    for (const [reason, { count, example }] of Object.entries(run.refusals)) {
      const entry = (refusals[reason] ??= { count: 0, example });
      entry.count = Math.max(entry.count, count);
    }
  }
  return {
    ...first,
    granted: Math.min(...runs.map((r) => r.granted)),
    p50Ms: median(runs.map((r) => r.p50Ms)),
    p99Ms: median(runs.map((r) => r.p99Ms)),
    apiCallsPerAdmission: median(runs.map((r) => r.apiCallsPerAdmission)),
    conflictsPerAdmission: median(runs.map((r) => r.conflictsPerAdmission)),
    refusals,
    gpusInUse: Math.max(...runs.map((r) => r.gpusInUse)),
    overGrantedGpus: Math.max(...runs.map((r) => r.overGrantedGpus)),
    seconds: median(runs.map((r) => r.seconds)),
    replicaBusy: median(runs.map((r) => r.replicaBusy)),
    serverBusy: median(runs.map((r) => r.serverBusy)),
    runs: runs.length,
  };
}

interface Check {
  what: string;
  held: boolean;
}

/** The targets, for the scenarios of several replicas against one replica's figures from the same run. */
function checks(results: ScenarioResult[]): Check[] {
  const out: Check[] = [];
  for (const r of results) {
    const tag = `${r.scenario} @ ${r.apiLatencyMs} ms`;
    const contention = r.refusals.contention?.count ?? 0;
    out.push({ what: `${tag}: contention refusals ${contention} (target 0)`, held: contention === 0 });
    out.push({ what: `${tag}: over-granted GPUs ${r.overGrantedGpus} (target 0)`, held: r.overGrantedGpus === 0 });
    if (r.replicas < 2) continue;
    const single = results.find((s) => s.replicas === 1 && s.concurrency === r.concurrency && s.apiLatencyMs === r.apiLatencyMs);
    if (single !== undefined) {
      const bound = single.gpusInUse + r.replicas - 1;
      out.push({ what: `${tag}: GPUs in use ${r.gpusInUse}; one replica ${single.gpusInUse}, so at most ${bound}`, held: r.gpusInUse <= bound });
    }
    out.push({ what: `${tag}: conflicts/admission ${r.conflictsPerAdmission.toFixed(3)} (target <= ${Target.conflictsPerAdmission})`, held: r.conflictsPerAdmission <= Target.conflictsPerAdmission });
    if (r.apiLatencyMs === 0) {
      out.push({ what: `${tag}: p50 ${r.p50Ms.toFixed(2)} ms (target <= ${Target.p50Ms})`, held: r.p50Ms <= Target.p50Ms });
      out.push({ what: `${tag}: p99 ${r.p99Ms.toFixed(2)} ms (target <= ${Target.p99Ms})`, held: r.p99Ms <= Target.p99Ms });
    } else if (single !== undefined) {
      const ratio = r.p99Ms / single.p99Ms;
      out.push({
        what: `${tag}: p99 ${r.p99Ms.toFixed(2)} ms = ${ratio.toFixed(2)}x one replica's ${single.p99Ms.toFixed(2)} ms (target <= ${Target.p99RatioAtLatency}x)`,
        held: ratio <= Target.p99RatioAtLatency,
      });
    }
  }
  return out;
}

const milliseconds = (ms: number): string => (ms >= 10 ? ms.toFixed(0) : ms.toFixed(1));

function markdownRow(r: ScenarioResult): string {
  const conflicts = r.conflictsPerAdmission === 0 ? '0' : r.conflictsPerAdmission.toFixed(3);
  return `| ${r.scenario} | ${r.apiLatencyMs} ms | ${milliseconds(r.p50Ms)} ms | ${milliseconds(r.p99Ms)} ms | ${r.apiCallsPerAdmission.toFixed(2)} | ${conflicts} | ${r.granted} | ${r.gpusInUse} |`;
}

async function main(): Promise<void> {
  const { values: args } = parseArgs({
    options: {
      admissions: { type: 'string', default: '2000' },
      concurrency: { type: 'string', default: '16' },
      replicas: { type: 'string', default: '1,2,3' },
      'api-latency-ms': { type: 'string', default: '0,2' },
      runs: { type: 'string', default: '1' },
      'backoff-ms': { type: 'string', default: '16' },
      attempts: { type: 'string', default: String(defaultConfig().cluster.maxCommitAttempts) },
      'warm-up': { type: 'string', default: '6000' },
      markdown: { type: 'boolean', default: false },
      'write-readme': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
  });
  const numbers = (text: string): number[] => text.split(',').map((t) => Number(t.trim()));
  const opts: Options = { admissions: Number(args.admissions), concurrency: Number(args.concurrency), backoffMs: Number(args['backoff-ms']), attempts: Number(args.attempts), warmUp: Number(args['warm-up']) };
  const tls = generateCertificates({ service: 'stand-in', namespace: 'bench', extraSans: ['127.0.0.1'] });

  const results: ScenarioResult[] = [];
  for (const apiLatencyMs of numbers(args['api-latency-ms'])) {
    const scenarios: [number, number][] = [[1, 1], ...numbers(args.replicas).map((n): [number, number] => [n, opts.concurrency])];
    for (const [replicas, concurrency] of scenarios) {
      const runs: ScenarioResult[] = [];
      for (let run = 0; run < Number(args.runs); run++) {
        const standIn = await StandInApiServer.start({ tls: { certPem: tls.serving.certPem, keyPem: tls.serving.keyPem, caPem: tls.ca.certPem }, responseDelayMs: apiLatencyMs });
        try {
          runs.push(await runScenario(replicas, concurrency, apiLatencyMs, standIn, opts));
        } finally {
          await standIn.stop();
        }
      }
      results.push(combine(runs));
    }
  }
  const verdicts = checks(results);

  if (args.json) {
    console.log(JSON.stringify({ admissions: opts.admissions, results, checks: verdicts }, null, 2));
  } else {
    console.log(
      `Reservation commit through the API server (stand-in over HTTPS, real client, a worker thread per replica; ${opts.admissions} admissions of ${MEMORY_MIB} MiB per scenario; ${args.runs} run(s) each, medians)`,
    );
    console.log('scenario                              API ms  granted   p50 ms   p99 ms  API calls/adm  conflicts/adm  GPUs in use  over-granted  seconds  busy: replica server');
    for (const r of results) {
      console.log(
        `${r.scenario.padEnd(37)} ${String(r.apiLatencyMs).padStart(6)} ${String(r.granted).padStart(8)} ${r.p50Ms.toFixed(2).padStart(8)} ${r.p99Ms.toFixed(2).padStart(8)} ${r.apiCallsPerAdmission.toFixed(2).padStart(14)} ${r.conflictsPerAdmission.toFixed(3).padStart(14)} ${String(r.gpusInUse).padStart(12)} ${String(r.overGrantedGpus).padStart(13)} ${r.seconds.toFixed(1).padStart(8)} ${`${Math.round(r.replicaBusy * 100)}%`.padStart(14)} ${`${Math.round(r.serverBusy * 100)}%`.padStart(6)}`,
      );
    }
    console.log('\nRefusals by reason:');
    for (const r of results) {
      const reasons = Object.entries(r.refusals);
      const text = reasons.length === 0 ? 'none' : reasons.map(([reason, { count, example }]) => `${reason} x${count} (e.g. "${example}")`).join('; ');
      console.log(`  ${r.scenario} @ ${r.apiLatencyMs} ms: ${text}`);
    }
    console.log('\nTargets:');
    for (const c of verdicts) console.log(`  ${c.held ? 'held  ' : 'MISSED'} ${c.what}`);
    const table = ['| Scenario | API latency | p50 | p99 | API calls per admission | Conflicts per admission | Granted | GPUs in use |', '|---|---|---|---|---|---|---|---|', ...results.map(markdownRow)].join('\n');
    if (args.markdown) console.log(`\n${table}`);
    if (args['write-readme']) {
      await writeReadmeSection(fileURLToPath(new URL('../../README.md', import.meta.url)), README_SECTION, table);
      console.log('rewrote the Several replicas table in README.md');
    }
  }
  if (verdicts.some((c) => !c.held)) process.exitCode = 1;
}

if (isMainThread) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
} else if (parentPort !== null) {
  runReplica(workerData as ReplicaSetup, parentPort).catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
