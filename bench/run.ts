/**
 * `npm run bench`: admission throughput and latency against a bare HTTPS floor under the
 * same load tool, chooseSlot latency by fleet size, DCGM parse time, and webhook RSS.
 * Prints a table and writes bench/results.json. Figures, not pass/fail tests: the targets
 * are printed beside them.
 */
import { execFile, spawn } from 'node:child_process';
import https from 'node:https';
import type { ChildProcess } from 'node:child_process';
import { copyFile, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import autocannon from 'autocannon';
import { stringify } from 'yaml';
import type { Pod } from 'kubernetes-types/core/v1.js';
import { admitPod } from '../admission/admitPod.js';
import { buildConfig, defaultConfig } from '../config/schema.js';
import { buildPatch } from '../injector/buildPatch.js';
import { injectPod } from '../injector/injectPod.js';
import { readSlotRequest } from '../injector/readSlotRequest.js';
import { randomKeyRing } from '../domain/decisionRecord.js';
import { reserveSlot } from '../reservations/reserveSlot.js';
import type { GpuInventory } from '../domain/inventory.js';
import { DcgmTextParser, parseDcgmText } from '../dcgm/parseDcgmText.js';
import { renderDcgmText } from '../dcgm/renderDcgmText.js';
import { chooseSlot, chooseSlotByFullPass } from '../placement/chooseSlot.js';
import { ReservationLedger } from '../reservations/ledger.js';
import type { SlotRequest } from '../domain/slot.js';
import { benchIngestion, printRows } from './ingestion.js';
import { largePodCosts } from './hugeReviews.js';
import { syntheticGpus } from './syntheticCluster.js';
import { summariseProfile } from './summariseProfile.js';
import { writeReadmeSection } from './readmeSection.js';
import { benchReview } from './benchReview.js';
import { LARGE_POD_KINDS, OVERSIZED_POD_KIND, largePod, smallPod } from './largePods.js';
import type { LargePodKind } from './largePods.js';
import type { CpuProfile } from './summariseProfile.js';

const here = path.dirname(new URL(import.meta.url).pathname);
const repoRoot = path.resolve(here, '../..');
const cli = path.join(repoRoot, 'dist/cli/main.js');
const run = promisify(execFile);

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const percentile = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};

interface LoadResult {
  rps: number;
  p50_ms: number;
  p99_ms: number;
  errors: number;
  non2xx: number;
}

async function load(port: number, body: string, seconds: number, connections = 16): Promise<LoadResult> {
  const result = await autocannon({
    url: `https://127.0.0.1:${port}/mutate`,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
    connections,
    duration: seconds,
  });
  return { rps: result.requests.average, p50_ms: result.latency.p50, p99_ms: result.latency.p99, errors: result.errors + result.timeouts, non2xx: result.non2xx };
}

function listeningPort(child: ChildProcess, marker: RegExp): Promise<number> {
  return new Promise((resolve, reject) => {
    let buf = '';
    let found = false;
    child.stdout?.on('data', (d: Buffer) => {
      // After the listening line the logs are drained and dropped, so the pipe never blocks the server.
      if (found) return;
      buf += d.toString();
      const m = marker.exec(buf);
      if (m) {
        found = true;
        buf = '';
        resolve(Number(m[1]));
      }
    });
    child.once('exit', (code) => reject(new Error(`process exited with ${code} before listening: ${buf}`)));
  });
}

/** Peak RSS of a process while a promise runs, sampled from /proc every 100 ms. */
async function peakRssMb<T>(pid: number, work: Promise<T>): Promise<{ value: T; rssMb: number }> {
  let peak = 0;
  const sample = async (): Promise<void> => {
    try {
      const status = await readFile(`/proc/${pid}/status`, 'utf8');
      const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
      peak = Math.max(peak, kb / 1024);
    } catch {
      // process gone
    }
  };
  const timer = setInterval(() => void sample(), 100);
  const value = await work;
  clearInterval(timer);
  await sample();
  return { value, rssMb: peak };
}

const FLOOR_SERVER = `
const https = require('node:https');
const fs = require('node:fs');
const body = JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: 'u', allowed: true } });
const server = https.createServer({ cert: fs.readFileSync(process.argv[1]), key: fs.readFileSync(process.argv[2]), minVersion: 'TLSv1.2' }, (req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => { res.writeHead(200, { 'content-type': 'application/json' }); res.end(body); });
});
server.listen(0, '127.0.0.1', () => console.log('floor listening on ' + server.address().port));
`;

/**
 * The same fixed answer behind express and its JSON body parser, configured as the webhook
 * configures it (request and response classes from expressMessageClasses): how much of the gap
 * is the framework.
 */
