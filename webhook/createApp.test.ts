import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import type { AdmitContext } from '../admission/admitPod.js';
import { TEST_KEY_RING } from '../testing/decisionKeys.js';
import { buildConfig } from '../config/schema.js';
import type { GpuInventory } from '../domain/inventory.js';
import { h100 } from '../testing/gpuSamples.js';
import { ReservationLedger } from '../reservations/ledger.js';
import { LocalReservationStore } from '../reservations/reservationStore.js';
import type { WebhookAppDeps } from './createApp.js';
import { createWebhookApp } from './createApp.js';
import { createWebhookMetrics } from './webhookMetrics.js';

const NOW = Date.now();
const inventory: GpuInventory = {
  gpus: [h100('a', 0, NOW)],
  nodes: {},
  source: 'test',
  fetchedAtMs: NOW,
  skippedLines: 0,
  problems: [],
};

const review = (uid: string): string =>
  JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: { uid, kind: { group: '', version: 'v1', kind: 'Pod' }, operation: 'CREATE', namespace: 'ns', object: { metadata: { name: 'p' }, spec: { containers: [{ name: 'c', image: 'x' }] } } },
  });

interface Harness {
  url: string;
  deps: WebhookAppDeps;
  state: { ready: boolean; draining: boolean; fail: boolean; failMessage: string; reason: string };
  close: () => Promise<void>;
}

async function start(maxBodyBytes = 4096): Promise<Harness> {
  const config = buildConfig({ server: { maxBodyBytes } });
  const ledger = new ReservationLedger({ ttlMs: 60_000 });
  const state = { ready: false, draining: false, fail: false, failMessage: 'inventory exploded', reason: 'no DCGM metrics loaded yet' };
  const deps: WebhookAppDeps = {
    config,
    logger: pino({ level: 'silent' }),
    metrics: createWebhookMetrics({ inventory: () => inventory, ledger, now: () => NOW, placement: config.placement }, { processMetrics: false }),
    store: new LocalReservationStore(),
    admitContext: (): AdmitContext => {
      if (state.fail) throw new Error(state.failMessage);
      return { config, inventory, ledger, nowMs: NOW, keys: TEST_KEY_RING };
    },
    readiness: () => ({ ready: state.ready, reason: state.reason }),
    draining: () => state.draining,
  };
  const { app } = createWebhookApp(deps);
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, deps, state, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

let h: Harness;
beforeEach(async () => {
  h = await start();
});
afterEach(async () => {
  await h.close();
});

const post = (body: string, contentType = 'application/json'): Promise<Response> => fetch(`${h.url}/mutate`, { method: 'POST', body, headers: { 'content-type': contentType } });

test('readiness follows the first metrics load and drops while draining; health is always ok', async () => {
  expect((await fetch(`${h.url}/healthz`)).status).toBe(200);
  const notReady = await fetch(`${h.url}/readyz`);
  expect(notReady.status).toBe(503);
  expect(await notReady.text()).toContain('no DCGM metrics loaded yet');
  h.state.ready = true;
  h.state.reason = '';
  const ready = await fetch(`${h.url}/readyz`);
  expect(ready.status).toBe(200);
  expect(await ready.text()).toBe('ok\n');
  h.state.reason = 'degraded: no GPU has fresh metrics';
  const degraded = await fetch(`${h.url}/readyz`);
  expect(degraded.status).toBe(200);
  expect(await degraded.text()).toBe('ok, degraded: no GPU has fresh metrics\n');
  h.state.draining = true;
  expect(await (await fetch(`${h.url}/readyz`)).text()).toContain('shutting down');
});

test('status codes for bad requests, and the server keeps serving', async () => {
  expect((await post(review('x'), 'text/plain')).status).toBe(415);
  const tooBig = await post(JSON.stringify({ pad: 'x'.repeat(5000) }));
  expect(tooBig.status).toBe(413);
  expect(await tooBig.text()).toContain('4096-byte limit');
  const malformed = await post('{"a":');
  expect(malformed.status).toBe(400);
  expect(await malformed.text()).toContain('not valid JSON');
  expect((await post('{"apiVersion":"v1"}')).status).toBe(400);
  expect((await fetch(`${h.url}/nope`)).status).toBe(404);
  const ok = await post(review('after-errors'));
  expect(ok.status).toBe(200);
  expect(((await ok.json()) as { response: { allowed: boolean } }).response.allowed).toBe(true);
});

test('an unexpected error becomes allowed:false with the message, never a crash', async () => {
  h.state.fail = true;
  const res = await post(review('boom'));
  expect(res.status).toBe(200);
  const body = (await res.json()) as { response: { uid: string; allowed: boolean; status: { message: string } } };
  expect(body.response.uid).toBe('boom');
  expect(body.response.allowed).toBe(false);
  expect(body.response.status.message).toContain('inventory exploded');
  h.state.fail = false;
  expect(((await (await post(review('recovered'))).json()) as { response: { allowed: boolean } }).response.allowed).toBe(true);
});

test("an unexpected error's message is repeated cut short, never whole", async () => {
  h.state.fail = true;
  h.state.failMessage = `inventory exploded: ${'x'.repeat(200_000)}`;
  const body = (await (await post(review('long'))).json()) as { response: { status: { message: string } } };
  expect(body.response.status.message).toContain('inventory exploded: xxx');
  expect(body.response.status.message.length).toBeLessThan(500);
});

test('a content type of 10 kB is described, not echoed', async () => {
  const res = await post(review('ct'), `text/${'x'.repeat(10_000)}`);
  expect(res.status).toBe(415);
  expect((await res.text()).length).toBeLessThan(500);
});

test('a pod whose generateName is nested 10,000 lists deep is refused as invalid, not an internal error', async () => {
  await h.close();
  h = await start(64 * 1024);
  const body = review('deep').replace('"metadata":{"name":"p"}', `"metadata":{"generateName":${'['.repeat(10_000)}1${']'.repeat(10_000)}}`);
  const answer = (await (await post(body)).json()) as { response: { allowed: boolean; status: { code: number; message: string } } };
  expect(answer.response.allowed).toBe(false);
  expect(answer.response.status.code).toBe(400);
  expect(answer.response.status.message).toContain('pod.metadata.generateName must be a string, not a list');
});

test('metrics count requests by outcome and decisions by reason', async () => {
  await post(review('m1'));
  await post('{"a":');
  const text = await (await fetch(`${h.url}/metrics`)).text();
  expect(text).toMatch(/mps_injector_admission_requests_total\{outcome="mutated"\} 1/);
  expect(text).toMatch(/mps_injector_admission_requests_total\{outcome="bad-request"\} 1/);
  expect(text).toMatch(/mps_injector_decisions_total\{result="granted",reason="binpack"\} 1/);
  expect(text).toMatch(/mps_injector_admission_duration_seconds_count\{outcome="mutated"\} 1/);
  expect(text).toMatch(/mps_injector_reservations\{state="pending"\} 1/);
  expect(text).toMatch(/mps_injector_metrics_gpus 1/);
});

test('an admission answer is JSON in UTF-8 with its exact length, as res.json wrote it', async () => {
  const res = await post(review('uid-ünïcode'));
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
  const bytes = Buffer.from(await res.arrayBuffer());
  expect(Number(res.headers.get('content-length'))).toBe(bytes.length);
  const body = JSON.parse(bytes.toString('utf8')) as { apiVersion: string; kind: string; response: { uid: string; allowed: boolean } };
  expect(body).toMatchObject({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: 'uid-ünïcode', allowed: true } });
});
