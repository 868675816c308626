/**
 * Pods of tens of thousands of containers, as the API server sends them (every container
 * defaulted): the event-loop time one such review costs the webhook, from the JSON text to the
 * JSON answer, measured in-process. `npm run bench` prints these beside the HTTP figures.
 *
 * `node .bench-dist/bench/hugeReviews.js` (after `npm run build && npm run build:bench`) prints
 * them alone, then the latency of ordinary admissions to a served webhook with no large review
 * and with one a second, with large bodies parsed on the event loop (server.offloadWorkers: 0)
 * and on worker threads (the default), all in one run.
 */
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { pino } from 'pino';
import autocannon from 'autocannon';
import { pathToFileURL } from 'node:url';
import { admitPod } from '../admission/admitPod.js';
import { buildConfig } from '../config/schema.js';
import type { GpuInventory } from '../domain/inventory.js';
import { ReservationLedger } from '../reservations/ledger.js';
import { decodeAdmissionReview, encodeAdmission, podOf } from '../webhook/admissionReview.js';
import { renderDcgmText } from '../dcgm/renderDcgmText.js';
import { reviewScreenPoolFor } from '../webhook/reviewScreenPool.js';
import { listenLocalWebhook } from '../testing/localWebhook.js';
import { syntheticGpus } from './syntheticCluster.js';
import { benchReview } from './benchReview.js';
import { randomKeyRing } from '../domain/decisionRecord.js';

/** Decisions sealed in this process only. */
const keys = randomKeyRing();

/** A container as the API server defaults `{name, image}`: about 150 bytes of JSON, so 20,000 fill a 3 MiB body. */
function defaultedContainer(name: string): Record<string, unknown> {
  return { name, image: 'app', resources: {}, terminationMessagePath: '/dev/termination-log', terminationMessagePolicy: 'File', imagePullPolicy: 'Always' };
}

/** The JSON text of a Pod CREATE review with `containers` defaulted containers and the given annotations. */
export function largePodReview(uid: string, containers: number, annotations: Record<string, string> = {}): string {
  return JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      namespace: 'bench',
      operation: 'CREATE',
      object: {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: uid, namespace: 'bench', annotations: { 'mps-injector.io/gpu-memory': '512Mi', ...annotations } },
        spec: { containers: Array.from({ length: containers }, (_, i) => defaultedContainer(`c-${i}`)), restartPolicy: 'Always', dnsPolicy: 'ClusterFirst' },
      },
    },
  });
}

export interface LargePodCost {
  containers: number;
  bodyMiB: number;
  /** What the pipeline answered. */
  outcome: string;
  /** Median and worst time of one review on one thread (parse to answer text, as the webhook did on its event loop before the worker threads), ms. */
  medianMs: number;
  maxMs: number;
  answerBytes: number;
}

/** Time of one review of `containers` containers on one thread: parse, decode, admit, encode, serialise; median of `runs`. The webhook now spreads these steps over a worker thread and the event loop. */
export function largePodCost(containers: number, annotations: Record<string, string>, runs: number): LargePodCost {
  const nowMs = Date.now();
  const config = buildConfig({ placement: { maxMetricsAgeSeconds: 3600, maxThreadPercentSum: 1000 } });
  const inventory: GpuInventory = { gpus: syntheticGpus(100, 8, nowMs), nodes: {}, source: 'bench', fetchedAtMs: nowMs, skippedLines: 0, problems: [] };
  const ledger = new ReservationLedger({ ttlMs: 10_000 });
  const text = largePodReview('large', containers, annotations);
  const times: number[] = [];
  let outcome = '';
  let answerBytes = 0;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const review = decodeAdmissionReview(JSON.parse(text));
    const admission = admitPod({ pod: podOf(review), namespace: review.namespace, requestUid: `${review.uid}-${i}`, dryRun: true }, { config, inventory, ledger, nowMs, keys });
    const answer = JSON.stringify(encodeAdmission(review.apiVersion, review.uid, admission));
    times.push(performance.now() - t0);
    outcome = admission.outcome;
    answerBytes = answer.length;
  }
  const sorted = [...times].sort((a, b) => a - b);
  return { containers, bodyMiB: text.length / 2 ** 20, outcome, medianMs: sorted[Math.floor(sorted.length / 2)]!, maxMs: sorted[sorted.length - 1]!, answerBytes };
}

