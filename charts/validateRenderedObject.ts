/**
 * Validates rendered objects against the Kubernetes OpenAPI schema of their kind
 * (kubernetes-models: types, required fields, enums, formats).
 *
 * Custom resources (cert-manager Certificate/Issuer, Prometheus Operator ServiceMonitor) have no
 * model installed here, so they are checked structurally with strict schemas of the fields
 * the chart writes: an unknown or misspelt field, or a wrong type, fails.
 */
import { z } from 'zod';
import type { KubeObject } from './renderChart.js';

interface ValidatingModel {
  validate(): void;
}
type ModelClass = new (data: unknown) => ValidatingModel;

/** apiVersion/kind -> kubernetes-models module path and class name. */
const MODEL_MODULES: Record<string, string> = {
  'v1/ConfigMap': 'kubernetes-models/v1/ConfigMap',
  'v1/Service': 'kubernetes-models/v1/Service',
  'v1/ServiceAccount': 'kubernetes-models/v1/ServiceAccount',
  'v1/Secret': 'kubernetes-models/v1/Secret',
  'apps/v1/Deployment': 'kubernetes-models/apps/v1/Deployment',
  'apps/v1/DaemonSet': 'kubernetes-models/apps/v1/DaemonSet',
  'batch/v1/Job': 'kubernetes-models/batch/v1/Job',
  'policy/v1/PodDisruptionBudget': 'kubernetes-models/policy/v1/PodDisruptionBudget',
  'rbac.authorization.k8s.io/v1/ClusterRole': 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole',
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding',
  'rbac.authorization.k8s.io/v1/Role': 'kubernetes-models/rbac.authorization.k8s.io/v1/Role',
  'rbac.authorization.k8s.io/v1/RoleBinding': 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding',
  'admissionregistration.k8s.io/v1/MutatingWebhookConfiguration': 'kubernetes-models/admissionregistration.k8s.io/v1/MutatingWebhookConfiguration',
  'admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy': 'kubernetes-models/admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy',
  'admissionregistration.k8s.io/v1/ValidatingAdmissionPolicyBinding': 'kubernetes-models/admissionregistration.k8s.io/v1/ValidatingAdmissionPolicyBinding',
  'networking.k8s.io/v1/NetworkPolicy': 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy',
};

export const modelModuleFor = (o: Pick<KubeObject, 'apiVersion' | 'kind'>): string | undefined => MODEL_MODULES[`${o.apiVersion}/${o.kind}`];

const metadata = z
  .object({
    name: z.string().min(1),
    namespace: z.string().min(1),
    labels: z.record(z.string()).optional(),
    annotations: z.record(z.string()).optional(),
  })
  .strict();
const duration = z.string().regex(/^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$/);
const issuerRef = z.object({ name: z.string().min(1), kind: z.enum(['Issuer', 'ClusterIssuer']), group: z.string().min(1) }).strict();