const EXPRESS_FLOOR_SERVER = `
const https = require('node:https');
const fs = require('node:fs');
const express = require(process.argv[3]);
(async () => {
  const { expressMessageClasses } = await import(process.argv[4]);
  const answer = { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: 'u', allowed: true } };
  const app = express();
  app.set('etag', false);
  app.post('/mutate', express.json({ limit: 3 * 1024 * 1024 }), (req, res) => res.json({ ...answer, response: { ...answer.response, uid: req.body.request.uid } }));
  const server = https.createServer({ ...expressMessageClasses(app), cert: fs.readFileSync(process.argv[1]), key: fs.readFileSync(process.argv[2]), minVersion: 'TLSv1.2' }, app);
  server.listen(0, '127.0.0.1', () => console.log('express floor listening on ' + server.address().port));
})();
`;

/** Live reservations the stand-in pod lifecycle holds in the ledger while admissions run. */
const LIVE_SIZES = [1000, 10000, 50000] as const;
/** 1,600 GPUs: 50k live reservations stay under the 48-client cap (about 31 per GPU). */
const BENCH_NODES = 200;

/** Median of rounds, errors summed. */
function medianOf(results: LoadResult[]): LoadResult {
  return {
    rps: median(results.map((x) => x.rps)),
    p50_ms: median(results.map((x) => x.p50_ms)),
    p99_ms: median(results.map((x) => x.p99_ms)),
    errors: results.reduce((s, x) => s + x.errors, 0),
    non2xx: results.reduce((s, x) => s + x.non2xx, 0),
  };
}

interface SizeResult {
  live: number;
  admission16: LoadResult;
  expressFloor16: LoadResult;
  /** Only at the smallest size: the 64-connection pair. */
  admission64?: LoadResult;
  expressFloor64?: LoadResult;
  rssMb: number;
}

interface AdmissionBench {
  floor16: LoadResult;
  /** The UPDATE review on the default webhook (worker threads), and the express floor of the same rounds. */
  skipped: LoadResult;
  skippedFloor16: LoadResult;
  /** The webhook with offloadWorkers 0 (every body on the event loop) at the smallest size, with the express floor of the same rounds. */
  eventLoopOnly: { admission16: LoadResult; expressFloor16: LoadResult; skipped: LoadResult; skippedFloor16: LoadResult };
  sizes: SizeResult[];
  outcomes: Record<string, number>;
}

interface BenchSetup {
  certDir: string;
  configFile: string;
  /** The same configuration with offloadWorkers 0: every body parsed, placed and injected on the event loop. */
  eventLoopConfigFile: string;
  body: string;
  skippedBody: string;
}

async function benchSetup(work: string): Promise<BenchSetup> {
  const certDir = path.join(work, 'certs');
  await run(process.execPath, [cli, 'certs', 'generate', '--service', 'mps-injector', '--namespace', 'bench', '--san', '127.0.0.1', '--out', certDir]);
  const gpus = syntheticGpus(BENCH_NODES, 8, Date.now());
  const dumpFile = path.join(work, 'dcgm.prom');
  await writeFile(dumpFile, renderDcgmText(gpus));
  const config = {
    server: { host: '127.0.0.1', port: 0, tlsCertFile: path.join(certDir, 'tls.crt'), tlsKeyFile: path.join(certDir, 'tls.key'), logLevel: 'info' },
    metrics: { source: 'file', file: dumpFile, refreshSeconds: 30 },
    // The compute bound is raised so the live reservations fit; the stand-in lifecycle confirms every
    // admission within 20 ms and releases the oldest pods, so the ledger stays at its size.
    placement: { maxMetricsAgeSeconds: 3600, maxThreadPercentSum: 1000 },
    reservations: { ttlSeconds: 10 },
  };
  const configFile = path.join(work, 'config.yaml');
  await writeFile(configFile, stringify(config));
  const eventLoopConfigFile = path.join(work, 'config-event-loop.yaml');
  await writeFile(eventLoopConfigFile, stringify({ ...config, server: { ...config.server, offloadWorkers: 0 } }));
  const { review, body } = await benchReview(repoRoot);
  // The same review as an UPDATE: the webhook answers it allowed and unchanged without placing anything,
  // so its cost is the webhook's HTTP edge alone (TLS, express, body parsing, encoding, logging, metrics).
  const skippedBody = JSON.stringify({ ...review, request: { ...review.request, operation: 'UPDATE' } });
  return { certDir, configFile, eventLoopConfigFile, body, skippedBody };
}

