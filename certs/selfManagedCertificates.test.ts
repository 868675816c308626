import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import pino from 'pino';
import { buildConfig } from '../config/schema.js';
import type { Config } from '../config/schema.js';
import { ReloadingKeyPair } from './reloadingKeyPair.js';
import { CertSecretKey, fingerprintOf } from './certificateSecret.js';
import { createKubeApis } from '../kube/kubeApis.js';
import type { KubeApis } from '../kube/kubeApis.js';
import { SelfManagedCertificates } from './selfManagedCertificates.js';
import { StandInApiServer } from '../testing/standInApiServer.js';

const logger = pino({ level: 'silent' });
const NS = 'mps-system';
const DAY_MS = 24 * 60 * 60 * 1000;
const SERVER_NAME = `mps-injector.${NS}.svc`;

function certificateSettings(overrides: Partial<Config['certificates']> = {}): Config['certificates'] {
  return buildConfig({ certificates: { mode: 'self-managed', ...overrides } }).certificates;
}

const pemBlocks = (bundle: string): string[] => bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];

describe('self-managed certificates against the stand-in API server', () => {
  let standIn: StandInApiServer;
  let dir: string;
  let clock: number;
  let apis: KubeApis[];
  let replicas: SelfManagedCertificates[];

  beforeEach(async () => {
    standIn = await StandInApiServer.start();
    dir = await mkdtemp(join(tmpdir(), 'mps-certs-'));
    clock = Date.now();
    apis = [];
    replicas = [];
    standIn.create('mutatingwebhookconfigurations', {
      metadata: { name: 'mps-injector' },
      webhooks: [
        { name: 'pods.mps-injector.io', clientConfig: { service: { name: 'mps-injector', namespace: NS, path: '/mutate' } } },
        { name: 'pods-reinvoked.mps-injector.io', clientConfig: { service: { name: 'mps-injector', namespace: NS, path: '/mutate' }, caBundle: '' } },
      ],
    });
  });
  afterEach(async () => {
    for (const r of replicas) await r.stop();
    for (const a of apis) a.close();
    await standIn.stop();
    await rm(dir, { recursive: true, force: true });
  });

  function replica(name: string, opts: { certificates?: Partial<Config['certificates']>; leaseDurationSeconds?: number } = {}): SelfManagedCertificates {
    const api = createKubeApis(standIn.kubeConfig());
    apis.push(api);
    const r = new SelfManagedCertificates({
      apis: api,
      namespace: NS,
      certificates: certificateSettings(opts.certificates),
      tlsCertFile: join(dir, name, 'tls.crt'),
      tlsKeyFile: join(dir, name, 'tls.key'),
      replica: name,
      logger,
      now: () => new Date(clock),
      ...(opts.leaseDurationSeconds !== undefined ? { leaseDurationSeconds: opts.leaseDurationSeconds } : {}),
    });
    replicas.push(r);
    return r;
  }

  const secretData = (): Record<string, string> => {
    const data = standIn.get('secrets', NS, 'mps-injector-tls')?.data as Record<string, string> | undefined;
    return Object.fromEntries(Object.entries(data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
  };
  const caBundles = (): string[] =>
    (standIn.get('mutatingwebhookconfigurations', null, 'mps-injector')?.webhooks as { clientConfig: { caBundle?: string } }[]).map((w) =>
      Buffer.from(w.clientConfig.caBundle ?? '', 'base64').toString('utf8'),
    );
  const webhookPatches = (): number => standIn.countRequests((r) => r.method === 'PATCH' && r.path.includes('mutatingwebhookconfigurations'));

  test('creates the Secret, writes the TLS files and patches caBundle once; a restart changes nothing', async () => {
    const first = await replica('replica-a').reconcile();
    expect(first).toEqual({ secret: 'created', caBundlePatched: true, filesWritten: true, waitingFor: [] });
    const data = secretData();
    expect(await readFile(join(dir, 'replica-a', 'tls.crt'), 'utf8')).toBe(data[CertSecretKey.Cert]);
    expect(await readFile(join(dir, 'replica-a', 'tls.key'), 'utf8')).toBe(data[CertSecretKey.Key]);
    expect(caBundles()).toEqual([data[CertSecretKey.CaBundle], data[CertSecretKey.CaBundle]]);
    expect(new X509Certificate(data[CertSecretKey.Cert] ?? '').subjectAltName).toContain(`DNS:${SERVER_NAME}`);

    // The same pod restarted (files still there), and a new replica (empty directory).
    const restarted = await replica('replica-a').reconcile();
    expect(restarted).toEqual({ secret: 'unchanged', caBundlePatched: false, filesWritten: false, waitingFor: [] });
    const added = await replica('replica-b').reconcile();
    expect(added).toEqual({ secret: 'unchanged', caBundlePatched: false, filesWritten: true, waitingFor: [] });
    expect(webhookPatches()).toBe(1);
  });

  test('a caBundle reset by someone else is patched back on the next pass', async () => {
    const r = replica('replica-a');
    await r.reconcile();
    standIn.modify('mutatingwebhookconfigurations', null, 'mps-injector', (mwc) => {
      (mwc.webhooks as { clientConfig: { caBundle?: string } }[])[0]!.clientConfig.caBundle = '';
    });
    expect((await r.reconcile()).caBundlePatched).toBe(true);
    expect(caBundles()[0]).toBe(secretData()[CertSecretKey.CaBundle]);
    expect(webhookPatches()).toBe(2);
  });

  test('two replicas starting together: one creates the Secret, the other serves the same pair', async () => {
    const [a, b] = await Promise.all([replica('replica-a').reconcile(), replica('replica-b').reconcile()]);
    expect([a.secret, b.secret].filter((s) => s === 'created')).toHaveLength(1);
    const certA = await readFile(join(dir, 'replica-a', 'tls.crt'), 'utf8');
    const certB = await readFile(join(dir, 'replica-b', 'tls.crt'), 'utf8');
    expect(certA).toBe(certB);
    expect(certA).toBe(secretData()[CertSecretKey.Cert]);
  });

  test('the serving certificate is renewed before expiry and swapped in under load with no failed request', async () => {
    // The first pair was issued 25 days ago: past two thirds of its 30 days now.
    clock = Date.now() - 25 * DAY_MS;
    const r = replica('replica-a');
    await r.reconcile();
    clock = Date.now();
    const keyPair = new ReloadingKeyPair({ certFile: join(dir, 'replica-a', 'tls.crt'), keyFile: join(dir, 'replica-a', 'tls.key'), debounceMs: 20, pollIntervalMs: 200 });
    const pem = await keyPair.load();
    const server = https.createServer({ cert: pem.certPem, key: pem.keyPem }, (_req, res) => res.end('ok'));
    keyPair.attach(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const ca = secretData()[CertSecretKey.CaBundle];
    const oldSerial = new X509Certificate(pem.certPem).serialNumber;

    let ok = 0;
    const failures: string[] = [];
    const serials = new Set<string>();
    let stopLoad = false;
    let onNewSerial: () => void = () => undefined;
    const newSerialSeen = new Promise<void>((resolve) => {
      onNewSerial = resolve;
    });
    const request = (): Promise<void> =>
      new Promise((resolve) => {
        const req = https.request({ host: '127.0.0.1', port, servername: SERVER_NAME, ca, agent: false, path: '/' }, (res) => {
          const serial = (res.socket as TLSSocket).getPeerCertificate().serialNumber;
          res.resume();
          res.on('end', () => {
            if (res.statusCode === 200) ok++;
            else failures.push(`HTTP ${res.statusCode}`);
            serials.add(serial);
            if (serial !== oldSerial) onNewSerial();
            resolve();
          });
        });
        req.on('error', (err) => {
          failures.push(err.message);
          resolve();
        });
        req.end();
      });
    const worker = async (): Promise<void> => {
      while (!stopLoad) await request();
    };
    const load = Promise.all(Array.from({ length: 8 }, worker));

    const reloaded = new Promise((resolve) => keyPair.once('reload', resolve));
    expect((await r.reconcile()).secret).toBe('renewed-leaf');
    await reloaded;
    await newSerialSeen;
    const okAtSwap = ok;
    // Keep the load going a little past the swap.
    while (ok < okAtSwap + 50 && failures.length === 0) await request();
    stopLoad = true;
    await load;
    keyPair.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));

    expect(failures).toEqual([]);
    expect(serials.size).toBe(2);
    expect(ok).toBeGreaterThan(50);
  });

  test('a CA rotation keeps the old CA trusted until every live replica serves the new one', async () => {
    const settings = { caValidityDays: 30, leafValidityDays: 10 };
    const leaseDurationSeconds = 60 * 24 * 3600; // outlives the simulated weeks: both replicas stay live
    clock = Date.now() - 21 * DAY_MS; // the CA was made 21 days ago: past two thirds of its 30 days now
    const a = replica('replica-a', { certificates: settings, leaseDurationSeconds });
    const b = replica('replica-b', { certificates: settings, leaseDurationSeconds });
    await a.reconcile();
    await b.reconcile();
    const oldCa = secretData()[CertSecretKey.CaCert] ?? '';
    const servedCa = async (name: string): Promise<string> => {
      const leaf = new X509Certificate(await readFile(join(dir, name, 'tls.crt'), 'utf8'));
      const issuer = pemBlocks(caBundles()[0] ?? '').find((ca) => leaf.checkIssued(new X509Certificate(ca)) && leaf.verify(new X509Certificate(ca).publicKey));
      if (issuer === undefined) throw new Error(`the caBundle does not trust the certificate ${name} serves`);
      return fingerprintOf(issuer);
    };

    clock = Date.now();
    const rotated = await a.reconcile();
    expect(rotated).toEqual(expect.objectContaining({ secret: 'rotated-ca', waitingFor: ['replica-b'] }));
    const newCa = secretData()[CertSecretKey.CaCert] ?? '';
    expect(fingerprintOf(newCa)).not.toBe(fingerprintOf(oldCa));
    expect(pemBlocks(caBundles()[0] ?? '').map(fingerprintOf)).toEqual([fingerprintOf(newCa), fingerprintOf(oldCa)]);
    // Both replicas are trusted meanwhile: a serves the new CA's certificate, b still the old one.
    expect(await servedCa('replica-a')).toBe(fingerprintOf(newCa));
    expect(await servedCa('replica-b')).toBe(fingerprintOf(oldCa));
    expect((await a.reconcile()).waitingFor).toEqual(['replica-b']);

    const finished = await b.reconcile();
    expect(finished).toEqual(expect.objectContaining({ secret: 'retired-previous-ca', filesWritten: true, waitingFor: [] }));
    expect(pemBlocks(caBundles()[0] ?? '').map(fingerprintOf)).toEqual([fingerprintOf(newCa)]);
    expect(secretData()[CertSecretKey.PreviousCaCert]).toBeUndefined();
    expect(await servedCa('replica-a')).toBe(fingerprintOf(newCa));
    expect(await servedCa('replica-b')).toBe(fingerprintOf(newCa));
  });

  test('without the webhook configuration it still serves, and says what to install', async () => {
    standIn.remove('mutatingwebhookconfigurations', null, 'mps-injector');
    const report = await replica('replica-a').reconcile();
    expect(report).toEqual(expect.objectContaining({ secret: 'created', caBundlePatched: false, filesWritten: true }));
  });

  test('API server unreachable at start: the pass fails with a message naming the Secret and what to check', async () => {
    await standIn.goDown();
    await expect(replica('replica-a').reconcile()).rejects.toThrow(/reading the certificate Secret mps-system\/mps-injector-tls failed: the Kubernetes API server at .* is unreachable/);
    await standIn.comeBack();
  });
});
