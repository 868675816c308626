/**
 * Renders the chart with real Helm for the defaults and every value set in ci/, and checks the
 * objects: Kubernetes schema of each kind, no unknown fields, a configuration the webhook
 * accepts, and the behaviour each option promises.
 */
import { createWebhookMetrics } from '../webhook/webhookMetrics.js';
import { ReservationLedger } from '../reservations/ledger.js';
import { emptyInventory } from '../domain/inventory.js';
import { defaultConfig } from '../config/schema.js';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { DaemonSet, Deployment } from 'kubernetes-types/apps/v1.js';
import type { Job } from 'kubernetes-types/batch/v1.js';
import type { MutatingWebhookConfiguration } from 'kubernetes-types/admissionregistration/v1.js';
import type { ConfigMap, Container, Service } from 'kubernetes-types/core/v1.js';
import type { ClusterRole, PolicyRule, Role, RoleBinding } from 'kubernetes-types/rbac/v1.js';
import { parse as parseYaml } from 'yaml';
import { parseConfigText } from '../config/schema.js';
import type { Config } from '../config/schema.js';
import { matchesLabelSelector } from '../e2e/registration/matchLabelSelector.js';
import type { LabelSelector } from '../e2e/registration/matchLabelSelector.js';
import { loadValueSets } from './chartValueSets.js';
import type { ValueSet } from './chartValueSets.js';
import { findUnknownFields } from './findUnknownFields.js';
import type { KubeObject } from './renderChart.js';
import { chartDir, findObject, lintRun, objectsOfKind, renderChart, runHelm } from './renderChart.js';
import { RenderedObjectInvalid, validateRenderedObject } from './validateRenderedObject.js';

const valueSets = loadValueSets();
const rendered = new Map<string, KubeObject[]>();

beforeAll(async () => {
  for (const set of valueSets) rendered.set(set.name, await renderChart({ valuesFiles: set.valuesFiles }));
}, 120_000);

function objectsOf(set: string): KubeObject[] {
  const objects = rendered.get(set);
  if (!objects) throw new Error(`value set ${set} was not rendered; sets: ${[...rendered.keys()].join(', ')}`);
  return objects;
}

const as = <T>(o: KubeObject): T => o as unknown as T;
const deploymentOf = (objects: KubeObject[]): Deployment => as<Deployment>(findObject(objects, 'Deployment'));
const webhookConfigOf = (objects: KubeObject[]): MutatingWebhookConfiguration => as<MutatingWebhookConfiguration>(findObject(objects, 'MutatingWebhookConfiguration'));

function webhookContainer(d: Deployment): Container {
  const c = d.spec?.template.spec?.containers.find((x) => x.name === 'webhook');
  if (!c) throw new Error('the Deployment has no container named webhook');
  return c;
}

/** The webhook configuration file as rendered into the ConfigMap the Deployment mounts. */
function configTextOf(objects: KubeObject[]): string {
  const d = deploymentOf(objects);
  const volume = d.spec?.template.spec?.volumes?.find((v) => v.name === 'config');
  const cm = as<ConfigMap>(findObject(objects, 'ConfigMap', volume?.configMap?.name));
  const text = cm.data?.['config.yaml'];
  if (text === undefined) throw new Error(`ConfigMap ${cm.metadata?.name} has no config.yaml`);
  return text;
}

const configOf = (objects: KubeObject[], origin: string): Config => parseConfigText(configTextOf(objects), origin);

const renderWith = (values: Record<string, unknown>): Promise<KubeObject[]> => renderChart({ values });

