/**
 * Every permission the webhook's ServiceAccount needs for a configuration: the calls
 * docs/rbac.md lists and the chart's Role and ClusterRole grant. `mps-injector doctor` asks the
 * API server about each one. Pure.
 */
import type { Config } from '../config/schema.js';

export interface Permission {
  verb: string;
  /** API group ('' for the core group). */
  group: string;
  resource: string;
  /** Namespace of a namespaced rule; '' for cluster-wide. */
  namespace: string;
  /** Object name of a rule limited to one; '' otherwise. */
  name: string;
  /** What the webhook does with it. */
  why: string;
}

const rule = (verbs: readonly string[], group: string, resource: string, namespace: string, name: string, why: string): Permission[] =>
  verbs.map((verb) => ({ verb, group, resource, namespace, name, why }));

/** The permissions the webhook in `namespace` needs with `config`. */
export function webhookPermissions(config: Config, namespace: string): Permission[] {
  const permissions: Permission[] = [
    ...rule(['list', 'watch'], '', 'pods', '', '', 'watch the pods it injected to confirm, release and rebuild reservations'),
    ...rule(['get'], '', 'pods', '', '', 'check that a pod holding capacity still exists'),
    ...rule(['list', 'watch'], '', 'nodes', '', '', 'skip cordoned and NotReady nodes, read GPU model labels'),
    ...rule(['get', 'list', 'create', 'update'], '', 'configmaps', namespace, '', 'keep the durable reservations (one ConfigMap per GPU)'),
    ...rule(['get'], '', 'secrets', namespace, config.decisions.keySecretName, 'read the decision keys'),
    ...rule(['create'], '', 'secrets', namespace, '', 'create the decision key Secret (and, self-managed, the certificate Secret) on first start'),
  ];
  if (config.metrics.source === 'discovery') {
    permissions.push(...rule(['list', 'watch'], '', 'pods', config.metrics.discovery.namespace, '', 'find the dcgm-exporter pods'));
  }
  if (config.certificates.mode === 'self-managed') {
    permissions.push(
      ...rule(['get', 'update'], '', 'secrets', namespace, config.certificates.secretName, 'read and rotate the serving certificate'),
      ...rule(['get', 'list', 'create', 'update', 'delete'], 'coordination.k8s.io', 'leases', namespace, '', 'report which CA each replica serves'),
      ...rule(['get', 'patch'], 'admissionregistration.k8s.io', 'mutatingwebhookconfigurations', '', config.certificates.mutatingWebhookConfigurationName, 'keep the caBundle equal to the CA'),
    );
  }
  return permissions;
}

/** "list pods", "get secrets/mps-injector-decision-key in mps-injector": a permission in words. */
export function describePermission(p: Permission): string {
  const resource = `${p.resource}${p.group === '' ? '' : `.${p.group}`}${p.name === '' ? '' : `/${p.name}`}`;
  return `${p.verb} ${resource}${p.namespace === '' ? '' : ` in ${p.namespace}`}`;
}