/** 48 of the 20,000 containers named for the GPU: a pod the webhook places. */
const NAMED_48: Record<string, string> = { 'mps-injector.io/containers': Array.from({ length: 48 }, (_, i) => `c-${i * 400}`).join(',') };

/** The cases `npm run bench` prints: no annotation (every container selected), 48 named, and one container for scale. */
export function largePodCosts(runs = 5): Record<string, LargePodCost> {
  return {
    '20000 containers, none named': largePodCost(20_000, {}, runs),
    '20000 containers, 48 named': largePodCost(20_000, NAMED_48, runs),
    '1 container': largePodCost(1, {}, runs * 20),
  };
}

export interface LatencyFigures {
  p50_ms: number;
  p99_ms: number;
  p99_9_ms: number;
  max_ms: number;
  rps: number;
}

export interface BystanderLatency {
  /** Ordinary admissions alone. */
  alone: LatencyFigures;
  /** The same while bursts of large reviews arrive, by burst size (reviews per second). */
  withLargePods: Record<number, LatencyFigures & { largeAnswered: number; largeSlowestMs: number }>;
  /** Failed bystander requests over all runs. */
  errors: number;
}

function postLarge(port: number, body: string): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, method: 'POST', path: '/mutate', rejectUnauthorized: false, agent: false, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(performance.now() - t0));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Latency of ordinary admissions (16 connections; at `rate` a second, else as fast as they are answered) alone, then, for each burst size, while that
 * many reviews of 20,000 containers (none named, so every container is selected) arrive every second.
 */
export async function bystandersDuringLargePods(port: number, bystanderBody: string, seconds: number, bursts: number[] = [1, 6], rate?: number): Promise<BystanderLatency> {
  let errors = 0;
  const run = async (): Promise<LatencyFigures> => {
    const r = await autocannon({
      url: `https://127.0.0.1:${port}/mutate`,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: bystanderBody,
      connections: 16,
      duration: seconds,
      ...(rate === undefined ? {} : { overallRate: rate }),
    });
    errors += r.errors + r.timeouts + r.non2xx;
    return { p50_ms: r.latency.p50, p99_ms: r.latency.p99, p99_9_ms: r.latency.p99_9, max_ms: r.latency.max, rps: r.requests.average };
  };
  const alone = await run();
  const large = largePodReview('large-bystander', 20_000);
  const withLargePods: BystanderLatency['withLargePods'] = {};
  for (const burst of bursts) {
    let stop = false;
    const answeredMs: number[] = [];
    const sender = (async () => {
      while (!stop) {
        const started = performance.now();
        answeredMs.push(...(await Promise.all(Array.from({ length: burst }, () => postLarge(port, large)))));
        const wait = 1000 - (performance.now() - started);
        if (wait > 0 && !stop) await new Promise((resolve) => setTimeout(resolve, wait));
      }
    })();
    const figures = await run();
    stop = true;
    await sender;
    withLargePods[burst] = { ...figures, largeAnswered: answeredMs.length, largeSlowestMs: Math.max(0, ...answeredMs) };
  }
  return { alone, withLargePods, errors };
}

/**
 * The longest event-loop stall while the webhook answers one review of 20,000 containers over
 * HTTP, in this process (the client's share is writing 3 MiB to a socket): median and worst of
 * `runs`, with `offloadWorkers` worker threads (0: parsed on the event loop). With no
 * annotations the pod is refused (too many GPU containers); naming 48 containers, it is placed.
 */