describe.each(valueSets.map((s) => [s.name, s] as [string, ValueSet]))('value set %s', (name, set) => {
  test('helm lint --strict passes', async () => {
    const r = await lintRun({ valuesFiles: set.valuesFiles });
    expect(`${r.stdout}${r.stderr}`).toContain('0 chart(s) failed');
    expect(r.code).toBe(0);
  });

  test('every rendered object matches the schema of its kind', async () => {
    const objects = objectsOf(name);
    for (const kind of ['ConfigMap', 'Deployment', 'Service', 'MutatingWebhookConfiguration']) expect(objects.map((o) => o.kind)).toContain(kind);
    for (const o of objects) await validateRenderedObject(o);
  });

  test('the rendered configuration is accepted by the webhook, and holds the chart-owned fields', () => {
    const objects = objectsOf(name);
    const config = configOf(objects, `${name} ConfigMap`);
    const d = deploymentOf(objects);
    const c = webhookContainer(d);
    expect(config.cluster.enabled).toBe(true);
    expect(config.cluster.namespace).toBe('mps-injector');
    // The container serves on the configured port, and the configuration is where the args say.
    expect(c.ports?.find((p) => p.name === 'https')?.containerPort).toBe(config.server.port);
    expect(c.args).toEqual(['serve', '--config', '/etc/mps-injector/config.yaml']);
    expect(c.volumeMounts?.find((m) => m.name === 'config')).toMatchObject({ mountPath: '/etc/mps-injector/config.yaml', subPath: 'config.yaml' });
    // The TLS files are in the directory the tls volume is mounted at.
    const tlsMount = c.volumeMounts?.find((m) => m.name === 'tls');
    expect(path.posix.dirname(config.server.tlsCertFile)).toBe(tlsMount?.mountPath);
    expect(path.posix.dirname(config.server.tlsKeyFile)).toBe(tlsMount?.mountPath);
    // Certificate and webhook object names the webhook uses are the rendered ones.
    const svc = as<Service>(findObject(objects, 'Service'));
    expect(config.certificates.serviceName).toBe(svc.metadata?.name);
    expect(config.certificates.mutatingWebhookConfigurationName).toBe(webhookConfigOf(objects).metadata?.name);
  });

  test("the webhook configuration calls this release's Service on a port it has", () => {
    const objects = objectsOf(name);
    const hook = webhookConfigOf(objects).webhooks?.[0];
    const svc = as<Service>(findObject(objects, 'Service'));
    expect(hook?.clientConfig.service).toMatchObject({ name: svc.metadata?.name, namespace: 'mps-injector', path: '/mutate' });
    const port = svc.spec?.ports?.find((p) => p.port === hook?.clientConfig.service?.port);
    expect(port?.targetPort).toBe('https');
    // The Service selects the webhook pods.
    const d = deploymentOf(objects);
    expect(matchesLabelSelector({ matchLabels: svc.spec?.selector }, d.spec?.template.metadata?.labels)).toBe(true);
  });

  test("the chart's own pods are never sent to the webhook: their namespace is exempt, whatever its labels", () => {
    const objects = objectsOf(name);
    const hook = webhookConfigOf(objects).webhooks?.[0];
    const podObjects = [...objectsOfKind(objects, 'Deployment'), ...objectsOfKind(objects, 'DaemonSet'), ...objectsOfKind(objects, 'Job')];
    expect(podObjects.length).toBeGreaterThan(0);
    for (const o of podObjects) {
      // Pod objects live in the release namespace (Jobs and DaemonSets included).
      expect(o.metadata.namespace).toBe('mps-injector');
      // Even when an administrator opts the release namespace in, the webhook is not called there.
      const releaseNamespace = { 'kubernetes.io/metadata.name': 'mps-injector', 'mps-injector.io/injection': 'enabled' };
      expect(matchesLabelSelector(hook?.namespaceSelector as LabelSelector, releaseNamespace)).toBe(false);
      // And their pods opt out by label too.
      expect(matchesLabelSelector(hook?.objectSelector as LabelSelector, as<Deployment | DaemonSet | Job>(o).spec?.template.metadata?.labels ?? {})).toBe(false);
    }
  });

  test("a tenant's pod that copies the chart's labels is still sent to the webhook", () => {
    const objects = objectsOf(name);
    const hook = webhookConfigOf(objects).webhooks?.[0];
    const chartLabels = as<Deployment>(findObject(objects, 'Deployment')).spec?.template.metadata?.labels ?? {};
    const { 'mps-injector.io/inject': _optOut, ...copied } = chartLabels;
    expect(matchesLabelSelector(hook?.namespaceSelector as LabelSelector, { 'kubernetes.io/metadata.name': 'team-a', 'mps-injector.io/injection': 'enabled' })).toBe(true);
    expect(matchesLabelSelector(hook?.objectSelector as LabelSelector, copied)).toBe(true);
  });

  test('RBAC grants no wildcards, and names what it can', () => {
    const objects = objectsOf(name);
    const roles = [...objectsOfKind(objects, 'ClusterRole'), ...objectsOfKind(objects, 'Role')].map((o) => as<ClusterRole | Role>(o));
    expect(roles.length > 0).toBe((set.values.rbac as { create?: boolean } | undefined)?.create !== false);
    for (const role of roles) {
      for (const rule of role.rules ?? []) {
        expect([...(rule.verbs ?? []), ...(rule.resources ?? []), ...(rule.apiGroups ?? [])]).not.toContain('*');
        if (rule.resources?.includes('secrets') || rule.resources?.includes('mutatingwebhookconfigurations')) {
          // create is the one verb Kubernetes cannot limit to a name.
          if (!(rule.verbs?.length === 1 && rule.verbs[0] === 'create')) expect(rule.resourceNames?.length).toBeGreaterThan(0);
        }
      }
    }
  });
});

test('no rendered object of any value set carries a field the Kubernetes API does not know', () => {
  const all = valueSets.flatMap((s) => objectsOf(s.name).map((o) => ({ ...o, metadata: { ...o.metadata, name: `${s.name}:${o.metadata.name}` } })));
  expect(findUnknownFields(all)).toEqual([]);
});

