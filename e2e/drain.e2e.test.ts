/**
 * SIGTERM under keep-alive load against the built webhook: readiness fails at once, the server
 * keeps accepting for server.drainDelaySeconds and answers with Connection: close, an upload in
 * progress is received whole, and not one request fails. Clients keep sending for part of the
 * window, as the API server does until the Service's endpoints drop the replica. A large review
 * in progress is answered by a worker thread, whose pool ends with the drain.
 */
import https from 'node:https';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { largePodReview } from '../bench/hugeReviews.js';
import { syntheticGpus } from '../bench/syntheticCluster.js';
import { renderDcgmText } from '../dcgm/renderDcgmText.js';
import { gpuPodReview } from './support/reviews.js';
import type { GeneratedCerts, WebhookProcess } from './support/webhookProcess.js';
import { generateCerts, httpsRequest, startWebhookProcess, waitUntilReady } from './support/webhookProcess.js';

const DRAIN_DELAY_SECONDS = 2;
/** How long clients keep sending after SIGTERM: the time endpoints take to drop the replica, inside the delay. */
const SENDING_AFTER_SIGTERM_MS = 1200;
const CLIENTS = 8;

let certs: GeneratedCerts;
let webhook: WebhookProcess;

beforeAll(async () => {
  certs = await generateCerts();
  const dir = await mkdtemp(path.join(tmpdir(), 'mps-injector-drain-'));
  const metricsFile = path.join(dir, 'dcgm.prom');
  await writeFile(metricsFile, renderDcgmText(syntheticGpus(20, 8, Date.now())));
  webhook = await startWebhookProcess(
    {
      server: { drainDelaySeconds: DRAIN_DELAY_SECONDS, shutdownGraceSeconds: 10 },
      metrics: { source: 'file', file: metricsFile, refreshSeconds: 60 },
      placement: { maxMetricsAgeSeconds: 3600 },
    },
    certs,
  );
  await waitUntilReady(webhook.port, certs.caPem);
}, 60_000);

afterAll(async () => {
  if (webhook?.child.exitCode === null) webhook.child.kill('SIGKILL');
});

interface Sent {
  ok: boolean;
  afterSigterm: boolean;
  connection: string | undefined;
  error?: string;
}

function admit(agent: https.Agent, uid: string, body = JSON.stringify(gpuPodReview({ uid, name: uid, dryRun: true, annotations: { 'mps-injector.io/gpu-memory': '1Gi' } }))): Promise<{ status: number; connection: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port: webhook.port, method: 'POST', path: '/mutate', servername: 'localhost', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection }));
      },
    );
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('no answer within 10 s')));
    req.end(body);
  });
}

test('SIGTERM under keep-alive load: readiness fails first, no request fails, and the process exits 0', async () => {
  const agent = new https.Agent({ keepAlive: true, maxSockets: CLIENTS, ca: certs.caPem });
  const sent: Sent[] = [];
  let sigtermAt = Infinity;
  let stopSending = false;
  let n = 0;
  const client = async (): Promise<void> => {
    while (!stopSending) {
      // Started once the signal has surely been handled (delivery takes a moment).
      const afterSigterm = Date.now() >= sigtermAt + 200;
      try {
        const r = await admit(agent, `drain-${n++}`);
        sent.push({ ok: r.status === 200, afterSigterm, connection: r.connection, ...(r.status === 200 ? {} : { error: `HTTP ${r.status}` }) });
      } catch (err) {
        sent.push({ ok: false, afterSigterm, connection: undefined, error: (err as Error).message });
      }
    }
  };
  const clients = Array.from({ length: CLIENTS }, client);

  // Uploads that are half sent when SIGTERM arrives and finished during the window: a pod to place, and one of 20,000 containers (3 MiB, screened on a worker thread).
  const uploadHalfway = (uploadBody: string): Promise<{ status: number; error?: string }> =>
    new Promise<{ status: number; error?: string }>((resolve, reject) => {
      const req = https.request(
        { host: '127.0.0.1', port: webhook.port, method: 'POST', path: '/mutate', servername: 'localhost', ca: certs.caPem, agent: false, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(uploadBody) } },
        (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0 }));
        },
      );
      req.on('error', reject);
      req.write(uploadBody.slice(0, 100));
      setTimeout(() => req.end(uploadBody.slice(100)), 500 + SENDING_AFTER_SIGTERM_MS);
    }).catch((err: Error) => ({ status: 0, error: err.message }));
  const upload = uploadHalfway(JSON.stringify(gpuPodReview({ uid: 'drain-upload', name: 'drain-upload', dryRun: true })));
  const largeUpload = uploadHalfway(largePodReview('drain-large', 20_000));

  // Load runs until every client has had answers on its kept-alive connection.
  while (sent.length < 200) await new Promise((resolve) => setTimeout(resolve, 20));
  sigtermAt = Date.now();
  webhook.child.kill('SIGTERM');

  // Readiness fails while the server still answers.
  const readiness = (): Promise<{ status: number; body: string }> => httpsRequest(webhook.port, certs.caPem, { path: '/readyz' }).catch((err: Error) => ({ status: 0, body: err.message }));
  let readyz = await readiness();
  for (let i = 0; i < 50 && readyz.status === 200; i++) readyz = await readiness();

  await new Promise((resolve) => setTimeout(resolve, SENDING_AFTER_SIGTERM_MS));
  stopSending = true;
  await Promise.all(clients);
  const uploaded = await upload;
  const largeUploaded = await largeUpload;
  agent.destroy();
  const code = await webhook.exited;

  const failed = sent.filter((s) => !s.ok);
  const after = sent.filter((s) => s.afterSigterm);
  process.stdout.write(`drain: ${sent.length} requests, ${after.length} after SIGTERM, ${failed.length} failed${failed.length > 0 ? ` (${failed[0]!.error})` : ''}\n`);
  expect(readyz).toMatchObject({ status: 503, body: expect.stringContaining('shutting down') as unknown });
  expect(uploaded).toEqual({ status: 200 });
  expect(largeUploaded).toEqual({ status: 200 });
  expect(webhook.logs.find((l) => l.uid === 'drain-large')).toMatchObject({ outcome: 'refused', reason: 'invalid-pod' });
  expect(webhook.logs.filter((l) => String(l.msg).includes('parsed on the event loop'))).toEqual([]);
  expect(failed.map((f) => f.error)).toEqual([]);
  expect(after.length).toBeGreaterThan(0);
  expect(after.every((s) => s.connection === 'close')).toBe(true);
  expect(code).toBe(0);
}, 60_000);
