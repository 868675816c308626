/**
 * Large AdmissionReviews read raw and screened on worker threads: the event loop stays free
 * while one is parsed, every answer is the one the event loop would have given, and a worker
 * that fails never costs an answer.
 */
import http from 'node:http';
import { Writable } from 'node:stream';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { pino } from 'pino';
import { buildConfig } from '../config/schema.js';
import type { GpuInventory } from '../domain/inventory.js';
import { Annotation, Label } from '../domain/names.js';
import { TOTAL_ANNOTATION_BYTES } from '../injector/apiLimits.js';
import { loadCapturedReview } from '../e2e/support/reviews.js';
import { fuzzCase } from '../e2e/fuzz/fuzzCases.js';
import { largePodReview } from '../bench/hugeReviews.js';
import { ReservationLedger } from '../reservations/ledger.js';
import { CommitOutcome, LocalReservationStore } from '../reservations/reservationStore.js';
import { TEST_KEY_RING } from '../testing/decisionKeys.js';
import { h100 } from '../testing/gpuSamples.js';
import { BrokenWorker, crashingOnInject, delayingReplies, failingFirst, sourceScreenWorker } from '../testing/reviewScreenWorkers.js';
import { sealedPod } from '../testing/sealedPods.js';
import { listenLocalWebhook } from '../testing/localWebhook.js';
import { ReviewScreenPool } from './reviewScreenPool.js';
import { screenReview } from './screenReview.js';
import type { ScreenWorkerData } from './reviewScreenPool.js';
import type { Worker } from 'node:worker_threads';
import type { WebhookMetrics } from './webhookMetrics.js';

const NOW = Date.now();
const MAX_BODY_BYTES = 3 * 1024 * 1024;

interface Webhook {
  post(body: Buffer, contentType?: string): Promise<{ status: number; body: unknown }>;
  /** Log lines, without what differs between two processes (time, pid, host). */
  logs: Record<string, unknown>[];
  metrics: WebhookMetrics;
  pool: ReviewScreenPool | undefined;
  ledger: ReservationLedger;
  close(): Promise<void>;
}

/** A store that loses the first commit to another writer, as a second replica would make it. */
class ConflictOnceStore extends LocalReservationStore {
  conflicts = 0;
  override async commit(): Promise<CommitOutcome> {
    if (this.conflicts > 0) return CommitOutcome.Committed;
    this.conflicts += 1;
    return CommitOutcome.Conflict;
  }
}

/** The webhook on one H100, decisions reproducible (fixed clock and keys, counted reservation ids). `screens`: worker threads for bodies above offloadBodyBytes. */
async function webhook(screens: { spawn: (data: ScreenWorkerData) => Worker; offloadBodyBytes?: number; timeoutMs?: number } | null, store = new LocalReservationStore()): Promise<Webhook> {
  const config = buildConfig({ server: { maxBodyBytes: MAX_BODY_BYTES, offloadBodyBytes: screens?.offloadBodyBytes ?? 256 * 1024 } });
  const inventory: GpuInventory = { gpus: [h100('a', 0, NOW)], nodes: {}, source: 'test', fetchedAtMs: NOW, skippedLines: 0, problems: [] };
  let ids = 0;
  const ledger = new ReservationLedger({ ttlMs: 60_000, newId: () => `r-${++ids}` });
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString().split('\n')) {
        if (line === '') continue;
        const { time: _time, pid: _pid, hostname: _hostname, ...rest } = JSON.parse(line) as Record<string, unknown>;
        // A stack trace says which path threw; the error itself must be the same.
        if (typeof rest.err === 'object' && rest.err !== null) rest.err = { ...rest.err, stack: undefined };
        logs.push(rest);
      }
      callback();
    },
  });
  const pool = screens === null ? undefined : new ReviewScreenPool({ config, size: 1, queueLimit: 4, timeoutMs: screens.timeoutMs ?? 20_000, spawn: screens.spawn });
  const { port, metrics, close } = await listenLocalWebhook({
    config,
    inventory,
    ledger,
    logger: pino({ level: 'info' }, sink),
    keys: TEST_KEY_RING,
    now: () => NOW,
    store,
    ...(pool === undefined ? {} : { reviewScreens: pool }),
  });
  const post = (body: Buffer, contentType = 'application/json'): Promise<{ status: number; body: unknown }> =>
    new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/mutate', headers: { 'content-type': contentType, 'content-length': body.length } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString()) as unknown }));
      });
      req.on('error', reject);
      req.end(body);
    });
  return {
    post,
    logs,
    metrics,
    pool,
    ledger,
    close,
  };
}