test('the unknown-field check and the schema check catch a broken object', async () => {
  const d = structuredClone(findObject(objectsOf('defaults'), 'Deployment'));
  const spec = (d as unknown as Deployment).spec?.template.spec;
  const c = spec?.containers[0] as unknown as Record<string, unknown>;
  (c.securityContext as Record<string, unknown>).readOnlyRootFilesytem = true;
  const problems = findUnknownFields([d]);
  expect(problems).toHaveLength(1);
  expect(problems[0]?.object).toBe('Deployment/mps-injector');
  expect(problems[0]?.message).toContain("'\"readOnlyRootFilesytem\"' does not exist in type 'ISecurityContext'");

  (c.ports as Record<string, unknown>[])[0] = { name: 'https', containerPort: 'https' };
  await expect(validateRenderedObject(d)).rejects.toThrow(RenderedObjectInvalid);
  await expect(validateRenderedObject(d)).rejects.toThrow(/containerPort must be integer/);

  const cert = { apiVersion: 'cert-manager.io/v1', kind: 'Certificate', metadata: { name: 'c', namespace: 'n' }, spec: { secretName: 's', dnsName: ['x'], issuerRef: { name: 'i', kind: 'Issuer', group: 'cert-manager.io' } } };
  await expect(validateRenderedObject(cert)).rejects.toThrow(/Certificate\/c does not match the structure of cert-manager.io\/v1 Certificate: spec: Unrecognized key\(s\) in object: 'dnsName'/);
  await expect(validateRenderedObject({ apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' } })).rejects.toThrow(/no schema for example.com\/v1 Widget/);
});

describe('webhook Deployment (defaults)', () => {
  test('two replicas, spread over nodes, never fewer ready than asked during a rollout', () => {
    const d = deploymentOf(objectsOf('defaults'));
    expect(d.spec?.replicas).toBe(2);
    expect(d.spec?.strategy?.rollingUpdate?.maxUnavailable).toBe(0);
    const preferred = d.spec?.template.spec?.affinity?.podAntiAffinity?.preferredDuringSchedulingIgnoredDuringExecution ?? [];
    expect(preferred).toHaveLength(1);
    expect(preferred[0]?.podAffinityTerm.topologyKey).toBe('kubernetes.io/hostname');
    expect(matchesLabelSelector(preferred[0]?.podAffinityTerm.labelSelector as LabelSelector, d.spec?.template.metadata?.labels)).toBe(true);
  });

  test('probes hit /healthz and /readyz over HTTPS on the serving port', () => {
    const c = webhookContainer(deploymentOf(objectsOf('defaults')));
    for (const [probe, probePath] of [
      [c.livenessProbe, '/healthz'],
      [c.startupProbe, '/healthz'],
      [c.readinessProbe, '/readyz'],
    ] as const) {
      expect(probe?.httpGet).toEqual({ path: probePath, port: 'https', scheme: 'HTTPS' });
    }
  });

  test('the container is hardened: numeric non-root user, read-only root, no capabilities, RuntimeDefault seccomp', () => {
    const d = deploymentOf(objectsOf('defaults'));
    const pod = d.spec?.template.spec;
    const sc = webhookContainer(d).securityContext;
    expect(pod?.securityContext?.runAsNonRoot).toBe(true);
    expect(Number.isInteger(pod?.securityContext?.runAsUser)).toBe(true);
    expect(pod?.securityContext?.runAsUser).toBeGreaterThan(0);
    expect(pod?.securityContext?.seccompProfile?.type).toBe('RuntimeDefault');
    expect(sc).toMatchObject({ runAsNonRoot: true, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' } });
    expect(sc?.privileged).toBeUndefined();
    expect(webhookContainer(d).resources).toEqual({ requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '384Mi' } });
  });

  test('the service account token is mounted only into pods that call the API', () => {
    const objects = objectsOf('defaults');
    const sa = findObject(objects, 'ServiceAccount', 'mps-injector') as { automountServiceAccountToken?: boolean };
    expect(sa.automountServiceAccountToken).toBe(false);
    expect(deploymentOf(objects).spec?.template.spec?.automountServiceAccountToken).toBe(true);
    const daemon = as<DaemonSet>(findObject(objectsOf('mps-daemon'), 'DaemonSet'));
    expect(daemon.spec?.template.spec?.automountServiceAccountToken).toBe(false);
  });

  test('the image is the repository at the chart appVersion unless a tag or digest is given', () => {
    const chart = parseYaml(readFileSync(path.join(chartDir, 'Chart.yaml'), 'utf8')) as { appVersion: string };
    expect(webhookContainer(deploymentOf(objectsOf('defaults'))).image).toBe(`ghcr.io/mps-injector/mps-injector:${chart.appVersion}`);
    expect(webhookContainer(deploymentOf(objectsOf('all-options'))).image).toBe(
      'registry.example.com/mps-injector:0.1.0-rc.1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef',
    );
  });

  test('a configuration change rolls the pods; other changes to the pod template do not touch the checksum', async () => {
    const base = deploymentOf(objectsOf('defaults')).spec?.template.metadata?.annotations?.['checksum/config'];
    expect(base).toBe(createHash('sha256').update(configTextOf(objectsOf('defaults')).trimEnd()).digest('hex'));
    const changed = deploymentOf(await renderWith({ 'config.placement.policy': 'spread' })).spec?.template.metadata?.annotations?.['checksum/config'];
    const unrelated = deploymentOf(await renderWith({ podLabels: { a: 'b' } })).spec?.template.metadata?.annotations?.['checksum/config'];
    expect(changed).not.toBe(base);
    expect(unrelated).toBe(base);
  });

  test('hard anti-affinity is required, "none" adds no term, and user affinity is kept', () => {
    const all = deploymentOf(objectsOf('all-options')).spec?.template.spec?.affinity;
    expect(all?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.[0]?.topologyKey).toBe('kubernetes.io/hostname');
    expect(all?.podAntiAffinity?.preferredDuringSchedulingIgnoredDuringExecution).toBeUndefined();
    expect(all?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms[0]?.matchExpressions?.[0]?.key).toBe('kubernetes.io/arch');
    expect(deploymentOf(objectsOf('single-replica')).spec?.template.spec?.affinity).toBeUndefined();
  });

  test('the grace period outlasts the webhook drain', () => {
    for (const set of ['defaults', 'all-options']) {
      const objects = objectsOf(set);
      const config = configOf(objects, set);
      const spec = deploymentOf(objects).spec?.template.spec;
      const preStopSleep = Number(spec?.containers[0]?.lifecycle?.preStop?.sleep?.seconds ?? 0);
      expect(spec?.terminationGracePeriodSeconds).toBeGreaterThan(preStopSleep + config.server.drainDelaySeconds + config.server.shutdownGraceSeconds);
    }
  });

  test('a preStop sleep as long as the drain delay keeps the pod serving while it leaves the endpoints (Kubernetes 1.30 and later)', async () => {
    const current = deploymentOf(await renderChart({ kubeVersion: '1.30.0', values: { 'config.server.drainDelaySeconds': 7 } })).spec?.template.spec;
    expect(current?.containers[0]?.lifecycle?.preStop).toEqual({ sleep: { seconds: 7 } });
    expect(current?.terminationGracePeriodSeconds).toBe(7 + 7 + 20 + 10);
    // Before 1.30 the kubelet has no sleep action (and the image no shell): the server's own delay covers it.
    const older = deploymentOf(await renderChart({ kubeVersion: '1.29.0', values: { 'config.server.drainDelaySeconds': 7, 'mpsHostPathPolicy.enabled': false } })).spec?.template.spec;
    expect(older?.containers[0]?.lifecycle).toBeUndefined();
    expect(older?.terminationGracePeriodSeconds).toBe(7 + 20 + 10);
  });
});

describe('PodDisruptionBudget', () => {
  test('exists with more than one replica and selects the webhook pods', () => {
    const objects = objectsOf('defaults');
    const pdb = as<{ spec: { maxUnavailable: number; selector: LabelSelector } }>(findObject(objects, 'PodDisruptionBudget'));
    expect(pdb.spec.maxUnavailable).toBe(1);
    expect(matchesLabelSelector(pdb.spec.selector, deploymentOf(objects).spec?.template.metadata?.labels)).toBe(true);
    expect(as<{ spec: { maxUnavailable: number } }>(findObject(objectsOf('all-options'), 'PodDisruptionBudget')).spec.maxUnavailable).toBe(2);
  });

  test('is left out for a single replica, where it would block every drain, and when disabled', () => {
    expect(objectsOfKind(objectsOf('single-replica'), 'PodDisruptionBudget')).toEqual([]);
    expect(objectsOfKind(objectsOf('external-rbac'), 'PodDisruptionBudget')).toEqual([]);
  });
});

describe('MutatingWebhookConfiguration', () => {
  test('defaults: opted-in namespaces, pods CREATE only, v1 reviews, Fail, 5 s, IfNeeded, NoneOnDryRun', () => {
    const mwc = webhookConfigOf(objectsOf('defaults'));
    expect(mwc.webhooks).toHaveLength(1);
    const hook = mwc.webhooks?.[0];
    expect(hook).toMatchObject({
      admissionReviewVersions: ['v1'],
      sideEffects: 'NoneOnDryRun',
      failurePolicy: 'Fail',
      timeoutSeconds: 5,
      reinvocationPolicy: 'IfNeeded',
      namespaceSelector: { matchLabels: { 'mps-injector.io/injection': 'enabled' } },
      rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' }],
    });
    expect(hook?.clientConfig.service?.port).toBe(443);
    expect(hook?.objectSelector?.matchExpressions).toContainEqual({ key: 'mps-injector.io/inject', operator: 'NotIn', values: ['false'] });
  });

  test('the object selector lets ordinary pods through and keeps opted-out pods away', () => {
    const sel = webhookConfigOf(objectsOf('defaults')).webhooks?.[0]?.objectSelector as LabelSelector;
    expect(matchesLabelSelector(sel, {})).toBe(true);
    expect(matchesLabelSelector(sel, { app: 'llm', 'mps-injector.io/inject': 'true' })).toBe(true);
    expect(matchesLabelSelector(sel, { app: 'llm', 'mps-injector.io/inject': 'false' })).toBe(false);
  });

  test('failurePolicy, timeoutSeconds, reinvocationPolicy, Service port and annotations follow the values', () => {
    const hook = webhookConfigOf(objectsOf('all-options')).webhooks?.[0];
    expect(hook).toMatchObject({ failurePolicy: 'Ignore', timeoutSeconds: 10, reinvocationPolicy: 'Never' });
    expect(hook?.clientConfig.service?.port).toBe(9443);
    expect(webhookConfigOf(objectsOf('all-options')).metadata?.annotations).toEqual({ 'example.com/owner': 'gpu-platform' });
  });

  test('self-managed and cert-manager leave caBundle out (it is injected), so an upgrade never blanks it', () => {
    for (const set of ['defaults', 'cert-manager', 'cert-manager-issuer']) {
      expect(webhookConfigOf(objectsOf(set)).webhooks?.[0]?.clientConfig.caBundle).toBeUndefined();
    }
  });
});

describe('certificate modes', () => {
  test('self-managed: an emptyDir for the TLS files, one Secret name shared by config and RBAC', () => {
    const objects = objectsOf('defaults');
    const d = deploymentOf(objects);
    const config = configOf(objects, 'defaults');
    expect(config.certificates.mode).toBe('self-managed');
    expect(config.certificates.secretName).toBe('mps-injector-tls');
    expect(d.spec?.template.spec?.volumes?.find((v) => v.name === 'tls')?.emptyDir).toBeDefined();
    const role = as<Role>(findObject(objects, 'Role', 'mps-injector'));
    const secretRules = (role.rules ?? []).filter((r) => r.resources?.includes('secrets'));
    expect(secretRules).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ resourceNames: ['mps-injector-tls'], verbs: ['get', 'update'] }),
        expect.objectContaining({ verbs: ['create'] }),
      ]),
    );
    const caRole = as<ClusterRole>(findObject(objects, 'ClusterRole', 'mps-injector-webhook-ca'));
    expect(caRole.rules).toEqual([{ apiGroups: ['admissionregistration.k8s.io'], resources: ['mutatingwebhookconfigurations'], resourceNames: ['mps-injector'], verbs: ['get', 'patch'] }]);
    expect(config.certificates).toMatchObject({ caValidityDays: 3650, leafValidityDays: 30 });
  });

  test('uninstall: a post-delete hook deletes what the webhook created at runtime, and the Secret by name', () => {
    const objects = objectsOf('defaults');
    const job = as<Job>(findObject(objects, 'Job', 'mps-injector-cleanup'));
    expect(job.metadata?.annotations?.['helm.sh/hook']).toBe('post-delete');
    const containers = job.spec?.template.spec?.containers ?? [];
    expect(containers.map((c) => c.args)).toEqual([
      ['delete', 'configmaps,leases.coordination.k8s.io', '--selector', 'app.kubernetes.io/managed-by=mps-injector', '--namespace=mps-injector', '--ignore-not-found', '--wait=false'],
      ['delete', 'secret', 'mps-injector-tls', '--namespace=mps-injector', '--ignore-not-found', '--wait=false'],
    ]);
    expect(containers[0]?.image).toBe('registry.k8s.io/kubectl:v1.33.9');
    const role = as<Role>(findObject(objects, 'Role', 'mps-injector-cleanup'));
    expect(role.rules).toEqual([
      { apiGroups: [''], resources: ['configmaps'], verbs: ['list', 'delete'] },
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['list', 'delete'] },
      { apiGroups: [''], resources: ['secrets'], resourceNames: ['mps-injector-tls'], verbs: ['delete'] },
    ]);
    // The hook's ServiceAccount, Role and binding are hooks too, created before the Job and deleted with it.
    for (const kind of ['ServiceAccount', 'Role', 'RoleBinding']) {
      const o = findObject(objects, kind, 'mps-injector-cleanup');
      expect(o.metadata.annotations?.['helm.sh/hook']).toBe('post-delete');
      expect(Number(o.metadata.annotations?.['helm.sh/hook-weight'])).toBeLessThan(Number(job.metadata?.annotations?.['helm.sh/hook-weight']));
    }
    const binding = as<RoleBinding>(findObject(objects, 'RoleBinding', 'mps-injector-cleanup'));
    expect(binding.subjects?.[0]?.name).toBe(job.spec?.template.spec?.serviceAccountName);
    // Turned off, no hook objects remain.
    expect(objectsOf('prometheus-source').filter((o) => o.metadata.annotations?.['helm.sh/hook'])).toEqual([]);
    // Outside self-managed mode there is no Secret of the webhook's to delete.
    const cm = as<Job>(findObject(objectsOf('cert-manager'), 'Job'));
    expect(cm.spec?.template.spec?.containers.map((c) => c.name)).toEqual(['delete-runtime-objects']);
    expect(as<Role>(findObject(objectsOf('cert-manager'), 'Role', 'mps-injector-cleanup')).rules?.flatMap((r) => r.resources)).not.toContain('secrets');
    // With another Secret name and image, every piece follows them.
    const all = objectsOf('all-options');
    const allJob = as<Job>(findObject(all, 'Job'));
    expect(allJob.spec?.template.spec?.containers[1]?.args?.[2]).toBe('mps-webhook-certs');
    expect(allJob.spec?.template.spec?.containers[1]).toMatchObject({ image: 'registry.example.com/kubectl:v1.33.0', imagePullPolicy: 'Always' });
    expect(configOf(all, 'all-options').certificates).toMatchObject({ secretName: 'mps-webhook-certs', caValidityDays: 1825, leafValidityDays: 14, renewAtFraction: 0.5 });
  });

  test('cert-manager: a CA chain, a serving Certificate for the Service, its Secret mounted, the CA injected', () => {
    const objects = objectsOf('cert-manager');
    const certs = objectsOfKind(objects, 'Certificate') as unknown as { metadata: { name: string }; spec: Record<string, unknown> }[];
    expect(certs.map((c) => c.metadata.name).sort()).toEqual(['mps-injector-ca', 'mps-injector-serving']);
    expect(objectsOfKind(objects, 'Issuer').map((o) => o.metadata.name).sort()).toEqual(['mps-injector-ca', 'mps-injector-selfsigned']);
    const serving = certs.find((c) => c.metadata.name === 'mps-injector-serving');
    expect(serving?.spec.dnsNames).toEqual(['mps-injector.mps-injector.svc', 'mps-injector.mps-injector.svc.cluster.local']);
    expect(serving?.spec).toMatchObject({ duration: '720h', renewBefore: '240h', issuerRef: { name: 'mps-injector-ca', kind: 'Issuer' } });
    expect(certs.find((c) => c.metadata.name === 'mps-injector-ca')?.spec).toMatchObject({ isCA: true, duration: '43800h' });
    const tls = deploymentOf(objects).spec?.template.spec?.volumes?.find((v) => v.name === 'tls');
    expect(tls?.secret?.secretName).toBe(serving?.spec.secretName);
    expect(webhookConfigOf(objects).metadata?.annotations?.['cert-manager.io/inject-ca-from']).toBe('mps-injector/mps-injector-serving');
    const config = configOf(objects, 'cert-manager');
    expect(config.certificates.mode).toBe('files');
    // The webhook touches no certificate Secret and no webhook configuration in this mode: only its decision key Secret.
    const rules: PolicyRule[] = [...objectsOfKind(objects, 'Role'), ...objectsOfKind(objects, 'ClusterRole')]
      .filter((o) => !o.metadata.annotations?.['helm.sh/hook'])
      .flatMap((o) => as<Role>(o).rules ?? []);
    expect(rules.filter((r) => r.resources?.includes('secrets'))).toEqual([
      { apiGroups: [''], resources: ['secrets'], resourceNames: ['mps-injector-decision-key'], verbs: ['get'] },
      { apiGroups: [''], resources: ['secrets'], verbs: ['create'] },
    ]);
    expect(rules.flatMap((r) => r.resources ?? [])).not.toContain('mutatingwebhookconfigurations');
  });

  test('cert-manager with an existing issuer: only the serving Certificate, signed by it', () => {
    const objects = objectsOf('cert-manager-issuer');
    expect(objectsOfKind(objects, 'Issuer')).toEqual([]);
    const cert = findObject(objects, 'Certificate') as unknown as { spec: Record<string, unknown> };
    expect(cert.spec).toMatchObject({ secretName: 'webhook-serving-cert', issuerRef: { name: 'corporate-ca', kind: 'ClusterIssuer', group: 'cert-manager.io' } });
    expect(deploymentOf(objects).spec?.template.spec?.volumes?.find((v) => v.name === 'tls')?.secret?.secretName).toBe('webhook-serving-cert');
  });

  test('existing Secret: mounted read-only, its caBundle in the webhook configuration, files mode', () => {
    const objects = objectsOf('existing-secret');
    const set = valueSets.find((s) => s.name === 'existing-secret');
    const caBundle = (set?.values.certificates as { caBundle: string }).caBundle;
    expect(webhookConfigOf(objects).webhooks?.[0]?.clientConfig.caBundle).toBe(caBundle);
    const d = deploymentOf(objects);
    expect(d.spec?.template.spec?.volumes?.find((v) => v.name === 'tls')?.secret?.secretName).toBe('my-webhook-tls');
    expect(webhookContainer(d).volumeMounts?.find((m) => m.name === 'tls')?.readOnly).toBe(true);
    expect(configOf(objects, 'existing-secret').certificates).toMatchObject({ mode: 'files', secretName: 'my-webhook-tls' });
    // Prometheus verifies against the same CA, published in a ConfigMap.
    const ca = as<ConfigMap>(findObject(objects, 'ConfigMap', 'mps-injector-ca'));
    expect(ca.data?.['ca.crt']?.trim()).toBe(Buffer.from(caBundle, 'base64').toString('utf8').trim());
    expect(objectsOfKind(objects, 'Certificate')).toEqual([]);
  });
});