export async function eventLoopStall(offloadWorkers: number, runs: number, annotations: Record<string, string> = {}): Promise<{ medianMs: number; maxMs: number }> {
  const nowMs = Date.now();
  const config = buildConfig({ server: { offloadWorkers }, placement: { maxMetricsAgeSeconds: 3600, maxThreadPercentSum: 1000 } });
  const inventory: GpuInventory = { gpus: syntheticGpus(100, 8, nowMs), nodes: {}, source: 'bench', fetchedAtMs: nowMs, skippedLines: 0, problems: [] };
  const ledger = new ReservationLedger({ ttlMs: 10_000 });
  const pool = offloadWorkers > 0 ? reviewScreenPoolFor(config) : undefined;
  const webhook = await listenLocalWebhook({ config, inventory, ledger, logger: pino({ level: 'silent' }), keys, now: Date.now, ...(pool === undefined ? {} : { reviewScreens: pool }) });
  const { port } = webhook;
  const body = Buffer.from(largePodReview('stall', 20_000, annotations));
  const post = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/mutate', headers: { 'content-type': 'application/json', 'content-length': body.length } }, (res) => {
        res.resume();
        res.on('end', () => resolve());
      });
      req.on('error', reject);
      req.end(body);
    });
  try {
    // Warm-up: JIT, and the worker threads start on the first large body.
    for (let i = 0; i < 3; i++) await post();
    const stalls: number[] = [];
    for (let i = 0; i < runs; i++) {
      const delay = monitorEventLoopDelay({ resolution: 1 });
      delay.enable();
      await post();
      delay.disable();
      stalls.push(delay.max / 1e6);
    }
    const sorted = [...stalls].sort((a, b) => a - b);
    return { medianMs: sorted[Math.floor(sorted.length / 2)]!, maxMs: sorted[sorted.length - 1]! };
  } finally {
    await webhook.close();
  }
}

const here = path.dirname(new URL(import.meta.url).pathname);
const repoRoot = path.resolve(here, '../..');
const NODES = 100;

/** The served webhook's port, from its log line once the bench lifecycle runs; then counts the large bodies it parsed on the event loop because a worker thread did not answer. */
function watchWebhook(child: ChildProcess): { port: Promise<number>; fallbacks: () => number } {
  let fallbacks = 0;
  const port = new Promise<number>((resolve, reject) => {
    let line = '';
    child.stdout?.on('data', (d: Buffer) => {
      const lines = (line + d.toString()).split('\n');
      line = lines.pop() ?? '';
      for (const l of lines) {
        const m = /"port":(\d+)[^\n]*bench pod lifecycle running/.exec(l);
        if (m) resolve(Number(m[1]));
        if (l.includes('parsed on the event loop')) fallbacks += 1;
      }
    });
    child.once('exit', (code) => reject(new Error(`webhook exited with ${code} before listening`)));
  });
  return { port, fallbacks: () => fallbacks };
}

/** Bystander latency with 0 and 1 large review a second, against a webhook served with `server` settings. */
async function servedBystanders(work: string, server: Record<string, unknown>, seconds: number, bursts: number[], rate: number | undefined): Promise<BystanderLatency & { fallbacks: number }> {
  const certDir = path.join(work, 'certs');
  const dumpFile = path.join(work, 'dcgm.prom');
  const configFile = path.join(work, `config-${String(server.offloadWorkers)}.yaml`);
  await writeFile(
    configFile,
    stringify({
      server: { host: '127.0.0.1', port: 0, tlsCertFile: path.join(certDir, 'tls.crt'), tlsKeyFile: path.join(certDir, 'tls.key'), logLevel: 'info', ...server },
      metrics: { source: 'file', file: dumpFile, refreshSeconds: 30 },
      placement: { maxMetricsAgeSeconds: 3600, maxThreadPercentSum: 1000 },
      reservations: { ttlSeconds: 10 },
    }),
  );
  const child = spawn(process.execPath, [path.join(here, 'benchWebhook.js'), configFile, '0', String(NODES)], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const watched = watchWebhook(child);
    const port = await watched.port;
    const { body } = await benchReview(repoRoot);
    // Warm-up, untimed and as long as a run (a shorter one leaves the first run slower): JIT, heap, and the worker threads (started by the first large body).
    await postLarge(port, largePodReview('warm-up', 20_000));
    await autocannon({ url: `https://127.0.0.1:${port}/mutate`, method: 'POST', headers: { 'content-type': 'application/json' }, body, connections: 16, duration: seconds, ...(rate === undefined ? {} : { overallRate: rate }) });
    return { ...(await bystandersDuringLargePods(port, body, seconds, bursts, rate)), fallbacks: watched.fallbacks() };
  } finally {
    child.kill('SIGINT');
    await new Promise((resolve) => (child.exitCode !== null ? resolve(undefined) : child.once('exit', resolve)));
  }
}

