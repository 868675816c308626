/**
 * Whole-system test of mutual TLS: the built webhook started with server.clientCAFile serves
 * /mutate only to a client holding a certificate that CA signed, and keeps the probe paths open.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createCertificateAuthority, issueClientCertificate, type PemPair } from '../certs/issue.js';
import { gpuPodReview } from './support/reviews.js';
import type { GeneratedCerts, WebhookProcess } from './support/webhookProcess.js';
import { generateCerts, repoRoot, startWebhookProcess, waitUntilReady } from './support/webhookProcess.js';

const clientCa = createCertificateAuthority({ commonName: 'e2e-apiserver-client-ca' });
const apiServer = issueClientCertificate(clientCa, { commonName: 'kube-apiserver' });
const stranger = issueClientCertificate(createCertificateAuthority({ commonName: 'e2e-other-ca' }), { commonName: 'kube-apiserver' });

let certs: GeneratedCerts;
let webhook: WebhookProcess;

beforeAll(async () => {
  certs = await generateCerts();
  const dir = await mkdtemp(path.join(tmpdir(), 'mps-injector-client-ca-'));
  const clientCaFile = path.join(dir, 'ca.crt');
  await writeFile(clientCaFile, clientCa.certPem);
  webhook = await startWebhookProcess(
    {
      server: { clientCAFile: clientCaFile },
      metrics: { source: 'file', file: path.join(repoRoot, 'examples/dcgm-h100x8.prom') },
    },
    certs,
  );
  await waitUntilReady(webhook.port, certs.caPem);
});

afterAll(async () => {
  await webhook?.stop();
});

function post(client: PemPair | undefined, body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port: webhook.port,
        method: 'POST',
        path: '/mutate',
        ca: certs.caPem,
        servername: 'localhost',
        agent: false,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        ...(client ? { cert: client.certPem, key: client.keyPem } : {}),
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

test('the API server with its client certificate gets an AdmissionReview answer', async () => {
  const review = gpuPodReview({ uid: 'mtls-1', name: 'llm-mtls' });
  const answer = await post(apiServer, JSON.stringify(review));
  expect(answer.status).toBe(200);
  expect(JSON.parse(answer.body)).toMatchObject({ kind: 'AdmissionReview', response: { uid: 'mtls-1' } });
});

test('a client without a certificate, or with one from another CA, is refused and nothing is decided', async () => {
  const review = JSON.stringify(gpuPodReview({ uid: 'mtls-2', name: 'llm-forged' }));
  const none = await post(undefined, review);
  expect(none.status).toBe(403);
  expect(none.body).toContain('no client certificate was presented');
  const other = await post(stranger, review);
  expect(other.status).toBe(403);
  expect(other.body).toContain('not verified against the CA in server.clientCAFile');
  expect(webhook.logs.some((entry) => entry.uid === 'mtls-2')).toBe(false);
});

test('a client CA file that is missing stops serve with a message naming it, not a stack trace', async () => {
  const attempt = startWebhookProcess(
    {
      server: { clientCAFile: '/nonexistent/mps-injector/client-ca.crt' },
      metrics: { source: 'file', file: path.join(repoRoot, 'examples/dcgm-h100x8.prom') },
    },
    certs,
  );
  const failure = await attempt.then(
    async (started) => {
      await started.stop();
      return new Error('the webhook started without its client CA file');
    },
    (err: unknown) => err as Error,
  );
  expect(failure.message).toContain('mps-injector: cannot read the client CA file /nonexistent/mps-injector/client-ca.crt (server.clientCAFile): no such file');
  expect(failure.message).not.toContain('unexpected error');
});