function spawnWebhook(setup: BenchSetup, live: number, nodeFlags: string[] = [], configFile = setup.configFile): { child: ChildProcess; port: Promise<number> } {
  const entry = path.join(here, 'benchWebhook.js');
  const child = spawn(process.execPath, [...nodeFlags, entry, configFile, String(live), String(BENCH_NODES)], { stdio: ['ignore', 'pipe', 'inherit'] });
  return { child, port: listeningPort(child, /"port":(\d+)[^\n]*bench pod lifecycle running/) };
}

function stopped(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
}

async function benchAdmission(setup: BenchSetup, rounds: number, seconds: number): Promise<AdmissionBench> {
  const { certDir, body, skippedBody } = setup;
  const floor = spawn(process.execPath, ['-e', FLOOR_SERVER, path.join(certDir, 'tls.crt'), path.join(certDir, 'tls.key')], { stdio: ['ignore', 'pipe', 'inherit'] });
  const expressFloor = spawn(process.execPath, ['-e', EXPRESS_FLOOR_SERVER, path.join(certDir, 'tls.crt'), path.join(certDir, 'tls.key'), path.join(repoRoot, 'node_modules/express'), pathToFileURL(path.join(repoRoot, 'dist/webhook/expressMessageClasses.js')).href], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    const floorPort = await listeningPort(floor, /floor listening on (\d+)/);
    const expressFloorPort = await listeningPort(expressFloor, /express floor listening on (\d+)/);
    await load(floorPort, body, 1);
    await load(expressFloorPort, body, 1);
    const floors: LoadResult[] = [];
    const sizes: SizeResult[] = [];
    /** UPDATE reviews (no admission work), each round after one of the express floor. */
    const updateRounds = async (port: number): Promise<{ skipped: LoadResult[]; skippedFloor: LoadResult[] }> => {
      await load(port, skippedBody, 1);
      const result = { skipped: [] as LoadResult[], skippedFloor: [] as LoadResult[] };
      for (let r = 0; r < rounds; r++) {
        result.skippedFloor.push(await load(expressFloorPort, body, seconds));
        result.skipped.push(await load(port, skippedBody, seconds));
      }
      return result;
    };
    let skipped: LoadResult[] = [];
    let skippedFloor: LoadResult[] = [];
    let outcomes: Record<string, number> = {};
    for (const live of LIVE_SIZES) {
      const webhook = spawnWebhook(setup, live);
      try {
        const webhookPort = await webhook.port;
        const wide = live === LIVE_SIZES[0];
        // The UPDATE rounds first, on a webhook that has admitted nothing yet: the same state as
        // the event-loop-only webhook's UPDATE rounds below.
        if (wide) ({ skipped, skippedFloor } = await updateRounds(webhookPort));
        // Warm-up, untimed: JIT and TLS session caches.
        await load(webhookPort, body, 1);
        const a16: LoadResult[] = [];
        const e16: LoadResult[] = [];
        const a64: LoadResult[] = [];
        const e64: LoadResult[] = [];
        let rssMb = 0;
        for (let r = 0; r < rounds; r++) {
          if (wide) floors.push(await load(floorPort, body, seconds));
          e16.push(await load(expressFloorPort, body, seconds));
          const a = await peakRssMb(webhook.child.pid!, load(webhookPort, body, seconds));
          rssMb = Math.max(rssMb, a.rssMb);
          a16.push(a.value);
          if (wide) {
            e64.push(await load(expressFloorPort, body, seconds, 64));
            a64.push(await load(webhookPort, body, seconds, 64));
          }
        }
        if (wide) outcomes = await admissionOutcomes(webhookPort);
        sizes.push({
          live,
          admission16: medianOf(a16),
          expressFloor16: medianOf(e16),
          ...(wide ? { admission64: medianOf(a64), expressFloor64: medianOf(e64) } : {}),
          rssMb,
        });
      } finally {
        webhook.child.kill('SIGTERM');
        await stopped(webhook.child);
      }
    }
    // The same admissions and UPDATE reviews with every body on the event loop: what the worker
    // threads' hop costs the tail, and what they bring to throughput (ADR 0010).
    const eventLoop = spawnWebhook(setup, LIVE_SIZES[0], [], setup.eventLoopConfigFile);
    const eventLoopOnly = { admission16: [] as LoadResult[], skipped: [] as LoadResult[], expressFloor16: [] as LoadResult[], skippedFloor16: [] as LoadResult[] };
    try {
      const port = await eventLoop.port;
      ({ skipped: eventLoopOnly.skipped, skippedFloor: eventLoopOnly.skippedFloor16 } = await updateRounds(port));
      await load(port, body, 1);
      for (let r = 0; r < rounds; r++) {
        eventLoopOnly.expressFloor16.push(await load(expressFloorPort, body, seconds));
        eventLoopOnly.admission16.push(await load(port, body, seconds));
      }
    } finally {
      eventLoop.child.kill('SIGTERM');
      await stopped(eventLoop.child);
    }
    return {
      floor16: medianOf(floors),
      skipped: medianOf(skipped),
      skippedFloor16: medianOf(skippedFloor),
      eventLoopOnly: {
        admission16: medianOf(eventLoopOnly.admission16),
        expressFloor16: medianOf(eventLoopOnly.expressFloor16),
        skipped: medianOf(eventLoopOnly.skipped),
        skippedFloor16: medianOf(eventLoopOnly.skippedFloor16),
      },
      sizes,
      outcomes,
    };
  } finally {
    floor.kill('SIGTERM');
    expressFloor.kill('SIGTERM');
  }
}

