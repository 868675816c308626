/**
 * Acts as the Kubernetes API server's mutating admission stage for the objects a chart
 * rendered: it decides from a MutatingWebhookConfiguration's rules, namespaceSelector and
 * objectSelector whether to call each webhook, resolves clientConfig.service the way the
 * API server and the Service's endpoints do (Service port -> targetPort -> the selected pods'
 * container port), calls it over TLS trusting only the caBundle and checking the certificate
 * against `<service>.<namespace>.svc`, honours timeoutSeconds, failurePolicy, sideEffects and
 * reinvocationPolicy, and applies the returned JSONPatch.
 *
 * The selected pods run on this machine, so every endpoint address is 127.0.0.1.
 */
import { randomUUID } from 'node:crypto';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import fjp from 'fast-json-patch';
import type { Operation } from 'fast-json-patch';
import type { MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations } from 'kubernetes-types/admissionregistration/v1.js';
import type { Deployment } from 'kubernetes-types/apps/v1.js';
import type { Service } from 'kubernetes-types/core/v1.js';
import type { LabelSelector } from './matchLabelSelector.js';
import { matchesLabelSelector } from './matchLabelSelector.js';

export interface Namespace {
  name: string;
  labels?: Record<string, string>;
}

export interface GroupVersionResource {
  group: string;
  version: string;
  resource: string;
}

export interface AdmissionAttempt<T = unknown> {
  operation: 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';
  resource: GroupVersionResource;
  kind: { group: string; version: string; kind: string };
  namespace: Namespace;
  object: T;
  dryRun?: boolean;
}

export type CallOutcome = 'patched' | 'allowed' | 'denied' | 'failed-closed' | 'failed-open';

export interface WebhookCall {
  webhook: string;
  outcome: CallOutcome;
  /** Why the call failed, in the API server's words; or the webhook's denial message. */
  message?: string;
  warnings: string[];
  reinvocation: boolean;
}

export interface AdmissionOutcome<T = unknown> {
  allowed: boolean;
  /** The object after every patch (the input, untouched, when nothing mutated it). */
  object: T;
  /** The error the client would see when not allowed. */
  message?: string;
  warnings: string[];
  calls: WebhookCall[];
}

/** An in-process mutating admission step that runs after the rendered webhooks (to exercise reinvocation). */
export type LocalMutator<T> = (object: T) => T;

export class EndpointError extends Error {
  override readonly name = 'EndpointError';
}

/** kubernetes-types leaves out the fields RuleWithOperations inherits from Rule. */
type WebhookRule = RuleWithOperations & { resources?: string[]; scope?: '*' | 'Cluster' | 'Namespaced' };

function ruleMatches(rule: WebhookRule, a: AdmissionAttempt): boolean {
  const anyOf = (list: string[] | undefined, value: string): boolean => (list ?? []).some((x) => x === '*' || x === value);
  const [resource, sub] = a.resource.resource.split('/');
  const resourceOk = (rule.resources ?? []).some((r: string) => {
    const [rr, rs] = r.split('/');
    if (rr !== '*' && rr !== resource) return false;
    return rs === undefined ? sub === undefined : rs === '*' || rs === sub;
  });
  const scope = rule.scope ?? '*';
  return anyOf(rule.operations, a.operation) && anyOf(rule.apiGroups, a.resource.group) && anyOf(rule.apiVersions, a.resource.version) && resourceOk && (scope === '*' || scope === 'Namespaced');
}

/** Whether the API server would send this request to the webhook at all. */
export function webhookApplies(hook: MutatingWebhook, a: AdmissionAttempt<{ metadata?: { labels?: Record<string, string> } }>): boolean {
  if (!(hook.rules ?? []).some((r) => ruleMatches(r, a))) return false;
  // The API server labels every namespace with its own name.
  const nsLabels = { ...a.namespace.labels, 'kubernetes.io/metadata.name': a.namespace.name };
  if (!matchesLabelSelector(hook.namespaceSelector as LabelSelector | undefined, nsLabels)) return false;
  return matchesLabelSelector(hook.objectSelector as LabelSelector | undefined, a.object.metadata?.labels ?? {});
}

export interface ClusterState {
  webhookConfiguration: MutatingWebhookConfiguration;
  services: Service[];
  deployments: Deployment[];
}

