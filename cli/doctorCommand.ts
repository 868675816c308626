/**
 * `mps-injector doctor` (and `kubectl mps doctor`): check a cluster before anyone relies on the
 * webhook. Each check ends in one verdict line and, when it fails, the command that fixes it.
 * Read-only; exit 0 only when every check passes.
 */
import { X509Certificate } from 'node:crypto';
import { dirname } from 'node:path';
import tls from 'node:tls';
import { AuthorizationV1Api } from '@kubernetes/client-node';
import type { V1MutatingWebhookConfiguration, V1Node, V1Pod } from '@kubernetes/client-node';
import type { Command } from 'commander';
import { Label } from '../domain/names.js';
import { DURABLE_LABEL_SELECTOR, DurableRecordError, decodeDurableRecord } from '../reservations/durableReservations.js';
import { classifyApiError } from '../kube/kubeApis.js';
import { describePermission, webhookPermissions } from '../kube/webhookPermissions.js';
import type { ClusterCommandDeps, ClusterCommandFlags } from './clusterFlags.js';
import { addClusterFlags, clusterStateFor } from './clusterFlags.js';
import type { ClusterState, ClusterTarget } from './clusterState.js';
import { WEBHOOK_COMPONENT_SELECTOR, asInputError, resolveClusterTarget } from './clusterState.js';
import { EXIT_CODES_HELP } from './cliError.js';
import { OutputFormat, formatDocument, textOutputOption } from './outputFormat.js';
import type { CommandRun } from './statusCommand.js';

/** Labels of MPS control daemon pods looked for by default: the chart's DaemonSet, and NVIDIA's device plugin in MPS mode. */
export const DEFAULT_MPS_DAEMON_SELECTORS = ['app.kubernetes.io/component=mps-daemon', 'app=nvidia-device-plugin-mps-control-daemon'];

export interface CheckResult {
  name: string;
  ok: boolean;
  verdict: string;
  /** The command (or step) that fixes it; empty when it passed. */
  fix: string;
}

export interface DoctorOptions extends ClusterCommandFlags {
  output?: string;
  /** host:port where the webhook serves (e.g. after `kubectl port-forward`); default: its Service's DNS name, then its TLS Secret. */
  webhookAddress?: string;
  /** Label selectors of MPS control daemon pods (any namespace). */
  mpsDaemonSelector?: string[];
  /** The webhook's ServiceAccount (default: the one its pods run as). */
  serviceAccount?: string;
}

const pass = (name: string, verdict: string): CheckResult => ({ name, ok: true, verdict, fix: '' });
const fail = (name: string, verdict: string, fix: string): CheckResult => ({ name, ok: false, verdict, fix });

const isReady = (pod: V1Pod): boolean => pod.status?.phase === 'Running' && (pod.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');

function list<T>(items: readonly T[], limit = 5): string {
  return items.length <= limit ? items.join(', ') : `${items.slice(0, limit).join(', ')} and ${items.length - limit} more`;
}

/** GPU nodes: labelled by GPU feature discovery, advertising nvidia.com/gpu, or holding GPUs in the metrics. */
export function gpuNodeNames(nodes: readonly V1Node[], state: ClusterState | null): string[] {
  const names = new Set<string>();
  for (const node of nodes) {
    const name = node.metadata?.name ?? '';
    const capacity = Number(node.status?.capacity?.['nvidia.com/gpu'] ?? '0');
    if (node.metadata?.labels?.['nvidia.com/gpu.present'] === 'true' || capacity > 0) names.add(name);
  }
  for (const gpu of state?.inventory.gpus ?? []) names.add(gpu.node);
  return [...names].filter((n) => n !== '').sort();
}

// ---- the served certificate ----

function certificatesIn(pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => new X509Certificate(b));
}

