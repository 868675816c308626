/**
 * Registration end to end: the chart rendered by real Helm (existing-Secret mode, with a CA
 * and serving pair from `mps-injector certs generate`), the built webhook started as the
 * rendered Deployment describes it, and this test acting as the API server for the rendered
 * MutatingWebhookConfiguration: selectors, rules, Service resolution, TLS against the
 * caBundle, timeoutSeconds, failurePolicy, reinvocation, and the returned JSONPatch applied.
 */
import { readFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import type { MutatingWebhookConfiguration } from 'kubernetes-types/admissionregistration/v1.js';
import type { Deployment } from 'kubernetes-types/apps/v1.js';
import type { Pod, Service } from 'kubernetes-types/core/v1.js';
import { parse as parseYaml } from 'yaml';
import type { KubeObject } from '../charts/renderChart.js';
import { findObject, objectsOfKind, renderChart, repoRoot } from '../charts/renderChart.js';
import type { ClusterState, Namespace } from './registration/apiServerAdmission.js';
import { ApiServerAdmission, podCreate } from './registration/apiServerAdmission.js';
import type { RenderedWebhook } from './registration/runRenderedWebhook.js';
import { requireBuiltCli, runRenderedWebhook } from './registration/runRenderedWebhook.js';
import type { GeneratedCerts } from './support/webhookProcess.js';
import { generateCerts } from './support/webhookProcess.js';

const RELEASE = 'mps-injector';
const NAMESPACE = 'mps-system';
const SERVICE_HOST = `${RELEASE}.${NAMESPACE}.svc`;
const metricsFile = path.join(repoRoot, 'examples/dcgm-h100x8.prom');

const optedIn: Namespace = { name: 'inference', labels: { 'mps-injector.io/injection': 'enabled' } };
const notLabelled: Namespace = { name: 'batch', labels: { team: 'ml' } };
const labelledOff: Namespace = { name: 'staging', labels: { 'mps-injector.io/injection': 'disabled' } };
const releaseNamespace: Namespace = { name: NAMESPACE, labels: { 'mps-injector.io/injection': 'enabled' } };

let certs: GeneratedCerts;
let objects: KubeObject[];
let webhook: RenderedWebhook;

const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');
const as = <T>(o: unknown): T => o as T;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** GET on the webhook pod, as a client inside the cluster would reach it through the Service name. */
function getFromWebhook(urlPath: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    https
      .get({ host: '127.0.0.1', port: webhook.port, path: urlPath, ca: certs.caPem, servername: SERVICE_HOST, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      })
      .on('error', reject);
  });
}

async function admissionRequestsSeen(): Promise<number> {
  const r = await getFromWebhook('/metrics');
  return r.body
    .split('\n')
    .filter((l) => l.startsWith('mps_injector_admission_requests_total'))
    .reduce((sum, l) => sum + Number(l.split(' ').at(-1)), 0);
}

function clusterState(overrides: { webhookConfiguration?: MutatingWebhookConfiguration; services?: Service[]; deployments?: Deployment[] } = {}): ClusterState {
  return {
    webhookConfiguration: overrides.webhookConfiguration ?? as<MutatingWebhookConfiguration>(findObject(objects, 'MutatingWebhookConfiguration')),
    services: overrides.services ?? objectsOfKind(objects, 'Service').map((s) => as<Service>(s)),
    deployments: overrides.deployments ?? objectsOfKind(objects, 'Deployment').map((d) => as<Deployment>(d)),
  };
}

/** The rendered webhook configuration with one change. */
function changedWebhookConfiguration(change: (hook: NonNullable<MutatingWebhookConfiguration['webhooks']>[number]) => void): MutatingWebhookConfiguration {
  const mwc = structuredClone(as<MutatingWebhookConfiguration>(findObject(objects, 'MutatingWebhookConfiguration')));
  const hook = mwc.webhooks?.[0];
  if (!hook) throw new Error('the rendered MutatingWebhookConfiguration has no webhook');
  change(hook);
  return mwc;
}

let podCounter = 0;
/** The example inference pod, under a fresh name. */
function inferencePod(extra: { labels?: Record<string, string>; annotations?: Record<string, string> } = {}): Pod {
  const pod = parseYaml(readFileSync(path.join(repoRoot, 'examples/pod.yaml'), 'utf8')) as Pod;
  podCounter += 1;
  pod.metadata = {
    ...pod.metadata,
    name: `llm-inference-${podCounter}`,
    labels: { ...pod.metadata?.labels, ...extra.labels },
    annotations: { ...pod.metadata?.annotations, 'mps-injector.io/gpu-memory': '4Gi', ...extra.annotations },
  };
  return pod;
}