/** Structural schemas of the custom resources the chart renders (fields as the CRDs define them). */
const CUSTOM_RESOURCES: Record<string, z.ZodTypeAny> = {
  'cert-manager.io/v1/Issuer': z
    .object({
      apiVersion: z.literal('cert-manager.io/v1'),
      kind: z.literal('Issuer'),
      metadata,
      spec: z.union([z.object({ selfSigned: z.object({}).strict() }).strict(), z.object({ ca: z.object({ secretName: z.string().min(1) }).strict() }).strict()]),
    })
    .strict(),
  'cert-manager.io/v1/Certificate': z
    .object({
      apiVersion: z.literal('cert-manager.io/v1'),
      kind: z.literal('Certificate'),
      metadata,
      spec: z
        .object({
          secretName: z.string().min(1),
          isCA: z.boolean().optional(),
          commonName: z.string().max(64).optional(),
          dnsNames: z.array(z.string().min(1)).optional(),
          duration: duration.optional(),
          renewBefore: duration.optional(),
          usages: z.array(z.enum(['server auth', 'client auth', 'digital signature', 'key encipherment', 'cert sign'])).optional(),
          privateKey: z
            .object({ algorithm: z.enum(['RSA', 'ECDSA', 'Ed25519']), size: z.number().int().positive(), rotationPolicy: z.enum(['Never', 'Always']).optional() })
            .strict()
            .optional(),
          issuerRef,
        })
        .strict(),
    })
    .strict(),
  'monitoring.coreos.com/v1/PrometheusRule': z
    .object({
      apiVersion: z.literal('monitoring.coreos.com/v1'),
      kind: z.literal('PrometheusRule'),
      metadata,
      spec: z
        .object({
          groups: z.array(
            z
              .object({
                name: z.string().min(1),
                rules: z.array(
                  z
                    .object({
                      alert: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/),
                      expr: z.string().min(1),
                      for: z.string().optional(),
                      labels: z.record(z.string()).optional(),
                      annotations: z.record(z.string()).optional(),
                    })
                    .strict(),
                ),
              })
              .strict(),
          ),
        })
        .strict(),
    })
    .strict(),
  'monitoring.coreos.com/v1/ServiceMonitor': z
    .object({
      apiVersion: z.literal('monitoring.coreos.com/v1'),
      kind: z.literal('ServiceMonitor'),
      metadata,
      spec: z
        .object({
          selector: z.object({ matchLabels: z.record(z.string()) }).strict(),
          namespaceSelector: z.object({ matchNames: z.array(z.string().min(1)) }).strict(),
          endpoints: z.array(
            z
              .object({
                port: z.string().min(1),
                scheme: z.enum(['http', 'https']),
                path: z.string().startsWith('/'),
                interval: z.string().regex(/^([0-9]+(ms|s|m|h|d|w|y))+$/),
                scrapeTimeout: z.string().regex(/^([0-9]+(ms|s|m|h|d|w|y))+$/),
                tlsConfig: z
                  .object({
                    serverName: z.string().min(1),
                    insecureSkipVerify: z.boolean(),
                    ca: z
                      .union([
                        z.object({ secret: z.object({ name: z.string().min(1), key: z.string().min(1) }).strict() }).strict(),
                        z.object({ configMap: z.object({ name: z.string().min(1), key: z.string().min(1) }).strict() }).strict(),
                      ])
                      .optional(),
                  })
                  .strict(),
              })
              .strict(),
          ),
        })
        .strict(),
    })
    .strict(),
};

export class RenderedObjectInvalid extends Error {
  override readonly name = 'RenderedObjectInvalid';
}

const modelCache = new Map<string, ModelClass>();

async function loadModel(modulePath: string, kind: string): Promise<ModelClass> {
  const cached = modelCache.get(modulePath);
  if (cached) return cached;
  const mod = (await import(modulePath)) as Record<string, unknown>;
  const model = mod[kind];
  if (typeof model !== 'function') throw new Error(`${modulePath} exports no ${kind} model`);
  modelCache.set(modulePath, model as ModelClass);
  return model as ModelClass;
}

/**
 * Throws RenderedObjectInvalid naming the object and every problem, or an Error for a kind
 * with neither a model nor a structural schema (so a new template cannot go unvalidated).
 */
export async function validateRenderedObject(o: KubeObject): Promise<void> {
  const id = `${o.kind}/${o.metadata?.name ?? '(no name)'}`;
  const modulePath = modelModuleFor(o);
  if (modulePath) {
    const Model = await loadModel(modulePath, o.kind);
    try {
      new Model(o).validate();
    } catch (err) {
      throw new RenderedObjectInvalid(`${id} does not match the Kubernetes schema of ${o.apiVersion} ${o.kind}: ${(err as Error).message}`);
    }
    return;
  }
  const schema = CUSTOM_RESOURCES[`${o.apiVersion}/${o.kind}`];
  if (!schema) throw new Error(`${id}: no schema for ${o.apiVersion} ${o.kind}; add its kubernetes-models module or a structural schema in charts/validateRenderedObject.ts`);
  const result = schema.safeParse(o);
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${i.path.join('.') || '(object)'}: ${i.message}`).join('; ');
    throw new RenderedObjectInvalid(`${id} does not match the structure of ${o.apiVersion} ${o.kind}: ${problems}`);
  }
}