const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));
type Review = { request: { uid: string; operation?: string; object?: { metadata: { labels?: Record<string, string>; annotations?: Record<string, string> } } } };
const captured = (file: Parameters<typeof loadCapturedReview>[0], edit: (review: Review) => void = () => {}): Buffer => {
  const review = loadCapturedReview(file) as unknown as Review;
  edit(review);
  return json(review);
};
const kubectl = 'v1-pod-create-kubectl.json.txt' as const;
const replicaSet = 'v1beta1-pod-create-replicaset-generatename.json.txt' as const;

/** Reviews of every kind of answer: placed, skipped, refused before and after placement, bad bodies, pods that carry a decision. */
function namedCases(): [string, Buffer, string?][] {
  const sealed = loadCapturedReview(kubectl) as unknown as { request: { uid: string; object: unknown } };
  sealed.request.uid = 'sealed';
  sealed.request.object = sealedPod({ name: 'sealed', namespace: 'default', reservationId: 'r-old', issuedAtMs: NOW - 1000 });
  const bom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), captured(kubectl, (r) => (r.request.uid = 'bom'))]);
  const badUtf8 = Buffer.from(captured(kubectl, (r) => (r.request.object!.metadata.annotations = { [Annotation.GpuModel]: 'H100-\u00ff' })).toString('latin1').replace('\u00ff', '\u00ff\u00fe'), 'latin1');
  return [
    ['the captured kubectl review', captured(kubectl)],
    ['the captured ReplicaSet review', captured(replicaSet)],
    ['a dry run', captured(kubectl, (r) => Object.assign(r.request, { uid: 'dry', dryRun: true }))],
    // Fits before injection; the decision's annotations push it over the API server's limit, so the pod is refused after placement.
    [
      'annotations the decision would push over the limit',
      captured(kubectl, (r) => Object.assign(r.request.object!.metadata, { name: 'padded', annotations: { 'example.com/pad': 'x'.repeat(TOTAL_ANNOTATION_BYTES - 300) } })),
    ],
    ['an opted-out pod', captured(kubectl, (r) => (r.request.object!.metadata.labels = { [Label.PodInject]: 'false' }))],
    ['a bad annotation', captured(kubectl, (r) => (r.request.object!.metadata.annotations = { [Annotation.GpuMemory]: 'lots' }))],
    ['an UPDATE', captured(kubectl, (r) => (r.request.operation = 'UPDATE'))],
    ['a DELETE without an object', captured(kubectl, (r) => Object.assign(r.request, { operation: 'DELETE', object: undefined }))],
    ['null annotations', captured(kubectl, (r) => Object.assign(r.request.object!.metadata, { annotations: null }))],
    ['a pod with a sealed decision', json(sealed)],
    ['a pod claiming a decision without a seal', captured(kubectl, (r) => (r.request.object!.metadata.annotations = { [Annotation.Node]: 'a' }))],
    ['a byte order mark', bom],
    ['invalid UTF-8', badUtf8],
    ['20,000 containers, none named', Buffer.from(largePodReview('huge', 20_000))],
    ['20,000 containers, 48 named (placed)', Buffer.from(largePodReview('huge-48', 20_000, { [Annotation.Containers]: Array.from({ length: 48 }, (_, i) => `c-${i * 400}`).join(',') }))],
    ['20,000 containers, opted out', Buffer.from(largePodReview('huge-out', 20_000).replace('"metadata":{"name":"huge-out"', `"metadata":{"labels":{"${Label.PodInject}":"false"},"name":"huge-out"`))],
    ['not JSON', Buffer.from('{"apiVersion": "admission.k8s.io/v1", ')],
    ['a JSON string', Buffer.from('  "an AdmissionReview"')],
    ['a JSON number after whitespace', Buffer.from('\n\t 12345 trailing')],
    ['a list', Buffer.from('[1, 2]')],
    ['an empty object', Buffer.from('{}')],
    ['the wrong apiVersion', json({ apiVersion: 'v1', kind: 'AdmissionReview', request: {} })],
    ['a body over the cap', Buffer.from(JSON.stringify({ pad: 'x'.repeat(MAX_BODY_BYTES) }))],
    ['a UTF-16 charset', captured(kubectl), 'application/json; charset=utf-16'],
    ['a Latin-1 charset', captured(kubectl), 'application/json; charset=latin1'],
    ['an explicit UTF-8 charset', captured(kubectl, (r) => (r.request.uid = 'utf8')), 'application/json; charset="UTF-8"'],
  ];
}