async function main(): Promise<void> {
  for (const [name, c] of Object.entries(largePodCosts())) {
    console.log(`${name}: ${c.bodyMiB.toFixed(2)} MiB body, ${c.outcome}, event loop median ${c.medianMs.toFixed(1)} ms (max ${c.maxMs.toFixed(1)}), answer ${c.answerBytes} bytes`);
  }
  console.log('\nLongest event-loop stall while one review of 20,000 containers is answered, over HTTP (10 reviews):');
  for (const [name, annotations] of [
    ['none named (refused)', {}],
    ['48 named (placed on the event loop)', NAMED_48],
  ] as const) {
    const parsedHere = await eventLoopStall(0, 10, annotations);
    const offloaded = await eventLoopStall(2, 10, annotations);
    console.log(
      `  ${name}: parsed on the event loop median ${parsedHere.medianMs.toFixed(1)} ms (max ${parsedHere.maxMs.toFixed(1)}), ` +
        `on worker threads median ${offloaded.medianMs.toFixed(1)} ms (max ${offloaded.maxMs.toFixed(1)}): x${(offloaded.medianMs / parsedHere.medianMs).toFixed(2)}`,
    );
  }
  const seconds = Number(process.env.BENCH_SECONDS ?? 10);
  const bursts = (process.env.BENCH_BURSTS ?? '1,6').split(',').map(Number);
  // A steady rate below what the machine serves: the figures then show the event loop's stalls, not a saturated CPU.
  // BENCH_RATE=0: as fast as answered.
  const rateSetting = Number(process.env.BENCH_RATE ?? 200);
  const rate = rateSetting > 0 ? rateSetting : undefined;
  const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
  const work = await mkdtemp(path.join(tmpdir(), 'mps-huge-reviews-'));
  try {
    await promisify(execFile)(process.execPath, [path.join(repoRoot, 'dist/cli/main.js'), 'certs', 'generate', '--service', 'mps-injector', '--namespace', 'bench', '--san', '127.0.0.1', '--out', path.join(work, 'certs')]);
    await writeFile(path.join(work, 'dcgm.prom'), renderDcgmText(syntheticGpus(NODES, 8, Date.now())));
    console.log(`\nOrdinary admissions (${rate ?? 'as many as answered'}/s on 16 connections, ${seconds} s a run) with 0 and ${bursts.join(', ')} reviews/s of 20,000 containers (3 MiB, refused: too many GPU containers):`);
    const modes = [
      ['parsed on the event loop (server.offloadWorkers: 0)', { offloadWorkers: 0 }],
      ['parsed on worker threads (defaults)', {}],
    ] as const;
    // Rounds alternate the two, so both see the same load from whatever else runs on the machine.
    const p99s: number[][][] = modes.map(() => []);
    for (let round = 1; round <= rounds; round++) {
      for (const [m, [name, server]] of modes.entries()) {
        const r = await servedBystanders(work, server, seconds, bursts, rate);
        p99s[m]!.push([r.alone.p99_ms, ...bursts.map((b) => r.withLargePods[b]!.p99_ms)]);
        console.log(`round ${round}, ${name}: 0/s: bystander p50 ${r.alone.p50_ms} ms, p99 ${r.alone.p99_ms} ms, p99.9 ${r.alone.p99_9_ms} ms, max ${r.alone.max_ms} ms, ${Math.round(r.alone.rps)} req/s`);
        for (const burst of bursts) {
          const x = r.withLargePods[burst]!;
          console.log(
            `  ${burst}/s: p50 ${x.p50_ms} ms, p99 ${x.p99_ms} ms (x${(x.p99_ms / r.alone.p99_ms).toFixed(2)} of 0/s), p99.9 ${x.p99_9_ms} ms (x${(x.p99_9_ms / r.alone.p99_9_ms).toFixed(2)}), ` +
              `max ${x.max_ms} ms, ${Math.round(x.rps)} req/s; ${x.largeAnswered} large answered, slowest ${x.largeSlowestMs.toFixed(0)} ms`,
          );
        }
        console.log(`  ${r.errors} failed bystanders; ${r.fallbacks} large bodies parsed on the event loop because a worker thread did not answer`);
      }
    }
    const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    console.log(`\nBystander p99, median of ${rounds} round(s):`);
    for (const [m, [name]] of modes.entries()) {
      const at = (i: number): number => median(p99s[m]!.map((row) => row[i]!));
      console.log(`  ${name}: ${at(0)} ms at 0/s; ${bursts.map((b, i) => `${at(i + 1)} ms at ${b}/s (x${(at(i + 1) / at(0)).toFixed(2)})`).join('; ')}`);
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
