/**
 * `npm run bench`: admission throughput and latency against a bare HTTPS floor under the
 * same load tool, chooseSlot latency by fleet size, DCGM parse time, and webhook RSS.
 * Prints a table and writes bench/results.json. Figures, not pass/fail tests: the targets
 * are printed beside them.
 */
import { execFile, spawn } from 'node:child_process';
import https from 'node:https';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
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
import { reserveSlot } from '../placement/reserveSlot.js';
import type { GpuInventory } from '../dcgm/inventory.js';
import { DcgmTextParser, parseDcgmText } from '../dcgm/parseDcgmText.js';
import { renderDcgmText } from '../dcgm/renderDcgmText.js';
import { chooseSlot } from '../placement/chooseSlot.js';
import { ReservationLedger } from '../placement/ledger.js';
import type { SlotRequest } from '../placement/types.js';
import type { BystanderLatency, LargePodCost } from './largePods.js';
import { bystandersDuringLargePods, largePodCosts } from './largePods.js';
import { syntheticGpus } from './syntheticCluster.js';

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

async function load(port: number, body: string, seconds: number): Promise<LoadResult> {
  const result = await autocannon({
    url: `https://127.0.0.1:${port}/mutate`,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
    connections: 16,
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

/** What each round loads: the webhook placing pods, the webhook skipping an UPDATE, and the two floors. */
type LoadKind = 'admission' | 'skipped' | 'floor' | 'expressFloor';

async function benchAdmission(
  work: string,
  rounds: number,
  seconds: number,
): Promise<Record<LoadKind, LoadResult> & { rssMb: number; outcomes: Record<string, number>; rounds: Record<LoadKind, LoadResult>[]; bystanders: BystanderLatency }> {
  const certDir = path.join(work, 'certs');
  await run(process.execPath, [cli, 'certs', 'generate', '--service', 'mps-injector', '--namespace', 'bench', '--san', '127.0.0.1', '--out', certDir]);
  const gpus = syntheticGpus(100, 8, Date.now());
  const dumpFile = path.join(work, 'dcgm.prom');
  await writeFile(dumpFile, renderDcgmText(gpus));
  const configFile = path.join(work, 'config.yaml');
  await writeFile(
    configFile,
    stringify({
      server: { host: '127.0.0.1', port: 0, tlsCertFile: path.join(certDir, 'tls.crt'), tlsKeyFile: path.join(certDir, 'tls.key'), logLevel: 'info' },
      metrics: { source: 'file', file: dumpFile, refreshSeconds: 30 },
      // Every admission reserves for real. Unconfirmed reservations expire after 10 s and the compute bound is raised,
      // so the ledger holds the last 10 s of admissions without filling the 800 GPUs during the run.
      placement: { maxMetricsAgeSeconds: 3600, maxThreadPercentSum: 1000 },
      reservations: { ttlSeconds: 10 },
    }),
  );
  const review = JSON.parse((await readFile(path.join(repoRoot, 'e2e/testdata/v1-pod-create-kubectl.json.txt'), 'utf8')).split('\n').slice(1).join('\n')) as {
    request: { object: { metadata: { annotations: Record<string, string> } } };
  };
  review.request.object.metadata.annotations['mps-injector.io/gpu-memory'] = '512Mi';
  review.request.object.metadata.annotations['mps-injector.io/gpu-percent'] = '1';
  const body = JSON.stringify(review);
  // The same review as an UPDATE: the webhook answers it allowed and unchanged without placing anything,
  // so its cost is the webhook's HTTP edge alone (TLS, express, body parsing, encoding, logging, metrics).
  const skippedBody = JSON.stringify({ ...review, request: { ...review.request, operation: 'UPDATE' } });

  const webhook = spawn(process.execPath, [cli, 'serve', '--config', configFile], { stdio: ['ignore', 'pipe', 'inherit'] });
  const floor = spawn(process.execPath, ['-e', FLOOR_SERVER, path.join(certDir, 'tls.crt'), path.join(certDir, 'tls.key')], { stdio: ['ignore', 'pipe', 'inherit'] });
  const expressFloor = spawn(process.execPath, ['-e', EXPRESS_FLOOR_SERVER, path.join(certDir, 'tls.crt'), path.join(certDir, 'tls.key'), path.join(repoRoot, 'node_modules/express'), pathToFileURL(path.join(repoRoot, 'dist/webhook/expressMessageClasses.js')).href], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    const webhookPort = await listeningPort(webhook, /"port":(\d+)[^\n]*listening/);
    const floorPort = await listeningPort(floor, /floor listening on (\d+)/);
    const expressFloorPort = await listeningPort(expressFloor, /express floor listening on (\d+)/);
    // Warm-up, untimed: JIT and TLS session caches of both servers.
    await load(webhookPort, body, 1);
    await load(floorPort, body, 1);
    await load(expressFloorPort, body, 1);
    const measured: Omit<Record<LoadKind, LoadResult>, 'skipped'>[] = [];
    let rssMb = 0;
    for (let r = 0; r < rounds; r++) {
      const f = await load(floorPort, body, seconds);
      const e = await load(expressFloorPort, body, seconds);
      const a = await peakRssMb(webhook.pid!, load(webhookPort, body, seconds));
      rssMb = Math.max(rssMb, a.rssMb);
      measured.push({ admission: a.value, floor: f, expressFloor: e });
    }
    // After the admission rounds, so the heap these grow does not count towards the admission RSS figure.
    const results: Record<LoadKind, LoadResult>[] = [];
    for (const round of measured) results.push({ ...round, skipped: await load(webhookPort, skippedBody, seconds) });
    const bystanders = await bystandersDuringLargePods(webhookPort, body, seconds);
    const pick = (k: LoadKind): LoadResult => ({
      rps: median(results.map((x) => x[k].rps)),
      p50_ms: median(results.map((x) => x[k].p50_ms)),
      p99_ms: median(results.map((x) => x[k].p99_ms)),
      errors: results.reduce((s, x) => s + x[k].errors, 0),
      non2xx: results.reduce((s, x) => s + x[k].non2xx, 0),
    });
    return {
      admission: pick('admission'),
      skipped: pick('skipped'),
      floor: pick('floor'),
      expressFloor: pick('expressFloor'),
      rssMb,
      outcomes: await admissionOutcomes(webhookPort),
      rounds: results,
      bystanders,
    };
  } finally {
    webhook.kill('SIGTERM');
    floor.kill('SIGTERM');
    expressFloor.kill('SIGTERM');
  }
}

function benchChooseSlot(gpuCount: number, calls: number): { p50_ms: number; p99_ms: number } {
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
  for (let i = 0; i < calls; i++) {
    const t0 = performance.now();
    const d = chooseSlot(inventory, ledger, request, config, nowMs);
    times.push(performance.now() - t0);
    if (!d.ok) throw new Error(`bench inventory unexpectedly refused: ${d.reason}`);
  }
  return { p50_ms: percentile(times, 50), p99_ms: percentile(times, 99) };
}

/** Median in-process cost of each stage of one admission on the bench's 800-GPU fleet, microseconds. */
async function benchPipelineStages(calls: number): Promise<Record<string, number>> {
  const nowMs = Date.now();
  const config = buildConfig({ placement: { maxMetricsAgeSeconds: 3600, maxThreadPercentSum: 1000 } });
  const inventory: GpuInventory = { gpus: syntheticGpus(100, 8, nowMs), nodes: {}, source: 'bench', fetchedAtMs: nowMs, skippedLines: 0, problems: [] };
  const ledger = new ReservationLedger({ ttlMs: 10_000 });
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
    const intent = time('readSlotRequest', () => readSlotRequest(pod, { namespace: 'ns', requestUid: `u-${i}`, config }));
    if (intent.kind !== 'place') throw new Error(`bench pod not placed: ${intent.kind}`);
    const { decision, reservation } = time('reserveSlot', () => reserveSlot(inventory, ledger, intent.request, config.placement, nowMs, { dryRun: false }));
    if (!decision.ok) throw new Error(decision.reason);
    const injected = time('injectPod', () => injectPod(pod, decision, reservation?.id ?? '', intent.containers, config.injection));
    time('buildPatch', () => buildPatch(pod, injected.pod));
    time('admitPod', () => admitPod({ pod, namespace: 'ns', requestUid: `v-${i}`, dryRun: false }, { config, inventory, ledger, nowMs }));
  }
  return Object.fromEntries(Object.entries(stages).map(([k, v]) => [k, Number(median(v).toFixed(1))]));
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

async function main(): Promise<void> {
  const seconds = Number(process.env.BENCH_SECONDS ?? 5);
  const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
  const work = await mkdtemp(path.join(tmpdir(), 'mps-injector-bench-'));

  const chooseSlotP99: Record<string, number> = {};
  const chooseSlotP50: Record<string, number> = {};
  for (const n of [100, 1000, 10000]) {
    const r = benchChooseSlot(n, n >= 10000 ? 1000 : 3000);
    chooseSlotP99[n] = r.p99_ms;
    chooseSlotP50[n] = r.p50_ms;
  }
  const parse = benchParse(1000, 7);
  const stages = await benchPipelineStages(3000);
  const largePods: Record<string, LargePodCost> = largePodCosts();
  const adm = await benchAdmission(work, rounds, seconds);

  const results = {
    machine: { node: process.version, cpus: (await import('node:os')).cpus().length },
    load: { tool: 'autocannon', connections: 16, seconds, rounds, aggregate: 'median of rounds' },
    admission: adm.admission,
    floor: adm.floor,
    expressFloor: adm.expressFloor,
    skipped: adm.skipped,
    ratios: {
      rps: adm.admission.rps / adm.floor.rps,
      p99: adm.admission.p99_ms / adm.floor.p99_ms,
      expressFloorRps: adm.expressFloor.rps / adm.floor.rps,
      admissionVsExpressFloorRps: adm.admission.rps / adm.expressFloor.rps,
    },
    chooseSlot: { p50_ms: chooseSlotP50, p99_ms: chooseSlotP99 },
    dcgmParse: { ms_8000_gpus: parse.freshMs, ms_8000_gpus_reused_parser: parse.reusedMs, megabytes: parse.megabytes },
    admissionOutcomes: adm.outcomes,
    pipelineStages_us: stages,
    largePods,
    bystandersDuringLargePods: adm.bystanders,
    rss_mb: adm.rssMb,
    rounds: adm.rounds,
  };
  await writeFile(path.join(repoRoot, 'bench/results.json'), `${JSON.stringify(results, null, 2)}\n`);

  const ok = (b: boolean): string => (b ? 'met' : 'MISSED');
  // A bystander that arrives while a large review is being answered waits for that review's event-loop time, and no more.
  const oneLargeBound = adm.bystanders.alone.p99_ms + (largePods['20000 containers, none named']?.medianMs ?? 0);
  const rows: [string, string, string, string][] = [
    ['admission rps (16 conns)', adm.admission.rps.toFixed(0), `>= 0.5x floor (${(0.5 * adm.floor.rps).toFixed(0)})`, ok(results.ratios.rps >= 0.5)],
    ['admission p50 / p99 ms', `${adm.admission.p50_ms} / ${adm.admission.p99_ms}`, `p99 <= 2x floor (${(2 * adm.floor.p99_ms).toFixed(1)})`, ok(results.ratios.p99 <= 2)],
    ['floor rps, p50 / p99 ms', `${adm.floor.rps.toFixed(0)}, ${adm.floor.p50_ms} / ${adm.floor.p99_ms}`, 'baseline', ''],
    ['express floor rps, p50 / p99 ms', `${adm.expressFloor.rps.toFixed(0)}, ${adm.expressFloor.p50_ms} / ${adm.expressFloor.p99_ms}`, 'framework share of the gap', ''],
    ['UPDATE review rps, p50 / p99 ms', `${adm.skipped.rps.toFixed(0)}, ${adm.skipped.p50_ms} / ${adm.skipped.p99_ms}`, 'HTTP edge, no placement', ''],
    ['admission errors / non-2xx', `${adm.admission.errors} / ${adm.admission.non2xx}`, '0 / 0', ok(adm.admission.errors === 0 && adm.admission.non2xx === 0)],
    ...[100, 1000, 10000].map((n): [string, string, string, string] => [`chooseSlot p50 / p99 ms @ ${n} GPUs`, `${chooseSlotP50[n]!.toFixed(3)} / ${chooseSlotP99[n]!.toFixed(3)}`, n === 10000 ? 'p99 < 1 ms' : '', n === 10000 ? ok(chooseSlotP99[n]! < 1) : '']),
    ['DCGM parse ms, 8000 GPUs (fresh parser)', `${parse.freshMs.toFixed(1)} (${parse.megabytes.toFixed(1)} MB)`, '< 200 ms', ok(parse.freshMs < 200)],
    ['DCGM parse ms, 8000 GPUs (reused parser)', parse.reusedMs.toFixed(1), 'what each refresh costs', ''],
    ['webhook peak RSS MB under load', adm.rssMb.toFixed(1), '< 150 MB', ok(adm.rssMb < 150)],
    ...Object.entries(largePods).map(([name, c]): [string, string, string, string] => [
      `event loop ms, one review: ${name}`,
      `${c.medianMs.toFixed(1)} (max ${c.maxMs.toFixed(1)}), ${c.outcome}`,
      c.containers >= 20_000 ? '< 200 ms' : 'baseline',
      c.containers >= 20_000 ? ok(c.medianMs < 200) : '',
    ]),
    ['bystander p50 / p99 ms, alone', `${adm.bystanders.alone.p50_ms} / ${adm.bystanders.alone.p99_ms}`, 'baseline (same run)', ''],
    ...Object.entries(adm.bystanders.withLargePods).map(([burst, f]): [string, string, string, string] => [
      `bystander p50 / p99 ms, ${burst} large pod${burst === '1' ? '' : 's'}/s`,
      `${f.p50_ms} / ${f.p99_ms} (max ${f.max_ms})`,
      burst === '1' ? `p99 <= alone + one large review (${oneLargeBound.toFixed(0)})` : 'no stall of a second or more',
      burst === '1' ? ok(f.p99_ms <= oneLargeBound && adm.bystanders.errors === 0) : ok(f.max_ms < 1000),
    ]),
  ];
  const width = [40, 24, 30, 8];
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(width[i]!)).join(' | ')} |`;
  console.log(line(['measure', 'value', 'target', 'status']));
  console.log(line(width.map((w) => '-'.repeat(w))));
  for (const row of rows) console.log(line(row));
  console.log(
    `\nratios (median of ${rounds} rounds): admission rps ${results.ratios.rps.toFixed(2)}x floor, p99 ${results.ratios.p99.toFixed(2)}x floor; ` +
      `express floor rps ${results.ratios.expressFloorRps.toFixed(2)}x floor; admission rps ${results.ratios.admissionVsExpressFloorRps.toFixed(2)}x express floor`,
  );
  console.log(`in-process cost per admission stage, median µs (800 GPUs): ${JSON.stringify(stages)}`);
  console.log(`admission outcomes counted by the webhook: ${JSON.stringify(adm.outcomes)}`);
  for (const [burst, f] of Object.entries(adm.bystanders.withLargePods)) {
    console.log(
      `large pods, ${burst}/s: ${f.largeAnswered} reviews of 20,000 containers answered, slowest ${f.largeSlowestMs.toFixed(0)} ms; ` +
        `bystander p99 ${(f.p99_ms / Math.max(1, adm.bystanders.alone.p99_ms)).toFixed(2)}x alone, throughput ${(f.rps / Math.max(1, adm.bystanders.alone.rps)).toFixed(2)}x`,
    );
  }
  console.log('wrote bench/results.json');
}

await main();