beforeAll(async () => {
  await requireBuiltCli();
  certs = await generateCerts(RELEASE, NAMESPACE);
  const port = await freePort();
  objects = await renderChart({
    releaseName: RELEASE,
    namespace: NAMESPACE,
    values: {
      'certificates.mode': 'secret',
      'certificates.secretName': 'webhook-tls',
      'certificates.caBundle': b64(certs.caPem),
      'config.server.port': port,
    },
  });
  webhook = await runRenderedWebhook(objects, {
    secrets: { 'webhook-tls': { 'tls.crt': readFileSync(certs.certFile, 'utf8'), 'tls.key': readFileSync(certs.keyFile, 'utf8') } },
    metricsFile,
  });
  // Ready once /readyz says so; each check waits for the previous answer.
  const exitedEarly = webhook.exited.then((code) => {
    throw new Error(`the webhook exited (${code}) while starting: ${webhook.stderr()}`);
  });
  exitedEarly.catch(() => {});
  for (;;) {
    const r = await Promise.race([getFromWebhook('/readyz'), exitedEarly]);
    if (r.status === 200) break;
    await new Promise((resolve) => setImmediate(resolve));
  }
}, 60_000);

afterAll(async () => {
  await webhook?.stop();
});

test('the webhook runs from the rendered Deployment: its args, its ConfigMap, its Secret, its port', () => {
  const d = as<Deployment>(findObject(objects, 'Deployment'));
  const c = d.spec?.template.spec?.containers[0];
  expect(c?.args).toEqual(['serve', '--config', '/etc/mps-injector/config.yaml']);
  expect(webhook.port).toBe(c?.ports?.find((p) => p.name === 'https')?.containerPort);
  expect(webhook.config.certificates?.mode).toBe('files');
});

test('a GPU pod in a labelled namespace is mutated through the registration', async () => {
  const before = await admissionRequestsSeen();
  const api = new ApiServerAdmission(clusterState());
  const result = await api.admit(podCreate(optedIn, inferencePod()));
  expect(result.message).toBeUndefined();
  expect(result.allowed).toBe(true);
  expect(result.calls.map((c) => c.outcome)).toEqual(['patched']);
  const pod = result.object;
  const node = pod.metadata?.annotations?.['mps-injector.io/node'];
  expect(node).toBeTruthy();
  expect(pod.spec?.nodeSelector?.['kubernetes.io/hostname']).toBe(node);
  expect(pod.metadata?.annotations?.['mps-injector.io/decision']).toBeTruthy();
  // Injected with the chart's configuration: the pipe mount the chart's values name.
  const injection = webhook.config.injection as { containerPipeDirectory: string; hostPipeDirectory: string };
  const env = Object.fromEntries((pod.spec?.containers[0]?.env ?? []).map((e) => [e.name, e.value]));
  expect(env.CUDA_MPS_PIPE_DIRECTORY).toBe(injection.containerPipeDirectory);
  expect(pod.spec?.volumes?.map((v) => v.hostPath?.path)).toContain(injection.hostPipeDirectory);
  expect(await admissionRequestsSeen()).toBe(before + 1);
});

test('pods in unlabelled namespaces, or namespaces labelled otherwise, never reach the webhook', async () => {
  const before = await admissionRequestsSeen();
  const api = new ApiServerAdmission(clusterState());
  for (const ns of [notLabelled, labelledOff]) {
    const pod = inferencePod();
    const result = await api.admit(podCreate(ns, pod));
    expect(result).toEqual({ allowed: true, object: pod, warnings: [], calls: [] });
  }
  expect(await admissionRequestsSeen()).toBe(before);
});

test('a pod labelled mps-injector.io/inject=false is left alone', async () => {
  const before = await admissionRequestsSeen();
  const pod = inferencePod({ labels: { 'mps-injector.io/inject': 'false' } });
  const result = await new ApiServerAdmission(clusterState()).admit(podCreate(optedIn, pod));
  expect(result).toEqual({ allowed: true, object: pod, warnings: [], calls: [] });
  expect(await admissionRequestsSeen()).toBe(before);
});