describe('ServiceAccount and RBAC', () => {
  test('the bindings name the ServiceAccount the pods run as', () => {
    for (const set of ['defaults', 'all-options']) {
      const objects = objectsOf(set);
      const sa = deploymentOf(objects).spec?.template.spec?.serviceAccountName;
      expect(findObject(objects, 'ServiceAccount', sa).metadata.name).toBe(sa);
      for (const b of [...objectsOfKind(objects, 'RoleBinding'), ...objectsOfKind(objects, 'ClusterRoleBinding')]) {
        if (b.metadata.annotations?.['helm.sh/hook']) continue;
        expect(as<RoleBinding>(b).subjects).toEqual([{ kind: 'ServiceAccount', name: sa, namespace: 'mps-injector' }]);
      }
    }
    expect(findObject(objectsOf('all-options'), 'ServiceAccount', 'mps-webhook-sa').metadata.annotations).toEqual({ 'iam.example.com/role': 'mps-injector' });
  });

  test('cluster-wide the webhook only reads pods and nodes; in its namespace it keeps reservations', () => {
    const objects = objectsOf('defaults');
    expect(as<ClusterRole>(findObject(objects, 'ClusterRole', 'mps-injector')).rules).toEqual([
      { apiGroups: [''], resources: ['pods', 'nodes'], verbs: ['list', 'watch'] },
      { apiGroups: [''], resources: ['pods'], verbs: ['get'] },
    ]);
    const role = as<Role>(findObject(objects, 'Role', 'mps-injector'));
    expect(role.metadata?.namespace).toBe('mps-injector');
    expect(role.rules?.slice(0, 3)).toEqual([
      { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'create', 'update'] },
      { apiGroups: [''], resources: ['secrets'], resourceNames: ['mps-injector-decision-key'], verbs: ['get'] },
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'list', 'create', 'update', 'delete'] },
    ]);
    // Every replica holds a Lease (the replicas share the GPUs between the live ones); with a user Secret the Role adds only the decision keys.
    expect(as<Role>(findObject(objectsOf('existing-secret'), 'Role', 'mps-injector')).rules).toEqual([
      { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'create', 'update'] },
      { apiGroups: [''], resources: ['secrets'], resourceNames: ['mps-injector-decision-key'], verbs: ['get'] },
      { apiGroups: [''], resources: ['secrets'], verbs: ['create'] },
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'list', 'create', 'update', 'delete'] },
    ]);
  });

  test('with an external ServiceAccount and RBAC the chart creates neither', () => {
    const objects = objectsOf('external-rbac');
    expect(deploymentOf(objects).spec?.template.spec?.serviceAccountName).toBe('platform-managed-webhook');
    for (const kind of ['ServiceAccount', 'Role', 'RoleBinding', 'ClusterRole', 'ClusterRoleBinding', 'Job']) {
      expect(objectsOfKind(objects, kind)).toEqual([]);
    }
  });
});

