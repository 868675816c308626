/**
 * The HTTPS listener over real TLS on 127.0.0.1: the TLS policy, mutual TLS against
 * server.clientCAFile (and its reload), and that both survive a reload of the serving pair.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import express from 'express';
import { pino } from 'pino';
import { createCertificateAuthority, issueClientCertificate, issueServingCertificate, type PemPair } from '../certs/issue.js';
import { ConfigError } from '../config/schema.js';
import type { WebhookApp } from './createApp.js';
import { startHttpsServer, type RunningServer } from './startServer.js';

const servingCa = createCertificateAuthority({ commonName: 'start-server-test-serving-ca' });
const clientCa = createCertificateAuthority({ commonName: 'start-server-test-client-ca' });
const otherCa = createCertificateAuthority({ commonName: 'start-server-test-other-ca' });
const serving = { service: 'mps-injector', namespace: 'start-server-test', extraSans: ['127.0.0.1'] };
const servingPair = issueServingCertificate(servingCa, serving);
const apiServerCert = issueClientCertificate(clientCa, { commonName: 'kube-apiserver' });
const strangerCert = issueClientCertificate(otherCa, { commonName: 'kube-apiserver' });

function stubWebhook(): WebhookApp {
  const app = express();
  app.get('/healthz', (_req, res) => {
    res.type('text/plain').send('ok\n');
  });
  app.post('/mutate', (_req, res) => {
    res.json({ served: true });
  });
  return { app, inFlight: () => 0 };
}

interface Fixture {
  dir: string;
  certFile: string;
  keyFile: string;
  clientCaFile: string;
  running: RunningServer;
}

const fixtures: Fixture[] = [];
const logger = pino({ level: 'silent' });

async function start(opts: { mutualTls: boolean }): Promise<Fixture> {
  const dir = await mkdtemp(join(tmpdir(), 'start-server-'));
  const certFile = join(dir, 'tls.crt');
  const keyFile = join(dir, 'tls.key');
  const clientCaFile = join(dir, 'client-ca.crt');
  await writeFile(certFile, servingPair.certPem);
  await writeFile(keyFile, servingPair.keyPem);
  await writeFile(clientCaFile, clientCa.certPem);
  const running = await startHttpsServer(stubWebhook(), {
    host: '127.0.0.1',
    port: 0,
    certFile,
    keyFile,
    logger,
    ...(opts.mutualTls ? { clientCaFile } : {}),
  });
  const fixture = { dir, certFile, keyFile, clientCaFile, running };
  fixtures.push(fixture);
  return fixture;
}

afterEach(async () => {
  for (const f of fixtures.splice(0)) {
    await f.running.drain({ delayMs: 0, graceMs: 0 });
    await rm(f.dir, { recursive: true, force: true });
  }
});

interface Answer {
  status: number | undefined;
  body: string;
}

/** One request on a fresh connection, presenting `client` when given. */
function request(port: number, method: 'GET' | 'POST', path: string, client?: PemPair, tlsOptions: https.RequestOptions = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        ca: servingCa.certPem,
        agent: false,
        headers: { 'content-type': 'application/json' },
        ...(client ? { cert: client.certPem, key: client.keyPem } : {}),
        ...tlsOptions,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode, body }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(method === 'POST' ? '{}' : undefined);
  });
}