test("the webhook's own pods are excluded even in a labelled namespace, with or without the opt-out label", async () => {
  const before = await admissionRequestsSeen();
  const d = as<Deployment>(findObject(objects, 'Deployment'));
  const template = d.spec?.template;
  const ownPod: Pod = { apiVersion: 'v1', kind: 'Pod', metadata: { ...template?.metadata, name: `${RELEASE}-6d4f9c7b8-x2x7q` }, spec: template?.spec };
  const { 'mps-injector.io/inject': _optOut, ...labelsWithoutOptOut } = ownPod.metadata?.labels ?? {};
  const withoutOptOut: Pod = { ...ownPod, metadata: { ...ownPod.metadata, labels: labelsWithoutOptOut } };
  const api = new ApiServerAdmission(clusterState());
  for (const pod of [ownPod, withoutOptOut]) {
    const result = await api.admit(podCreate(releaseNamespace, pod));
    expect(result.calls).toEqual([]);
    expect(result.object).toEqual(pod);
  }
  expect(await admissionRequestsSeen()).toBe(before);
});

test("a tenant's pod that copies the webhook's own labels is still sent to the webhook in its namespace", async () => {
  const before = await admissionRequestsSeen();
  const template = as<Deployment>(findObject(objects, 'Deployment')).spec?.template;
  const { 'mps-injector.io/inject': _optOut, ...chartLabels } = template?.metadata?.labels ?? {};
  const result = await new ApiServerAdmission(clusterState()).admit(podCreate(optedIn, inferencePod({ labels: chartLabels })));
  expect(result.calls.map((c) => c.outcome)).toEqual(['patched']);
  expect(result.object.metadata?.annotations?.['mps-injector.io/node']).toBeTruthy();
  expect(await admissionRequestsSeen()).toBe(before + 1);
});

test('only pod CREATE matches the rules: an UPDATE or another resource is not sent', async () => {
  const api = new ApiServerAdmission(clusterState());
  const pod = inferencePod();
  const update = await api.admit({ ...podCreate(optedIn, pod), operation: 'UPDATE' });
  expect(update.calls).toEqual([]);
  const cm = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' } };
  const other = await api.admit({ ...podCreate(optedIn, cm), resource: { group: '', version: 'v1', resource: 'configmaps' }, kind: { group: '', version: 'v1', kind: 'ConfigMap' } });
  expect(other.calls).toEqual([]);
  const binding = await api.admit({ ...podCreate(optedIn, pod), resource: { group: '', version: 'v1', resource: 'pods/binding' } });
  expect(binding.calls).toEqual([]);
});

test('a dry run is sent (sideEffects NoneOnDryRun) and answered', async () => {
  const result = await new ApiServerAdmission(clusterState()).admit(podCreate(optedIn, inferencePod(), { dryRun: true }));
  expect(result.allowed).toBe(true);
  expect(result.calls.map((c) => c.outcome)).toEqual(['patched']);
});

test('reinvocation (IfNeeded): a later mutation calls the webhook again, which leaves its own injection as it is', async () => {
  const addLabel = (pod: unknown): unknown => {
    const p = structuredClone(pod) as Pod;
    p.metadata = { ...p.metadata, labels: { ...p.metadata?.labels, 'sidecar.example.com/injected': 'true' } };
    return p;
  };
  const result = await new ApiServerAdmission(clusterState(), [addLabel]).admit(podCreate(optedIn, inferencePod()));
  expect(result.allowed).toBe(true);
  expect(result.calls.map((c) => [c.outcome, c.reinvocation])).toEqual([
    ['patched', false],
    ['allowed', true],
  ]);
  const envNames = (result.object.spec?.containers[0]?.env ?? []).map((e) => e.name);
  expect(envNames.filter((n) => n === 'CUDA_MPS_PIPE_DIRECTORY')).toHaveLength(1);
  expect(result.object.metadata?.labels?.['sidecar.example.com/injected']).toBe('true');
});