describe('MPS control daemon', () => {
  const script = readFileSync(path.join(chartDir, 'files/start-mps-daemon.sh'), 'utf8');

  test('off by default', () => {
    expect(objectsOfKind(objectsOf('defaults'), 'DaemonSet')).toEqual([]);
  });

  test('runs the start script in the foreground daemon mode with permissive defaults', () => {
    const objects = objectsOf('mps-daemon');
    const ds = as<DaemonSet>(findObject(objects, 'DaemonSet'));
    const c = ds.spec?.template.spec?.containers[0];
    const scriptMap = as<ConfigMap>(findObject(objects, 'ConfigMap', ds.spec?.template.spec?.volumes?.find((v) => v.name === 'script')?.configMap?.name));
    expect(scriptMap.data?.['start-mps-daemon.sh']).toBe(script);
    expect(c?.command).toEqual(['/bin/sh', '/opt/mps-injector/start-mps-daemon.sh']);
    expect(script).toContain('nvidia-cuda-mps-control -f');
    expect(script.indexOf('--compute-mode=EXCLUSIVE_PROCESS')).toBeLessThan(script.indexOf('nvidia-cuda-mps-control -f'));
    expect(script).not.toMatch(/set_default_active_thread_percentage|set_default_device_pinned_mem_limit/);
    expect((c?.env ?? []).map((e) => e.name)).not.toContain('CUDA_MPS_ACTIVE_THREAD_PERCENTAGE');
    expect(ds.spec?.template.metadata?.annotations?.['checksum/script']).toBe(createHash('sha256').update(script).digest('hex'));
  });

  test('privileged as nvidia-smi needs, on the GPU nodes, with the values given', () => {
    const ds = as<DaemonSet>(findObject(objectsOf('mps-daemon'), 'DaemonSet'));
    const pod = ds.spec?.template.spec;
    expect(pod?.containers[0]?.securityContext?.privileged).toBe(true);
    expect(pod?.nodeSelector).toEqual({ 'node-role.example.com/gpu': 'true' });
    expect(pod).toMatchObject({ runtimeClassName: 'nvidia-cdi', hostPID: false, priorityClassName: 'system-node-critical' });
    expect(pod?.tolerations).toEqual([{ key: 'dedicated', operator: 'Equal', value: 'gpu', effect: 'NoSchedule' }]);
    const env = Object.fromEntries((pod?.containers[0]?.env ?? []).map((e) => [e.name, e.value]));
    expect(env).toMatchObject({ SET_EXCLUSIVE_PROCESS: 'false', RESTORE_COMPUTE_MODE: 'false', NVIDIA_VISIBLE_DEVICES: 'all' });
    expect(pod?.containers[0]?.image).toBe('registry.example.com/nvidia/cuda:12.8.1-base-ubuntu24.04');
    expect(pod?.volumes?.find((v) => v.name === 'mps-log')?.hostPath?.path).toBe('/var/log/nvidia-mps');
    expect(pod?.containers[0]?.resources?.limits).toEqual({ memory: '128Mi' });
  });

  test('Ready only while the control pipe answers: the probe runs check-mps-daemon.sh from the same ConfigMap', () => {
    const probeScript = readFileSync(path.join(chartDir, 'files/check-mps-daemon.sh'), 'utf8');
    const objects = objectsOf('mps-daemon');
    const ds = as<DaemonSet>(findObject(objects, 'DaemonSet'));
    const c = ds.spec?.template.spec?.containers[0];
    const scriptMap = as<ConfigMap>(findObject(objects, 'ConfigMap', ds.spec?.template.spec?.volumes?.find((v) => v.name === 'script')?.configMap?.name));
    expect(scriptMap.data?.['check-mps-daemon.sh']).toBe(probeScript);
    expect(c?.readinessProbe?.exec?.command).toEqual(['/bin/sh', '/opt/mps-injector/check-mps-daemon.sh']);
    expect(c?.env?.find((e) => e.name === 'MPS_PIPE_DIRECTORY')?.value).toBe('/var/run/mps/pipe');
    expect(ds.spec?.template.metadata?.annotations?.['checksum/probe']).toBe(createHash('sha256').update(probeScript).digest('hex'));
  });

  test('the webhook requires a Ready daemon where the chart runs one, watching exactly its pods; elsewhere not unless asked', async () => {
    const withDaemon = configOf(objectsOf('mps-daemon'), 'mps-daemon').cluster.mpsDaemon;
    const ds = as<DaemonSet>(findObject(objectsOf('mps-daemon'), 'DaemonSet'));
    expect(withDaemon.required).toBe(true);
    expect(withDaemon.namespace).toBe(ds.metadata?.namespace);
    const labels = ds.spec?.template.metadata?.labels ?? {};
    const selector = Object.fromEntries(withDaemon.labelSelector.split(',').map((term) => term.split('=') as [string, string]));
    for (const [key, value] of Object.entries(selector)) expect(labels[key]).toBe(value);
    expect(selector['app.kubernetes.io/component']).toBe('mps-daemon');
    expect(selector['app.kubernetes.io/instance']).toBeDefined();

    expect(configOf(objectsOf('defaults'), 'defaults').cluster.mpsDaemon.required).toBe(false);
    const own = configOf(
      await renderWith({ 'config.cluster.mpsDaemon.required': true, 'config.cluster.mpsDaemon.namespace': 'gpu-operator', 'config.cluster.mpsDaemon.labelSelector': 'app=nvidia-device-plugin-mps-control-daemon' }),
      'own daemon',
    ).cluster.mpsDaemon;
    expect(own).toEqual({ required: true, namespace: 'gpu-operator', labelSelector: 'app=nvidia-device-plugin-mps-control-daemon' });
    expect(configOf(await renderWith({ 'mpsDaemon.enabled': true, 'config.cluster.mpsDaemon.required': false }), 'off').cluster.mpsDaemon.required).toBe(false);
  });

  test('pipe and shm host paths are the ones the webhook injects into pods', async () => {
    const daemonOnDefaults = await renderWith({ 'mpsDaemon.enabled': true });
    for (const [set, objects] of [
      ['mps-daemon', objectsOf('mps-daemon')],
      ['defaults + mpsDaemon.enabled', daemonOnDefaults],
    ] as const) {
      const config = configOf(objects, set);
      const pod = as<DaemonSet>(findObject(objects, 'DaemonSet')).spec?.template.spec;
      const c = pod?.containers[0];
      const volumeFor = (mountPath: string): string | undefined => {
        const name = c?.volumeMounts?.find((m) => m.mountPath === mountPath)?.name;
        return pod?.volumes?.find((v) => v.name === name)?.hostPath?.path;
      };
      const pipeEnv = c?.env?.find((e) => e.name === 'MPS_PIPE_DIRECTORY')?.value;
      expect(pipeEnv).toBeDefined();
      expect(volumeFor(pipeEnv as string)).toBe(config.injection.hostPipeDirectory);
      expect(volumeFor('/dev/shm')).toBe(config.injection.hostShmDirectory);
    }
    expect(configOf(objectsOf('mps-daemon'), 'mps-daemon').injection).toMatchObject({ hostPipeDirectory: '/var/run/mps/pipe', hostShmDirectory: '/var/run/mps/shm' });
  });
});