/** Why the CA bundle does not verify the leaf, or null when it does. */
export function certificateProblem(leafPem: string, caBundlePem: string, dnsName: string, nowMs: number): string | null {
  let leaf: X509Certificate;
  try {
    const [first] = certificatesIn(leafPem);
    if (first === undefined) return 'it is not a PEM certificate';
    leaf = first;
  } catch (err) {
    return `it cannot be parsed (${(err as Error).message})`;
  }
  let cas: X509Certificate[];
  try {
    cas = certificatesIn(caBundlePem);
  } catch (err) {
    return `the caBundle cannot be parsed (${(err as Error).message})`;
  }
  if (cas.length === 0) return 'the caBundle holds no PEM certificate';
  if (!cas.some((ca) => leaf.checkIssued(ca) && leaf.verify(ca.publicKey))) return `no CA in the caBundle (${cas.map((c) => c.subject.replace(/\n/g, ', ')).join('; ')}) signed it (issuer: ${leaf.issuer.replace(/\n/g, ', ')})`;
  if (Date.parse(leaf.validTo) <= nowMs) return `it expired on ${new Date(leaf.validTo).toISOString()}`;
  if (Date.parse(leaf.validFrom) > nowMs) return `it is not valid before ${new Date(leaf.validFrom).toISOString()}`;
  if (leaf.checkHost(dnsName) === undefined) return `it does not name ${dnsName} (it names ${leaf.subjectAltName ?? leaf.subject})`;
  return null;
}

/** The certificate a TLS server presents, as PEM; rejects after timeoutMs. */
function presentedCertificate(host: string, port: number, servername: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host, port, servername, rejectUnauthorized: false, timeout: timeoutMs }, () => {
      const raw = socket.getPeerCertificate().raw;
      socket.destroy();
      if (raw === undefined) reject(new Error('the server presented no certificate'));
      else resolve(new X509Certificate(raw).toString());
    });
    socket.on('timeout', () => {
      socket.destroy();
      reject(new Error(`no TLS answer within ${timeoutMs} ms`));
    });
    socket.on('error', reject);
  });
}

async function secretCertificate(target: ClusterTarget, name: string): Promise<string | null> {
  try {
    const secret = await target.apis.core.readNamespacedSecret({ name, namespace: target.namespace }, target.apis.callOptions());
    const data = secret.data?.['tls.crt'];
    return data === undefined ? null : Buffer.from(data, 'base64').toString('utf8');
  } catch {
    return null;
  }
}

/** The Secret the webhook pods mount their TLS files from (files mode), or the self-managed Secret. */
function tlsSecretName(target: ClusterTarget, webhookPods: readonly V1Pod[]): string {
  const dir = dirname(target.config.server.tlsCertFile);
  for (const pod of webhookPods) {
    const container = pod.spec?.containers[0];
    const mount = container?.volumeMounts?.find((m) => m.mountPath === dir || target.config.server.tlsCertFile.startsWith(`${m.mountPath}/`));
    const volume = pod.spec?.volumes?.find((v) => v.name === mount?.name);
    if (volume?.secret?.secretName !== undefined) return volume.secret.secretName;
  }
  return target.config.certificates.secretName;
}

