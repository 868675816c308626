import { jest } from '@jest/globals';
import { once } from 'node:events';
import { mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { CertificateError, createCertificateAuthority, describeCertificate, issueServingCertificate, type PemPair } from './issue.js';
import { ReloadingKeyPair, type KeyPairReloadInfo } from './reloadingKeyPair.js';

const caA = createCertificateAuthority({ commonName: 'reload-test-ca-a' });
const caB = createCertificateAuthority({ commonName: 'reload-test-ca-b' });
const serving = { service: 'mps-injector', namespace: 'reload-test', extraSans: ['127.0.0.1', 'localhost'] };
const pairA = issueServingCertificate(caA, serving);
const pairB = issueServingCertificate(caB, serving);
const serialA = describeCertificate(pairA.certPem).serialHex;
const serialB = describeCertificate(pairB.certPem).serialHex;

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
}
function deferred(): Deferred {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

interface Fixture {
  dir: string;
  certFile: string;
  keyFile: string;
  reloader: ReloadingKeyPair;
  server: https.Server;
  port: number;
  /** Resolved when a /slow request reaches the handler. */
  slowEntered: Deferred;
  /** Resolve to let /slow requests answer. */
  slowRelease: Deferred;
}

const fixtures: Fixture[] = [];

async function startServer(dir: string, certFile: string, keyFile: string): Promise<Fixture> {
  const reloader = new ReloadingKeyPair({ certFile, keyFile, pollIntervalMs: 60_000 });
  const pair = await reloader.load();
  const slowEntered = deferred();
  const slowRelease = deferred();
  const handler = async (req: IncomingMessage, res: ServerResponse) => {
    if (req.url === '/slow') {
      slowEntered.resolve();
      await slowRelease.promise;
    }
    res.end(`ok ${req.url}`);
  };
  const server = https.createServer({ cert: pair.certPem, key: pair.keyPem, minVersion: 'TLSv1.2' }, (req, res) => void handler(req, res));
  reloader.attach(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const fixture = { dir, certFile, keyFile, reloader, server, port: (server.address() as AddressInfo).port, slowEntered, slowRelease };
  fixtures.push(fixture);
  return fixture;
}

afterEach(async () => {
  jest.restoreAllMocks();
  for (const fixture of fixtures.splice(0)) {
    fixture.slowRelease.resolve();
    fixture.reloader.close();
    fixture.server.closeAllConnections();
    fixture.server.close();
    await rm(fixture.dir, { recursive: true, force: true });
  }
});

interface Answer {
  status: number | undefined;
  body: string;
  serialHex: string;
}

/** A request on a fresh connection (a new TLS handshake), trusting only `cas`. */
function get(port: number, path: string, cas: PemPair[]): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = https.get(
      { host: '127.0.0.1', port, path, ca: cas.map((ca) => ca.certPem), agent: false, minVersion: 'TLSv1.2' },
      (res) => {
        const serialHex = (res.socket as TLSSocket).getPeerCertificate().serialNumber.toLowerCase();
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode, body, serialHex }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
  });
}

async function writePair(certFile: string, keyFile: string, pair: PemPair): Promise<void> {
  await writeFile(certFile, pair.certPem);
  await writeFile(keyFile, pair.keyPem);
}

/** Lay out a directory the way the kubelet projects a Secret volume. */
async function createSecretVolume(dir: string, pair: PemPair): Promise<void> {
  await swapSecretData(dir, '..2030_01_01_00_00_00.000000001', pair);
  await symlink(join('..data', 'tls.crt'), join(dir, 'tls.crt'));
  await symlink(join('..data', 'tls.key'), join(dir, 'tls.key'));
}

/** Update a Secret volume as the kubelet does: new timestamped dir, then atomic rename of the ..data symlink. */
async function swapSecretData(dir: string, version: string, pair: PemPair): Promise<void> {
  await mkdir(join(dir, version));
  await writePair(join(dir, version, 'tls.crt'), join(dir, version, 'tls.key'), pair);
  await symlink(version, join(dir, '..data_tmp'));
  await rename(join(dir, '..data_tmp'), join(dir, '..data'));
}

test('plain file rewrite: new handshakes get pair B, the in-flight request completes on pair A', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'reload-plain-'));
  const certFile = join(dir, 'tls.crt');
  const keyFile = join(dir, 'tls.key');
  await writePair(certFile, keyFile, pairA);
  const { reloader, port, slowEntered, slowRelease } = await startServer(dir, certFile, keyFile);

  const first = await get(port, '/first', [caA]);
  expect(first).toEqual({ status: 200, body: 'ok /first', serialHex: serialA });

  const inFlight = get(port, '/slow', [caA]);
  await slowEntered.promise;

  const reloaded = once(reloader, 'reload') as Promise<[KeyPairReloadInfo]>;
  await writePair(certFile, keyFile, pairB);
  const [info] = await reloaded;
  expect(info).toMatchObject({ certFile, keyFile, serialHex: serialB, subject: 'CN=mps-injector.reload-test.svc' });

  expect(await get(port, '/after', [caA, caB])).toEqual({ status: 200, body: 'ok /after', serialHex: serialB });
  await expect(get(port, '/after-old-ca', [caA])).rejects.toThrow(/certificate/i);

  slowRelease.resolve();
  expect(await inFlight).toEqual({ status: 200, body: 'ok /slow', serialHex: serialA });

  // A garbage certificate is reported and not applied.
  const failed = once(reloader, 'error') as Promise<[Error]>;
  await writeFile(certFile, 'this is not a certificate\n');
  const [error] = await failed;
  expect(error).toBeInstanceOf(CertificateError);
  expect(error.message).toContain(certFile);
  expect(await get(port, '/still-b', [caB])).toEqual({ status: 200, body: 'ok /still-b', serialHex: serialB });
});