describe('monitoring', () => {
  test('ServiceMonitor scrapes the webhook Service port over HTTPS, verifying with the right CA', () => {
    for (const [set, ca] of [
      ['cert-manager', { secret: { name: 'mps-injector-tls', key: 'ca.crt' } }],
      ['existing-secret', { configMap: { name: 'mps-injector-ca', key: 'ca.crt' } }],
    ] as const) {
      const objects = objectsOf(set);
      const sm = findObject(objects, 'ServiceMonitor') as unknown as { spec: { selector: LabelSelector; endpoints: Record<string, unknown>[] } };
      const svc = as<Service>(findObject(objects, 'Service'));
      expect(matchesLabelSelector(sm.spec.selector, svc.metadata?.labels)).toBe(true);
      expect(svc.spec?.ports?.map((p) => p.name)).toContain(sm.spec.endpoints[0]?.port);
      expect(sm.spec.endpoints[0]).toMatchObject({ scheme: 'https', path: '/metrics', tlsConfig: { insecureSkipVerify: false, ca, serverName: 'mps-injector.mps-injector.svc' } });
    }
    const cm = findObject(objectsOf('cert-manager'), 'ServiceMonitor') as unknown as { metadata: { labels: Record<string, string> }; spec: { endpoints: Record<string, unknown>[] } };
    expect(cm.metadata.labels.release).toBe('kube-prometheus-stack');
    expect(cm.spec.endpoints[0]).toMatchObject({ interval: '15s', scrapeTimeout: '5s' });
    expect(objectsOfKind(objectsOf('defaults'), 'ServiceMonitor')).toEqual([]);
  });

  test('Grafana dashboard: valid JSON whose every metric is one the webhook exports', async () => {
    const objects = objectsOf('all-options');
    const cm = as<ConfigMap>(findObject(objects, 'ConfigMap', 'mps-webhook-dashboard'));
    expect(cm.metadata?.namespace).toBe('monitoring');
    expect(cm.metadata?.labels).toMatchObject({ grafana_dashboard: '1', 'example.com/dashboards': 'gpu' });
    expect(cm.metadata?.annotations).toEqual({ grafana_folder: 'GPU' });
    const dashboard = JSON.parse(cm.data?.['mps-injector.json'] ?? 'null') as { panels: { title: string; targets: { expr: string }[] }[] };
    const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr));
    const used = new Set(exprs.flatMap((e) => [...e.matchAll(/\b(mps_injector_[a-z_]+)/g)].map((m) => (m[1] as string).replace(/_(bucket|sum|count)$/, ''))));
    // What the webhook registers (per-GPU gauges included), read from its registry.
    const metrics = createWebhookMetrics(
      { inventory: () => emptyInventory(0), ledger: new ReservationLedger({ ttlMs: 1000 }), now: () => 0, placement: { observeAfterRunningSeconds: 0, memorySafetyMarginMiB: 0 } },
      { processMetrics: false },
    );
    const exported = new Set((await metrics.registry.getMetricsAsJSON()).map((m) => m.name));
    expect(used.size).toBeGreaterThanOrEqual(5);
    for (const metric of used) expect({ metric, exported: exported.has(metric) }).toEqual({ metric, exported: true });
    // The brief's five views are all there.
    for (const metric of ['mps_injector_admission_requests_total', 'mps_injector_admission_duration_seconds', 'mps_injector_decisions_total', 'mps_injector_metrics_age_seconds', 'mps_injector_reservations']) {
      expect(used).toContain(metric);
    }
    // Per-GPU memory as placement counts it, and the over-commit alert.
    for (const metric of ['total', 'granted', 'observed_used', 'unreserved_used', 'free']) expect(used).toContain(`mps_injector_gpu_memory_${metric}_bytes`);
    expect(used).toContain('mps_injector_gpu_overcommit_detected_total');
    expect(dashboard.panels.map((p) => p.title)).toContain('Over-commit detected (alert when above 0)');
  });
});