/**
 * chooseSlot as admissions call it: each choice is held in the ledger and released again, so
 * every call sees the GPU of the previous one changed. The full pass (every GPU evaluated, the
 * refusal path) is timed on the same calls for comparison.
 */
function benchChooseSlot(gpuCount: number, calls: number): { p50_ms: number; p99_ms: number; fullPassP50_ms: number } {
  const nowMs = Date.now();
  const gpus = syntheticGpus(Math.ceil(gpuCount / 8), 8, nowMs).slice(0, gpuCount);
  const inventory: GpuInventory = { gpus, nodes: {}, source: 'bench', fetchedAtMs: nowMs, skippedLines: 0, problems: [] };
  const config = defaultConfig().placement;
  const ledger = new ReservationLedger({ ttlMs: 600_000 });
  // A realistic ledger: a quarter of the GPUs carry two reservations each.
  for (let i = 0; i < gpus.length; i += 4) {
    for (let k = 0; k < 2; k++) ledger.reserve({ podKey: `bench/p-${i}-${k}`, node: gpus[i]!.node, gpuUuid: gpus[i]!.uuid, memoryMiB: 4096, threadPercent: 20, priority: 'low' }, nowMs);
  }
  const request: SlotRequest = { podKey: 'bench/probe', memoryMiB: 8192, threadPercent: null, priority: 'high', gpuModel: 'H100', pinnedNode: null };
  const times: number[] = [];
  const fullPass: number[] = [];
  for (let i = 0; i < calls; i++) {
    const t0 = performance.now();
    const d = chooseSlot(inventory, ledger, request, config, nowMs);
    times.push(performance.now() - t0);
    if (!d.ok) throw new Error(`bench inventory unexpectedly refused: ${d.reason}`);
    const t1 = performance.now();
    chooseSlotByFullPass(inventory, ledger, request, config, nowMs);
    fullPass.push(performance.now() - t1);
    // Held and released again (a pod that came and went): the GPU's snapshot is a new one.
    ledger.release(ledger.reserve({ podKey: `bench/probe-${i}`, node: d.node, gpuUuid: d.gpuUuid, memoryMiB: d.memoryLimitMiB, threadPercent: d.threadPercent, priority: d.priority }, nowMs).id);
  }
  return { p50_ms: percentile(times, 50), p99_ms: percentile(times, 99), fullPassP50_ms: percentile(fullPass, 50) };
}

/** Median in-process cost of each stage of one admission on the bench's 800-GPU fleet, microseconds. */
async function benchPipelineStages(calls: number): Promise<Record<string, number>> {
  const nowMs = Date.now();
  const config = buildConfig({ placement: { maxMetricsAgeSeconds: 3600, maxThreadPercentSum: 1000 } });
  const inventory: GpuInventory = { gpus: syntheticGpus(100, 8, nowMs), nodes: {}, source: 'bench', fetchedAtMs: nowMs, skippedLines: 0, problems: [] };
  const ledger = new ReservationLedger({ ttlMs: 10_000 });
  const keys = randomKeyRing();
  const text = (await readFile(path.join(repoRoot, 'e2e/testdata/v1-pod-create-kubectl.json.txt'), 'utf8')).split('\n').slice(1).join('\n');
  const pod = (JSON.parse(text) as { request: { object: Pod } }).request.object;
  pod.metadata!.annotations = { ...pod.metadata!.annotations, 'mps-injector.io/gpu-memory': '512Mi' };
  const stages: Record<string, number[]> = { jsonParse: [], readSlotRequest: [], reserveSlot: [], injectPod: [], buildPatch: [], admitPod: [] };
  const time = <T>(stage: string, f: () => T): T => {
    const t0 = performance.now();
    const value = f();
    stages[stage]!.push((performance.now() - t0) * 1000);
    return value;
  };
  for (let i = 0; i < calls; i++) {
    time('jsonParse', () => JSON.parse(text) as unknown);
    const intent = time('readSlotRequest', () => readSlotRequest(pod, { namespace: 'ns', requestUid: `u-${i}`, config, keys }));
    if (intent.kind !== 'place') throw new Error(`bench pod not placed: ${intent.kind}`);
    const { decision, reservation } = time('reserveSlot', () => reserveSlot(inventory, ledger, intent.request, config.placement, nowMs, { dryRun: false }));
    if (!decision.ok) throw new Error(decision.reason);
    const injected = time('injectPod', () => injectPod(pod, decision, reservation?.id ?? '', intent.containers, config.injection));
    time('buildPatch', () => buildPatch(pod, injected.pod));
    time('admitPod', () => admitPod({ pod, namespace: 'ns', requestUid: `v-${i}`, dryRun: false }, { config, inventory, ledger, nowMs, keys }));
  }
  return Object.fromEntries(Object.entries(stages).map(([k, v]) => [k, Number(median(v).toFixed(1))]));
}