describe('a disagreement between the registration and the server is caught', () => {
  test('the webhook path', async () => {
    const mwc = changedWebhookConfiguration((h) => {
      if (h.clientConfig.service) h.clientConfig.service.path = '/mutate-pods';
    });
    const result = await new ApiServerAdmission(clusterState({ webhookConfiguration: mwc })).admit(podCreate(optedIn, inferencePod()));
    expect(result.allowed).toBe(false);
    expect(result.message).toContain('expected response code 200, got 404');
    expect(result.calls.map((c) => c.outcome)).toEqual(['failed-closed']);
  });

  test('the Service port the registration calls', async () => {
    const mwc = changedWebhookConfiguration((h) => {
      if (h.clientConfig.service) h.clientConfig.service.port = 8443;
    });
    const result = await new ApiServerAdmission(clusterState({ webhookConfiguration: mwc })).admit(podCreate(optedIn, inferencePod()));
    expect(result.allowed).toBe(false);
    expect(result.message).toContain(`service ${NAMESPACE}/${RELEASE} has no port 8443`);
  });

  test('the container port the Service forwards to', async () => {
    const deployments = objectsOfKind(objects, 'Deployment').map((o) => structuredClone(as<Deployment>(o)));
    const port = deployments[0]?.spec?.template.spec?.containers[0]?.ports?.[0];
    if (!port) throw new Error('the rendered Deployment has no container port');
    port.containerPort = await freePort();
    const result = await new ApiServerAdmission(clusterState({ deployments })).admit(podCreate(optedIn, inferencePod()));
    expect(result.allowed).toBe(false);
    expect(result.message).toContain('ECONNREFUSED');
  });

  test('the CA: a caBundle from another CA, or none', async () => {
    const other = await generateCerts(RELEASE, NAMESPACE);
    for (const caBundle of [b64(other.caPem), undefined]) {
      const mwc = changedWebhookConfiguration((h) => {
        if (caBundle === undefined) delete h.clientConfig.caBundle;
        else h.clientConfig.caBundle = caBundle;
      });
      const result = await new ApiServerAdmission(clusterState({ webhookConfiguration: mwc })).admit(podCreate(optedIn, inferencePod()));
      expect(result.allowed).toBe(false);
      expect(result.message).toMatch(/failed calling webhook .*(self-signed certificate|unable to verify|unable to get issuer)/);
    }
  });

  test('the Service name the serving certificate was made for', async () => {
    const renamed = structuredClone(as<Service>(findObject(objects, 'Service')));
    renamed.metadata = { ...renamed.metadata, name: 'gpu-webhook' };
    const mwc = changedWebhookConfiguration((h) => {
      if (h.clientConfig.service) h.clientConfig.service.name = 'gpu-webhook';
    });
    const result = await new ApiServerAdmission(clusterState({ webhookConfiguration: mwc, services: [renamed] })).admit(podCreate(optedIn, inferencePod()));
    expect(result.allowed).toBe(false);
    expect(result.message).toContain("Hostname/IP does not match certificate's altnames");
  });

  test('with failurePolicy Ignore the same failure admits the pod unmutated', async () => {
    const mwc = changedWebhookConfiguration((h) => {
      h.failurePolicy = 'Ignore';
      if (h.clientConfig.service) h.clientConfig.service.path = '/mutate-pods';
    });
    const pod = inferencePod();
    const result = await new ApiServerAdmission(clusterState({ webhookConfiguration: mwc })).admit(podCreate(optedIn, pod));
    expect(result.allowed).toBe(true);
    expect(result.object).toEqual(pod);
    expect(result.calls.map((c) => c.outcome)).toEqual(['failed-open']);
  });

  test('a webhook slower than timeoutSeconds is given up on, and failurePolicy decides', async () => {
    // A server with the right certificate that accepts the request and never answers.
    const stalled = https.createServer({ cert: readFileSync(certs.certFile), key: readFileSync(certs.keyFile) }, () => {});
    const received = new Promise<void>((resolve) => stalled.once('request', () => resolve()));
    await new Promise<void>((resolve) => stalled.listen(0, '127.0.0.1', resolve));
    try {
      const deployments = objectsOfKind(objects, 'Deployment').map((o) => structuredClone(as<Deployment>(o)));
      const port = deployments[0]?.spec?.template.spec?.containers[0]?.ports?.[0];
      if (!port) throw new Error('the rendered Deployment has no container port');
      port.containerPort = (stalled.address() as net.AddressInfo).port;
      const mwc = changedWebhookConfiguration((h) => {
        h.timeoutSeconds = 1;
      });
      const result = await new ApiServerAdmission(clusterState({ webhookConfiguration: mwc, deployments })).admit(podCreate(optedIn, inferencePod()));
      await received;
      expect(result.allowed).toBe(false);
      expect(result.message).toContain('context deadline exceeded (timeoutSeconds 1)');
    } finally {
      stalled.closeAllConnections();
      await new Promise((resolve) => stalled.close(resolve));
    }
  });
});