describe('large AdmissionReviews on worker threads', () => {
  const open: Webhook[] = [];
  const start = async (screens: Parameters<typeof webhook>[0], store?: LocalReservationStore): Promise<Webhook> => {
    const w = await webhook(screens, store);
    open.push(w);
    return w;
  };
  afterEach(async () => {
    await Promise.all(open.splice(0).map((w) => w.close()));
  });

  it('answers, logs and counts every review as the event loop does', async () => {
    const here = await start(null);
    // Every body goes to the worker thread.
    const offloaded = await start({ spawn: sourceScreenWorker, offloadBodyBytes: 0 });
    const cases: [string, Buffer, string?][] = [...namedCases(), ...Array.from({ length: 150 }, (_, i) => fuzzCase(i, { seed: 20240613, maxBodyBytes: MAX_BODY_BYTES })).map((c): [string, Buffer] => [`fuzz case ${c.index} (${c.mutations.join('; ')})`, c.body])];
    for (const [name, body, contentType] of cases) {
      const expected = await here.post(body, contentType);
      const actual = await offloaded.post(body, contentType);
      expect({ name, ...actual }).toEqual({ name, ...expected });
      if (name.startsWith('20,000')) expect({ name, status: actual.status }).toEqual({ name, status: 200 });
      if (name.startsWith('annotations the decision')) expect(actual.body).toMatchObject({ response: { allowed: false, status: { message: expect.stringContaining('once the webhook records its decision') } } });
    }
    expect(offloaded.logs).toEqual(here.logs);
    // Every placement refused after the choice was given back on both paths.
    expect(offloaded.ledger.size(NOW)).toBe(here.ledger.size(NOW));
    expect((await offloaded.metrics.requests.get()).values).toEqual((await here.metrics.requests.get()).values);
    expect((await offloaded.metrics.decisions.get()).values).toEqual((await here.metrics.decisions.get()).values);
    // The cases did reach the worker thread, and it answered them: placed pods were injected there.
    expect(offloaded.pool!.workers()).toBe(1);
    expect(offloaded.pool!.tasks().inject).toBeGreaterThanOrEqual(5);
    expect(offloaded.logs.filter((l) => String(l.msg).includes('worker thread'))).toEqual([]);
  });

  it('a commit lost to another writer is placed again on the event loop, as admitAndCommit places it', async () => {
    const here = await start(null, new ConflictOnceStore());
    const offloaded = await start({ spawn: sourceScreenWorker, offloadBodyBytes: 0 }, new ConflictOnceStore());
    const body = captured(kubectl);
    const expected = await here.post(body);
    expect(await offloaded.post(body)).toEqual(expected);
    expect(offloaded.logs).toEqual(here.logs);
    expect(offloaded.logs).toEqual([expect.objectContaining({ outcome: 'mutated', attempts: 2, reservation: 'r-2' })]);
    expect((await offloaded.metrics.commitConflicts.get()).values).toEqual((await here.metrics.commitConflicts.get()).values);
    expect(offloaded.ledger.size(NOW)).toBe(1);
    expect(offloaded.pool!.tasks().inject).toBe(1);
  });

  it('a worker that ends before injecting a pod costs no capacity: the placement is given back and the pod placed on the event loop', async () => {
    const w = await start({ spawn: crashingOnInject, offloadBodyBytes: 0 });
    const answer = await w.post(captured(kubectl));
    expect(answer).toMatchObject({ status: 200, body: { response: { allowed: true, patchType: 'JSONPatch' } } });
    expect(w.logs).toEqual([
      expect.objectContaining({ level: 40, msg: expect.stringContaining('did not inject it'), reason: expect.stringMatching(/exited \(code 9\)/) }),
      expect.objectContaining({ outcome: 'mutated', attempts: 1, reservation: 'r-2' }),
    ]);
    // The first reservation (r-1, made before the worker ended) was released: one pod, one reservation.
    expect(w.ledger.size(NOW)).toBe(1);
    expect(w.ledger.get('r-1')).toBeNull();
  });

  it('a pod held by a worker that is on a large body is injected here instead of waiting for it', async () => {
    const here = await start(null);
    const w = await start({ spawn: delayingReplies(200), offloadBodyBytes: 0 });
    const small = captured(kubectl);
    const expected = await here.post(small);
    // The small review is screened first; its answer comes back while the worker has the large one.
    const answers = Promise.all([w.post(small), new Promise((resolve) => setTimeout(resolve, 20)).then(() => w.post(Buffer.from(largePodReview('large', 20_000))))]);
    const [smallAnswer] = await answers;
    expect(smallAnswer).toEqual(expected);
    expect(w.logs[0]).toEqual(here.logs[0]);
    expect(w.pool!.tasks().inject).toBe(0);
    expect(w.ledger.size(NOW)).toBe(1);
  });

  it('a review of 20,000 containers holds the event loop for a fraction of what screening it takes', async () => {
    const w = await start({ spawn: sourceScreenWorker });
    const body = Buffer.from(largePodReview('lag', 20_000));
    // The worker starts on the first large body.
    expect((await w.post(body)).status).toBe(200);

    // What the event loop did for such a body before: parse, decode and screen it.
    const config = buildConfig({});
    const screenMs: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      expect(screenReview(body, config).kind).toBe('answered');
      screenMs.push(performance.now() - t0);
    }
    const lagMs: number[] = [];
    for (let i = 0; i < 5; i++) {
      const delay = monitorEventLoopDelay({ resolution: 1 });
      delay.enable();
      const answer = await w.post(body);
      delay.disable();
      expect(answer.body).toMatchObject({ response: { allowed: false, status: { code: 400, message: expect.stringContaining('48') } } });
      lagMs.push(delay.max / 1e6);
    }
    const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    // Screened on the event loop, every review stalls it for at least the screening; read and handed over, for a small
    // part of it (the quickest of five: the machine's other work can only lengthen a stall).
    expect(Math.min(...lagMs)).toBeLessThan(median(screenMs) / 3);
    expect(Math.max(...lagMs)).toBeLessThan(200);
  });

  it.each([
    ['crashes', BrokenWorker.Crashes, /exited \(code 7\)/, 20_000],
    ['throws', BrokenWorker.Throws, /worker blew up/, 20_000],
    // Long enough for the real worker that follows to compile its TypeScript and answer.
    ['hangs', BrokenWorker.Hangs, /no worker thread answered within 3000 ms/, 3000],
  ])('a worker that %s costs no answer: the event loop answers, says why, and the next worker takes over', async (_name, how, reason, timeoutMs) => {
    const here = await start(null);
    const w = await start({ spawn: failingFirst(how), timeoutMs });
    const body = Buffer.from(largePodReview('broken', 20_000));
    const expected = await here.post(body);
    expect(await w.post(body)).toEqual(expected);
    const fallback = w.logs.find((l) => String(l.msg).includes('parsed on the event loop'));
    expect(fallback).toMatchObject({ level: 40, reason: expect.stringMatching(reason) });
    // The next body goes to a fresh worker.
    expect(await w.post(body)).toEqual(await here.post(body));
    expect(w.logs.filter((l) => String(l.msg).includes('parsed on the event loop'))).toHaveLength(1);
  });
});