async function checkWebhookConfiguration(target: ClusterTarget, webhookPods: readonly V1Pod[], opts: DoctorOptions, nowMs: number): Promise<CheckResult> {
  const name = 'webhook configuration';
  const { apis, config, namespace } = target;
  const configName = config.certificates.mutatingWebhookConfigurationName;
  let mwc: V1MutatingWebhookConfiguration;
  try {
    mwc = await apis.admissionRegistration.readMutatingWebhookConfiguration({ name: configName }, apis.callOptions());
  } catch (err) {
    const failure = classifyApiError(err);
    return fail(name, `MutatingWebhookConfiguration ${configName} cannot be read (${failure.detail}): pods are not placed at all`, `helm upgrade --install mps-injector charts/mps-injector -n ${namespace}  # or set certificates.mutatingWebhookConfigurationName`);
  }
  const problems: string[] = [];
  const verified: string[] = [];
  for (const [i, webhook] of (mwc.webhooks ?? []).entries()) {
    const service = webhook.clientConfig.service;
    const bundleB64 = webhook.clientConfig.caBundle;
    if (bundleB64 === undefined || bundleB64 === '') {
      problems.push(`webhook ${webhook.name} has no caBundle, so the API server cannot trust it`);
      continue;
    }
    const bundle = Buffer.from(bundleB64, 'base64').toString('utf8');
    const svcName = service?.name ?? config.certificates.serviceName;
    const svcNamespace = service?.namespace ?? namespace;
    const dnsName = `${svcName}.${svcNamespace}.svc`;
    const port = service?.port ?? 443;
    let served: { pem: string; from: string } | null = null;
    const attempts: string[] = [];
    const address = opts.webhookAddress ?? (service !== undefined ? `${dnsName}:${port}` : null);
    if (address !== null) {
      const colon = address.lastIndexOf(':');
      const host = colon > 0 ? address.slice(0, colon).replace(/^\[|\]$/g, '') : address;
      const hostPort = colon > 0 ? Number(address.slice(colon + 1)) : port;
      try {
        served = { pem: await presentedCertificate(host, hostPort, dnsName, 2000), from: `served at ${address}` };
      } catch (err) {
        attempts.push(`${address}: ${(err as Error).message}`);
      }
    }
    if (served === null) {
      const secret = tlsSecretName(target, webhookPods);
      const pem = await secretCertificate(target, secret);
      if (pem !== null) served = { pem, from: `in Secret ${namespace}/${secret}${attempts.length > 0 ? `; the Service is not reachable from here (${attempts.join('; ')}), pass --webhook-address after \`kubectl -n ${namespace} port-forward svc/${svcName} 8443:${port}\` to check what it serves` : ''}` };
      else attempts.push(`Secret ${namespace}/${secret} holds no tls.crt`);
    }
    if (served === null) {
      problems.push(`the certificate ${dnsName} serves could not be read (${attempts.join('; ')})`);
      continue;
    }
    const problem = certificateProblem(served.pem, bundle, dnsName, nowMs);
    if (problem !== null) problems.push(`webhook ${webhook.name}[${i}]: the certificate ${served.from.split(';')[0]} does not verify against its caBundle: ${problem}`);
    else verified.push(`${dnsName} (certificate ${served.from})`);
  }
  if ((mwc.webhooks ?? []).length === 0) problems.push(`MutatingWebhookConfiguration ${configName} lists no webhook`);
  if (problems.length > 0) {
    const fix =
      config.certificates.mode === 'self-managed'
        ? `kubectl -n ${namespace} rollout restart deployment -l ${WEBHOOK_COMPONENT_SELECTOR}  # each replica puts the Secret's CA back into the caBundle at start`
        : `kubectl patch mutatingwebhookconfiguration ${configName} --type=json -p "[{\\"op\\":\\"replace\\",\\"path\\":\\"/webhooks/0/clientConfig/caBundle\\",\\"value\\":\\"$(base64 -w0 < ca.crt)\\"}]"  # with the CA that signed the serving certificate (cert-manager: check its cainjector)`;
    return fail(name, problems.join('; '), fix);
  }
  return pass(name, `${configName}: caBundle verifies ${verified.join(', ')}`);
}

async function checkOptedInNamespaces(target: ClusterTarget): Promise<CheckResult> {
  const name = 'opted-in namespaces';
  const selector = `${Label.NamespaceInjection}=enabled`;
  try {
    const namespaces = (await target.apis.core.listNamespace({ labelSelector: selector }, target.apis.callOptions())).items.map((n) => n.metadata?.name ?? '').filter((n) => n !== '' && n !== target.namespace);
    if (namespaces.length === 0) return fail(name, `no namespace is labelled ${selector}: the webhook places no pod`, `kubectl label namespace <your-namespace> ${selector}`);
    return pass(name, `${namespaces.length} opted in: ${list(namespaces, 10)}`);
  } catch (err) {
    return fail(name, `namespaces cannot be listed (${classifyApiError(err).detail})`, 'kubectl auth can-i list namespaces');
  }
}

function checkExporters(target: ClusterTarget, state: ClusterState | null, stateError: string | null, gpuNodes: readonly string[]): CheckResult {
  const name = 'dcgm-exporter';
  const { config } = target;
  const discovery = config.metrics.discovery;
  const fixDiscovery = `kubectl -n ${discovery.namespace} get pods -l ${discovery.labelSelector} -o wide  # a GPU Operator install runs it on every GPU node; check metrics.discovery.namespace and labelSelector`;
  if (state === null) return fail(name, `GPU metrics could not be read: ${stateError ?? 'unknown error'}`, config.metrics.source === 'discovery' ? fixDiscovery : `check metrics.${config.metrics.source === 'prometheus' ? 'prometheusUrl' : config.metrics.source === 'file' ? 'file' : 'exporterUrls'}`);
  const maxAge = config.placement.maxMetricsAgeSeconds;
  const missingPod: string[] = [];
  if (state.exporterPods !== null) {
    const withExporter = new Set(state.exporterPods.filter((p) => p.status?.phase === 'Running' && p.metadata?.deletionTimestamp === undefined).map((p) => p.spec?.nodeName ?? ''));
    for (const node of gpuNodes) if (!withExporter.has(node)) missingPod.push(node);
  }
  const stale: string[] = [];
  const ages: number[] = [];
  for (const node of gpuNodes) {
    const samples = state.inventory.gpus.filter((g) => g.node === node);
    if (samples.length === 0) {
      if (!missingPod.includes(node)) stale.push(`${node} (no GPU in the metrics)`);
      continue;
    }
    const age = Math.floor((state.nowMs - Math.max(...samples.map((g) => g.sampledAtMs))) / 1000);
    ages.push(age);
    if (age > maxAge) stale.push(`${node} (${age}s old)`);
  }
  if (gpuNodes.length === 0) return fail(name, `no GPU node found (no node labelled nvidia.com/gpu.present=true or advertising nvidia.com/gpu, no GPU in ${state.metricsSource})`, fixDiscovery);
  const problems = [
    ...(missingPod.length > 0 ? [`no running exporter pod on ${list(missingPod)}`] : []),
    ...(stale.length > 0 ? [`metrics older than placement.maxMetricsAgeSeconds (${maxAge}s) or missing on ${list(stale)}`] : []),
  ];
  if (problems.length > 0) return fail(name, `${problems.join('; ')}${state.problems.length > 0 ? ` (${state.problems[0]})` : ''}`, config.metrics.source === 'discovery' ? fixDiscovery : `check that ${state.metricsSource} scrapes dcgm-exporter on every GPU node`);
  return pass(name, `fresh on all ${gpuNodes.length} GPU nodes (newest sample ${Math.max(...ages)}s old at most, limit ${maxAge}s; ${state.metricsSource})`);
}

async function checkMpsDaemons(target: ClusterTarget, gpuNodes: readonly string[], selectors: readonly string[]): Promise<CheckResult> {
  const name = 'MPS control daemon';
  const readyOn = new Set<string>();
  const notReady = new Set<string>();
  for (const selector of selectors) {
    try {
      const pods = (await target.apis.core.listPodForAllNamespaces({ labelSelector: selector }, target.apis.callOptions())).items;
      for (const pod of pods) {
        const node = pod.spec?.nodeName ?? '';
        if (isReady(pod)) readyOn.add(node);
        else notReady.add(node);
      }
    } catch (err) {
      return fail(name, `pods labelled ${selector} cannot be listed (${classifyApiError(err).detail})`, 'kubectl auth can-i list pods --all-namespaces');
    }
  }
  const lacking = gpuNodes.filter((n) => !readyOn.has(n));
  if (gpuNodes.length === 0) return fail(name, 'no GPU node found to check', 'label GPU nodes nvidia.com/gpu.present=true (GPU feature discovery does)');
  if (lacking.length > 0) {
    const detail = lacking.map((n) => `${n}${notReady.has(n) ? ' (daemon pod not Ready)' : ''}`);
    return fail(
      name,
      `no Ready MPS control daemon on ${lacking.length} of ${gpuNodes.length} GPU nodes: ${list(detail, 10)}; pods placed there wait in their init container until it times out`,
      `helm upgrade mps-injector charts/mps-injector -n ${target.namespace} --reuse-values --set mpsDaemon.enabled=true  # or check: kubectl get pods -A -l '${selectors[0] ?? ''}' -o wide`,
    );
  }
  return pass(name, `Ready on all ${gpuNodes.length} GPU nodes`);
}

function checkNodeLabels(target: ClusterTarget, nodes: readonly V1Node[], gpuNodes: readonly string[]): CheckResult {
  const name = 'GPU node labels';
  const modelLabel = target.config.placement.gpuModelNodeLabel;
  const problems: string[] = [];
  const fixes: string[] = [];
  for (const nodeName of gpuNodes) {
    const labels = nodes.find((n) => n.metadata?.name === nodeName)?.metadata?.labels ?? {};
    const hostname = labels['kubernetes.io/hostname'];
    if (hostname !== nodeName) {
      problems.push(`${nodeName}: kubernetes.io/hostname is ${hostname === undefined ? 'missing' : `"${hostname}"`}, so the node selector the webhook injects never matches it`);
      fixes.push(`kubectl label node ${nodeName} kubernetes.io/hostname=${nodeName} --overwrite`);
    }
    if (labels[modelLabel] === undefined) {
      problems.push(`${nodeName}: no ${modelLabel} label, so the gpu-model filter can only use the exporter's model name`);
      fixes.push(`kubectl label node ${nodeName} ${modelLabel}=<model, e.g. NVIDIA-H100-80GB-HBM3>  # GPU feature discovery sets it`);
    }
  }
  if (problems.length > 0) return fail(name, problems.join('; '), fixes.join(' && '));
  return pass(name, `all ${gpuNodes.length} GPU nodes carry kubernetes.io/hostname and ${modelLabel}`);
}

async function checkReplicas(target: ClusterTarget, webhookPods: readonly V1Pod[]): Promise<CheckResult> {
  const name = 'webhook replicas';
  const { namespace, config } = target;
  const restart = `kubectl -n ${namespace} rollout restart deployment -l ${WEBHOOK_COMPONENT_SELECTOR}`;
  if (webhookPods.length === 0) return fail(name, `no webhook pod in ${namespace} labelled ${WEBHOOK_COMPONENT_SELECTOR}`, `helm upgrade --install mps-injector charts/mps-injector -n ${namespace}  # or pass --webhook-namespace`);
  const notReady = webhookPods.filter((p) => !isReady(p)).map((p) => p.metadata?.name ?? '');
  const problems: string[] = [];
  if (notReady.length > 0) problems.push(`${notReady.length} of ${webhookPods.length} not Ready (${list(notReady)}): check \`kubectl -n ${namespace} describe pod ${notReady[0] ?? ''}\` and its /readyz reason`);
  const checksums = new Set(webhookPods.map((p) => p.metadata?.annotations?.['checksum/config'] ?? '(none)'));
  if (checksums.size > 1) problems.push(`replicas run ${checksums.size} different configurations (checksum/config ${[...checksums].join(', ')}): a rollout is stuck or a pod was edited`);
  if (webhookPods.length > 1 && !config.cluster.enabled) problems.push(`${webhookPods.length} replicas with cluster.enabled false: each keeps its own ledger and they can grant the same GPU twice`);
  // The reservation store they share: every durable object must be readable by all of them.
  try {
    const cms = (await target.apis.core.listNamespacedConfigMap({ namespace, labelSelector: DURABLE_LABEL_SELECTOR }, target.apis.callOptions())).items;
    const unreadable: string[] = [];
    for (const cm of cms) {
      try {
        decodeDurableRecord(cm);
      } catch (err) {
        if (err instanceof DurableRecordError) unreadable.push(err.message);
        else throw err;
      }
    }
    if (unreadable.length > 0) problems.push(`the reservation store holds unreadable objects: ${unreadable.join('; ')}`);
  } catch (err) {
    problems.push(`the reservation store (ConfigMaps ${DURABLE_LABEL_SELECTOR}) cannot be read (${classifyApiError(err).detail})`);
  }
  if (problems.length > 0) return fail(name, problems.join('; '), restart);
  return pass(name, `${webhookPods.length} Ready, one configuration, sharing the reservation store in ${namespace}`);
}

async function checkRbac(target: ClusterTarget, webhookPods: readonly V1Pod[], serviceAccount: string | undefined): Promise<CheckResult> {
  const name = 'RBAC';
  const { namespace } = target;
  const sa = serviceAccount ?? webhookPods.find((p) => p.spec?.serviceAccountName !== undefined)?.spec?.serviceAccountName ?? 'mps-injector';
  const user = `system:serviceaccount:${namespace}:${sa}`;
  const api = target.kubeConfig.makeApiClient(AuthorizationV1Api);
  const permissions = webhookPermissions(target.config, namespace);
  const denied: string[] = [];
  let asSelf = false;
  for (const p of permissions) {
    const resourceAttributes = { verb: p.verb, group: p.group, resource: p.resource, ...(p.namespace !== '' ? { namespace: p.namespace } : {}), ...(p.name !== '' ? { name: p.name } : {}) };
    let allowed: boolean;
    try {
      if (asSelf) throw Object.assign(new Error('self'), { self: true });
      const review = await api.createSubjectAccessReview({ body: { apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview', spec: { user, groups: ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, 'system:authenticated'], resourceAttributes } } });
      allowed = review.status?.allowed === true;
    } catch (err) {
      const failure = (err as { self?: boolean }).self ? null : classifyApiError(err);
      if (failure !== null && failure.kind !== 'forbidden') return fail(name, `access reviews failed (${failure.detail})`, `kubectl auth can-i --list --as=${user}`);
      // Not allowed to ask about others: ask about ourselves (right when run as the webhook's ServiceAccount).
      asSelf = true;
      try {
        const review = await api.createSelfSubjectAccessReview({ body: { apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectAccessReview', spec: { resourceAttributes } } });
        allowed = review.status?.allowed === true;
      } catch (selfErr) {
        return fail(name, `access reviews cannot be created (${classifyApiError(selfErr).detail})`, `kubectl auth can-i --list --as=${user}`);
      }
    }
    if (!allowed) denied.push(describePermission(p));
  }
  const who = asSelf ? 'you (SelfSubjectAccessReview: you may not create SubjectAccessReviews, so this is right only when run as the webhook ServiceAccount)' : user;
  if (denied.length > 0) {
    return fail(name, `${who} lacks ${denied.length} of ${permissions.length} permissions: ${list(denied, 8)}`, `helm upgrade mps-injector charts/mps-injector -n ${namespace} --reuse-values --set rbac.create=true  # or grant the rules in docs/rbac.md to ${user}`);
  }
  return pass(name, `${who} holds all ${permissions.length} permissions the webhook uses`);
}

/** Run every check. */
export async function runDoctorChecks(opts: DoctorOptions, deps: ClusterCommandDeps = {}): Promise<{ checks: CheckResult[]; target: ClusterTarget }> {
  let target: ClusterTarget;
  try {
    target = await resolveClusterTarget(opts, deps.kubeConfig);
  } catch (err) {
    throw asInputError(err);
  }
  let state: ClusterState | null = null;
  let stateError: string | null = null;
  try {
    state = await clusterStateFor(opts, deps);
  } catch (err) {
    stateError = (err as Error).message;
  }
  const { apis, namespace } = target;
  let nodes: V1Node[] = state?.nodes ?? [];
  let webhookPods: V1Pod[];
  try {
    if (state === null) nodes = (await apis.core.listNode({}, apis.callOptions())).items;
    webhookPods = (await apis.core.listNamespacedPod({ namespace, labelSelector: WEBHOOK_COMPONENT_SELECTOR }, apis.callOptions())).items;
  } catch (err) {
    throw asInputError(err);
  }
  const gpuNodes = gpuNodeNames(nodes, state);
  const nowMs = state?.nowMs ?? (deps.now ?? Date.now)();
  const checks = [
    await checkWebhookConfiguration(target, webhookPods, opts, nowMs),
    await checkOptedInNamespaces(target),
    checkExporters(target, state, stateError, gpuNodes),
    await checkMpsDaemons(target, gpuNodes, opts.mpsDaemonSelector !== undefined && opts.mpsDaemonSelector.length > 0 ? opts.mpsDaemonSelector : DEFAULT_MPS_DAEMON_SELECTORS),
    checkNodeLabels(target, nodes, gpuNodes),
    await checkReplicas(target, webhookPods),
    await checkRbac(target, webhookPods, opts.serviceAccount),
  ];
  return { checks, target };
}

export function renderChecks(checks: readonly CheckResult[]): string {
  const width = Math.max(...checks.map((c) => c.name.length));
  const lines = checks.flatMap((c) => [`${c.ok ? 'PASS' : 'FAIL'}  ${c.name.padEnd(width)}  ${c.verdict}`, ...(c.ok ? [] : [`      ${' '.repeat(width)}  fix: ${c.fix}`])]);
  const failed = checks.filter((c) => !c.ok).length;
  lines.push(`${checks.length} checks: ${checks.length - failed} passed, ${failed} failed`);
  return `${lines.join('\n')}\n`;
}

export async function runDoctor(opts: DoctorOptions, deps: ClusterCommandDeps = {}): Promise<CommandRun> {
  const { checks, target } = await runDoctorChecks(opts, deps);
  const exitCode = checks.every((c) => c.ok) ? 0 : 1;
  if (opts.output === OutputFormat.Json || opts.output === OutputFormat.Yaml) {
    return { stdout: formatDocument({ apiVersion: 'mps-injector.io/v1', kind: 'DoctorReport', metadata: { webhookNamespace: target.namespace, configuration: target.configOrigin }, ok: exitCode === 0, checks }, opts.output), stderr: [], exitCode };
  }
  return { stdout: renderChecks(checks), stderr: [], exitCode };
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

export function registerDoctorCommand(program: Command): void {
  const command = program
    .command('doctor')
    .description(
      'check a cluster before relying on the webhook: its configuration and caBundle, opted-in namespaces, dcgm-exporter and an MPS daemon on every GPU node, node labels, Ready replicas sharing one reservation store, RBAC; exit 0 only when all pass',
    )
    .option('--webhook-address <host:port>', 'where the webhook serves, to check the certificate it presents (e.g. 127.0.0.1:8443 after kubectl port-forward); default: its Service, else its TLS Secret')
    .option('--mps-daemon-selector <selector>', `label selector of MPS control daemon pods, any namespace (repeat; default: ${DEFAULT_MPS_DAEMON_SELECTORS.join(' or ')})`, collect)
    .option('--service-account <name>', "the webhook's ServiceAccount (default: the one its pods run as)")
    .addOption(textOutputOption({ wide: false }));
  addClusterFlags(command).addHelpText('after', `\n${EXIT_CODES_HELP}`);
  command.action(async (opts: DoctorOptions) => {
    const run = await runDoctor(opts);
    process.stdout.write(run.stdout);
    process.exitCode = run.exitCode;
  });
}
