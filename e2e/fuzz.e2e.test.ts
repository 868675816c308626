/**
 * The fuzz corpus against the built webhook over verified TLS: seeded mutations of the captured
 * reviews (e2e/fuzz/fuzzCases.ts), each answer judged by e2e/fuzz/judgeAnswer.ts. 2,000 cases in
 * the normal run; `npm run fuzz` runs 10,000 (FUZZ_CASES, FUZZ_SEED and FUZZ_CONCURRENCY override).
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { syntheticGpus } from '../bench/syntheticCluster.js';
import { renderDcgmText } from '../dcgm/renderDcgmText.js';
import type { FuzzCase } from './fuzz/fuzzCases.js';
import { fuzzCase } from './fuzz/fuzzCases.js';
import type { Reply } from './fuzz/judgeAnswer.js';
import { judgeAnswer } from './fuzz/judgeAnswer.js';
import type { GeneratedCerts, WebhookProcess } from './support/webhookProcess.js';
import { generateCerts, httpsRequest, startWebhookProcess, waitUntilReady } from './support/webhookProcess.js';

const CASES = Number(process.env.FUZZ_CASES ?? 2000);
const SEED = Number(process.env.FUZZ_SEED ?? 20240613);
const CONCURRENCY = Number(process.env.FUZZ_CONCURRENCY ?? 4);
const MAX_BODY_BYTES = 3 * 1024 * 1024;
const ADMISSION_TIMEOUT_MS = 4000;
/** An answer later than this after the body was sent is a hang. */
const ANSWER_DEADLINE_MS = ADMISSION_TIMEOUT_MS + 4000;

let certs: GeneratedCerts;
let webhook: WebhookProcess;
let agent: https.Agent;

beforeAll(async () => {
  certs = await generateCerts();
  const dir = await mkdtemp(path.join(tmpdir(), 'mps-injector-fuzz-'));
  const metricsFile = path.join(dir, 'dcgm.prom');
  await writeFile(metricsFile, renderDcgmText(syntheticGpus(100, 8, Date.now())));
  webhook = await startWebhookProcess(
    {
      server: { maxBodyBytes: MAX_BODY_BYTES, admissionTimeoutMs: ADMISSION_TIMEOUT_MS, logLevel: 'info' },
      metrics: { source: 'file', file: metricsFile, refreshSeconds: 60 },
      placement: { maxMetricsAgeSeconds: 3600 },
      reservations: { ttlSeconds: 3600 },
    },
    certs,
  );
  await waitUntilReady(webhook.port, certs.caPem);
  agent = new https.Agent({ keepAlive: true, maxSockets: CONCURRENCY, ca: certs.caPem });
}, 60_000);

afterAll(async () => {
  agent?.destroy();
  await webhook?.stop();
});

function send(body: Buffer): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port: webhook.port,
        method: 'POST',
        path: '/mutate',
        servername: 'localhost',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': body.length },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          clearTimeout(timer);
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') });
        });
      },
    );
    const timer = setTimeout(() => req.destroy(new Error(`no answer within ${ANSWER_DEADLINE_MS} ms`)), ANSWER_DEADLINE_MS);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end(body);
  });
}

interface Failure {
  index: number;
  mutations: string[];
  problem: string;
}

test(`${CASES} mutated reviews (seed ${SEED}) get a 4xx with a message or a review whose patch applies and leaves a valid pod`, async () => {
  const outcomes = new Map<string, number>();
  const failures: Failure[] = [];
  const started = Date.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < CASES) {
      const c: FuzzCase = fuzzCase(next++, { seed: SEED, maxBodyBytes: MAX_BODY_BYTES });
      let verdict;
      try {
        verdict = judgeAnswer(c.body, await send(c.body));
      } catch (err) {
        verdict = { outcome: 'no-answer', problem: (err as Error).message };
      }
      outcomes.set(verdict.outcome, (outcomes.get(verdict.outcome) ?? 0) + 1);
      if (verdict.problem !== null) failures.push({ index: c.index, mutations: c.mutations, problem: verdict.problem });
      if (webhook.child.exitCode !== null) throw new Error(`the webhook exited with ${webhook.child.exitCode} at case ${c.index} (${c.mutations.join('; ')})`);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const seconds = (Date.now() - started) / 1000;

  const counts = [...outcomes].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k}: ${n}`);
  process.stdout.write(`fuzz: ${CASES} cases, seed ${SEED}, ${seconds.toFixed(1)} s; outcomes: ${counts.join(', ')}; failures: ${failures.length}\n`);
  // Failures by kind, each with its first case: reproduce one with FUZZ_SEED and the case's index.
  const kinds = new Map<string, { count: number; first: Failure }>();
  for (const f of failures) {
    const kind = f.problem.replace(/\d+/g, 'N').slice(0, 90);
    const entry = kinds.get(kind) ?? { count: 0, first: f };
    entry.count += 1;
    kinds.set(kind, entry);
  }
  for (const [kind, { count, first }] of [...kinds].sort((a, b) => b[1].count - a[1].count)) {
    process.stdout.write(`  ${count} x ${kind}\n    first: case ${first.index} (${first.mutations.join('; ').slice(0, 300)})\n`);
  }
  const health = await httpsRequest(webhook.port, certs.caPem, { path: '/healthz' });
  expect(health.status).toBe(200);
  expect(failures.slice(0, 20)).toEqual([]);
}, 120_000 + CASES * 50);