describe('PrometheusRule', () => {
  test('off by default; when on, it alerts on over-commit and forged decisions, naming only metrics the webhook registers', async () => {
    expect(objectsOfKind(objectsOf('defaults'), 'PrometheusRule')).toEqual([]);
    const rule = findObject(objectsOf('all-options'), 'PrometheusRule') as unknown as {
      metadata: { labels: Record<string, string> };
      spec: { groups: { rules: { alert: string; expr: string; labels: Record<string, string> }[] }[] };
    };
    expect(rule.metadata.labels.release).toBe('kube-prometheus-stack');
    const rules = rule.spec.groups.flatMap((g) => g.rules);
    expect(rules.map((r) => r.alert)).toEqual(['MpsInjectorGpuOvercommitted', 'MpsInjectorForgedDecisions']);
    expect(rules[0]).toMatchObject({ expr: 'increase(mps_injector_gpu_overcommit_detected_total[15m]) > 0', labels: { severity: 'page' } });
    const metrics = createWebhookMetrics(
      { inventory: () => emptyInventory(0), ledger: new ReservationLedger({ ttlMs: 1000 }), now: () => 0, placement: defaultConfig().placement },
      { processMetrics: false },
    );
    const registered = new Set((await metrics.registry.getMetricsAsJSON()).map((m) => m.name));
    for (const r of rules) for (const [, name] of r.expr.matchAll(/\b(mps_injector_[a-z_]+)/g)) expect({ name, registered: registered.has(name as string) }).toEqual({ name, registered: true });
  });
});

describe('webhook configuration file', () => {
  test('every option under config reaches the webhook unchanged', () => {
    const set = valueSets.find((s) => s.name === 'all-options');
    const config = configOf(objectsOf('all-options'), 'all-options') as unknown as Record<string, Record<string, unknown>>;
    const given = set?.values.config as Record<string, Record<string, unknown>>;
    for (const [section, fields] of Object.entries(given)) {
      expect({ section, value: config[section] }).toEqual({ section, value: expect.objectContaining(fields) });
    }
  });

  test('NOTES tell how to opt a namespace in and how to read a decision', async () => {
    const r = await runHelm(['install', 'mps-injector', chartDir, '--namespace', 'mps-injector', '--dry-run=client']);
    expect(r.code).toBe(0);
    const notes = r.stdout.slice(r.stdout.indexOf('NOTES:'));
    expect(notes).toContain('kubectl label namespace <your-namespace> mps-injector.io/injection=enabled');
    expect(notes).toContain("get pod <pod> -o jsonpath='{.metadata.annotations}'");
    expect(notes).toContain('Secret "mps-injector-tls"');
  });
});
