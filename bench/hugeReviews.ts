/**
 * Pods of tens of thousands of containers, as the API server sends them (every container
 * defaulted): the event-loop time one such review costs the webhook, from the JSON text to the
 * JSON answer, measured in-process. `npm run bench` prints these beside the HTTP figures;
 * `node .bench-dist/bench/largePods.js` prints them alone.
 */
import https from 'node:https';
import { performance } from 'node:perf_hooks';
import autocannon from 'autocannon';
import { pathToFileURL } from 'node:url';
import { admitPod } from '../admission/admitPod.js';
import { buildConfig } from '../config/schema.js';
import type { GpuInventory } from '../domain/inventory.js';
import { ReservationLedger } from '../reservations/ledger.js';
import { decodeAdmissionReview, encodeAdmission, podOf } from '../webhook/admissionReview.js';
import { syntheticGpus } from './syntheticCluster.js';
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
  /** Median and worst event-loop time of one review, text in to text out, ms. */
  medianMs: number;
  maxMs: number;
  answerBytes: number;
}

/** Event-loop time of one review of `containers` containers: parse, decode, admit, encode, serialise; median of `runs`. */
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

/** The cases `npm run bench` prints: no annotation (every container selected), 48 named, and one container for scale. */
export function largePodCosts(runs = 5): Record<string, LargePodCost> {
  const named48 = { 'mps-injector.io/containers': Array.from({ length: 48 }, (_, i) => `c-${i * 400}`).join(',') };
  return {
    '20000 containers, none named': largePodCost(20_000, {}, runs),
    '20000 containers, 48 named': largePodCost(20_000, named48, runs),
    '1 container': largePodCost(1, {}, runs * 20),
  };
}

export interface LatencyFigures {
  p50_ms: number;
  p99_ms: number;
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
 * Latency of ordinary admissions (16 connections) alone, then, for each burst size, while that
 * many reviews of 20,000 containers (none named, so every container is selected) arrive every second.
 */
export async function bystandersDuringLargePods(port: number, bystanderBody: string, seconds: number, bursts: number[] = [1, 6]): Promise<BystanderLatency> {
  let errors = 0;
  const run = async (): Promise<LatencyFigures> => {
    const r = await autocannon({ url: `https://127.0.0.1:${port}/mutate`, method: 'POST', headers: { 'content-type': 'application/json' }, body: bystanderBody, connections: 16, duration: seconds });
    errors += r.errors + r.timeouts + r.non2xx;
    return { p50_ms: r.latency.p50, p99_ms: r.latency.p99, max_ms: r.latency.max, rps: r.requests.average };
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

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  for (const [name, c] of Object.entries(largePodCosts())) {
    console.log(`${name}: ${c.bodyMiB.toFixed(2)} MiB body, ${c.outcome}, event loop median ${c.medianMs.toFixed(1)} ms (max ${c.maxMs.toFixed(1)}), answer ${c.answerBytes} bytes`);
  }
}