/** clientConfig.service -> the host:port a connection goes to, or EndpointError saying why there is none. */
export function resolveServiceEndpoint(state: ClusterState, ref: { namespace: string; name: string; port?: number }): { host: string; port: number } {
  const servicePort = ref.port ?? 443;
  const svc = state.services.find((s) => s.metadata?.name === ref.name && s.metadata?.namespace === ref.namespace);
  if (!svc) throw new EndpointError(`service "${ref.name}" not found in namespace "${ref.namespace}"`);
  const port = svc.spec?.ports?.find((p) => p.port === servicePort);
  if (!port) throw new EndpointError(`service ${ref.namespace}/${ref.name} has no port ${servicePort} (it has ${(svc.spec?.ports ?? []).map((p) => p.port).join(', ')})`);
  const target = port.targetPort ?? port.port;
  const pods = state.deployments.filter(
    (d) => d.metadata?.namespace === ref.namespace && svc.spec?.selector !== undefined && matchesLabelSelector({ matchLabels: svc.spec.selector }, d.spec?.template.metadata?.labels),
  );
  if (pods.length === 0) throw new EndpointError(`no endpoints available for service "${ref.name}": its selector matches no pods`);
  if (typeof target === 'number') return { host: '127.0.0.1', port: target };
  for (const d of pods) {
    for (const c of d.spec?.template.spec?.containers ?? []) {
      const named = c.ports?.find((p) => p.name === target);
      if (named) return { host: '127.0.0.1', port: named.containerPort };
    }
  }
  throw new EndpointError(`no endpoints available for service "${ref.name}": no selected container has a port named "${target}"`);
}

interface ReviewResponse {
  apiVersion?: string;
  kind?: string;
  response?: { uid?: string; allowed?: boolean; patch?: string; patchType?: string; warnings?: string[]; status?: { code?: number; message?: string } };
}

class CallFailure extends Error {}

/** POST the review the way the API server does; resolves with the decoded answer or throws CallFailure. */
function postReview(state: ClusterState, hook: MutatingWebhook, review: object): Promise<ReviewResponse> {
  const svcRef = hook.clientConfig.service;
  if (!svcRef) return Promise.reject(new CallFailure('clientConfig.url is not supported by this emulator; use clientConfig.service'));
  let endpoint: { host: string; port: number };
  try {
    endpoint = resolveServiceEndpoint(state, svcRef);
  } catch (err) {
    return Promise.reject(new CallFailure((err as Error).message));
  }
  const serverName = `${svcRef.name}.${svcRef.namespace}.svc`;
  const lookup: LookupFunction = (_hostname, options, callback) => {
    if ((options as { all?: boolean }).all) (callback as unknown as (e: null, a: { address: string; family: number }[]) => void)(null, [{ address: endpoint.host, family: 4 }]);
    else callback(null, endpoint.host, 4);
  };
  const timeoutSeconds = hook.timeoutSeconds ?? 10;
  const body = JSON.stringify(review);
  const ca = hook.clientConfig.caBundle ? Buffer.from(hook.clientConfig.caBundle, 'base64').toString('utf8') : undefined;
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: serverName,
        port: endpoint.port,
        path: svcRef.path ?? '/',
        method: 'POST',
        lookup,
        ...(ca !== undefined ? { ca } : {}),
        agent: false,
        headers: { 'content-type': 'application/json', accept: 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode !== 200) {
            reject(new CallFailure(`expected response code 200, got ${res.statusCode}: ${text.slice(0, 200)}`));
            return;
          }
          try {
            resolve(JSON.parse(text) as ReviewResponse);
          } catch {
            reject(new CallFailure(`the response is not JSON: ${text.slice(0, 200)}`));
          }
        });
      },
    );
    const timer = setTimeout(() => req.destroy(new CallFailure(`context deadline exceeded (timeoutSeconds ${timeoutSeconds})`)), timeoutSeconds * 1000);
    req.on('close', () => clearTimeout(timer));
    req.on('error', (err) => reject(err instanceof CallFailure ? err : new CallFailure(`Post "https://${serverName}:${svcRef.port ?? 443}${svcRef.path ?? ''}": ${err.message}`)));
    req.end(body);
  });
}

export class ApiServerAdmission {
  constructor(
    private readonly state: ClusterState,
    private readonly laterMutators: LocalMutator<unknown>[] = [],
  ) {}