test('Secret volume ..data symlink swap: new handshakes get pair B, the in-flight request completes on pair A', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'reload-secret-'));
  await createSecretVolume(dir, pairA);
  const certFile = join(dir, 'tls.crt');
  const keyFile = join(dir, 'tls.key');
  const { reloader, port, slowEntered, slowRelease } = await startServer(dir, certFile, keyFile);

  expect((await get(port, '/first', [caA])).serialHex).toBe(serialA);
  const inFlight = get(port, '/slow', [caA]);
  await slowEntered.promise;

  const reloaded = once(reloader, 'reload') as Promise<[KeyPairReloadInfo]>;
  await swapSecretData(dir, '..2030_01_02_00_00_00.000000002', pairB);
  const [info] = await reloaded;
  expect(info.serialHex).toBe(serialB);

  expect(await get(port, '/after', [caB])).toEqual({ status: 200, body: 'ok /after', serialHex: serialB });
  slowRelease.resolve();
  expect(await inFlight).toEqual({ status: 200, body: 'ok /slow', serialHex: serialA });

  // A swap to a pair whose key does not match is reported and not applied.
  const failed = once(reloader, 'error') as Promise<[Error]>;
  await swapSecretData(dir, '..2030_01_03_00_00_00.000000003', { certPem: pairA.certPem, keyPem: pairB.keyPem });
  const [error] = await failed;
  expect(error.message).toContain(`the private key in ${keyFile} does not belong to the certificate in ${certFile}`);
  expect((await get(port, '/still-b', [caB])).serialHex).toBe(serialB);
});

test('a change between load() and attach() is picked up when attached', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'reload-late-'));
  const certFile = join(dir, 'tls.crt');
  const keyFile = join(dir, 'tls.key');
  await writePair(certFile, keyFile, pairA);
  const reloader = new ReloadingKeyPair({ certFile, keyFile, pollIntervalMs: 60_000 });
  const pair = await reloader.load();
  const server = https.createServer({ cert: pair.certPem, key: pair.keyPem, minVersion: 'TLSv1.2' }, (_req, res) => res.end('ok'));
  fixtures.push({ dir, certFile, keyFile, reloader, server, port: 0, slowEntered: deferred(), slowRelease: deferred() });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');

  await writePair(certFile, keyFile, pairB);
  const reloaded = once(reloader, 'reload') as Promise<[KeyPairReloadInfo]>;
  reloader.attach(server);
  const [info] = await reloaded;

  expect(info.serialHex).toBe(serialB);
  expect((await get((server.address() as AddressInfo).port, '/', [caB])).serialHex).toBe(serialB);
});

test('without an error listener a failed reload becomes a process warning', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'reload-warn-'));
  const certFile = join(dir, 'tls.crt');
  const keyFile = join(dir, 'tls.key');
  await writePair(certFile, keyFile, pairA);
  const { reloader, port } = await startServer(dir, certFile, keyFile);
  expect(reloader.listenerCount('error')).toBe(0);

  const warned = new Promise<unknown[]>((resolve) => {
    jest.spyOn(process, 'emitWarning').mockImplementation((...args: unknown[]) => resolve(args));
  });
  await writeFile(keyFile, 'not a key\n');
  const [message, options] = await warned;

  expect(options).toEqual({ code: 'MPS_INJECTOR_CERT_RELOAD' });
  expect(message).toContain(keyFile);
  expect(message).toContain('still serving the previous certificate');
  expect((await get(port, '/', [caA])).serialHex).toBe(serialA);
});

describe('load', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'reload-load-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('returns the pair when it is valid', async () => {
    await writePair(join(dir, 'tls.crt'), join(dir, 'tls.key'), pairA);
    const reloader = new ReloadingKeyPair({ certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key') });
    expect(await reloader.load()).toEqual({ certPem: pairA.certPem, keyPem: pairA.keyPem });
  });

  test('names a missing file and how to provide it', async () => {
    await writeFile(join(dir, 'tls.crt'), pairA.certPem);
    const reloader = new ReloadingKeyPair({ certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key') });
    const attempt = reloader.load();
    await expect(attempt).rejects.toBeInstanceOf(CertificateError);
    await expect(attempt).rejects.toThrow(`cannot read the TLS private key file ${join(dir, 'tls.key')}: no such file; mount the webhook's TLS Secret`);
  });

  test('names both files when the key does not match the certificate', async () => {
    await writePair(join(dir, 'tls.crt'), join(dir, 'tls.key'), { certPem: pairA.certPem, keyPem: pairB.keyPem });
    const reloader = new ReloadingKeyPair({ certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key') });
    await expect(reloader.load()).rejects.toThrow(
      `the private key in ${join(dir, 'tls.key')} does not belong to the certificate in ${join(dir, 'tls.crt')}`,
    );
  });
});