describe('mutual TLS (server.clientCAFile set)', () => {
  test('a client whose certificate the client CA signed is served', async () => {
    const { running } = await start({ mutualTls: true });
    expect(await request(running.port, 'POST', '/mutate', apiServerCert)).toEqual({ status: 200, body: '{"served":true}' });
  });

  test('a client without a certificate is refused, with the reason', async () => {
    const { running } = await start({ mutualTls: true });
    const answer = await request(running.port, 'POST', '/mutate');
    expect(answer.status).toBe(403);
    expect(JSON.parse(answer.body)).toEqual({
      error: expect.stringContaining('client certificate required: no client certificate was presented') as unknown,
    });
  });

  test('a client whose certificate another CA signed is refused, with the reason', async () => {
    const { running } = await start({ mutualTls: true });
    const answer = await request(running.port, 'POST', '/mutate', strangerCert);
    expect(answer.status).toBe(403);
    expect(answer.body).toContain('the client certificate was not verified against the CA in server.clientCAFile');
    // Also with a query string, which must not change the path that is checked.
    expect((await request(running.port, 'POST', '/mutate?timeout=5s', strangerCert)).status).toBe(403);
  });

  test('probes and metrics stay open: the kubelet has no client certificate', async () => {
    const { running } = await start({ mutualTls: true });
    expect(await request(running.port, 'GET', '/healthz')).toEqual({ status: 200, body: 'ok\n' });
    expect((await request(running.port, 'GET', '/unknown')).status).toBe(403);
  });

  test('a new client CA is picked up without a restart', async () => {
    const fixture = await start({ mutualTls: true });
    await writeFile(fixture.clientCaFile, otherCa.certPem);
    const deadline = Date.now() + 10_000;
    let answer = await request(fixture.running.port, 'POST', '/mutate', strangerCert);
    while (answer.status !== 200 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      answer = await request(fixture.running.port, 'POST', '/mutate', strangerCert);
    }
    expect(answer.status).toBe(200);
    expect((await request(fixture.running.port, 'POST', '/mutate', apiServerCert)).status).toBe(403);
  });

  test('a client CA file holding a leaf certificate is refused at start, naming the file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'start-server-bad-ca-'));
    try {
      await writeFile(join(dir, 'tls.crt'), servingPair.certPem);
      await writeFile(join(dir, 'tls.key'), servingPair.keyPem);
      await writeFile(join(dir, 'ca.crt'), apiServerCert.certPem);
      const attempt = startHttpsServer(stubWebhook(), {
        host: '127.0.0.1',
        port: 0,
        certFile: join(dir, 'tls.crt'),
        keyFile: join(dir, 'tls.key'),
        clientCaFile: join(dir, 'ca.crt'),
        logger,
      });
      await expect(attempt).rejects.toThrow(`certificate 1 in the client CA file ${join(dir, 'ca.crt')} (CN=kube-apiserver) is not a certificate authority`);
      const missing = startHttpsServer(stubWebhook(), {
        host: '127.0.0.1',
        port: 0,
        certFile: join(dir, 'tls.crt'),
        keyFile: join(dir, 'tls.key'),
        clientCaFile: join(dir, 'absent.crt'),
        logger,
      });
      await expect(missing).rejects.toThrow(`cannot read the client CA file ${join(dir, 'absent.crt')} (server.clientCAFile): no such file`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

test('without server.clientCAFile no certificate is asked for and /mutate is served to any client', async () => {
  const { running } = await start({ mutualTls: false });
  expect(await request(running.port, 'POST', '/mutate')).toEqual({ status: 200, body: '{"served":true}' });
});

test('a cipher list OpenSSL cannot use stops the start with a configuration error', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'start-server-ciphers-'));
  try {
    await writeFile(join(dir, 'tls.crt'), servingPair.certPem);
    await writeFile(join(dir, 'tls.key'), servingPair.keyPem);
    const attempt = startHttpsServer(stubWebhook(), {
      host: '127.0.0.1',
      port: 0,
      certFile: join(dir, 'tls.crt'),
      keyFile: join(dir, 'tls.key'),
      logger,
      tls: { minVersion: 'TLSv1.2', ciphers: 'NOT-A-SUITE' },
    });
    await expect(attempt).rejects.toBeInstanceOf(ConfigError);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

describe('the TLS policy holds on the listener, and after the serving pair is reloaded', () => {
  const cbcClient: https.RequestOptions = { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-SHA256' };
  const rsaKeyExchangeClient: https.RequestOptions = { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ciphers: 'AES128-GCM-SHA256' };

  test.each([false, true])('mutual TLS %s', async (mutualTls) => {
    const fixture = await start({ mutualTls });
    const port = fixture.running.port;
    const client = mutualTls ? apiServerCert : undefined;
    await expect(request(port, 'POST', '/mutate', client, cbcClient)).rejects.toThrow(/handshake failure/i);
    await expect(request(port, 'POST', '/mutate', client, rsaKeyExchangeClient)).rejects.toThrow(/handshake failure/i);

    // A new serving pair (same CA) replaces the whole secure context.
    const renewed = issueServingCertificate(servingCa, serving);
    const before = fixture.running.servedCertificatePem();
    await writeFile(fixture.keyFile, renewed.keyPem);
    await writeFile(fixture.certFile, renewed.certPem);
    const deadline = Date.now() + 10_000;
    while (fixture.running.servedCertificatePem() === before && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(fixture.running.servedCertificatePem()).toBe(renewed.certPem);

    await expect(request(port, 'POST', '/mutate', client, cbcClient)).rejects.toThrow(/handshake failure/i);
    await expect(request(port, 'POST', '/mutate', client, rsaKeyExchangeClient)).rejects.toThrow(/handshake failure/i);
    expect((await request(port, 'POST', '/mutate', client)).status).toBe(200);
    if (mutualTls) expect((await request(port, 'POST', '/mutate')).status).toBe(403);
  });
});
