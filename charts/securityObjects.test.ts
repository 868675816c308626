/**
 * The chart's transport and access controls, rendered with real Helm: the client CA for mutual
 * TLS, the optional NetworkPolicy, and the ValidatingAdmissionPolicy on MPS host paths, whose CEL
 * is evaluated here (a maintained CEL implementation, @marcbachmann/cel-js) against pods the
 * API server would send it.
 */
import { evaluate } from '@marcbachmann/cel-js';
import type { Deployment } from 'kubernetes-types/apps/v1.js';
import type { Pod, Volume } from 'kubernetes-types/core/v1.js';
import type { ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding } from 'kubernetes-types/admissionregistration/v1.js';
import type { NetworkPolicy } from 'kubernetes-types/networking/v1.js';
import { parseConfigText } from '../config/schema.js';
import { matchesLabelSelector } from '../e2e/registration/matchLabelSelector.js';
import type { LabelSelector } from '../e2e/registration/matchLabelSelector.js';
import { pathRelation } from '../injector/mpsAccess.js';
import type { KubeObject } from './renderChart.js';
import { chartDir, findObject, objectsOfKind, renderChart, runHelm, templateRun } from './renderChart.js';

const as = <T>(o: KubeObject): T => o as unknown as T;
const rendered = new Map<string, KubeObject[]>();

beforeAll(async () => {
  rendered.set('defaults', await renderChart());
  rendered.set('all-options', await renderChart({ valuesFiles: ['charts/mps-injector/ci/all-options-values.yaml'] }));
  rendered.set('mutual-tls-configmap', await renderChart({ valuesFiles: ['charts/mps-injector/ci/mutual-tls-configmap-values.yaml'] }));
}, 120_000);

const objectsOf = (name: string): KubeObject[] => rendered.get(name) ?? [];
const webhookPodSpec = (objects: KubeObject[]) => as<Deployment>(findObject(objects, 'Deployment')).spec?.template.spec;
const configOf = (objects: KubeObject[]) => {
  const name = webhookPodSpec(objects)?.volumes?.find((v) => v.name === 'config')?.configMap?.name;
  const cm = findObject(objects, 'ConfigMap', name) as unknown as { data: Record<string, string> };
  return parseConfigText(cm.data['config.yaml'] as string, 'rendered ConfigMap');
};

describe('mutual TLS', () => {
  test('off by default: no client CA file, no client CA volume', () => {
    const objects = objectsOf('defaults');
    expect(configOf(objects).server.clientCAFile).toBe('');
    expect(webhookPodSpec(objects)?.volumes?.map((v) => v.name)).not.toContain('client-ca');
  });

  test.each([
    ['all-options', { secret: { secretName: 'apiserver-client-ca', items: [{ key: 'client-ca.pem', path: 'client-ca.pem' }] } }, '/etc/mps-injector/client-ca/client-ca.pem'],
    ['mutual-tls-configmap', { configMap: { name: 'apiserver-client-ca', items: [{ key: 'ca.crt', path: 'ca.crt' }] } }, '/etc/mps-injector/client-ca/ca.crt'],
  ])('%s: the CA is mounted as a directory and the webhook reads it from there', (set, source, file) => {
    const objects = objectsOf(set);
    const spec = webhookPodSpec(objects);
    expect(spec?.volumes?.find((v) => v.name === 'client-ca')).toEqual({ name: 'client-ca', ...source });
    const mount = spec?.containers[0]?.volumeMounts?.find((m) => m.name === 'client-ca');
    // No subPath: a changed CA must reach the running webhook.
    expect(mount).toEqual({ name: 'client-ca', mountPath: '/etc/mps-injector/client-ca', readOnly: true });
    expect(configOf(objects).server.clientCAFile).toBe(file);
  });

  test.each([
    ['no source', { 'mutualTls.enabled': true }],
    ['two sources', { 'mutualTls.enabled': true, 'mutualTls.clientCA.secretName': 'a', 'mutualTls.clientCA.configMapName': 'b' }],
  ])('enabled with %s fails with the fix', async (_what, values) => {
    const t = await templateRun({ values });
    expect(t.code).not.toBe(0);
    expect(t.stderr).toContain('set exactly one of mutualTls.clientCA.secretName and mutualTls.clientCA.configMapName');
  });
});