/** In-process admission of very large pods against a small one: median µs and patch bytes each. */
async function benchLargePods(runs: number): Promise<{ kind: string; outcome: string; us: number; ratio: number; patchBytes: number; patchRatio: number }[]> {
  const nowMs = Date.now();
  const config = buildConfig({ placement: { maxMetricsAgeSeconds: 3600, maxThreadPercentSum: 1000 } });
  const inventory: GpuInventory = { gpus: syntheticGpus(100, 8, nowMs), nodes: {}, source: 'bench', fetchedAtMs: nowMs, skippedLines: 0, problems: [] };
  const keys = randomKeyRing();
  const measure = (make: () => Pod, outcome: 'mutated' | 'refused' = 'mutated'): { us: number; patchBytes: number } => {
    const times: number[] = [];
    let patchBytes = 0;
    for (let i = 0; i < runs; i++) {
      const pod = make();
      const ledger = new ReservationLedger({ ttlMs: 10_000 });
      const t0 = performance.now();
      const a = admitPod({ pod, namespace: 'bench', requestUid: `u-${i}`, dryRun: false }, { config, inventory, ledger, nowMs, keys });
      times.push((performance.now() - t0) * 1000);
      if (a.outcome !== outcome) throw new Error(`bench pod not ${outcome}: ${a.outcome}`);
      patchBytes = a.outcome === 'mutated' ? JSON.stringify(a.patch).length : 0;
    }
    return { us: median(times), patchBytes };
  };
  const kinds: { kind: LargePodKind; outcome: 'mutated' | 'refused' }[] = [...LARGE_POD_KINDS.map((kind) => ({ kind, outcome: 'mutated' as const })), { kind: OVERSIZED_POD_KIND, outcome: 'refused' }];
  // Untimed warm-up of every kind first, so the JIT does not count against whichever runs first.
  measure(smallPod);
  for (const { kind, outcome } of kinds) measure(() => largePod(kind), outcome);
  const small = measure(smallPod);
  return [
    { kind: 'small pod', outcome: 'mutated', us: small.us, ratio: 1, patchBytes: small.patchBytes, patchRatio: 1 },
    ...kinds.map(({ kind, outcome }) => {
      const large = measure(() => largePod(kind), outcome);
      return { kind, outcome, us: large.us, ratio: large.us / small.us, patchBytes: large.patchBytes, patchRatio: large.patchBytes / small.patchBytes };
    }),
  ];
}

/** Median parse time of a realistic 10-family scrape: a fresh parser each time, and one reused as the sources do. */
function benchParse(nodes: number, runs: number): { freshMs: number; reusedMs: number; megabytes: number } {
  const nowMs = Date.now();
  const text = renderDcgmText(syntheticGpus(nodes, 8, nowMs), { withDeviceExtras: true });
  const check = (count: number): void => {
    if (count !== nodes * 8) throw new Error(`parsed ${count} GPUs, expected ${nodes * 8}`);
  };
  const fresh: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const parsed = parseDcgmText(text, { scrapedAtMs: nowMs });
    fresh.push(performance.now() - t0);
    check(parsed.gpus.length);
  }
  const parser = new DcgmTextParser();
  const reused: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const parsed = parser.parse(text, { scrapedAtMs: nowMs });
    reused.push(performance.now() - t0);
    check(parsed.gpus.length);
  }
  return { freshMs: median(fresh), reusedMs: median(reused), megabytes: text.length / 1e6 };
}