  /** Run the mutating admission stage for one request. */
  async admit<T extends { metadata?: { name?: string; labels?: Record<string, string> } }>(attempt: AdmissionAttempt<T>): Promise<AdmissionOutcome<T>> {
    let object = structuredClone(attempt.object);
    const calls: WebhookCall[] = [];
    const warnings: string[] = [];
    const hooks = this.state.webhookConfiguration.webhooks ?? [];
    const lastCallObject = new Map<string, string>();

    const callHook = async (hook: MutatingWebhook, reinvocation: boolean): Promise<string | null> => {
      if (!webhookApplies(hook, { ...attempt, object })) return null;
      if (attempt.dryRun && !['None', 'NoneOnDryRun'].includes(hook.sideEffects)) {
        return `admission webhook "${hook.name}" does not support dry run (sideEffects ${hook.sideEffects})`;
      }
      const uid = randomUUID();
      const review = {
        apiVersion: 'admission.k8s.io/v1',
        kind: 'AdmissionReview',
        request: {
          uid,
          kind: attempt.kind,
          resource: attempt.resource,
          requestKind: attempt.kind,
          requestResource: attempt.resource,
          name: object.metadata?.name ?? '',
          namespace: attempt.namespace.name,
          operation: attempt.operation,
          userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller', groups: ['system:serviceaccounts', 'system:authenticated'] },
          object,
          oldObject: null,
          dryRun: attempt.dryRun ?? false,
          options: { apiVersion: 'meta.k8s.io/v1', kind: 'CreateOptions' },
        },
      };
      const failurePolicy = hook.failurePolicy ?? 'Fail';
      let answer: ReviewResponse;
      try {
        answer = await postReview(this.state, hook, review);
        if (answer.apiVersion !== 'admission.k8s.io/v1' || answer.kind !== 'AdmissionReview') throw new CallFailure(`expected an admission.k8s.io/v1 AdmissionReview in response, got ${answer.apiVersion}/${answer.kind}`);
        if (answer.response?.uid !== uid) throw new CallFailure(`expected response.uid="${uid}", got "${answer.response?.uid}"`);
      } catch (err) {
        const message = `failed calling webhook "${hook.name}": ${(err as Error).message}`;
        if (failurePolicy === 'Ignore') {
          calls.push({ webhook: hook.name, outcome: 'failed-open', message, warnings: [], reinvocation });
          return null;
        }
        calls.push({ webhook: hook.name, outcome: 'failed-closed', message, warnings: [], reinvocation });
        return `Internal error occurred: ${message}`;
      }
      const response = answer.response;
      const hookWarnings = response?.warnings ?? [];
      warnings.push(...hookWarnings);
      if (!response?.allowed) {
        const message = `admission webhook "${hook.name}" denied the request: ${response?.status?.message ?? '(no message)'}`;
        calls.push({ webhook: hook.name, outcome: 'denied', message, warnings: hookWarnings, reinvocation });
        return message;
      }
      if (response.patch) {
        if (response.patchType !== 'JSONPatch') return `admission webhook "${hook.name}" returned patchType ${String(response.patchType)}; only JSONPatch is supported`;
        const ops = JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8')) as Operation[];
        try {
          object = fjp.applyPatch(object, ops, true, false).newDocument;
        } catch (err) {
          return `Internal error occurred: failed to apply the patch of admission webhook "${hook.name}": ${(err as Error).message}`;
        }
        calls.push({ webhook: hook.name, outcome: ops.length > 0 ? 'patched' : 'allowed', warnings: hookWarnings, reinvocation });
      } else {
        calls.push({ webhook: hook.name, outcome: 'allowed', warnings: hookWarnings, reinvocation });
      }
      lastCallObject.set(hook.name, JSON.stringify(object));
      return null;
    };

    for (const hook of hooks) {
      const denied = await callHook(hook, false);
      if (denied) return { allowed: false, object: attempt.object, message: denied, warnings, calls };
    }
    for (const mutate of this.laterMutators) object = mutate(object) as T;
    // Reinvocation: a webhook with IfNeeded is called once more when something changed the object after its call.
    for (const hook of hooks) {
      const seen = lastCallObject.get(hook.name);
      if (hook.reinvocationPolicy !== 'IfNeeded' || seen === undefined || seen === JSON.stringify(object)) continue;
      const denied = await callHook(hook, true);
      if (denied) return { allowed: false, object: attempt.object, message: denied, warnings, calls };
    }
    return { allowed: true, object, warnings, calls };
  }
}

/** A CREATE of a v1 Pod in the given namespace. */
export function podCreate<T>(namespace: Namespace, pod: T, opts: { dryRun?: boolean } = {}): AdmissionAttempt<T> {
  return {
    operation: 'CREATE',
    resource: { group: '', version: 'v1', resource: 'pods' },
    kind: { group: '', version: 'v1', kind: 'Pod' },
    namespace,
    object: pod,
    ...(opts.dryRun ? { dryRun: true } : {}),
  };
}