describe('NetworkPolicy', () => {
  test('off by default', () => {
    expect(objectsOfKind(objectsOf('defaults'), 'NetworkPolicy')).toEqual([]);
  });

  test('when enabled: ingress to the webhook pods on their HTTPS port from the listed peers only', () => {
    const objects = objectsOf('all-options');
    const policy = as<NetworkPolicy>(findObject(objects, 'NetworkPolicy'));
    const podLabels = as<Deployment>(findObject(objects, 'Deployment')).spec?.template.metadata?.labels;
    expect(matchesLabelSelector(policy.spec?.podSelector as LabelSelector, podLabels)).toBe(true);
    expect(policy.metadata?.namespace).toBe('mps-injector');
    expect(policy.spec?.policyTypes).toEqual(['Ingress']);
    expect(policy.spec?.ingress).toEqual([
      {
        from: [{ ipBlock: { cidr: '10.0.0.0/24' } }, { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }],
        ports: [{ protocol: 'TCP', port: configOf(objects).server.port }],
      },
    ]);
  });

  test('enabled without peers fails: it would block every admission', async () => {
    const t = await templateRun({ values: { 'networkPolicy.enabled': true } });
    expect(t.code).not.toBe(0);
    expect(t.stderr).toContain('networkPolicy.ingressFrom is empty');
  });
});

interface Decision {
  /** The binding selects the pod's namespace. */
  bound: boolean;
  allowed: boolean;
  messages: string[];
}

/** What the API server decides for `pod` in a namespace with `namespaceLabels`, from the rendered policy and binding. */
function decide(objects: KubeObject[], pod: Pod, namespace: string, namespaceLabels: Record<string, string> = {}): Decision {
  const policy = as<ValidatingAdmissionPolicy>(findObject(objects, 'ValidatingAdmissionPolicy'));
  const binding = as<ValidatingAdmissionPolicyBinding>(findObject(objects, 'ValidatingAdmissionPolicyBinding'));
  expect(binding.spec?.policyName).toBe(policy.metadata?.name);
  const labels = { 'kubernetes.io/metadata.name': namespace, ...namespaceLabels };
  if (!matchesLabelSelector(binding.spec?.matchResources?.namespaceSelector as LabelSelector, labels)) return { bound: false, allowed: true, messages: [] };
  const namespaceObject = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace, labels } };
  const object = { ...pod, metadata: { ...pod.metadata, namespace } };
  const variables: Record<string, unknown> = {};
  const context = { object, namespaceObject, variables };
  for (const v of policy.spec?.variables ?? []) variables[v.name] = evaluate(v.expression, context);
  const messages: string[] = [];
  for (const validation of policy.spec?.validations ?? []) {
    if (evaluate(validation.expression, context) === true) continue;
    messages.push(validation.messageExpression ? String(evaluate(validation.messageExpression, context)) : (validation.message ?? ''));
  }
  return { bound: true, allowed: messages.length === 0, messages };
}

const podWith = (volumes: Volume[], labels: Record<string, string> = {}): Pod => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'p', labels },
  spec: { containers: [{ name: 'c', image: 'x' }], volumes },
});
const hostPathPod = (path: string, labels: Record<string, string> = {}): Pod => podWith([{ name: 'node-dir', hostPath: { path } }], labels);
const OPTED_IN = { 'mps-injector.io/injection': 'enabled' };