/** Admission outcomes the webhook counted, read from its /metrics. */
async function admissionOutcomes(port: number): Promise<Record<string, number>> {
  const res = await new Promise<string>((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', port, path: '/metrics', rejectUnauthorized: false }, (r) => {
      let body = '';
      r.on('data', (c: Buffer) => (body += c.toString()));
      r.on('end', () => resolve(body));
    });
    req.on('error', reject);
  });
  const outcomes: Record<string, number> = {};
  for (const m of res.matchAll(/^mps_injector_admission_requests_total\{outcome="([^"]+)"\} (\d+)/gm)) outcomes[m[1]!] = Number(m[2]);
  return outcomes;
}

/** `--profile`: a CPU profile of the webhook under admission load, summarised into bench/profile.md. */
async function profileWebhook(setup: BenchSetup, seconds: number): Promise<void> {
  const profileDir = path.join(path.dirname(setup.configFile), 'cpu-profile');
  const webhook = spawnWebhook(setup, LIVE_SIZES[0], ['--cpu-prof', `--cpu-prof-dir=${profileDir}`]);
  let result: LoadResult;
  try {
    const port = await webhook.port;
    await load(port, setup.body, 1);
    result = await load(port, setup.body, seconds);
  } finally {
    webhook.child.kill('SIGTERM');
    await stopped(webhook.child);
  }
  // One profile per thread, named CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile; the main thread's id is 0.
  const files = (await readdir(profileDir)).filter((f) => f.endsWith('.cpuprofile')).sort();
  const threadOf = (f: string): number => Number(f.split('.').at(-3));
  const mainFile = files.find((f) => threadOf(f) === 0);
  if (mainFile === undefined) throw new Error(`no main-thread .cpuprofile in ${profileDir} (found ${files.join(', ') || 'none'})`);
  const readProfile = async (f: string): Promise<CpuProfile> => JSON.parse(await readFile(path.join(profileDir, f), 'utf8')) as CpuProfile;
  await copyFile(path.join(profileDir, mainFile), path.join(repoRoot, 'bench/webhook.cpuprofile'));
  const threads = await Promise.all(files.filter((f) => f !== mainFile).map(readProfile));
  const title = `webhook under ${seconds} s of admission load at 16 connections, ${LIVE_SIZES[0]} live reservations: ${result.rps.toFixed(0)} admissions/s, p99 ${result.p99_ms} ms`;
  await writeFile(path.join(repoRoot, 'bench/profile.md'), summariseProfile(await readProfile(mainFile), { title, top: 15, threads }));
  console.log(`${title}\nwrote bench/profile.md (top 15 self-time frames) and bench/webhook.cpuprofile`);
}

/** The README's benchmark table. */
const README_SECTION = { name: 'bench:table', writtenBy: 'npm run bench -- --write-readme' } as const;

/** Replace the marked section of README.md with the table of this run. */
async function writeReadme(table: string): Promise<void> {
  await writeReadmeSection(path.join(repoRoot, 'README.md'), README_SECTION, table);
  console.log('rewrote the benchmark table in README.md');
}

