import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { generateCertificates } from '../certs/issue.js';
import type { CertificateBundle } from '../certs/issue.js';
import { StandInApiServer } from '../testing/standInApiServer.js';
import { createGpuCluster } from '../testing/standInGpuCluster.js';
import type { GpuCluster, GpuClusterOptions } from '../testing/standInGpuCluster.js';
import { runDoctor } from './doctorCommand.js';
import type { CheckResult } from './doctorCommand.js';

const NOW = Date.now();

describe('doctor against the stand-in API server', () => {
  let certificates: CertificateBundle;
  let otherCa: CertificateBundle;
  let standIn: StandInApiServer;
  let cluster: GpuCluster | null;
  let webhook: tls.Server | null;

  beforeAll(() => {
    certificates = generateCertificates({ service: 'mps-injector', namespace: 'mps-injector' });
    otherCa = generateCertificates({ service: 'mps-injector', namespace: 'mps-injector' });
  });
  beforeEach(async () => {
    standIn = await StandInApiServer.start();
    cluster = null;
    webhook = null;
  });
  afterEach(async () => {
    await cluster?.stop();
    await new Promise<void>((resolve) => (webhook === null ? resolve() : webhook.close(() => resolve())));
    await standIn.stop();
  });

  async function setUp(opts: Partial<GpuClusterOptions> = {}): Promise<string> {
    cluster = await createGpuCluster(standIn, { nowMs: NOW, certificates, ...opts });
    // The webhook's HTTPS port, as `kubectl port-forward` would expose it.
    const server = tls.createServer({ cert: certificates.serving.certPem, key: certificates.serving.keyPem }, (socket) => socket.end());
    webhook = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return `127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  const deps = () => ({ kubeConfig: standIn.kubeConfig(), now: () => NOW, exporterUrlFor: cluster?.exporterUrlFor ?? (() => '') });
  const byName = (checks: CheckResult[]): Record<string, CheckResult> => Object.fromEntries(checks.map((c) => [c.name, c]));
  async function doctor(opts: Record<string, unknown> = {}): Promise<{ exitCode: number; checks: Record<string, CheckResult>; text: string }> {
    const json = await runDoctor({ ...opts, output: 'json' }, deps());
    const text = await runDoctor(opts, deps());
    return { exitCode: json.exitCode, checks: byName((JSON.parse(json.stdout) as { checks: CheckResult[] }).checks), text: text.stdout };
  }

  test('a healthy cluster passes every check and exits 0', async () => {
    const address = await setUp();
    const run = await doctor({ webhookAddress: address });
    expect(Object.values(run.checks).filter((c) => !c.ok)).toEqual([]);
    expect(run.exitCode).toBe(0);
    expect(run.checks['webhook configuration']?.verdict).toBe(`mps-injector: caBundle verifies mps-injector.mps-injector.svc (certificate served at ${address})`);
    expect(run.checks['opted-in namespaces']?.verdict).toBe('1 opted in: ml');
    expect(run.checks['dcgm-exporter']?.verdict).toMatch(/^fresh on all 2 GPU nodes/);
    expect(run.checks['MPS control daemon']?.verdict).toBe('Ready on all 2 GPU nodes');
    expect(run.checks['webhook replicas']?.verdict).toBe('2 Ready, one configuration, sharing the reservation store in mps-injector');
    expect(run.checks.RBAC?.verdict).toMatch(/^system:serviceaccount:mps-injector:mps-injector holds all \d+ permissions/);
    expect(run.text.trimEnd().split('\n').at(-1)).toBe('7 checks: 7 passed, 0 failed');
    expect(standIn.countRequests((r) => r.method !== 'GET' && !r.path.startsWith('/apis/authorization.k8s.io/'))).toBe(0);
  });

  test('a GPU node without its MPS daemon is named, with the fix; exit 1', async () => {
    const address = await setUp({ withoutMpsDaemon: ['gpu-node-2'] });
    const run = await doctor({ webhookAddress: address });
    expect(run.exitCode).toBe(1);
    expect(run.checks['MPS control daemon']).toMatchObject({ ok: false, verdict: expect.stringMatching(/^no Ready MPS control daemon on 1 of 2 GPU nodes: gpu-node-2;/), fix: expect.stringContaining('--set mpsDaemon.enabled=true') });
    expect(Object.values(run.checks).filter((c) => !c.ok).map((c) => c.name)).toEqual(['MPS control daemon']);
    expect(run.text).toMatch(/^FAIL {2}MPS control daemon +no Ready MPS control daemon on 1 of 2 GPU nodes: gpu-node-2;/m);
    expect(run.text).toMatch(/^ +fix: helm upgrade mps-injector/m);
    expect(run.text).toContain('7 checks: 6 passed, 1 failed');
  });

  test('a caBundle of another CA, a missing exporter and node label, a replica not Ready, missing RBAC', async () => {
    const address = await setUp({ withoutExporter: ['gpu-node-1'] });
    standIn.modify('mutatingwebhookconfigurations', null, 'mps-injector', (mwc) => {
      const webhooks = mwc.webhooks as { clientConfig: { caBundle: string } }[];
      (webhooks[0] as { clientConfig: { caBundle: string } }).clientConfig.caBundle = Buffer.from(otherCa.ca.certPem).toString('base64');
    });
    standIn.modify('nodes', null, 'gpu-node-2', (node) => {
      delete node.metadata.labels?.['nvidia.com/gpu.product'];
    });
    standIn.modify('pods', 'mps-injector', 'mps-injector-7d9c5b-fghij', (pod) => {
      pod.status = { phase: 'Running', conditions: [{ type: 'Ready', status: 'False' }] };
    });
    standIn.authorize = (q) => !(q.resource === 'configmaps' && q.verb === 'update');
    const run = await doctor({ webhookAddress: address });
    expect(run.exitCode).toBe(1);
    expect(run.checks['webhook configuration']?.verdict).toMatch(/does not verify against its caBundle: no CA in the caBundle .* signed it/);
    expect(run.checks['dcgm-exporter']?.verdict).toMatch(/^no running exporter pod on gpu-node-1/);
    expect(run.checks['GPU node labels']).toMatchObject({ ok: false, fix: expect.stringContaining('kubectl label node gpu-node-2 nvidia.com/gpu.product=') });
    expect(run.checks['webhook replicas']?.verdict).toMatch(/^1 of 2 not Ready \(mps-injector-7d9c5b-fghij\)/);
    expect(run.checks.RBAC?.verdict).toMatch(/lacks 1 of \d+ permissions: update configmaps in mps-injector$/);
    expect(run.checks['opted-in namespaces']?.ok).toBe(true);
  });

  test('without --webhook-address the certificate in the TLS Secret is checked; without rights to review others, doctor asks about itself', async () => {
    await setUp();
    standIn.injectFault({ status: 403, count: 1, match: (r) => r.path.endsWith('/subjectaccessreviews') && !r.path.includes('self') });
    const json = await runDoctor({ output: 'json' }, deps());
    const checks = byName((JSON.parse(json.stdout) as { checks: CheckResult[] }).checks);
    expect(checks['webhook configuration']).toMatchObject({ ok: true, verdict: expect.stringContaining('in Secret mps-injector/mps-injector-tls') });
    expect(checks.RBAC).toMatchObject({ ok: true, verdict: expect.stringMatching(/^you \(SelfSubjectAccessReview/) });
  });

  test('no opted-in namespace and no webhook configuration fail with their fixes', async () => {
    await setUp();
    standIn.modify('namespaces', null, 'ml', (ns) => {
      delete ns.metadata.labels?.['mps-injector.io/injection'];
    });
    standIn.remove('mutatingwebhookconfigurations', null, 'mps-injector');
    const run = await doctor();
    expect(run.checks['opted-in namespaces']).toMatchObject({ ok: false, fix: 'kubectl label namespace <your-namespace> mps-injector.io/injection=enabled' });
    expect(run.checks['webhook configuration']).toMatchObject({ ok: false, verdict: expect.stringContaining('MutatingWebhookConfiguration mps-injector cannot be read') });
  });
});