describe('ValidatingAdmissionPolicy on MPS host paths', () => {
  test('on by default, CREATE of pods only, failing closed; off in a value set', () => {
    const policy = as<ValidatingAdmissionPolicy>(findObject(objectsOf('defaults'), 'ValidatingAdmissionPolicy'));
    expect(policy.spec?.failurePolicy).toBe('Fail');
    expect(policy.spec?.matchConstraints?.resourceRules).toEqual([{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'] }]);
    const binding = as<ValidatingAdmissionPolicyBinding>(findObject(objectsOf('defaults'), 'ValidatingAdmissionPolicyBinding'));
    expect(binding.spec?.validationActions).toEqual(['Deny']);
    expect(objectsOfKind(objectsOf('mutual-tls-configmap'), 'ValidatingAdmissionPolicy')).toEqual([]);
    expect(objectsOfKind(objectsOf('mutual-tls-configmap'), 'ValidatingAdmissionPolicyBinding')).toEqual([]);
  });

  test('denies a pod outside opted-in namespaces with its own hostPath to the MPS directory, naming the volume', () => {
    const decision = decide(objectsOf('defaults'), hostPathPod('/run/nvidia/mps'), 'team-a');
    expect(decision).toMatchObject({ bound: true, allowed: false });
    expect(decision.messages[0]).toBe(
      "hostPath volume(s) node-dir reach the node's NVIDIA MPS directories (/run/nvidia/mps/pipe, /var/run/nvidia/mps/pipe, /run/nvidia/mps/shm, /var/run/nvidia/mps/shm, or a directory above them). " +
        'Only pods in namespaces labelled mps-injector.io/injection=enabled get MPS, through the mps-injector webhook: remove the volume(s), or opt the namespace in and let the webhook place the pod.',
    );
  });

  test('allows the same namespace other hostPaths, and pods without volumes', () => {
    expect(decide(objectsOf('defaults'), hostPathPod('/var/log/pods'), 'team-a')).toMatchObject({ bound: true, allowed: true });
    expect(decide(objectsOf('defaults'), { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { containers: [{ name: 'c' }] } }, 'team-a')).toMatchObject({ allowed: true });
  });

  test('leaves opted-in namespaces to the webhook, but not pods opted out of it there', () => {
    const injected = podWith([{ name: 'mps-injector-pipe', hostPath: { path: '/run/nvidia/mps/pipe', type: 'Directory' } }]);
    expect(decide(objectsOf('defaults'), injected, 'inference', OPTED_IN)).toMatchObject({ bound: true, allowed: true });
    const optedOut = hostPathPod('/var/run/nvidia/mps/pipe/', { 'mps-injector.io/inject': 'false' });
    expect(decide(objectsOf('defaults'), optedOut, 'inference', OPTED_IN)).toMatchObject({ bound: true, allowed: false });
  });

  test("exempts the release namespace (the MPS daemon's own) and the listed namespaces", () => {
    for (const namespace of ['mps-injector', 'gpu-operator', 'kube-system']) {
      expect(decide(objectsOf('defaults'), hostPathPod('/run/nvidia/mps/pipe'), namespace)).toMatchObject({ bound: false, allowed: true });
    }
    const binding = as<ValidatingAdmissionPolicyBinding>(findObject(objectsOf('all-options'), 'ValidatingAdmissionPolicyBinding'));
    expect(binding.spec?.validationActions).toEqual(['Warn', 'Audit']);
    expect(decide(objectsOf('all-options'), hostPathPod('/run/nvidia/mps/pipe'), 'monitoring')).toMatchObject({ bound: false });
    expect(decide(objectsOf('all-options'), hostPathPod('/run/nvidia/mps/pipe'), 'kube-system')).toMatchObject({ bound: true, allowed: false });
  });

  // Path spellings the API server accepts (it refuses ".." in a hostPath), judged by the policy
  // and by the webhook's own check: the two must agree.
  const paths = [
    '/run/nvidia/mps/pipe',
    '/run/nvidia/mps/pipe/',
    '//run//nvidia/./mps/shm',
    '/var/run/nvidia/mps/shm/seg.0',
    '/run/nvidia/mps/pipe/control',
    '/run/nvidia/mps',
    '/run/nvidia',
    '/var/run',
    '/var',
    '/',
    '/run/nvidia/mps/pipe-old',
    '/run/nvidia/mpsd',
    '/run/nvidia-persistenced',
    '/var/log',
    '/opt/run/nvidia/mps',
  ];
  test.each(paths)('%s: the policy and the webhook agree', (path) => {
    const config = configOf(objectsOf('defaults')).injection;
    const webhookRefuses = pathRelation(path, config.hostPipeDirectory) !== null || pathRelation(path, config.hostShmDirectory) !== null;
    expect(decide(objectsOf('defaults'), hostPathPod(path), 'team-a').allowed).toBe(!webhookRefuses);
  });

  test('Kubernetes before 1.30 is refused with the value to turn the policy off', async () => {
    const old = await runHelm(['template', 'mps-injector', chartDir, '--namespace', 'mps-injector', '--kube-version', '1.29.4']);
    expect(old.code).not.toBe(0);
    expect(old.stderr).toContain('mpsHostPathPolicy.enabled needs Kubernetes 1.30 or newer');
    const off = await runHelm(['template', 'mps-injector', chartDir, '--namespace', 'mps-injector', '--kube-version', '1.29.4', '--set', 'mpsHostPathPolicy.enabled=false']);
    expect(off.code).toBe(0);
  });
});