async function main(): Promise<void> {
  const args = new Set(process.argv.slice(2));
  const seconds = Number(process.env.BENCH_SECONDS ?? 4);
  const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
  const work = await mkdtemp(path.join(tmpdir(), 'mps-injector-bench-'));
  const setup = await benchSetup(work);
  if (args.has('--profile')) {
    await profileWebhook(setup, Number(process.env.BENCH_SECONDS ?? 8));
    return;
  }

  const chooseSlotP99: Record<string, number> = {};
  const chooseSlotP50: Record<string, number> = {};
  const fullPassP50: Record<string, number> = {};
  for (const n of [100, 1000, 10000]) {
    const r = benchChooseSlot(n, n >= 10000 ? 1000 : 3000);
    chooseSlotP99[n] = r.p99_ms;
    chooseSlotP50[n] = r.p50_ms;
    fullPassP50[n] = r.fullPassP50_ms;
  }
  const parse = benchParse(1000, 5);
  const ingestion = await benchIngestion();
  const stages = await benchPipelineStages(3000);
  const largePods = await benchLargePods(41);
  const adm = await benchAdmission(setup, rounds, seconds);
  // Reviews of tens of thousands of containers: event-loop time of one, parse to answer.
  const hugeReviews = largePodCosts();

  const small = adm.sizes[0]!;
  const large = adm.sizes[adm.sizes.length - 1]!;
  const a64 = small.admission64!;
  const e64 = small.expressFloor64!;
  // autocannon reports whole milliseconds: a floor p99 under 1 ms counts as 1.
  const p99Ratio = (x: LoadResult, floor: LoadResult): number => x.p99_ms / Math.max(floor.p99_ms, 1);
  const ratios = {
    rpsVsExpressFloor16: small.admission16.rps / small.expressFloor16.rps,
    p99VsExpressFloor16: p99Ratio(small.admission16, small.expressFloor16),
    rpsVsExpressFloor64: a64.rps / e64.rps,
    p99VsExpressFloor64: p99Ratio(a64, e64),
    rpsVsBareFloor16: small.admission16.rps / adm.floor16.rps,
    // The same ratios with every body on the event loop (offloadWorkers 0), each against the express floor of its own rounds.
    rpsVsExpressFloor16EventLoopOnly: adm.eventLoopOnly.admission16.rps / adm.eventLoopOnly.expressFloor16.rps,
    p99VsExpressFloor16EventLoopOnly: p99Ratio(adm.eventLoopOnly.admission16, adm.eventLoopOnly.expressFloor16),
    // An UPDATE review does no admission work: its p99 against the floor's is what the worker hop alone costs the tail.
    p99VsExpressFloor16Update: p99Ratio(adm.skipped, adm.skippedFloor16),
    p99VsExpressFloor16UpdateEventLoopOnly: p99Ratio(adm.eventLoopOnly.skipped, adm.eventLoopOnly.skippedFloor16),
    // Cost per admission is CPU time per request: at a saturated server, the inverse of throughput,
    // each normalised by the express floor of its own rounds so load from other processes cancels out.
    costGrowthLargestVsSmallest: small.admission16.rps / small.expressFloor16.rps / (large.admission16.rps / large.expressFloor16.rps),
  };
  const results = {
    machine: { node: process.version, cpus: (await import('node:os')).cpus().length },
    load: { tool: 'autocannon', connections: [16, 64], seconds, rounds, aggregate: 'median of rounds', gpus: BENCH_NODES * 8 },
    floor: adm.floor16,
    skipped: adm.skipped,
    skippedExpressFloor: adm.skippedFloor16,
    eventLoopOnly: adm.eventLoopOnly,
    liveReservations: adm.sizes,
    ratios,
    chooseSlot: { p50_ms: chooseSlotP50, p99_ms: chooseSlotP99, fullPassP50_ms: fullPassP50 },
    dcgmParse: { ms_8000_gpus: parse.freshMs, ms_8000_gpus_reused_parser: parse.reusedMs, megabytes: parse.megabytes },
    admissionOutcomes: adm.outcomes,
    pipelineStages_us: stages,
    largePods,
    rss_mb: Math.max(...adm.sizes.map((x) => x.rssMb)),
    hugeReviews,
    ingestion: ingestion.results,
  };
  await writeFile(path.join(repoRoot, 'bench/results.json'), `${JSON.stringify(results, null, 2)}\n`);

  const ok = (b: boolean): string => (b ? 'met' : '**missed**');
  const fmt = (r: LoadResult): string => `${r.rps.toFixed(0)} rps, p50 / p99 ${r.p50_ms} / ${r.p99_ms} ms`;
  const rows: [string, string, string][] = [
    ['admission, 16 connections, 1k live', `${fmt(small.admission16)}; ${ratios.rpsVsExpressFloor16.toFixed(2)}x express rps, p99 ${ratios.p99VsExpressFloor16.toFixed(2)}x`, `rps >= 0.5x, p99 <= 2x express: ${ok(ratios.rpsVsExpressFloor16 >= 0.5)} / ${ok(ratios.p99VsExpressFloor16 <= 2)}`],
    ['express floor, 16 connections', fmt(small.expressFloor16), 'baseline'],
    ['admission, 64 connections, 1k live', `${fmt(a64)}; ${ratios.rpsVsExpressFloor64.toFixed(2)}x express rps, p99 ${ratios.p99VsExpressFloor64.toFixed(2)}x`, `rps >= 0.5x, p99 <= 2x express: ${ok(ratios.rpsVsExpressFloor64 >= 0.5)} / ${ok(ratios.p99VsExpressFloor64 <= 2)}`],
    ['express floor, 64 connections', fmt(e64), 'baseline'],
    ...adm.sizes.slice(1).map((x): [string, string, string] => [
      `admission, 16 connections, ${x.live / 1000}k live`,
      `${fmt(x.admission16)}; ${(x.admission16.rps / x.expressFloor16.rps).toFixed(2)}x express (${x.expressFloor16.rps.toFixed(0)} rps)`,
      '',
    ]),
    [`cost per admission, ${large.live / 1000}k vs ${small.live / 1000}k live`, `${ratios.costGrowthLargestVsSmallest.toFixed(2)}x`, `<= 1.5x: ${ok(ratios.costGrowthLargestVsSmallest <= 1.5)}`],
    ['bare HTTPS floor, 16 connections', fmt(adm.floor16), `admission ${ratios.rpsVsBareFloor16.toFixed(2)}x its rps`],
    [
      'admission, 16 connections, 1k live, event loop only (offloadWorkers 0)',
      `${fmt(adm.eventLoopOnly.admission16)}; ${ratios.rpsVsExpressFloor16EventLoopOnly.toFixed(2)}x express rps, p99 ${ratios.p99VsExpressFloor16EventLoopOnly.toFixed(2)}x (express ${fmt(adm.eventLoopOnly.expressFloor16)})`,
      `rps >= 0.5x, p99 <= 2x express: ${ok(ratios.rpsVsExpressFloor16EventLoopOnly >= 0.5)} / ${ok(ratios.p99VsExpressFloor16EventLoopOnly <= 2)}`,
    ],
    ['UPDATE review (HTTP edge, no placement)', `${fmt(adm.skipped)}; p99 ${ratios.p99VsExpressFloor16Update.toFixed(2)}x express (${fmt(adm.skippedFloor16)})`, 'the worker hop alone'],
    ['UPDATE review, event loop only', `${fmt(adm.eventLoopOnly.skipped)}; p99 ${ratios.p99VsExpressFloor16UpdateEventLoopOnly.toFixed(2)}x express (${fmt(adm.eventLoopOnly.skippedFloor16)})`, 'no hop'],
    ['admission errors / non-2xx', adm.sizes.map((x) => `${x.admission16.errors + (x.admission64?.errors ?? 0)} / ${x.admission16.non2xx + (x.admission64?.non2xx ?? 0)}`).join(', '), `0 / 0: ${ok(adm.sizes.every((x) => x.admission16.errors + x.admission16.non2xx + (x.admission64?.errors ?? 0) + (x.admission64?.non2xx ?? 0) === 0))}`],
    ...[100, 1000, 10000].map((n): [string, string, string] => [`chooseSlot p50 / p99 ms @ ${n} GPUs`, `${chooseSlotP50[n]!.toFixed(3)} / ${chooseSlotP99[n]!.toFixed(3)} (full pass p50 ${fullPassP50[n]!.toFixed(3)})`, n === 10000 ? `p99 < 1 ms: ${ok(chooseSlotP99[n]! < 1)}` : '']),
    ['DCGM parse, 8000 GPUs', `${parse.freshMs.toFixed(1)} ms fresh, ${parse.reusedMs.toFixed(1)} ms reused parser (${parse.megabytes.toFixed(1)} MB)`, `< 200 ms: ${ok(parse.freshMs < 200)}`],
    ['webhook peak RSS under load', adm.sizes.map((x) => `${x.rssMb.toFixed(0)} MB at ${x.live / 1000}k live`).join(', '), `< 150 MB at 1k live: ${ok(small.rssMb < 150)}`],
    ...largePods.slice(1).map((x): [string, string, string] => [
      `admission in-process, pod with ${x.kind}`,
      `${x.us.toFixed(0)} µs (${x.ratio.toFixed(2)}x a small pod's ${largePods[0]!.us.toFixed(0)} µs); ${x.outcome === 'mutated' ? `patch ${x.patchBytes} B (${x.patchRatio.toFixed(2)}x)` : `${x.outcome}, no patch (past the API server's annotation limit)`}`,
      `<= 3x: ${ok(x.ratio <= 3)}`,
    ]),
    ...Object.entries(hugeReviews).map(([name, c]): [string, string, string] => [
      `one thread ms, one review: ${name}`,
      `${c.medianMs.toFixed(1)} (max ${c.maxMs.toFixed(1)}), ${c.outcome}`,
      c.containers >= 20_000 ? `< 200 ms: ${ok(c.medianMs < 200)}` : 'baseline',
    ]),
    ['one admission in-process, median µs', Object.entries(stages).map(([k, v]) => `${k} ${v}`).join(', '), ''],
  ];
  const table = [
    `Run of ${new Date().toISOString().slice(0, 10)}, Node ${process.version}, ${results.machine.cpus} CPUs, ${BENCH_NODES * 8} GPUs, medians of ${rounds} rounds of ${seconds} s:`,
    '',
    '| measure | value | target |',
    '| --- | --- | --- |',
    ...rows.map((r) => `| ${r.join(' | ')} |`),
    '',
  ].join('\n');
  console.log(table);
  console.log(`admission outcomes counted by the webhook: ${JSON.stringify(adm.outcomes)}`);
  console.log('\nDCGM ingestion on hostile input (each against a baseline from this run):');
  printRows(ingestion.rows);
  console.log('wrote bench/results.json');
  if (args.has('--write-readme')) await writeReadme(table);
}

await main();
